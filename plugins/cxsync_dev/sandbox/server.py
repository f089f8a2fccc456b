"""`SandboxServer`: the sandbox on a loopback port, served by uvicorn in a background thread."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import uvicorn

from cxsync_dev.sandbox.core import Sandbox, register_transport, transport_key

try:  # httptools is uvicorn's fast parser; h11 is its pure-Python fallback.
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _BaseProtocol
except ImportError:  # pragma: no cover - depends on the installed extras
    from uvicorn.protocols.http.h11_impl import H11Protocol as _BaseProtocol  # type: ignore[assignment]


class ResettableProtocol(_BaseProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, registering each connection's transport so a fault can reset it."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._sandbox_key = transport_key(self.client, self.server)
        register_transport(self._sandbox_key, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        register_transport(getattr(self, "_sandbox_key", None), None)
        super().connection_lost(exc)


def uvicorn_config(app: Any, **kwargs: Any) -> uvicorn.Config:
    """The one uvicorn configuration of the sandbox: quiet, our own `Date` header, resettable connections."""
    return uvicorn.Config(
        app,
        http=ResettableProtocol,
        lifespan="off",
        access_log=False,
        log_level=kwargs.pop("log_level", "warning"),
        date_header=False,  # the middleware sets Date from the sandbox clock
        server_header=False,
        timeout_graceful_shutdown=kwargs.pop("timeout_graceful_shutdown", 3),
        **kwargs,
    )


def build_connection_uris(sandbox: Sandbox, host: str, port: int) -> dict[str, dict[str, Any]]:
    """Airflow connection dicts (for `AIRFLOW_CONN_<ID>` as JSON) declared by each provider module."""
    from cxsync_dev.sandbox.app import provider_modules

    out: dict[str, dict[str, Any]] = {}
    for module in provider_modules().values():
        declare = getattr(module, "connection_uris", None)
        if declare is not None:
            out.update(declare(sandbox, host, port))
    return out


class SandboxServer:
    """Start/stop the sandbox on `host:port` (port 0 = a free one). Usable as a context manager."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        self.host = host
        self._requested_port = port
        self.port: int = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> SandboxServer:
        from cxsync_dev.sandbox.app import create_app

        if self._thread is not None:
            raise RuntimeError("this SandboxServer is already started")
        app = create_app(self.sandbox)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn_config(app))
        self._thread = threading.Thread(target=self._run, name=f"cxsync-sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the sandbox server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); a thread has nobody else to tell
            self._error = exc

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def connection_uris(self) -> dict[str, str]:
        """`{conn_id: JSON}` for `AIRFLOW_CONN_<CONN_ID>`: every connection the providers declare."""
        conns = build_connection_uris(self.sandbox, self.host, self.port)
        return {conn_id: json.dumps(conn, sort_keys=True) for conn_id, conn in conns.items()}
