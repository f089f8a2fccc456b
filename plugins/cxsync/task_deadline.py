"""The running task's deadline: every wait cxsync decides on its own (the shared rate limit's pauses) ends before
it, so a hostile or broken store cannot make a task sleep past the time Airflow gives it.

A task's deadline is its `execution_timeout` (every cxsync task has one, `settings.TASK_EXECUTION_TIMEOUT`)
counted from its start; `tasks.py` sets it when a task begins. Outside a task there is none, and waits are bounded
by their own caps only. One task runs per process, so the deadline is the process's (its request threads share it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from cxsync.errors import CxsyncError

_lock = threading.Lock()
_deadline: float | None = None  # time.monotonic() by which the running task must end


class TaskDeadlineExceeded(CxsyncError):
    """A wait would end after the task's deadline: the try fails now (Airflow's retry runs it later) instead of
    being killed mid-sleep."""


@contextmanager
def task_deadline(seconds: float | None) -> Iterator[None]:
    """Waits inside the block end within `seconds` from now (None: no deadline)."""
    global _deadline
    with _lock:
        previous = _deadline
        _deadline = None if seconds is None else time.monotonic() + max(0.0, seconds)
    try:
        yield
    finally:
        with _lock:
            _deadline = previous


def remaining() -> float | None:
    """Seconds until the task's deadline (None: no deadline)."""
    at = _deadline
    return None if at is None else at - time.monotonic()


def check_wait(seconds: float, what: str, left: float | None = None) -> None:
    """Raise `TaskDeadlineExceeded` when waiting `seconds` would pass the task's deadline (`left`: the seconds
    that were left when the caller started waiting, its waits so far included in `seconds`)."""
    left = remaining() if left is None else left
    if left is not None and seconds > left:
        raise TaskDeadlineExceeded(
            f"{what} would wait {seconds:.1f} s, past this task's deadline ({max(0.0, left):.1f} s left of its "
            "execution_timeout); the try ends here and Airflow retries it"
        )
