"""One rate limit per provider account: two clients of one account sharing the store keep to R together;
without the store each paces alone (2R together); a store that fails leaves each client its own pace."""

from __future__ import annotations

import logging
import types
import uuid

import pytest

from cxsync.http import RateLimiter
from cxsync.http.ratelimit import limiter_for
from cxsync.http.shared_limit import SharedLimit, store_url, window_for
from cxsync.http.tunables import ClientTunables

R = 5.0
SECONDS = 20


class Clock:
    """One fake wall clock for every client and for the store's time stamps; sleeping moves it on."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    import limits.storage.redis as redis_storage

    fake = Clock()
    # The `limits` Redis storage stamps entries with `time.time()`: the fake clock's, so no test waits for real.
    monkeypatch.setattr(redis_storage, "time", types.SimpleNamespace(time=fake.time))
    return fake


def client(clock: Clock, shared: SharedLimit | None) -> RateLimiter:
    return RateLimiter(R, clock=clock.time, sleep=clock.sleep, shared=shared)


def requests_sent(clock: Clock, clients: list[RateLimiter]) -> list[float]:
    """The clients take turns asking for a request, for SECONDS of the fake clock: the counting stand-in of a
    provider records when each request went."""
    start, sent = clock.now, []
    while clock.now < start + SECONDS:
        for limiter in clients:
            limiter.acquire()
            sent.append(clock.now)
    return sent


def most_in_one_second(sent: list[float]) -> int:
    sent = sorted(sent)
    return max(sum(1 for t in sent[i:] if t < first + 1.0) for i, first in enumerate(sent))


def test_two_clients_of_one_account_keep_to_the_rate_together(redis_url, clock):
    account = f"acct-{uuid.uuid4().hex}"
    clients = [
        client(clock, SharedLimit(redis_url, R, provider="helpdesk", account=account, clock=clock.time))
        for _ in range(2)
    ]
    sent = requests_sent(clock, clients)
    assert most_in_one_second(sent) <= R
    assert len(sent) >= 0.9 * R * SECONDS  # and they use it: the limit is shared, not wasted
    assert not any(c.shared.failed for c in clients)


def test_accounts_do_not_share_a_limit(redis_url, clock):
    clients = [
        client(
            clock, SharedLimit(redis_url, R, provider="helpdesk", account=f"acct-{uuid.uuid4().hex}", clock=clock.time)
        )
        for _ in range(2)
    ]
    assert len(requests_sent(clock, clients)) >= 1.8 * R * SECONDS


def test_without_a_store_each_client_paces_alone(clock):
    sent = requests_sent(clock, [client(clock, None), client(clock, None)])
    assert most_in_one_second(sent) >= 2 * R - 1  # each at R: twice the rate together
    assert len(sent) >= 1.8 * R * SECONDS


def test_a_store_that_fails_leaves_the_client_its_own_pace(clock, caplog):
    shared = SharedLimit("redis://127.0.0.1:1/0", R, provider="liveperson", account="123", clock=clock.time)
    limiter = client(clock, shared)
    with caplog.at_level(logging.WARNING, logger="cxsync.http.shared_limit"):
        sent = requests_sent(clock, [limiter])
    assert shared.failed
    assert sum("paces itself alone" in r.getMessage() for r in caplog.records) == 1  # warned once, not per request
    assert most_in_one_second(sent) <= R + 1 and len(sent) >= 0.9 * R * SECONDS


def test_the_store_comes_from_the_setting_or_a_redis_celery_broker():
    assert store_url({"CXSYNC_RATE_LIMIT_STORE": "redis://cache:6379/1"}) == "redis://cache:6379/1"
    assert store_url({"CXSYNC_RATE_LIMIT_STORE": "none", "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}) is None
    celery = {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CELERY__BROKER_URL": "redis://:pw@redis:6379/0"}
    assert store_url(celery) == "redis://:pw@redis:6379/0"
    assert store_url({**celery, "AIRFLOW__CELERY__BROKER_URL": "amqp://rabbit"}) is None  # not a Redis broker
    assert store_url({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}) is None


def test_a_connection_limiter_shares_only_with_a_store_and_a_rate(redis_url, monkeypatch):
    tunables = ClientTunables.from_extras({"requests_per_second": 4}, conn_id="c", default_requests_per_second=None)
    monkeypatch.setenv("CXSYNC_RATE_LIMIT_STORE", redis_url)
    assert limiter_for(tunables, provider="liveperson", account="123").shared is not None
    unpaced = ClientTunables.from_extras({"requests_per_second": 0}, conn_id="c", default_requests_per_second=None)
    assert limiter_for(unpaced, provider="liveperson", account="123").shared is None
    monkeypatch.setenv("CXSYNC_RATE_LIMIT_STORE", "none")
    assert limiter_for(tunables, provider="liveperson", account="123").shared is None


@pytest.mark.parametrize(
    ("rate", "window"), [(5, (5, 1)), (20, (20, 1)), (2.5, (5, 2)), (0.5, (1, 2)), (0.2, (1, 5)), (1.3, (5, 4))]
)
def test_a_rate_becomes_whole_requests_over_whole_seconds(rate, window):
    amount, seconds = window_for(rate)
    assert (amount, seconds) == window and amount / seconds <= rate


class HostileWindow:
    """A store that never lets a request go and claims its window frees in a year (a hostile or shared Redis)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.asked = 0

    def hit(self, *args) -> bool:
        self.asked += 1
        return False

    def get_window_stats(self, *args):
        return types.SimpleNamespace(reset_time=self.clock.now + 365 * 86400, remaining=0)


