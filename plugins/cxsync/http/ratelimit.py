"""A client-side rate limit: at most `rate` requests per second, smoothly spaced."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Token bucket with a small burst. `rate=None` or 0 disables it.

    Providers publish no numbers (LivePerson, HelpDesk) but punish bursts with 429: pacing below
    the limit is cheaper than recovering from it.
    """

    def __init__(self, rate: float | None, burst: float = 1.0, clock=time.monotonic, sleep=time.sleep):
        self.rate = float(rate) if rate else None
        self.capacity = max(1.0, float(burst))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may go; returns the seconds waited."""
        if not self.rate:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            wait = (1.0 - self._tokens) / self.rate
            self._tokens = 0.0
            self._last = now + wait
        self._sleep(wait)
        return wait
