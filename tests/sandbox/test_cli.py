"""`python -m cxsync_dev.sandbox` as a data engineer runs it: a subprocess on a free port, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from requests_oauthlib import OAuth1

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cxsync_dev.sandbox", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )


def test_help_documents_every_option():
    out = run_cli("--help").stdout
    for option in (
        "--port",
        "--host",
        "--seed",
        "--now",
        "--lp-account-id",
        "--lp-agents",
        "--lp-bots",
        "--lp-deleted-agents",
        "--lp-conversations-per-day",
        "--lp-days",
        "--lp-messages",
        "--lp-token-ttl",
        "--lp-rate-limit",
        "--lp-no-retry-after",
        "--lp-p-5xx",
        "--lp-p-reset",
        "--lp-p-slow",
        "--lp-slow-seconds",
        "--lp-p-truncate",
        "--lp-p-partial",
        "--lp-p-is-partial",
        "--hd-rate-limit",
        "--hd-no-retry-after",
        "--hd-p-5xx",
        "--hd-p-reset",
        "--hd-p-slow",
        "--hd-slow-seconds",
        "--hd-p-truncate",
        "--lp-latency",
        "--hd-latency",
        "--lp-revoke-users",
        "--switch",
    ):
        assert option in out, option
    # Every option has a help text: no bare "--option VALUE" line without words after it.
    options = re.findall(r"^  (--[a-z0-9-]+)", out, flags=re.MULTILINE)
    assert len(options) >= 30


def test_bad_option_values_are_refused_plainly():
    result = run_cli("--lp-p-5xx", "1.5")
    assert result.returncode == 2
    assert "probability" in result.stderr
    result = run_cli("--lp-messages", "20:5")
    assert result.returncode == 2 and "MIN:MAX" in result.stderr


@pytest.fixture
def cli_server():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cxsync_dev.sandbox",
            "--port",
            "0",
            "--seed",
            "9",
            "--now",
            "2025-03-14T09:30:00Z",
            "--lp-days",
            "3",
            "--lp-conversations-per-day",
            "10",
            "--lp-rate-limit",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("export AIRFLOW_CONN_SANDBOX_LIVEPERSON_NOUSERS="):
            break
    yield proc, lines
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def test_serves_prints_connections_and_stops_on_sigterm(cli_server):
    proc, lines = cli_server
    banner = "".join(line for line in lines if line.startswith("#"))
    assert "SANDBOX ONLY" in banner and "test values" in banner and "Never use them for production" in banner
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)", lines[0]).group(1))
    exports = {
        m.group(1): json.loads(m.group(2).strip("'"))
        for m in (re.match(r"export AIRFLOW_CONN_([A-Z0-9_]+)=(.*)$", line.strip()) for line in lines)
        if m
    }
    main = exports["SANDBOX_LIVEPERSON_OAUTH1"]  # the legacy key: requests signed here by hand
    assert main["port"] == port and main["host"] == "127.0.0.1" and main["schema"] == "http"
    extra = main["extra"]
    auth = OAuth1(main["login"], main["password"], extra["access_token"], extra["access_token_secret"])
    base = f"http://127.0.0.1:{port}"
    users = requests.get(
        f"{base}/api/account/{extra['account_id']}/configuration/le-users/users", params={"v": "4.0"}, auth=auth
    )
    assert users.status_code == 200
    bad = OAuth1(main["login"], "wrong", extra["access_token"], extra["access_token_secret"])
    assert (
        requests.get(f"{base}/api/account/{extra['account_id']}/configuration/le-users/users", auth=bad).status_code
        == 401
    )
    no_source = requests.post(
        f"{base}/messaging_history/api/account/{extra['account_id']}/conversations/search",
        json={"start": {"from": 0, "to": 1}},
        auth=auth,
    )
    assert no_source.status_code == 400
    assert requests.get(f"{base}/_sandbox/faults/liveperson").json()["rate_limit_rps"] == 20
    csds = f"{base}/api/account/{extra['account_id']}/service/msgHist/baseURI.json?version=1.0"
    with requests.Session() as session:
        answers = [session.get(csds, timeout=5) for _ in range(150)]  # faster than 20/s: --lp-rate-limit bites
    limited = [r for r in answers if r.status_code == 429]
    assert limited and all(r.headers.get("Retry-After") for r in limited)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert "stopped" in proc.stdout.read()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/_sandbox", timeout=2)
