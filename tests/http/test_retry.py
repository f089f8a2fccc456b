"""Retry policy: exponential backoff with jitter, bounded; 429 waits from Retry-After, never under 1 s."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import requests

from cxsync.http.retry import RETRIABLE_EXCEPTIONS, RETRIABLE_STATUS, RetryPolicy, parse_retry_after


def test_backoff_grows_exponentially_keeps_half_its_ceiling_and_is_capped():
    policy = RetryPolicy(base_seconds=2, max_seconds=20)
    rng = random.Random(1)
    for attempt in range(1, 10):
        ceiling = min(20, 2 * 2 ** (attempt - 1))
        for _ in range(20):
            assert ceiling / 2 <= policy.backoff(attempt, rng) <= ceiling


def test_jitter_spreads_the_waits():
    policy = RetryPolicy()
    rng = random.Random(7)
    assert len({round(policy.backoff(3, rng), 6) for _ in range(10)}) == 10


def test_retry_after_in_seconds_and_as_an_http_date():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    when = datetime.now(UTC) + timedelta(seconds=30)
    assert 28 <= parse_retry_after(format_datetime(when, usegmt=True)) <= 30
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_a_429_wait_honours_retry_after_but_never_goes_under_the_minimum_or_over_the_cap():
    policy = RetryPolicy(base_seconds=0.01, max_seconds=60, min_rate_limit_wait=1.0)
    assert policy.rate_limit_wait(1, "7") == 7.0
    assert policy.rate_limit_wait(1, "0") == 1.0
    assert policy.rate_limit_wait(1, "3600") == 60.0
    assert 1.0 <= policy.rate_limit_wait(1, None) <= 1.0 + 1e-9  # tiny backoff lifted to the minimum
    assert policy.rate_limit_wait(1, "garbage") == 1.0


def test_what_is_retriable():
    assert {429, 500, 502, 503, 504} == set(RETRIABLE_STATUS)
    for exc in (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
        assert issubclass(exc, RETRIABLE_EXCEPTIONS)
    assert not any(code in RETRIABLE_STATUS for code in (400, 401, 403, 404))


def test_a_providers_evenly_spaced_first_steps_then_exponential():
    """LivePerson's advice for a 5xx: retry at 5, 10 and 15 s, then back off exponentially."""
    policy = RetryPolicy(base_seconds=5, max_seconds=60, linear_steps=3)
    rng = random.Random(3)
    for attempt, advised in ((1, 5), (2, 10), (3, 15)):
        assert advised <= policy.backoff(attempt, rng) <= advised * 1.1
    assert 20 <= policy.backoff(4, rng) <= 40  # 5 x 2^3, keeping at least half


def test_the_sorter_names_what_an_answer_means():
    from cxsync.http.retry import Verdict, sort_answer

    assert sort_answer(200) is sort_answer(204) is Verdict.OK
    assert sort_answer(304, ok_status=(304,)) is Verdict.OK
    assert sort_answer(429) is Verdict.RATE_LIMITED
    assert {sort_answer(s) for s in (500, 502, 503, 504)} == {Verdict.RETRY}
    assert sort_answer(401) is Verdict.REFRESH
    assert {sort_answer(s) for s in (307, 400, 403, 404, 422)} == {Verdict.FATAL}


def test_liveperson_rides_out_a_long_incident_at_5_10_15_s_then_2_4_8_minutes():
    """LivePerson's advice beyond three tries: "after 2 minutes, 4 minutes, 8 minutes"."""
    from cxsync.hooks.liveperson import RETRY_ADVICE

    rng = random.Random(5)
    waits = [RETRY_ADVICE.backoff(attempt, rng) for attempt in range(1, RETRY_ADVICE.max_attempts)]
    assert len(waits) == 6
    for wait, advised in zip(waits, (5, 10, 15, 120, 240, 480), strict=True):
        assert advised <= wait <= advised * 1.1


def test_the_long_steps_reach_the_connection_and_stay_capped_by_its_ceiling():
    from cxsync.hooks.liveperson import RETRY_ADVICE
    from cxsync.http.tunables import ClientTunables

    tuned = ClientTunables.from_extras(
        {"retry_max_seconds": 200}, conn_id="lp", default_requests_per_second=None, retry_defaults=RETRY_ADVICE
    ).retry
    assert tuned.max_attempts == 7 and tuned.then_seconds == 120 and tuned.retry_after_max == 3600
    assert 120 <= tuned.backoff(4, random.Random(1)) <= 132
    assert 200 <= tuned.backoff(6, random.Random(1)) <= 220  # 8 minutes, cut to the connection's ceiling


def test_a_long_retry_after_is_honoured_up_to_its_own_cap_instead_of_cut_at_a_minute():
    policy = RetryPolicy(max_seconds=60, retry_after_max=3600)
    assert policy.rate_limit_wait(1, "300") == 300.0
    assert policy.rate_limit_wait(1, "7200") == 3600.0
    assert RetryPolicy(max_seconds=60).rate_limit_wait(1, "300") == 60.0  # without it, as before
