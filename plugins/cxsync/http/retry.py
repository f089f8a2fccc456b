"""Which failures are retried, and how long to wait between tries."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests

# Transport failures that a later try can fix: resets, timeouts, bodies cut short.
RETRIABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts.

    LivePerson asks for at least 1 s after a 429 (or its `Retry-After`), and spaced retries on 5xx;
    HelpDesk sends `Retry-After` sometimes. Defaults follow that; tests pass tiny values.
    """

    max_attempts: int = 6
    base_seconds: float = 2.0
    max_seconds: float = 60.0
    min_rate_limit_wait: float = 1.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait before retry number `attempt` (1-based) of a 5xx, reset or timeout."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        jitter = (rng or random).uniform(0.5, 1.0)  # keep at least half: spread out, never hammer
        return ceiling * jitter

    def rate_limit_wait(self, attempt: int, retry_after: str | None, rng: random.Random | None = None) -> float:
        """Wait after a 429: the server's `Retry-After` when given, else backoff; never under the minimum."""
        parsed = parse_retry_after(retry_after)
        if parsed is not None:
            return min(max(parsed, self.min_rate_limit_wait), max(self.max_seconds, self.min_rate_limit_wait))
        return max(self.min_rate_limit_wait, self.backoff(attempt, rng))


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
