"""ApiClient over real HTTP (a scripted loopback server): what is returned, retried, refreshed or fatal."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from cxsync.errors import AuthenticationError, PermissionDenied, ProviderRequestError, RetriesExhausted
from cxsync.http import ApiClient, AuthStrategy, BasicAuth, RetryPolicy
from cxsync.http.ratelimit import RateLimiter
from support.http_stub import Answer

UA = "cxsync-test/1.0"


class CountingRefresh(AuthStrategy):
    """Sends `Authorization: Token <n>`; each refresh moves to the next token."""

    def __init__(self) -> None:
        self.n = 1
        self.refreshes = 0

    def __call__(self, request):
        request.headers["Authorization"] = f"Token {self.n}"
        return request

    def refresh(self) -> bool:
        self.refreshes += 1
        self.n += 1
        return True


def client(sleeps, **kwargs) -> ApiClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_seconds=0.5, max_seconds=3.0))
    return ApiClient(name="Test API", user_agent=UA, sleep=sleeps, **kwargs)


def test_a_2xx_answer_is_returned_with_the_user_agent_sent(stub, sleeps):
    stub.add(Answer(body={"ok": True}))
    assert client(sleeps).get_json(stub.url(), params={"a": "1"}) == {"ok": True}
    assert stub.received[0].headers["User-Agent"] == UA and stub.received[0].path == "/resource?a=1"
    assert sleeps == []


def test_the_date_header_gives_the_providers_time(stub, sleeps):
    provider_time = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    stub.add(Answer(headers={"Date": format_datetime(provider_time, usegmt=True)}))
    api = client(sleeps)
    api.get_json(stub.url())
    assert api.server_now() == provider_time
    assert 0 <= api.server_clock() - provider_time.timestamp() < 5


def test_closing_logs_what_the_requests_cost(stub, sleeps, caplog):
    stub.add(Answer(429, headers={"Retry-After": "2"}), Answer(503), Answer(body={"n": 1}))
    api = client(sleeps)
    api.get_json(stub.url())
    with caplog.at_level("INFO", logger="cxsync.http.client"):
        api.close()
    line = caplog.messages[-1]
    assert line.startswith("Test API: 3 request(s), 2 retried, 1 answered 429, ")
    assert "{200: 1, 429: 1, 503: 1}" in line


# ---- 429 --------------------------------------------------------------------------------------------------


def test_429_honours_retry_after_in_seconds(stub, sleeps):
    stub.add(Answer(429, headers={"Retry-After": "2"}), Answer(body={"n": 1}))
    api = client(sleeps)
    assert api.get_json(stub.url()) == {"n": 1}
    assert sleeps == [2.0] and api.stats.rate_limited == 1 and api.stats.requests == 2


def test_429_honours_retry_after_as_an_http_date(stub, sleeps):
    when = datetime.now(UTC) + timedelta(seconds=3)
    stub.add(Answer(429, headers={"Retry-After": format_datetime(when, usegmt=True)}), Answer())
    client(sleeps).get_json(stub.url())
    assert 1.0 <= sleeps[0] <= 3.0


def test_429_without_retry_after_waits_at_least_one_second(stub, sleeps):
    stub.add(Answer(429), Answer(429, headers={"Retry-After": "0"}), Answer())
    client(sleeps, retry=RetryPolicy(max_attempts=4, base_seconds=0.01)).get_json(stub.url())
    assert len(sleeps) == 2 and min(sleeps) >= 1.0


# ---- 5xx, resets, timeouts, truncated bodies ----------------------------------------------------------------


def test_5xx_backs_off_exponentially_and_gives_up_after_the_bound(stub, sleeps):
    stub.add(*[Answer(503, body={"error": "unavailable"}) for _ in range(4)])
    with pytest.raises(RetriesExhausted, match="HTTP 503; gave up after 4 attempts"):
        client(sleeps).get_json(stub.url())
    assert len(stub.received) == 4 and len(sleeps) == 3
    for attempt, wait in enumerate(sleeps, 1):
        ceiling = min(3.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling


def test_5xx_then_success_recovers(stub, sleeps):
    stub.add(Answer(500), Answer(502), Answer(body=[1, 2]))
    assert client(sleeps).get_json(stub.url()) == [1, 2]
    assert len(sleeps) == 2


def test_a_reset_connection_is_retried(stub, sleeps):
    stub.add(Answer(reset=True), Answer(body={"after": "reset"}))
    assert client(sleeps).get_json(stub.url()) == {"after": "reset"}
    assert len(stub.received) == 2


def test_a_timeout_is_retried(stub, sleeps):
    stub.add(Answer(delay=0.6), Answer(body={"fast": True}))
    assert client(sleeps, timeout=(1.0, 0.2)).get_json(stub.url()) == {"fast": True}
    assert len(sleeps) == 1


def test_truncated_json_is_retried(stub, sleeps):
    stub.add(Answer(body=b'{"records": [1, 2'), Answer(body={"records": [1, 2, 3]}))
    assert client(sleeps).post_json(stub.url(), json_body={"q": 1}) == {"records": [1, 2, 3]}
    assert len(stub.received) == 2 and stub.received[1].body == b'{"q": 1}'


def test_a_body_cut_short_of_its_length_is_retried(stub, sleeps):
    stub.add(Answer(body={"records": list(range(100))}, cut=True), Answer(body={"records": []}))
    assert client(sleeps).get_json(stub.url()) == {"records": []}


# ---- 401 / 403 / other 4xx --------------------------------------------------------------------------------------


def test_401_refreshes_the_credentials_once_and_retries(stub, sleeps):
    auth = CountingRefresh()
    stub.add(Answer(401), Answer(body={"ok": 1}))
    assert client(sleeps, auth=auth).get_json(stub.url()) == {"ok": 1}
    assert [r.headers["Authorization"] for r in stub.received] == ["Token 1", "Token 2"]
    assert auth.refreshes == 1 and sleeps == []


def test_a_second_401_is_an_authentication_error(stub, sleeps):
    auth = CountingRefresh()
    stub.add(Answer(401, body={"error": "invalid token"}), Answer(401, body={"error": "invalid token"}))
    with pytest.raises(AuthenticationError, match=r"HTTP 401 .*invalid token"):
        client(sleeps, auth=auth).get_json(stub.url())
    assert auth.refreshes == 1 and len(stub.received) == 2


def test_401_without_a_way_to_refresh_fails_at_once(stub, sleeps):
    stub.add(Answer(401, body={"error": "bad signature"}))
    with pytest.raises(AuthenticationError, match="bad signature"):
        client(sleeps).get_json(stub.url())
    assert len(stub.received) == 1


def test_403_is_permission_denied_at_once_with_status_body_and_hint(stub, sleeps):
    stub.add(Answer(403, body={"error": "Not Authorized"}))
    api = client(sleeps, explain=lambda response: f"hint for {response.status_code}")
    with pytest.raises(PermissionDenied) as info:
        api.get_json(stub.url())
    assert "HTTP 403" in str(info.value) and "Not Authorized" in str(info.value)
    assert str(info.value).endswith("hint for 403")
    assert len(stub.received) == 1 and sleeps == []


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_are_fatal_at_once_with_status_and_body(stub, sleeps, status):
    stub.add(Answer(status, body={"message": "start is required"}))
    with pytest.raises(ProviderRequestError) as info:
        client(sleeps).post_json(stub.url("/search?offset=0"), json_body={})
    assert info.value.status == status and "start is required" in info.value.body
    assert f"HTTP {status} from POST http://127.0.0.1:" in str(info.value)
    assert "offset=0" not in str(info.value)  # the query string stays out of messages
    assert len(stub.received) == 1


def test_an_expected_304_is_returned(stub, sleeps):
    stub.add(Answer(304, body=b""))
    assert client(sleeps).request("GET", stub.url(), ok_status=(304,)).status_code == 304


def test_secrets_of_the_auth_strategy_are_registered_with_the_masker(sleeps):
    from airflow.sdk._shared.secrets_masker import redact

    client(sleeps, auth=BasicAuth("account", "dal:personal-token-value"))
    assert "dal:personal-token-value" not in redact("token is dal:personal-token-value")


# ---- the environment: proxies and CA bundle, read once -----------------------------------------------------


def test_a_proxy_from_the_environment_carries_the_request(stub, sleeps, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", stub.url().rsplit("/", 1)[0])  # the stub plays the proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    stub.add(Answer(body={"via": "proxy"}), Answer(body={"via": "proxy"}))
    api = client(sleeps)
    for _ in range(2):
        assert api.get_json("http://provider.invalid/v1/things", params={"a": "1"}) == {"via": "proxy"}
    # A proxy is sent the absolute URL.
    assert [r.path for r in stub.received] == ["http://provider.invalid/v1/things?a=1"] * 2


def test_no_proxy_from_the_environment_is_honoured(stub, sleeps, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    stub.add(Answer(body={"direct": True}))
    assert client(sleeps).get_json(stub.url()) == {"direct": True}


def test_the_ca_bundle_from_the_environment_is_used(sleeps, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/company-ca.pem")
    assert client(sleeps)._verify == "/etc/company-ca.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert client(sleeps)._verify is True


# ---- body-level signals and the one retry bound -----------------------------------------------------------------


def test_an_answer_its_body_calls_incomplete_is_asked_again_within_the_same_bound(stub, sleeps):
    def partial(answer):
        return "partialResult: true" if answer.get("partial") else None

    stub.add(Answer(body={"partial": True}), Answer(503), Answer(body={"partial": False, "n": 1}))
    assert client(sleeps).post_json(stub.url(), json_body={}, body_check=partial) == {"partial": False, "n": 1}
    assert len(stub.received) == 3 and len(sleeps) == 2
    stub.add(*[Answer(body={"partial": True}) for _ in range(4)])
    with pytest.raises(RetriesExhausted, match="partialResult: true; gave up after 4 attempts"):
        client(sleeps).post_json(stub.url(), json_body={}, body_check=partial)


def test_body_retries_bound_the_re_asks_of_an_incomplete_body_below_the_attempts(stub, sleeps):
    def partial(answer):
        return "partialResult: true" if answer.get("partial") else None

    stub.add(Answer(503), *[Answer(body={"partial": True}) for _ in range(3)])
    with pytest.raises(RetriesExhausted, match="partialResult: true; gave up after 4 attempts"):
        client(sleeps, retry=RetryPolicy(max_attempts=9, base_seconds=0.5)).post_json(
            stub.url(), json_body={}, body_check=partial, body_retries=2
        )
    assert len(stub.received) == 4  # a 503 (not a body re-ask), then three incomplete answers: two re-asks
    stub.add(Answer(body={"partial": True}), Answer(body={"n": 2}))
    assert client(sleeps).post_json(stub.url(), json_body={}, body_check=partial, body_retries=1) == {"n": 2}


def test_the_retry_after_fresh_credentials_does_not_count_against_the_bound(stub, sleeps):
    auth = CountingRefresh()
    stub.add(Answer(401), Answer(body={"ok": 1}))
    api = client(sleeps, auth=auth, retry=RetryPolicy(max_attempts=1))
    assert api.get_json(stub.url()) == {"ok": 1}
    assert api.stats.retries == 0 and sleeps == []


# ---- counts from several threads --------------------------------------------------------------------------------


class YieldingLimiter(RateLimiter):
    """Reports a quarter second waited per request, after letting the other threads run (no real pacing)."""

    def acquire(self) -> float:
        time.sleep(0.0002)
        return 0.25


def test_one_client_counts_every_request_sent_from_several_threads(stub, sleeps):
    api = client(sleeps, rate_limiter=YieldingLimiter(None, max_in_flight=8))
    threads, each = 8, 40

    def send() -> None:
        for _ in range(each):
            api.get_json(stub.url())

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sent = threads * each
    assert len(stub.received) == sent
    assert api.stats.requests == sent
    assert api.stats.by_status == {200: sent}
    assert api.stats.waited_seconds == sent * 0.25  # quarters add up exactly: a lost update shows


# ---- long incidents: waits within the task's deadline ---------------------------------------------------


def test_a_retry_after_above_a_minute_is_slept_in_full_inside_the_task_deadline(stub, sleeps):
    from cxsync.task_deadline import task_deadline

    stub.add(Answer(503, headers={"Retry-After": "300"}), Answer(body={"n": 1}))
    stub.add(Answer(429, headers={"Retry-After": "300"}), Answer(body={"n": 2}))
    api = client(sleeps, retry=RetryPolicy(max_attempts=3, base_seconds=0.01, retry_after_max=3600))
    with task_deadline(3600):
        assert api.get_json(stub.url()) == {"n": 1}  # a 503's Retry-After is not the 429's: policy backoff
        assert api.get_json(stub.url()) == {"n": 2}
    assert sleeps[-1] == 300.0


def test_a_wait_past_the_task_deadline_fails_the_try_in_words_without_sleeping(stub, sleeps):
    from cxsync.task_deadline import TaskDeadlineExceeded, task_deadline

    stub.add(Answer(429, headers={"Retry-After": "900"}), Answer(body={"n": 1}))
    api = client(sleeps, retry=RetryPolicy(max_attempts=3, retry_after_max=3600))
    with task_deadline(600), pytest.raises(TaskDeadlineExceeded, match=r"would wait 900\.0 s, past this task's"):
        api.get_json(stub.url())
    assert sleeps == [] and len(stub.received) == 1


def test_the_backoff_steps_of_a_long_incident_stop_at_the_task_deadline(stub, sleeps):
    from cxsync.task_deadline import TaskDeadlineExceeded, task_deadline

    policy = RetryPolicy(max_attempts=7, base_seconds=5, linear_steps=3, then_seconds=120, max_seconds=480)
    stub.add(*[Answer(503) for _ in range(7)])
    with task_deadline(100), pytest.raises(TaskDeadlineExceeded, match="HTTP 503"):
        client(sleeps, retry=policy).get_json(stub.url())
    # 5, 10, 15 s fit in the 100 s left; the 2-minute step would not (the recording sleep spends no time)
    assert len(sleeps) == 3 and all(
        advised <= w <= advised * 1.1 for w, advised in zip(sleeps, (5, 10, 15), strict=True)
    )
    assert len(stub.received) == 4
