"""One rate limit per provider account, shared by every task of that account through a store (Redis).

A provider's limit belongs to the account, not to a task: four mapped day-tasks of one account that each pace
themselves at the connection's `requests_per_second` would ask four times that. With a store configured, every
task draws its requests from one moving window kept in the store (the `limits` library's moving-window
strategy: the store holds the times of the last R requests, and a request goes only when the oldest of them
is more than the window old), so together they keep to the rate. Each task's own limiter still spaces its
requests and still slows down on 429 (AIMD): the shared window is the ceiling above them.

The store: `CXSYNC_RATE_LIMIT_STORE` (`redis://host:6379/1`, or `none` to turn it off); unset, the Celery
broker's URL when it is a Redis one (a Celery deployment has it at hand). Without a store each task paces
alone, as before. If the store fails mid-run the task warns once and goes on with its own limiter.

Waits are bounded, whatever the store answers (a hostile or shared Redis can claim the window frees in years):
one pause is at most the window's length (a moving window always frees within it), every pause ends before the
task's deadline (`cxsync.task_deadline`: the try fails with a clear error instead), and a store that keeps
refusing for `MAX_WAIT_SECONDS` for one request is dropped for this task as if it had failed.

Limits: the window's times are the workers' clocks (keep them in sync, as NTP does); tasks share a limit when
they agree on provider, account and rate; the `limits` library's windows are whole seconds, so a rate below
one per second is kept over a longer window.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

STORE_ENV = "CXSYNC_RATE_LIMIT_STORE"
STORE_SCHEMES = ("redis://", "rediss://", "redis+unix://")
NAMESPACE = "cxsync"
# After the window refused a request, wait this long past the moment its oldest request leaves the window:
# the window counts when a request was let go, the provider when it arrived, and the two differ by a few
# milliseconds (thread wake-up, building the request). 2 % of a one-second window, at most.
MARGIN_SECONDS = 0.02
# Windows tried for a rate that is not a whole number per second (the `limits` windows are whole seconds).
MAX_WINDOW_SECONDS = 10
# Longest wait for one request's slot in the shared window before the store is ignored (it must be lying or
# overloaded: the window itself frees in at most MAX_WINDOW_SECONDS).
MAX_WAIT_SECONDS = 120.0

_storages: dict[str, Any] = {}
_storages_lock = threading.Lock()


def store_url(environ: dict[str, str] | None = None) -> str | None:
    """The shared store's URL: `CXSYNC_RATE_LIMIT_STORE`, else a Redis Celery broker when the executor is
    Celery; None when there is none (or the variable says `none`)."""
    env = os.environ if environ is None else environ
    explicit = env.get(STORE_ENV)
    if explicit is not None:
        explicit = explicit.strip()
        return None if explicit.lower() in ("", "none", "off", "false", "0") else explicit
    executor = env.get("AIRFLOW__CORE__EXECUTOR") or _airflow_conf("core", "executor") or ""
    if "celery" not in executor.lower():
        return None
    broker = env.get("AIRFLOW__CELERY__BROKER_URL") or _airflow_conf("celery", "broker_url") or ""
    return broker if broker.startswith(STORE_SCHEMES) else None


def _airflow_conf(section: str, key: str) -> str | None:
    try:
        from airflow.configuration import conf

        return conf.get(section, key, fallback=None)
    except Exception:  # outside Airflow, or a configuration that cannot be read: no store
        return None


def window_for(rate: float) -> tuple[int, int]:
    """(requests, seconds) of the window that keeps to `rate` most closely without exceeding it: a whole number of
    requests over a whole number of seconds, the shortest window that loses at most 5 % of the rate."""
    best = (max(1, math.floor(rate)), 1)
    for seconds in range(1, MAX_WINDOW_SECONDS + 1):
        amount = math.floor(rate * seconds + 1e-9)
        if amount >= 1 and amount / seconds >= 0.95 * rate:
            return amount, seconds
        if amount >= 1 and amount / seconds > best[0] / best[1]:
            best = (amount, seconds)
    return best


class SharedLimit:
    """`rate` requests per second for one key (provider and account) across every process using the store."""

    def __init__(self, url: str, rate: float, *, provider: str, account: str, clock: Callable[[], float] = time.time):
        from limits import RateLimitItemPerSecond
        from limits.strategies import MovingWindowRateLimiter

        self.url = url
        self.key = (provider, account)
        amount, seconds = window_for(rate)
        self.window_seconds = float(seconds)
        self.item = RateLimitItemPerSecond(amount, seconds, namespace=NAMESPACE)
        self._limiter = MovingWindowRateLimiter(_storage(url))
        self._clock = clock
        self.failed = False

    def acquire(self, sleep: Callable[[float], None]) -> float:
        """Block until the account's window lets one request go; the seconds waited. A store that fails turns
        the shared limit off for this task (warned once): its own limiter still paces it. Every pause is bounded
        (see the module's notes); one that would pass the task's deadline raises `TaskDeadlineExceeded`."""
        from cxsync.task_deadline import check_wait, remaining

        waited, left = 0.0, remaining()
        while not self.failed:
            try:
                if self._limiter.hit(self.item, *self.key):
                    return waited
                reset_at = self._limiter.get_window_stats(self.item, *self.key).reset_time
            except Exception as exc:  # the store is down or refuses: never fail a load over the shared limit
                self.failed = True
                log.warning(
                    "the shared rate limit store (%s) failed (%s: %s); this task paces itself alone from now on",
                    _safe(self.url),
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
                break
            # A moving window frees within its length: a reset time beyond that is the store's error, not a wait.
            pause = min(max(0.001, reset_at - self._clock()), self.window_seconds) + MARGIN_SECONDS
            if waited + pause > MAX_WAIT_SECONDS:
                self.failed = True
                log.warning(
                    "the shared rate limit store (%s) refused one request's slot for %.0f s; this task paces itself "
                    "alone from now on",
                    _safe(self.url),
                    waited,
                )
                break
            what = f"the shared rate limit of {self.key[0]} account {self.key[1]} ({_safe(self.url)})"
            check_wait(waited + pause, what, left)
            sleep(pause)
            waited += pause
        return waited


def shared_limit(rate: float | None, *, provider: str, account: str, url: str | None = None) -> SharedLimit | None:
    """The shared limit for this account when a store is configured and a rate is set; None otherwise."""
    url = store_url() if url is None else url
    if not url or not rate or not account:
        return None
    if not url.startswith(STORE_SCHEMES):
        log.warning(
            "no shared rate limit for %s account %s: %s (%s) is not a Redis URL (%s); each task paces itself alone",
            provider,
            account,
            STORE_ENV,
            _safe(url),
            ", ".join(STORE_SCHEMES),
        )
        return None
    try:
        return SharedLimit(url, rate, provider=provider, account=account)
    except Exception as exc:  # `limits` missing, or a URL it cannot use: pace alone, and say why
        log.warning(
            "no shared rate limit for %s account %s (%s: %s); each task paces itself alone",
            provider,
            account,
            type(exc).__name__,
            str(exc).replace(url, _safe(url)),  # libraries quote the URL, password and all
        )
        return None


def _storage(url: str) -> Any:
    """One storage (one connection pool) per store URL and process."""
    from limits.storage import storage_from_string

    with _storages_lock:
        storage = _storages.get(url)
        if storage is None:
            storage = _storages[url] = storage_from_string(url)
        return storage


def _safe(url: str) -> str:
    """The URL without user info or query (`redis://:secret@host` -> `redis://***@host`), whatever its scheme:
    a URL without `://` (`redis:secret@host`, a typo) could be anything and is shown as its scheme only."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        head = url.split(":", 1)[0] if ":" in url else ""
        return f"{head}:***" if head.isalnum() else "***"
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
