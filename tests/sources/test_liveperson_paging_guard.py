"""LivePerson offset paging cannot loop forever: a hostile msgHist that never advances, or whose count never ends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cxsync.config import Integration
from cxsync.errors import FatalError, RetriableError
from cxsync.providers import liveperson as liveperson_provider
from cxsync.sources.liveperson import LivePersonSource
from support.hostile import send

ACCOUNT = "12345678"
START = datetime(2025, 3, 1, tzinfo=UTC)


def conversation(n: int) -> dict:
    ms = int((START + timedelta(minutes=n % 600)).timestamp() * 1000)
    return {"info": {"conversationId": f"conv-{n}", "startTimeL": ms, "status": "CLOSE"}}


def msghist(page_for_offset):
    """CSDS pointing at itself, and a search answering `page_for_offset(offset)` -> (count, records). After 50
    searches it answers 400, so a client without the guards fails fast here instead of paging for hours."""

    def behaviour(handler, seen):
        if "/baseURI.json" in seen.path:
            port = handler.server.server_address[1]
            entries = [{"service": s, "account": ACCOUNT, "baseURI": f"127.0.0.1:{port}"} for s in ("msgHist",)]
            send(handler, 200, json.dumps({"baseURIs": entries}).encode())
            return
        if sum("conversations/search" in s.path for s in handler.server.hostile_seen) > 50:
            send(handler, 400, b'{"error": "the test server has had enough"}')
            return
        offset = int(seen.path.split("offset=", 1)[1].split("&", 1)[0])
        count, records = page_for_offset(offset)
        send(handler, 200, json.dumps({"_metadata": {"count": count}, "conversationHistoryRecords": records}).encode())

    return behaviour


@pytest.fixture
def lp_source(monkeypatch):
    def make(port: int, max_in_flight: int = 8) -> LivePersonSource:
        conn = {
            "conn_type": "liveperson",
            "host": "127.0.0.1",
            "schema": "http",
            "port": port,
            "login": "key",
            "password": "secret",
            "extra": {
                "account_id": ACCOUNT,
                "access_token": "t",
                "access_token_secret": "ts",
                "max_attempts": 1,
                "requests_per_second": 0,
                "max_in_flight": max_in_flight,
            },
        }
        monkeypatch.setenv("AIRFLOW_CONN_LP_HOSTILE", json.dumps(conn))
        integration = Integration(
            id="lp_hostile", provider="liveperson", conn_id="lp_hostile", label="hostile", options={"repage_limit": 1}
        )
        return LivePersonSource(integration)

    return make


@pytest.mark.parametrize("max_in_flight", [1, 8])
def test_a_full_page_that_brings_nothing_new_stops_paging(hostile, lp_source, max_in_flight):
    same_page = [conversation(n) for n in range(100)]
    server = hostile(msghist(lambda offset: (10**9, same_page)))  # "a billion more", always the same 100
    source = lp_source(server.port, max_in_flight)
    with pytest.raises(RetriableError) as info:
        for _ in source.window(START, START + timedelta(days=1)):
            pass
    message = str(info.value)
    assert "only conversations it had already sent" in message and "does not advance" in message
    searches = [s for s in server.seen if "conversations/search" in s.path]
    # Two pages per pass, two passes (repage_limit 1): bounded, not a billion. With requests in flight, each pass
    # may also have asked the offsets after the second page (answers never read): at most the cap more.
    assert 4 <= len(searches) <= 2 * (2 + max_in_flight - 1)
    if max_in_flight == 1:
        assert len(searches) == 4


def test_paging_stops_at_the_hard_page_cap(hostile, lp_source, monkeypatch):
    monkeypatch.setattr(liveperson_provider, "MAX_SEARCH_PAGES", 5)
    # Every page new conversations, and the count never reached.
    server = hostile(msghist(lambda offset: (10**9, [conversation(offset + n) for n in range(100)])))
    source = lp_source(server.port)
    with pytest.raises(FatalError, match=r"after 5 pages of 100 \(count 1,000,000,000\)"):
        for _ in source.window(START, START + timedelta(days=1)):
            pass
    assert len([s for s in server.seen if "conversations/search" in s.path]) == 5
