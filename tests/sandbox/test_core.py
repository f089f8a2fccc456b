"""The sandbox core: clock, durations, fault settings, counters, the fault middleware and the admin API.

Faults are exercised over real HTTP on LivePerson's CSDS endpoint (no auth needed) with plain `requests`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
import requests

from cxsync import registry
from cxsync_dev.sandbox import app as sandbox_app
from cxsync_dev.sandbox.core import (
    Counters,
    FaultSettings,
    Sandbox,
    SandboxClock,
    TokenBucket,
    fault_body,
    parse_duration,
    provider_for_path,
)

CSDS = "/api/account/12345678/service/msgHist/baseURI.json?version=1.0"


def put_faults(server, provider: str = "liveperson", **values) -> None:
    r = requests.put(f"{server.base_url}/_sandbox/faults/{provider}", json=values, timeout=5)
    assert r.status_code == 200, r.text


def counters(server) -> dict:
    return requests.get(f"{server.base_url}/_sandbox/counters", timeout=5).json()


# ------------------------------------------------------------------------------------------ units
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1d", 86400), ("3h", 10800), ("1d6h30m", 109800), ("90s", 90), ("2w", 1209600), ("45", 45), (30, 30)],
)
def test_parse_duration_accepts_units_and_seconds(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1x", "d1", "1d-3h"])
def test_parse_duration_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_clock_is_frozen_until_moved():
    clock = SandboxClock(datetime(2025, 1, 1, 12, tzinfo=UTC))
    assert clock.now() == clock.now() == datetime(2025, 1, 1, 12, tzinfo=UTC)
    clock.advance(timedelta(hours=3))
    assert clock.now() == datetime(2025, 1, 1, 15, tzinfo=UTC)
    clock.set(datetime(2024, 6, 1))  # naive is taken as UTC
    assert clock.now() == datetime(2024, 6, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))


def test_clock_defaults_to_real_time_floored_to_the_minute():
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    now = SandboxClock().now()
    assert now.second == 0 and now.microsecond == 0
    assert before <= now <= before + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("path", "provider"),
    [
        ("/v1/tickets", "helpdesk"),
        ("/v2/token", "helpdesk"),
        ("/", "helpdesk"),
        ("/helpdesk-authorize", "helpdesk"),
        ("/api/account/1/service/msgHist/baseURI.json", "liveperson"),
        ("/messaging_history/api/account/1/conversations/search", "liveperson"),
        ("/sentinel/api/v2/account/1/app/token", "liveperson"),
        ("/_sandbox/clock", None),
        ("/elsewhere", None),
    ],
)
def test_provider_for_path(path, provider):
    assert provider_for_path(path) == provider


def test_a_stand_in_declares_its_paths_and_fault_bodies_and_the_core_reads_them_through_the_registry(monkeypatch):
    toy = types.ModuleType("toy_stand_in")
    toy.PATH_PREFIXES = ("/toy/",)
    toy.FAULT_BODIES = {429: {"toy": "slow down"}, 500: {"toy": "broken"}, 503: {"toy": "away"}}
    monkeypatch.setitem(sys.modules, "toy_stand_in", toy)
    spec = registry.ProviderSpec(name="toy", display_name="Toy", source="x:Y", hook="x:Z", sandbox="toy_stand_in")
    monkeypatch.setitem(registry.PROVIDERS, "toy", spec)
    assert provider_for_path("/toy/items") == "toy"
    assert provider_for_path("/v1/tickets") == "helpdesk"
    assert fault_body("toy", 503, "/toy/items") == {"toy": "away"}
    assert fault_body("helpdesk", 429, "/v2/token")["error"] == "temporarily_unavailable"  # its own dialect there
    assert fault_body("helpdesk", 429, "/v1/tickets")["error"] == "too_many_requests"
    assert fault_body("liveperson", 500, "/messaging_history/x")["internalCode"] == "0007"


def test_fault_settings_update_validates():
    settings = FaultSettings().update({"p_5xx": 0.5, "rate_limit_rps": 3})
    assert settings.p_5xx == 0.5 and settings.rate_limit_rps == 3
    for bad in ({"p_5xx": 1.5}, {"rate_limit_rps": 0}, {"nope": 1}, {"retry_after": "yes"}):
        with pytest.raises(ValueError):
            FaultSettings().update(bad)


def test_counters_snapshot_and_reset():
    c = Counters()
    c.count_request("liveperson", "users", 200)
    c.count_request("liveperson", "users", 200)
    c.count_request("liveperson", "search", 429)
    c.count_fault("liveperson", "rate_limit")
    snap = c.snapshot()
    lp = snap["requests"]["liveperson"]
    assert lp["total"] == 3
    assert lp["by_status"] == {"200": 2, "429": 1}
    assert lp["by_endpoint"]["users"] == {"200": 2}
    assert snap["faults"] == {"liveperson": {"rate_limit": 1}}
    c.reset()
    assert c.snapshot() == {"requests": {}, "faults": {}}


def test_token_bucket_limits_bursts():
    bucket = TokenBucket(2.0)
    assert bucket.take() == 0.0 and bucket.take() == 0.0
    assert bucket.take() > 0.0


def test_fault_draws_are_deterministic_for_a_seed():
    def draws(seed):
        sb = Sandbox(seed=seed, faults={"liveperson": FaultSettings(p_5xx=0.5)})
        return [sb.roll("liveperson", "5xx") for _ in range(64)]

    assert draws(11) == draws(11)
    assert draws(11) != draws(12)


def test_app_skips_a_provider_module_that_does_not_exist(monkeypatch):
    helpdesk = registry.PROVIDERS["helpdesk"]
    monkeypatch.setitem(registry.PROVIDERS, "helpdesk", dataclasses.replace(helpdesk, sandbox="cxsync_no_such_module"))
    assert list(sandbox_app.provider_modules()) == ["liveperson"]


# ------------------------------------------------------------------------------- over real HTTP
def test_date_header_is_the_sandbox_clock(sandbox_server):
    r = requests.get(sandbox_server.base_url + CSDS, timeout=5)
    assert parsedate_to_datetime(r.headers["Date"]) == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    r = requests.post(f"{sandbox_server.base_url}/_sandbox/clock", json={"advance": "1d3h"}, timeout=5)
    assert r.json()["now"] == "2025-03-15T12:30:00+00:00"
    assert parsedate_to_datetime(r.headers["Date"]) == datetime(2025, 3, 15, 12, 30, tzinfo=UTC)
    r = requests.post(f"{sandbox_server.base_url}/_sandbox/clock", json={"set": "2025-04-01T00:00:00Z"}, timeout=5)
    assert r.json()["now"] == "2025-04-01T00:00:00+00:00"
    assert (
        requests.post(f"{sandbox_server.base_url}/_sandbox/clock", json={"advance": "soon"}, timeout=5).status_code
        == 400
    )


def test_rate_limit_answers_429_with_retry_after(sandbox_server):
    put_faults(sandbox_server, rate_limit_rps=1)
    statuses = [requests.get(sandbox_server.base_url + CSDS, timeout=5) for _ in range(3)]
    assert statuses[0].status_code == 200
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["error"]
    assert counters(sandbox_server)["faults"]["liveperson"]["rate_limit"] == len(limited)


def test_rate_limit_answers_429_without_retry_after_when_told(sandbox_server):
    put_faults(sandbox_server, rate_limit_rps=1, retry_after=False)
    answers = [requests.get(sandbox_server.base_url + CSDS, timeout=5) for _ in range(3)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited
    assert all("Retry-After" not in r.headers for r in limited)


def test_helpdesk_token_url_answers_429_in_the_oauth_dialect(sandbox_server):
    put_faults(sandbox_server, "helpdesk", rate_limit_rps=1)
    answers = [
        requests.post(f"{sandbox_server.base_url}/v2/token", data={"grant_type": "refresh_token"}, timeout=5)
        for _ in range(3)
    ]
    limited = [r for r in answers if r.status_code == 429]
    assert limited
    assert limited[0].json()["error"] == "temporarily_unavailable"
    assert limited[0].json()["error_description"]


def test_rate_limit_is_per_provider_and_spares_the_admin_api(sandbox_server):
    put_faults(sandbox_server, rate_limit_rps=1)
    requests.get(sandbox_server.base_url + CSDS, timeout=5)
    assert requests.get(sandbox_server.base_url + CSDS, timeout=5).status_code == 429
    for _ in range(5):
        assert requests.get(f"{sandbox_server.base_url}/_sandbox/clock", timeout=5).status_code == 200


def test_5xx_injection_is_counted(sandbox_server):
    put_faults(sandbox_server, p_5xx=1.0)
    r = requests.get(sandbox_server.base_url + CSDS, timeout=5)
    assert r.status_code in (500, 503)
    assert r.json()["error"]
    snap = counters(sandbox_server)
    assert snap["faults"]["liveperson"]["5xx"] == 1
    assert snap["requests"]["liveperson"]["by_endpoint"]["csds_one"] == {str(r.status_code): 1}


def test_connection_reset_injection(sandbox_server):
    put_faults(sandbox_server, p_reset=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.get(sandbox_server.base_url + CSDS, timeout=5)
    assert counters(sandbox_server)["faults"]["liveperson"]["reset"] == 1
    put_faults(sandbox_server, p_reset=0.0)
    assert requests.get(sandbox_server.base_url + CSDS, timeout=5).status_code == 200


def test_slow_answer_exceeds_the_client_timeout(sandbox_server):
    put_faults(sandbox_server, p_slow=1.0, slow_seconds=0.6)
    with pytest.raises(requests.ReadTimeout):
        requests.get(sandbox_server.base_url + CSDS, timeout=0.2)
    assert counters(sandbox_server)["faults"]["liveperson"]["slow"] == 1


def test_truncated_json_body(sandbox_server):
    put_faults(sandbox_server, p_truncate=1.0)
    r = requests.get(sandbox_server.base_url + CSDS, timeout=5)
    assert r.status_code == 200
    assert len(r.content) == int(r.headers["Content-Length"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert counters(sandbox_server)["faults"]["liveperson"]["truncate"] == 1


def test_faults_of_one_provider_spare_the_other(sandbox_server):
    put_faults(sandbox_server, provider="helpdesk", p_5xx=1.0)
    assert requests.get(sandbox_server.base_url + CSDS, timeout=5).status_code == 200


def test_admin_api_is_never_faulted(sandbox_server):
    put_faults(sandbox_server, p_5xx=1.0, p_reset=1.0)
    assert requests.get(f"{sandbox_server.base_url}/_sandbox/counters", timeout=5).status_code == 200


def test_random_faults_repeat_for_a_seed(sandbox_factory):
    def statuses(seed):
        server = sandbox_factory(seed=seed, faults={"liveperson": FaultSettings(p_5xx=0.5)})
        return [requests.get(server.base_url + CSDS, timeout=5).status_code for _ in range(16)]

    first = statuses(5)
    assert first == statuses(5)
    assert 200 in first and any(s >= 500 for s in first)


def test_admin_faults_and_counters_endpoints(sandbox_server):
    base = sandbox_server.base_url
    assert requests.get(f"{base}/_sandbox/faults/liveperson", timeout=5).json() == FaultSettings().to_dict()
    assert requests.put(f"{base}/_sandbox/faults/liveperson", json={"p_5xx": 2}, timeout=5).status_code == 400
    assert requests.get(f"{base}/_sandbox/faults/zendesk", timeout=5).status_code == 404
    requests.get(base + CSDS, timeout=5)
    assert counters(sandbox_server)["requests"]["liveperson"]["total"] == 1
    assert requests.delete(f"{base}/_sandbox/counters", timeout=5).status_code == 200
    assert "liveperson" not in counters(sandbox_server)["requests"]


def test_admin_switches_endpoints(sandbox_server):
    base = sandbox_server.base_url
    r = requests.put(f"{base}/_sandbox/switches/liveperson/some-key", json={"users_permission": False}, timeout=5)
    assert r.json() == {"users_permission": False}
    assert requests.get(f"{base}/_sandbox/switches/liveperson", timeout=5).json()["some-key"] == {
        "users_permission": False
    }
    requests.delete(f"{base}/_sandbox/switches/liveperson/some-key", timeout=5)
    assert "some-key" not in requests.get(f"{base}/_sandbox/switches/liveperson", timeout=5).json()


def test_server_binds_a_free_port_and_stops(sandbox_factory):
    server = sandbox_factory()
    assert server.port > 0 and server.base_url.endswith(f":{server.port}")
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.base_url + CSDS, timeout=2)


def test_connection_uris_are_airflow_connection_json(sandbox_server):
    uris = sandbox_server.connection_uris()
    main = json.loads(uris["sandbox_liveperson_main"])
    assert main["conn_type"] == "liveperson"
    assert (main["host"], main["schema"], main["port"]) == ("127.0.0.1", "http", sandbox_server.port)
    # OAuth 2.0 is the default: no `auth_type`, no OAuth 1.0 token values
    assert "auth_type" not in main["extra"] and "access_token" not in main["extra"]
    assert main["extra"]["account_id"] == "12345678"
    legacy = json.loads(uris["sandbox_liveperson_oauth1"])
    assert legacy["extra"]["access_token"] and legacy["extra"]["access_token_secret"]
    names = {"main", "oauth1", "oauth2", "nousers", "guide"}
    assert {f"sandbox_liveperson_{n}" for n in names} <= set(uris)
