"""A stub of the ToyDesk API on loopback: a fixed clock, two agents and one ticket a day for the last ten days."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

NOW = datetime.fromisoformat("2026-03-10T12:00:00+00:00")
AGENTS = [{"id": "t1", "name": "Tia"}, {"id": "t2", "name": "Tom"}]
TICKETS = [
    {
        "id": f"tk{day}",
        "created": (NOW - timedelta(days=day, hours=1)).isoformat(),
        "agent": AGENTS[day % 2]["id"],
        "messages": ["Hello, my order is late", "Sorry! It ships today."],
    }
    for day in range(10)
]


class ToyDeskServer:
    def __init__(self, token: str) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                server.requests.append(url.path)
                if self.headers.get("Authorization") != f"Bearer {token}":
                    return self._send(401, {"error": "bad token"})
                if url.path == "/now":
                    return self._send(200, {"now": NOW.isoformat()})
                if url.path == "/agents":
                    return self._send(200, AGENTS)
                if url.path == "/tickets":
                    start, end = datetime.fromisoformat(query["start"]), datetime.fromisoformat(query["end"])
                    rows = [t for t in TICKETS if start <= datetime.fromisoformat(t["created"]) < end]
                    offset, limit = int(query["offset"]), int(query["limit"])
                    return self._send(200, rows[offset : offset + limit])
                return self._send(404, {"error": "no such endpoint"})

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ToyDeskServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
