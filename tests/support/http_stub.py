"""A scripted HTTP server on loopback for request-layer tests: each request takes the next scripted
answer (status, headers, body, a delay, a reset or a cut body) and is recorded as received."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False  # abort the connection without answering
    cut: bool = False  # declare the full length, send half of it, close


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Stub:
    def __init__(self) -> None:
        self.script: deque[Answer] = deque()
        self.received: list[Received] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.received.append(Received(self.command, self.path, dict(self.headers.items()), body))
                answer = stub.script.popleft() if stub.script else Answer()
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                raw = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                self.send_response_only(answer.status)  # no automatic Date: tests script their own
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if answer.cut:
                    self.wfile.write(raw[: len(raw) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/resource") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def add(self, *answers: Answer) -> Stub:
        self.script.extend(answers)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Sleeps(list):
    """A `sleep` that records the waits instead of sleeping: retry timing is asserted, never waited out."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
