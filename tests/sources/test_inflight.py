"""Requests in flight inside one task: answers come back in the order asked, whatever order they finish in; no
more calls run than the target; an error surfaces at its own item, after every earlier one and before any later."""

from __future__ import annotations

import random
import threading
import time

import pytest

from cxsync.http.ratelimit import RateLimiter
from cxsync.sources.inflight import InFlight, in_flight_for


class Gauge:
    """Counts the calls running at once, and the most seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> Gauge:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


@pytest.fixture
def flight():
    pool = InFlight(6)
    yield pool
    pool.close()


def test_answers_come_in_the_order_asked_with_calls_running_side_by_side(flight):
    gauge = Gauge()
    rng = random.Random(3)
    delays = [rng.uniform(0.0, 0.02) for _ in range(60)]

    def call(n: int) -> int:
        with gauge:
            time.sleep(delays[n])  # finish in another order than asked
            return n * n

    got = list(flight.ordered(call, range(60), hold=20))
    assert got == [(n, n * n) for n in range(60)]
    assert 1 < gauge.most <= 6


def test_no_more_calls_run_than_the_target_says():
    gauge = Gauge()
    flight = InFlight(8, target=lambda: 3)

    def call(n: int) -> int:
        with gauge:
            time.sleep(0.005)
            return n

    try:
        assert [n for n, _ in flight.ordered(call, range(30), hold=30)] == list(range(30))
    finally:
        flight.close()
    assert gauge.most <= 3


def test_items_are_drawn_only_when_there_is_room(flight):
    drawn: list[int] = []

    def items():
        for n in range(100):
            drawn.append(n)
            yield n

    answers = flight.ordered(lambda n: n, items(), hold=5)
    assert next(answers) == (0, 0)
    assert len(drawn) <= 6  # the hold, and the one taken: never the whole list ahead
    answers.close()


def test_an_error_surfaces_at_its_item_after_every_earlier_answer(flight):
    def call(n: int) -> int:
        if n == 7:
            raise ValueError("item 7 failed")
        time.sleep(0.01 if n < 7 else 0)  # the later items finish first
        return n

    taken: list[int] = []
    with pytest.raises(ValueError, match="item 7"):
        for n, _ in flight.ordered(call, range(20), hold=10):
            taken.append(n)
    assert taken == list(range(7))


def test_one_at_a_time_runs_in_the_callers_thread():
    threads: set[str] = set()
    flight = InFlight(1)
    answers = list(flight.ordered(lambda n: threads.add(threading.current_thread().name) or n, range(5), hold=5))
    assert [n for n, _ in answers] == list(range(5))
    assert threads == {threading.current_thread().name}


def test_ahead_keeps_the_order_and_raises_where_the_source_failed(flight):
    def pages():
        yield from ("a", "b", "c")
        raise RuntimeError("the list request failed")

    seen: list[str] = []
    with pytest.raises(RuntimeError, match="list request failed"):
        for page in flight.ahead(pages()):
            seen.append(page)
    assert seen == ["a", "b", "c"]


def test_ahead_stopped_early_closes_its_source(flight):
    closed = threading.Event()

    def pages():
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.set()

    iterator = flight.ahead(pages())
    assert [next(iterator), next(iterator)] == [1, 2]
    iterator.close()
    assert closed.is_set()


def test_the_pool_follows_the_hooks_limiter():
    class Client:
        rate_limiter = RateLimiter(10, max_in_flight=5)

    class Hook:
        def get_conn(self):
            return Client()

    class StandIn:  # a test's fake hook: no client, no pool
        pass

    assert in_flight_for(Hook()).cap == 5
    assert in_flight_for(StandIn()).cap == 1


def test_no_more_calls_run_than_keep_a_slow_caller_busy():
    """Answers in 10 ms, a caller that spends 20 ms on each: a second call in flight keeps it busy, more would
    only wait (and contend for the GIL), whatever the limiter allows."""
    flight = InFlight(8, target=lambda: 8, latency=lambda: 0.01)

    def call(n: int) -> int:
        return n

    try:
        for n, _ in flight.ordered(call, range(6), hold=8):
            time.sleep(0.02)  # the caller's work on one answer
            if n >= 1:
                assert flight.target() == 2
    finally:
        flight.close()
