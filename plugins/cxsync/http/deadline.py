"""A deadline for the wait on a response's status line and headers.

urllib3's read timeout bounds each pause between two arrivals, not the whole wait: a server sending its
headers a byte at a time, each inside the read timeout, holds a request as long as it likes. The client
reads the body itself and checks its deadline between arrivals (`ApiClient._read_body`); this module covers
the part before that: while a connection waits for the headers, a timer shuts its socket down when the
request's deadline passes, so the blocked read fails at once and the try counts as timed out.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# Per thread: the monotonic time by which the current request's headers must have arrived (None: no deadline).
_state = threading.local()


@contextmanager
def deadline(at: float) -> Iterator[None]:
    """Requests sent by this thread inside the block must have their headers by `at` (time.monotonic())."""
    previous = getattr(_state, "at", None)
    _state.at = at
    try:
        yield
    finally:
        _state.at = previous


def passed() -> bool:
    """Whether the deadline of the current block has passed."""
    at = getattr(_state, "at", None)
    return at is not None and time.monotonic() >= at


class _Watched:
    """Mixed into urllib3's connections: `getresponse` runs under a timer that shuts the socket at the deadline."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any):
        at = getattr(_state, "at", None)
        if at is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        timer = threading.Timer(max(0.0, at - time.monotonic()), self._cut)
        timer.daemon = True
        timer.start()
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        finally:
            timer.cancel()

    def _cut(self) -> None:
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An `HTTPAdapter` whose connections honour `deadline(...)` while waiting for the headers."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager
