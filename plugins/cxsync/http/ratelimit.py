"""A client-side rate limit: at most `rate` requests per second, smoothly spaced, slowing down on 429 (AIMD).

It also says how many requests a task should keep in flight (`in_flight`): enough to keep the pace busy at
the latency observed (Little's law), no more. With a shared store configured (`cxsync.http.shared_limit`),
the tasks of one provider account draw from one limit as well, so together they keep to the rate.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cxsync.http.shared_limit import SharedLimit
    from cxsync.http.tunables import ClientTunables

# After a 429 the pace drops to this share of the rate the server was accepting (multiplicative decrease)...
DECREASE = 0.9
# ...then climbs back by this share of the pace before the cut, per second without a 429 (additive increase):
# 10 % back in 10 s. Not faster: a server's burst allowance hides an overshoot for a while, and every
# 429 costs at least a second of waiting.
RECOVERY_PER_SECOND = 0.01
# A 429 within this many seconds of the last cut belongs to the same episode (retries, or requests that were
# already on their way): one cut per episode.
COOLDOWN_SECONDS = 2.0
# The pace never drops below this (requests per second).
MIN_RATE = 0.2
# The accepted rate is measured over at least this many seconds (a burst's rate says nothing).
MIN_MEASURE_SECONDS = 1.0
# A paced client trusts the measured accepted rate only with this many answers behind it: a stray 429 on a
# task's second request must not pace the rest of the task at the one request that had been answered.
MIN_SAMPLES = 10
# Weight of the newest answer time in the latency average (an exponential moving average).
LATENCY_WEIGHT = 0.2
# Requests kept in flight: the pace times the latency (what keeps the pace busy) times this headroom, plus one,
# so answers slower than the average do not leave the pace idle.
IN_FLIGHT_HEADROOM = 1.5


class RateLimiter:
    """Token bucket with a small burst; `rate=None` or 0 sets no ceiling. Adaptive on 429 (AIMD).

    Providers publish no numbers (LivePerson, HelpDesk) but punish bursts with 429: pacing below
    the limit is cheaper than recovering from it. `rate` is a ceiling the pace never exceeds. When the
    server answers 429 anyway (its limit is lower, or other clients share the quota), `on_rate_limited`
    cuts the pace to `DECREASE` x the rate the server accepted since the previous cut, and successes climb it
    back towards the ceiling by `RECOVERY_PER_SECOND` of the pace at the cut per second. Without a ceiling and
    without a 429 nothing is paced at all.
    """

    def __init__(
        self,
        rate: float | None,
        burst: float = 1.0,
        clock=time.monotonic,
        sleep=time.sleep,
        *,
        shared: SharedLimit | None = None,
        max_in_flight: int = 1,
    ):
        self.ceiling = float(rate) if rate else None
        self.rate = self.ceiling  # the current pace; None: unpaced
        self.capacity = max(1.0, float(burst))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.cuts = 0
        self._cut_at: float | None = None  # when the pace was last cut
        self._cut_rate = 0.0  # the pace right after that cut
        self._recovery = 0.0  # requests/s added per second since the cut
        self._since = None  # start of the current measuring period: first request, or the last cut
        self._accepted = 0  # successes since `_since`
        self.latency: float | None = None  # average seconds from sending a request to its whole answer
        # The account's limit shared with other tasks (None: this task paces alone). One thread of the task
        # asks the store at a time: the others wait on this lock rather than all polling the store.
        self.shared = shared
        self._shared_lock = threading.Lock()
        self.max_in_flight = max(1, int(max_in_flight))  # the connection's cap on requests in flight per task

    def acquire(self) -> float:
        """Block until a request may go (this task's pace, then the account's shared limit); the seconds waited.

        Thread-safe: the lock is held only to reserve a slot, never while sleeping, so threads waiting for
        their slots sleep side by side and each goes at its own reserved time."""
        waited = self._acquire_local()
        if self.shared is not None:
            with self._shared_lock:
                waited += self.shared.acquire(self._sleep)
        return waited

    def in_flight(self, cap: int | None = None) -> int:
        """How many requests to keep in flight, from 1 to `cap` (default: `max_in_flight`): the current pace times
        the average latency (with headroom). One until an answer has been timed; `cap` when nothing is paced."""
        cap = self.max_in_flight if cap is None else cap
        with self._lock:
            latency = self.latency
            rate = self._current_rate(self._clock())
        if cap <= 1 or latency is None:
            return 1
        if not rate:
            return cap
        return max(1, min(cap, math.ceil(rate * latency * IN_FLIGHT_HEADROOM) + 1))

    def _acquire_local(self) -> float:
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._since = now
            rate = self._current_rate(now)
            if not rate:
                return 0.0
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            wait = (1.0 - self._tokens) / rate
            self._tokens = 0.0
            self._last = now + wait
        self._sleep(wait)
        return wait

    def on_answer(self, latency: float) -> None:
        """An answer came, whatever its status, `latency` seconds after its request was sent (its body read whole):
        averaged for `in_flight`."""
        if latency < 0:
            return
        with self._lock:
            previous = self.latency
            self.latency = latency if previous is None else previous + LATENCY_WEIGHT * (latency - previous)

    def on_success(self) -> None:
        """A request was answered (not 429): it counts towards the rate the server accepts."""
        with self._lock:
            self._accepted += 1

    def on_rate_limited(self) -> None:
        """The server answered 429: pace at `DECREASE` x the rate it accepted (once per episode)."""
        with self._lock:
            now = self._clock()
            if self._cut_at is not None and now - self._cut_at < COOLDOWN_SECONDS:
                return
            since = self._since if self._since is not None else now
            elapsed = now - since
            current = self._current_rate(now)
            if current and self._accepted < MIN_SAMPLES:
                base = current  # too early to tell what the server accepts: plain multiplicative decrease
            else:
                accepted = self._accepted / max(MIN_MEASURE_SECONDS, elapsed)
                base = min(current, accepted) if current else accepted
            if base <= 0:
                return  # nothing was accepted yet: the server's Retry-After wait is all we know to do
            self.rate = max(MIN_RATE, DECREASE * base)
            if self.ceiling is not None:
                self.rate = min(self.rate, self.ceiling)
            self.cuts += 1
            self._cut_at = now
            self._cut_rate = self.rate
            self._recovery = RECOVERY_PER_SECOND * (current or base)
            self._since = now
            self._accepted = 0
            self._tokens = min(self._tokens, 1.0)

    def _current_rate(self, now: float) -> float | None:
        """The pace now: the cut pace plus the additive recovery since, up to the ceiling."""
        if self._cut_at is None:
            return self.rate
        rate = self._cut_rate + self._recovery * (now - self._cut_at)
        if self.ceiling is not None:
            rate = min(rate, self.ceiling)
        self.rate = rate
        return rate


def limiter_for(tunables: ClientTunables, *, provider: str, account: str) -> RateLimiter:
    """A connection's limiter: its `requests_per_second` and `max_in_flight`, and the account's shared limit
    when a store is configured (`cxsync.http.shared_limit`)."""
    from cxsync.http.shared_limit import shared_limit

    rate = tunables.requests_per_second
    return RateLimiter(
        rate,
        shared=shared_limit(rate, provider=provider, account=account),
        max_in_flight=tunables.max_in_flight,
    )
