"""Client-side rate limit: requests spaced to the configured rate, off when unset."""

from __future__ import annotations

import threading

from cxsync.http import RateLimiter
from cxsync.http.ratelimit import RECOVERY_PER_SECOND


class Clock:
    """A fake monotonic clock that the fake sleep advances."""

    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_unset_or_zero_means_no_limit():
    for rate in (None, 0):
        clock = Clock()
        limiter = RateLimiter(rate, clock=clock.time, sleep=clock.sleep)
        assert [limiter.acquire() for _ in range(50)] == [0.0] * 50 and clock.slept == []


def test_requests_are_spaced_to_the_rate():
    clock = Clock()
    limiter = RateLimiter(10, clock=clock.time, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(11)]
    assert waits[0] == 0.0
    assert all(abs(w - 0.1) < 1e-9 for w in waits[1:])
    assert abs(clock.now - 101.0) < 1e-9  # 11 requests at 10/s take 1 s


def test_idle_time_allows_a_burst_up_to_the_capacity_only():
    clock = Clock()
    limiter = RateLimiter(5, burst=3, clock=clock.time, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 60  # a long pause refills the bucket, but only to its capacity
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert abs(limiter.acquire() - 0.2) < 1e-9


def test_threads_share_the_limit():
    import time

    limiter = RateLimiter(50)
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: [limiter.acquire() for _ in range(5)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 19 / 50 * 0.9  # 20 requests at 50/s: at least ~0.38 s


# ---- adaptive on 429 (AIMD) ------------------------------------------------------------------------------


def accept(limiter: RateLimiter, clock: Clock, requests: int, every: float) -> None:
    """`requests` answered requests, one every `every` seconds (or as the limiter paces them)."""
    for _ in range(requests):
        limiter.acquire()
        limiter.on_success()
        clock.now += every


def test_a_429_cuts_the_pace_to_nine_tenths_of_what_the_server_accepted():
    clock = Clock()
    limiter = RateLimiter(None, clock=clock.time, sleep=clock.sleep)
    accept(limiter, clock, 60, 0.05)  # 20 requests/s accepted for 3 s, unpaced
    limiter.on_rate_limited()
    assert limiter.cuts == 1 and abs(limiter.rate - 18.0) < 0.5
    clock.slept.clear()
    for _ in range(5):
        limiter.acquire()
    assert all(abs(w - 1 / limiter.rate) < 0.01 for w in clock.slept[1:])


def test_the_pace_climbs_back_slowly_and_never_above_the_ceiling():
    clock = Clock()
    limiter = RateLimiter(20, clock=clock.time, sleep=clock.sleep)
    accept(limiter, clock, 40, 0.0)  # paced at the ceiling: 20/s
    limiter.on_rate_limited()
    cut = limiter.rate
    assert cut < 20
    clock.now += 5
    limiter.acquire()
    assert cut < limiter.rate < 20  # one percent of the old pace per second
    assert abs(limiter.rate - (cut + 5 * RECOVERY_PER_SECOND * 20)) < 0.2
    clock.now += 3600
    limiter.acquire()
    assert limiter.rate == 20


def test_429s_of_one_episode_cut_once():
    clock = Clock()
    limiter = RateLimiter(None, clock=clock.time, sleep=clock.sleep)
    accept(limiter, clock, 40, 0.05)
    limiter.on_rate_limited()
    clock.now += 0.5
    limiter.on_rate_limited()  # a request already on its way when the first 429 came
    assert limiter.cuts == 1


def test_a_429_before_any_success_sets_no_pace():
    clock = Clock()
    limiter = RateLimiter(None, clock=clock.time, sleep=clock.sleep)
    limiter.acquire()
    limiter.on_rate_limited()
    assert limiter.cuts == 0 and limiter.rate is None
    assert [limiter.acquire() for _ in range(20)] == [0.0] * 20


def test_a_stray_429_early_in_a_paced_run_cuts_the_pace_not_to_what_little_was_answered():
    """One answer, then a 429: the server accepting "1 per second" is no measurement; pace 0.9 x 5/s."""
    clock = Clock()
    limiter = RateLimiter(5, clock=clock.time, sleep=clock.sleep)
    accept(limiter, clock, 1, 0.2)
    limiter.on_rate_limited()
    assert limiter.cuts == 1 and abs(limiter.rate - 4.5) < 1e-9
    clock.now += 10
    limiter.acquire()
    assert limiter.rate == 5  # back at the ceiling in ten seconds


def test_a_paced_client_trusts_the_measured_rate_with_enough_answers():
    """Paced at 20/s but the server answered only 10/s for 10 s (others share the quota): pace 9/s."""
    clock = Clock()
    limiter = RateLimiter(20, clock=clock.time, sleep=clock.sleep)
    accept(limiter, clock, 100, 0.1)
    limiter.on_rate_limited()
    assert abs(limiter.rate - 9.0) < 0.1


def test_the_accepted_rate_is_measured_over_at_least_a_second():
    """A burst of 20 answered in 0.1 s says the server accepts 20 per second, not 200."""
    clock = Clock()
    limiter = RateLimiter(None, clock=clock.time, sleep=clock.sleep)
    accept(limiter, clock, 20, 0.005)
    limiter.on_rate_limited()
    assert abs(limiter.rate - 18.0) < 0.01


def test_the_client_slows_its_limiter_down_on_429(stub, sleeps):
    from cxsync.http import ApiClient, RetryPolicy
    from support.http_stub import Answer

    stub.add(*[Answer(body={"n": n}) for n in range(5)], Answer(429, headers={"Retry-After": "1"}), Answer())
    api = ApiClient(name="Test API", user_agent="t/1", sleep=sleeps, retry=RetryPolicy(max_attempts=3))
    for _ in range(6):
        api.get_json(stub.url())
    assert api.rate_limiter.cuts == 1 and api.rate_limiter.rate is not None
    assert api.stats.rate_limited == 1 and sleeps == [1.0]


def test_requests_in_flight_follow_the_pace_and_the_latency():
    clock = Clock()
    limiter = RateLimiter(10, clock=clock.time, sleep=clock.sleep, max_in_flight=8)
    assert limiter.in_flight() == 1  # nothing timed yet: one at a time
    limiter.on_answer(0.25)
    assert limiter.in_flight() == 5  # 10/s x 0.25 s x 1.5 headroom, plus one
    for _ in range(50):
        limiter.on_answer(1.5)
    assert limiter.in_flight() == 8  # 10/s x 1.5 s calls for more: the connection's cap
    assert limiter.in_flight(cap=1) == 1


def test_an_unpaced_limiter_keeps_its_cap_in_flight_and_a_cut_pace_fewer():
    clock = Clock()
    unpaced = RateLimiter(None, clock=clock.time, sleep=clock.sleep, max_in_flight=6)
    unpaced.on_answer(0.01)
    assert unpaced.in_flight() == 6
    paced = RateLimiter(20, clock=clock.time, sleep=clock.sleep, max_in_flight=16)
    for _ in range(20):
        paced.acquire()
        paced.on_success()
        paced.on_answer(0.5)
    before = paced.in_flight()
    paced.on_rate_limited()  # the server said 429: a slower pace needs fewer requests in flight
    assert paced.in_flight() < before
