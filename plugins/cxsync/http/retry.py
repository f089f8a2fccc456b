"""Which answers are retried, and how long to wait between tries: the one sorter and the one retry driver.

- `sort_answer` is the only place that decides what an answer means: usable, worth asking again (429, 5xx,
  a body the provider flags as incomplete), worth one more try after fresh credentials (the first 401), or
  fatal (every other 4xx, a redirect where none is followed).
- `retrying` is the only retry loop: tenacity, bounded by `RetryPolicy.max_attempts`, waiting what the
  failure asks for (`Retry-After` after a 429, the policy's backoff otherwise). `ApiClient` runs every
  request through it; sources never retry on their own.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
import tenacity

from cxsync.errors import RetriableError
from cxsync.task_deadline import check_wait

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
    """Exponential backoff with jitter, bounded in attempts; optionally a few evenly spaced steps first.

    LivePerson asks for at least 1 s after a 429 (or its `Retry-After`), and for retries of a 5xx at 5, 10 and
    15 s, then "after 2 minutes, 4 minutes, 8 minutes": `RetryPolicy(max_attempts=7, base_seconds=5,
    linear_steps=3, then_seconds=120, max_seconds=480)`, which rides out a long incident. HelpDesk sends
    `Retry-After` sometimes. Tests pass tiny values.

    `retry_after_max` bounds a server's `Retry-After` (None: `max_seconds`, so a long one is cut short); a
    provider whose incidents outlast a minute sets it higher. Either way no wait passes the running task's
    deadline (`cxsync.task_deadline`): the driver fails the try instead, and Airflow retries it later.
    """

    max_attempts: int = 6
    base_seconds: float = 2.0
    max_seconds: float = 60.0
    min_rate_limit_wait: float = 1.0
    linear_steps: int = 0
    then_seconds: float | None = None  # after the linear steps: exponential from this (None: from the base)
    retry_after_max: float | None = None

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait before retry number `attempt` (1-based) of a 5xx, reset or timeout."""
        if attempt <= self.linear_steps:
            # The provider's own schedule (base, 2 x base, 3 x base): never shorter, spread by up to a tenth.
            return min(self.max_seconds, self.base_seconds * attempt) * (rng or random).uniform(1.0, 1.1)
        if self.then_seconds is not None and attempt > self.linear_steps:
            # The provider's long steps (2, 4, 8 minutes): doubling from `then_seconds`, never shorter.
            advised = self.then_seconds * (2 ** (attempt - self.linear_steps - 1))
            return min(self.max_seconds, advised) * (rng or random).uniform(1.0, 1.1)
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        jitter = (rng or random).uniform(0.5, 1.0)  # keep at least half: spread out, never hammer
        return ceiling * jitter

    def rate_limit_wait(self, attempt: int, retry_after: str | None, rng: random.Random | None = None) -> float:
        """Wait after a 429: the server's `Retry-After` when given, else backoff; never under the minimum."""
        parsed = parse_retry_after(retry_after)
        if parsed is not None:
            cap = self.max_seconds if self.retry_after_max is None else self.retry_after_max
            return min(max(parsed, self.min_rate_limit_wait), max(cap, self.min_rate_limit_wait))
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


# ---- the one sorter --------------------------------------------------------------------------------------


class Verdict(enum.Enum):
    OK = "ok"
    RATE_LIMITED = "rate limited"  # 429: wait (Retry-After), pace slower, ask again
    RETRY = "retry"  # 5xx, a body flagged incomplete: back off, ask again
    REFRESH = "refresh"  # 401: fresh credentials may fix it, once
    FATAL = "fatal"  # any other status: no retry helps


def sort_answer(status: int, ok_status: Collection[int] = ()) -> Verdict:
    """What an HTTP status means for the request that got it."""
    if 200 <= status < 300 or status in ok_status:
        return Verdict.OK
    if status == 429:
        return Verdict.RATE_LIMITED
    if status in RETRIABLE_STATUS:
        return Verdict.RETRY
    if status == 401:
        return Verdict.REFRESH
    return Verdict.FATAL


class AskAgain(RetriableError):
    """One try failed in a way a later try may not: the retry driver waits `wait` seconds (None: the policy's
    backoff) and sends the request again, up to the policy's bound."""

    def __init__(self, message: str, *, wait: float | None = None, counts: bool = True):
        super().__init__(message)
        self.wait = wait
        self.counts = counts  # False: a retry after fresh credentials, which the attempt bound does not count


def retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None],
    rng: random.Random,
    before_sleep: Callable[[tenacity.RetryCallState, float], None],
) -> tenacity.Retrying:
    """The retry driver: tenacity retries `AskAgain` (and the transport failures of `RETRIABLE_EXCEPTIONS`,
    which the caller turns into `AskAgain`) until `policy.max_attempts` counted tries failed, then re-raises
    the last failure for the caller to name."""

    def counted(state: tenacity.RetryCallState) -> int:
        return state.attempt_number - getattr(state, "uncounted", 0)

    def stop(state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, AskAgain) and not exc.counts:
            state.uncounted = getattr(state, "uncounted", 0) + 1  # type: ignore[attr-defined]
            return False
        return counted(state) >= policy.max_attempts

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, AskAgain) and not exc.counts:
            return 0.0
        seconds = (
            exc.wait if isinstance(exc, AskAgain) and exc.wait is not None else policy.backoff(counted(state), rng)
        )
        # A wait that would outlast the task fails the try now, in words, instead of Airflow killing it asleep.
        check_wait(seconds, f"the retry after {exc}")
        return seconds

    def do_sleep(seconds: float) -> None:
        if seconds > 0:
            sleep(seconds)

    def log_and_count(state: tenacity.RetryCallState) -> None:
        seconds = state.next_action.sleep if state.next_action else 0.0
        before_sleep(state, seconds)

    return tenacity.Retrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception_type(AskAgain),
        sleep=do_sleep,
        before_sleep=log_and_count,
        reraise=True,
    )
