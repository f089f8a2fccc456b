"""Hostile parties on loopback for the security tests: an HTTP server whose every answer is a test's function,
a PostgreSQL server that refuses TLS, and a name resolver that sends foreign host names to 127.0.0.1.

Each server binds 127.0.0.1 on a free port and records what it received, so a test can assert that a secret
never reached it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return self.path + "\n" + "\n".join(f"{k}: {v}" for k, v in self.headers.items()) + "\n" + self.body.decode()


Behaviour = Callable[[BaseHTTPRequestHandler, Seen], None]


class HostileHTTP:
    """Every request is recorded, then answered by `behaviour(handler, seen)` (a JSON `{}` by default)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or (lambda h, seen: send(h, 200, b"{}"))
        self.seen: list[Seen] = []
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                hostile.seen.append(seen)
                try:
                    hostile.behaviour(self, seen)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on us: fine
                    self.close_connection = True

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.hostile_seen = self.seen  # type: ignore[attr-defined]  # for behaviours that count
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self) -> str:
        """Everything received, as text: what a secret must never be found in."""
        return "\n".join(s.text() for s in self.seen)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    handler.send_response_only(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def hostile():
    """`hostile(behaviour)` starts a `HostileHTTP`; all are stopped after the test."""
    servers: list[HostileHTTP] = []

    def start(behaviour: Behaviour | None = None) -> HostileHTTP:
        server = HostileHTTP(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def resolve_to_loopback(monkeypatch):
    """`resolve_to_loopback("evil.example", ...)`: those names resolve to 127.0.0.1 in this process, so a request
    meant for a foreign host reaches a local hostile server (as DNS would send it to the real one)."""
    real = socket.getaddrinfo
    names: set[str] = set()

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.lower() in names:
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def add(*hosts: str) -> None:
        names.update(h.lower() for h in hosts)

    return add


class NoTlsPostgres:
    """Speaks just enough of the PostgreSQL wire protocol to refuse TLS ('N' to an SSLRequest) and to record
    whether a client then sends its startup message (user name, database) in clear text anyway."""

    SSL_REQUEST = 80877103

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.ssl_requests = 0
        self.startup_messages: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        while True:
            head = conn.recv(8)
            if len(head) < 8:
                return
            length, code = struct.unpack("!ii", head)
            rest = conn.recv(max(0, length - 8)) if length > 8 else b""
            if code == self.SSL_REQUEST:
                self.ssl_requests += 1
                conn.sendall(b"N")
                continue
            self.startup_messages.append(head + rest)
            # Refuse politely: an ErrorResponse, then hang up.
            fields = b"SFATAL\0C28000\0Mhostile test server\0\0"
            conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)
            return

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
