"""A hostile or broken answer cannot hurt a worker: size cap, per-request deadline, deeply nested JSON.

Driven through the HelpDesk hook (its connection extras set the limits) against a local hostile server.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import zlib

import pytest

from cxsync.errors import ProviderRequestError, RetriesExhausted
from cxsync.hooks.helpdesk import HelpDeskHook
from cxsync.http.client import ResponseTooLarge
from cxsync.http.tunables import ClientTunables
from support.hostile import send

MIB = 1024 * 1024


def helpdesk_conn(monkeypatch, conn_id: str, port: int, **extra) -> str:
    conn = {
        "conn_type": "helpdesk",
        "host": "127.0.0.1",
        "schema": "http",
        "port": port,
        "login": "account",
        "password": "dal:token",
        "extra": {"auth_type": "token", "max_attempts": 1, "requests_per_second": 0, **extra},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def gzip_bomb(mib: int) -> bytes:
    """A JSON array of `mib` MiB of spaces, gzip-compressed about a thousand to one."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    spaces = b" " * MIB
    return b"".join([packer.compress(b"["), *(packer.compress(spaces) for _ in range(mib)), packer.compress(b"]")]) + (
        packer.flush()
    )


def test_a_gzip_bomb_is_refused_without_decoding_it_whole(monkeypatch, hostile):
    bomb = gzip_bomb(100)  # about 100 KiB on the wire, 100 MiB decoded
    assert len(bomb) < 200 * 1024
    server = hostile(lambda h, seen: send(h, 200, bomb, {"Content-Encoding": "gzip"}))
    hook = HelpDeskHook(helpdesk_conn(monkeypatch, "hd_bomb", server.port, max_response_mb=2))
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge) as info:
            hook.agents()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than 2 MiB" in str(info.value) and "max_response_mb" in str(info.value)
    assert peak < 16 * MIB, f"decoding the bomb allocated {peak / MIB:.0f} MiB"


def test_an_answer_declared_larger_than_the_cap_is_refused(monkeypatch, hostile):
    body = json.dumps([{"ID": str(n), "name": "x" * 100} for n in range(20_000)]).encode()  # about 2.4 MB
    server = hostile(lambda h, seen: send(h, 200, body))
    hook = HelpDeskHook(helpdesk_conn(monkeypatch, "hd_big", server.port, max_response_mb=1))
    with pytest.raises(ResponseTooLarge, match="it declares"):
        hook.agents()
    # Within the cap, the same answer is read.
    assert len(HelpDeskHook(helpdesk_conn(monkeypatch, "hd_big_ok", server.port, max_response_mb=4)).agents()) == 20_000


def test_a_dribbling_server_cannot_hold_a_request_past_its_deadline(monkeypatch, hostile):
    def dribble(handler, seen):
        handler.send_response_only(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):  # one byte every 0.1 s: always inside the 1 s read timeout
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)

    server = hostile(dribble)
    hook = HelpDeskHook(helpdesk_conn(monkeypatch, "hd_dribble", server.port, timeout=1, request_deadline=1))
    started = time.monotonic()
    with pytest.raises(RetriesExhausted, match="deadline"):
        hook.agents()
    assert time.monotonic() - started < 5


def test_a_server_dribbling_its_headers_cannot_hold_a_request_past_its_deadline(monkeypatch, hostile):
    def dribble_headers(handler, seen):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Slow: " + b"a" * 60 + b"\r\n"
        for byte in head:  # one byte every 0.1 s (6 s in all): always inside the 1 s read timeout
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.1)
        handler.wfile.write(b"Content-Length: 2\r\n\r\n[]")
        handler.wfile.flush()

    server = hostile(dribble_headers)
    hook = HelpDeskHook(helpdesk_conn(monkeypatch, "hd_dribble_headers", server.port, timeout=1, request_deadline=1))
    with pytest.raises(RetriesExhausted, match="the headers did not arrive within the 1 s deadline"):
        hook.agents()


def test_an_ordinary_request_does_not_follow_a_redirect(monkeypatch, hostile):
    elsewhere = hostile()
    server = hostile(lambda h, seen: send(h, 302, b"", {"Location": f"http://127.0.0.1:{elsewhere.port}/v1/agents"}))
    hook = HelpDeskHook(helpdesk_conn(monkeypatch, "hd_redirect", server.port))
    with pytest.raises(ProviderRequestError, match=r"redirected to http://127\.0\.0\.1") as info:
        hook.agents()
    assert "does not follow redirects" in str(info.value)
    assert elsewhere.seen == []  # neither the token nor the request went to the redirect's target


def test_deeply_nested_json_is_a_provider_error(monkeypatch, hostile):
    body = b"[" * 100_000 + b"]" * 100_000
    server = hostile(lambda h, seen: send(h, 200, body))
    hook = HelpDeskHook(helpdesk_conn(monkeypatch, "hd_nested", server.port))
    with pytest.raises(ProviderRequestError, match="nested too deeply"):
        hook.agents()


def test_limits_are_connection_extras():
    tunables = ClientTunables.from_extras(
        {"max_response_mb": "0.5", "request_deadline": 30}, conn_id="c", default_requests_per_second=None
    )
    assert (tunables.max_response_bytes, tunables.deadline) == (MIB // 2, 30.0)
    defaults = ClientTunables.from_extras({}, conn_id="c", default_requests_per_second=None)
    assert (defaults.max_response_bytes, defaults.deadline) == (64 * MIB, 300.0)