def hostile_limit(clock: Clock) -> SharedLimit:
    shared = SharedLimit("redis://127.0.0.1:1/0", R, provider="helpdesk", account="acc", clock=clock.time)
    shared._limiter = HostileWindow(clock)
    return shared


def test_a_hostile_store_cannot_make_a_task_sleep_past_its_deadline(clock):
    from cxsync.task_deadline import TaskDeadlineExceeded, task_deadline

    shared = hostile_limit(clock)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.sleep(seconds)

    with task_deadline(30.0), pytest.raises(TaskDeadlineExceeded) as info:
        shared.acquire(sleep)
    assert max(pauses) <= shared.window_seconds + 0.05  # never "a year": a moving window frees within its length
    assert "past this task's deadline" in str(info.value) and "helpdesk account acc" in str(info.value)
    assert sum(pauses) < 30  # the task was told before its deadline, not killed mid-sleep


def test_without_a_deadline_a_store_that_keeps_refusing_is_dropped(clock, caplog):
    from cxsync.http.shared_limit import MAX_WAIT_SECONDS

    shared = hostile_limit(clock)
    started = clock.now
    with caplog.at_level(logging.WARNING, logger="cxsync.http.shared_limit"):
        shared.acquire(clock.sleep)
    assert shared.failed and clock.now - started <= MAX_WAIT_SECONDS
    assert "paces itself alone" in caplog.text


@pytest.mark.parametrize(
    "url", ["redus://:hunter2@cache:6379/0", "redis-sentinel2://u:hunter2@cache:1/0", "redis:hunter2@cache", "hunter2"]
)
def test_the_store_password_is_never_logged(url, caplog):
    from cxsync.http.shared_limit import shared_limit

    with caplog.at_level(logging.WARNING, logger="cxsync.http.shared_limit"):
        assert shared_limit(R, provider="helpdesk", account="acc", url=url) is None
    assert caplog.records and "hunter2" not in caplog.text


def test_a_url_the_library_refuses_is_logged_without_its_password(caplog):
    from cxsync.http.shared_limit import shared_limit

    with caplog.at_level(logging.WARNING, logger="cxsync.http.shared_limit"):
        shared_limit(R, provider="helpdesk", account="acc", url="redis://:hunter2@cache:notaport/0")
    assert "hunter2" not in caplog.text
