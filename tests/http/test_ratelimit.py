"""Client-side rate limit: requests spaced to the configured rate, off when unset."""

from __future__ import annotations

import threading

from cxsync.http import RateLimiter


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
