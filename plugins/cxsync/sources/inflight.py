"""Requests in flight inside one task, answers taken in order.

A provider answers in hundreds of milliseconds; one request at a time leaves its rate limit mostly idle. A source
hands `InFlight.ordered` the calls of a window in order (ticket ids, search offsets); up to `target()` of them run
at once in a small thread pool (the limiter's estimate: its pace times the latency, capped by the connection's
`max_in_flight`), and the answers come back in the order asked, so pages are built and written in order
exactly as before. What `ordered` holds is bounded (`hold` calls, answered or not): a slow warehouse stops the
fetching, never piles answers up.

An error in one call is raised when the caller reaches that call, after every call before it was taken and
before any after it: earlier pages are written, later ones never are, and the calls still running are left
to finish (their answers unused). Each call retries by itself (the request layer's retries), so one failure
neither stops nor reorders the others.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()
# Weight of the newest answer in the average of the caller's time per answer.
SERVICE_WEIGHT = 0.1


class InFlight:
    """A task's pool of request threads: `cap` at most, `target()` kept busy (read again after every answer)."""

    def __init__(
        self,
        cap: int,
        target: Callable[[], int] | None = None,
        name: str = "cxsync-request",
        latency: Callable[[], float | None] | None = None,
    ):
        self.cap = max(1, int(cap))
        self._target = target or (lambda: self.cap)
        self._latency = latency or (lambda: None)
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.service: float | None = None  # average seconds the caller spends on one answer before the next

    @property
    def concurrent(self) -> bool:
        return self.cap > 1

    def target(self) -> int:
        """The limiter's number (its pace times the latency), and never more than keeps the caller busy: the
        latency over the caller's time per answer, plus one. Against a fast server (loopback, an unpaced
        connection) the caller, not the server, is the bound, and more threads would only contend for the GIL."""
        wanted = self._target()
        latency, service = self._latency(), self.service
        if latency is not None and service:
            wanted = min(wanted, math.ceil(latency / service) + 1)
        return max(1, min(self.cap, wanted))

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                # One thread more than the cap: a list request read ahead (`ahead`) runs beside the calls.
                self._pool = ThreadPoolExecutor(max_workers=self.cap + 1, thread_name_prefix=self._name)
            return self._pool

    def ordered(self, call: Callable[[T], R], items: Iterable[T], hold: int) -> Iterator[tuple[T, R]]:
        """(item, call(item)) for every item, in the items' order, with up to `target()` calls running at once and
        at most `hold` calls held (running, or answered and not yet taken). Items are drawn lazily, in the
        caller's thread, only when there is room: an item iterator may depend on what the caller saw so far."""
        if not self.concurrent:
            for item in items:
                yield item, call(item)
            return
        pool = self._executor()
        source = iter(items)
        pending: deque[tuple[T, Future[R]]] = deque()
        exhausted = False
        try:
            while True:
                running = sum(1 for _, future in pending if not future.done())
                while not exhausted and len(pending) < max(1, hold) and running < self.target():
                    item = next(source, _END)
                    if item is _END:
                        exhausted = True
                        break
                    pending.append((item, pool.submit(call, item)))  # type: ignore[arg-type]
                    running += 1
                if not pending:
                    return
                item, future = pending[0]
                if not future.done():
                    wait([f for _, f in pending if not f.done()], return_when=FIRST_COMPLETED)
                    continue
                pending.popleft()
                answer = future.result()  # this call's error, raised in order
                handed = time.monotonic()
                yield item, answer
                spent = time.monotonic() - handed
                self.service = spent if self.service is None else self.service + SERVICE_WEIGHT * (spent - self.service)
        finally:
            for _, future in pending:
                future.cancel()  # not started: never runs; running: finishes, its answer unused
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a list read ahead stops too (`ahead`), not at garbage collection

    def ahead(self, items: Iterable[T]) -> Iterator[T]:
        """The same items, each next one drawn in a pool thread while the caller works on the current one (a list
        page requested while the previous page's records are fetched). Errors are raised at the item they
        stopped. Closing this stops the drawing: an item being drawn is waited for, then the iterator closed."""
        source = iter(items)
        if not self.concurrent:
            yield from source
            return
        pool = self._executor()
        future: Future | None = pool.submit(next, source, _END)
        try:
            while future is not None:
                item = future.result()
                future = None
                if item is _END:
                    return
                future = pool.submit(next, source, _END)
                yield item
        finally:
            if future is not None:
                future.cancel()
                if not future.cancelled():
                    wait([future])  # a generator cannot be closed while it runs in the other thread
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def in_flight_for(hook: object) -> InFlight:
    """The pool for a source whose hook exposes its request client (`get_conn()`, whose `rate_limiter` says how many
    requests to keep in flight); one at a time for a hook without one (a test's stand-in)."""
    try:
        limiter = getattr(hook.get_conn(), "rate_limiter", None)  # type: ignore[attr-defined]
    except Exception:
        # A stand-in without a client or connection (tests), or Airflow's unimplemented default. A real hook whose
        # connection cannot be read fails the same way at its first request, which reports it properly.
        limiter = None
    cap = getattr(limiter, "max_in_flight", 1)
    if limiter is None or not isinstance(cap, int):
        return InFlight(1)
    return InFlight(cap, target=limiter.in_flight, latency=lambda: limiter.latency)
