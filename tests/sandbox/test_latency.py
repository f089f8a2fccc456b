"""Sandbox latency: every answer waits its delay (with jitter), and the waits of different answers overlap."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from cxsync_dev.sandbox.__main__ import build_parser, faults_from_args
from cxsync_dev.sandbox.core import FaultSettings


@pytest.mark.parametrize("text", ["300±100", "300+-100", "300 +- 100"])
def test_the_latency_option_takes_a_delay_and_its_jitter(text):
    args = build_parser().parse_args(["--hd-latency", text, "--lp-latency", "1500"])
    faults = faults_from_args(args)
    assert (faults["helpdesk"].latency_ms, faults["helpdesk"].latency_jitter_ms) == (300.0, 100.0)
    assert (faults["liveperson"].latency_ms, faults["liveperson"].latency_jitter_ms) == (1500.0, 0.0)


@pytest.mark.parametrize("text", ["fast", "-5", "300±-1", "300±x"])
def test_a_bad_latency_is_refused(text, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--hd-latency", text])
    assert "--hd-latency" in capsys.readouterr().err


def test_the_delay_stays_within_its_jitter():
    settings = FaultSettings(latency_ms=300, latency_jitter_ms=100)
    assert settings.answer_delay(lambda: 0.0) == pytest.approx(0.2)
    assert settings.answer_delay(lambda: 0.5) == pytest.approx(0.3)
    assert settings.answer_delay(lambda: 0.999999) == pytest.approx(0.4, abs=1e-6)
    assert FaultSettings(latency_ms=50, latency_jitter_ms=100).answer_delay(lambda: 0.0) == 0.0  # never negative
    assert FaultSettings().answer_delay(lambda: 0.5) == 0.0


def test_answers_are_delayed_without_holding_each_other_up(sandbox_factory):
    server = sandbox_factory(faults={"helpdesk": FaultSettings(latency_ms=400, latency_jitter_ms=50)})
    spans: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def ask() -> None:
        started = time.monotonic()
        status = requests.get(f"{server.base_url}/v1/agents", timeout=30).status_code
        with lock:
            spans.append((started, time.monotonic(), status))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(spans) == 6
    assert all(end - start >= 0.35 for start, end, _ in spans)  # each answer waited its delay (at least 400-50 ms)
    # The waits overlapped: every request had been sent before the first answer came back.
    assert max(start for start, _, _ in spans) < min(end for _, end, _ in spans)
