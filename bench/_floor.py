"""The floor: the thinnest code that loads the same pages into equivalent tables.

Same requests as cxsync (same endpoints, parameters, auth and page size), a plain `requests.Session`,
`json` parsing, a few lines of mapping per record, each record's JSON in `raw`, and bulk INSERTs, one
transaction per page. No validation, dedupe, hashing, upserts, retries or logging: what cxsync spends beyond
this is its overhead.

It imports nothing of cxsync, Airflow or SQLAlchemy: run in its own process (bench/_throughput_child.py), it is
what a hand-written loader would be, down to the size of its heap.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import requests
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth1

INTEGRATION = "floor"
PAGE = 100

_TABLES = """
CREATE TABLE fl_interactions (
  integration_id VARCHAR(255), interaction_id VARCHAR(255), provider VARCHAR(32) NOT NULL, channel TEXT,
  status VARCHAR(16) NOT NULL, provider_status TEXT, subject TEXT, started_at {ts} NOT NULL, ended_at {ts},
  updated_at {ts}, agent_id TEXT, customer_id TEXT, message_count INTEGER NOT NULL, loaded_at {ts} NOT NULL,
  raw TEXT, PRIMARY KEY (integration_id, interaction_id));
CREATE INDEX ix_fl_interactions_started ON fl_interactions (integration_id, started_at);
CREATE TABLE fl_messages (
  integration_id VARCHAR(255), interaction_id VARCHAR(255), message_id VARCHAR(255), seq INTEGER NOT NULL,
  sent_at {ts}, sender_type VARCHAR(16) NOT NULL, sender_id TEXT, text TEXT, is_private BOOLEAN NOT NULL,
  message_type TEXT, raw TEXT, PRIMARY KEY (integration_id, interaction_id, message_id));
"""


class FloorDB:
    """sqlite3 or psycopg2, used directly."""

    def __init__(self, conn: Any, postgres: bool):
        self.conn = conn
        self.postgres = postgres
        ts = "TIMESTAMPTZ" if postgres else "DATETIME"
        cur = conn.cursor()
        for statement in _TABLES.format(ts=ts).split(";"):
            if statement.strip():
                cur.execute(statement)
        conn.commit()
        if postgres:
            from psycopg2.extras import execute_values

            def insert(table: str, rows: list[tuple]) -> None:
                execute_values(cur, f"INSERT INTO {table} VALUES %s ON CONFLICT DO NOTHING", rows, page_size=1000)
        else:

            def insert(table: str, rows: list[tuple]) -> None:
                marks = ",".join("?" * len(rows[0]))
                cur.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)

        self._insert = insert

    @classmethod
    @contextlib.contextmanager
    def open(cls, url: str) -> Iterator[FloorDB]:
        """`sqlite:///path` or `postgresql+psycopg2://user@host:port/db` (the URLs the benchmarks use)."""
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            conn = sqlite3.connect(unquote(parts.path[1:]))
            # The pragmas cxsync's engine sets: the same durability.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            db = cls(conn, postgres=False)
        else:
            import psycopg2

            conn = psycopg2.connect(
                host=parts.hostname,
                port=parts.port,
                user=unquote(parts.username or "") or None,
                password=unquote(parts.password or "") or None,
                dbname=parts.path.lstrip("/"),
            )
            db = cls(conn, postgres=True)
        try:
            yield db
        finally:
            conn.close()

    def ts(self, moment: datetime | None) -> Any:
        if moment is None or self.postgres:
            return moment
        return moment.replace(tzinfo=None).isoformat(" ")

    def write(self, interactions: list[tuple], messages: list[tuple]) -> None:
        if interactions:
            self._insert("fl_interactions", interactions)
        if messages:
            self._insert("fl_messages", messages)
        self.conn.commit()

    def counts(self) -> tuple[int, int]:
        cur = self.conn.cursor()
        cur.execute("SELECT count(*) FROM fl_interactions")
        interactions = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM fl_messages")
        return interactions, cur.fetchone()[0]


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC) if value not in (None, -1, "-1") else None


class Sandbox(Protocol):
    """Where the sandbox listens and its Airflow connections (a `bench._support.SandboxProcess` will do)."""

    base_url: str
    connections: dict[str, dict[str, Any]]


def _sections(sections: list[str] | None) -> list[str]:
    """The `contentToRetrieve` sections cxsync asks for (given by the parent, or read from cxsync)."""
    if sections is None:
        from cxsync.sources.liveperson import CONTENT_TO_RETRIEVE

        sections = list(CONTENT_TO_RETRIEVE)
    return sections


def load_liveperson(
    sandbox: Sandbox, db: FloorDB, windows: list[tuple[datetime, datetime]], sections: list[str] | None = None
) -> tuple[int, int]:
    conn = sandbox.connections["sandbox_liveperson_oauth1"]  # the legacy key signs: no token round trip
    extra = conn["extra"]
    session = requests.Session()
    session.auth = OAuth1(conn["login"], conn["password"], extra["access_token"], extra["access_token_secret"])
    url = f"{sandbox.base_url}/messaging_history/api/account/{extra['account_id']}/conversations/search"
    sections = _sections(sections)
    now = datetime.now(UTC)
    for lo, hi in windows:
        lo_ms, hi_ms = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
        body = {
            "start": {"from": lo_ms, "to": hi_ms - 1},
            "status": ["OPEN", "CLOSE"],
            "contentToRetrieve": sections,
        }
        offset = 0
        while True:
            params = {"offset": offset, "limit": PAGE, "sort": "start:asc", "v": "2", "source": "cxsync"}
            response = session.post(url, params=params, json=body, timeout=60)
            response.raise_for_status()
            answer = json.loads(response.content)
            interactions, messages = [], []
            for record in answer.get("conversationHistoryRecords") or []:
                info = record["info"]
                if not lo_ms <= int(info["startTimeL"]) < hi_ms:
                    continue  # the neighbouring window's (LivePerson rounds the range)
                cid = str(info["conversationId"])
                items = record.get("messageRecords") or []
                customers = record.get("consumerParticipants") or []
                raw = {k: v for k, v in record.items() if k != "messageRecords"}
                closed = info["status"] == "CLOSE"
                interactions.append(
                    (
                        INTEGRATION,
                        cid,
                        "liveperson",
                        "messaging",
                        "closed" if closed else "open",
                        info["status"],
                        None,
                        db.ts(_ms(info["startTimeL"])),
                        db.ts(_ms(info.get("endTimeL")) if closed else None),
                        db.ts(_ms(info["startTimeL"])),
                        str(info.get("latestAgentId")),
                        str(customers[0].get("participantId")) if customers else None,
                        len(items),
                        db.ts(now),
                        json.dumps(raw),
                    )
                )
                for seq, m in enumerate(items, 1):
                    text = ((m.get("messageData") or {}).get("msg") or {}).get("text")
                    messages.append(
                        (
                            INTEGRATION,
                            cid,
                            str(m["messageId"]),
                            seq,
                            db.ts(_ms(m.get("timeL"))),
                            str(m.get("sentBy")).lower(),
                            m.get("participantId"),
                            text,
                            m.get("audience") == "AGENTS_AND_MANAGERS",
                            m.get("type"),
                            json.dumps(m),
                        )
                    )
            db.write(interactions, messages)
            offset += PAGE
            if offset >= answer["_metadata"]["count"]:
                break
    session.close()
    return db.counts()


def _iso_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def load_helpdesk(
    sandbox: Sandbox, db: FloorDB, windows: list[tuple[datetime, datetime]], sections: list[str] | None = None
) -> tuple[int, int]:
    conn = sandbox.connections["sandbox_helpdesk_main"]
    session = requests.Session()
    session.auth = HTTPBasicAuth(conn["login"], conn["password"])
    session.headers["User-Agent"] = "cxsync-floor/1"  # HelpDesk refuses generic ones
    api = f"{sandbox.base_url}/v1"
    now = datetime.now(UTC)
    for lo, hi in windows:
        hi_param = hi if hi.microsecond == 0 else hi.replace(microsecond=0) + timedelta(seconds=1)
        for silo in ("tickets", "archive"):
            params: dict[str, Any] = {
                "silo": silo,
                "sortBy": "createdAt",
                "order": "asc",
                "pageSize": PAGE,
                "createdDateFrom": lo.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "createdDateTo": hi_param.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            while True:
                response = session.get(f"{api}/tickets", params=params, timeout=60)
                response.raise_for_status()
                rows = json.loads(response.content)
                interactions, messages = [], []
                for row in rows:
                    if not lo <= _iso_time(row["createdAt"]) < hi:
                        continue
                    got = session.get(f"{api}/tickets/{row['ID']}", timeout=60)
                    got.raise_for_status()
                    ticket = json.loads(got.content)
                    events = ticket.get("events") or []
                    said = [e for e in events if e.get("type") == "message"]
                    closed = ticket["status"] in ("solved", "closed")
                    assignment = (ticket.get("assignment") or {}).get("agent") or {}
                    interactions.append(
                        (
                            INTEGRATION,
                            ticket["ID"],
                            "helpdesk",
                            (ticket.get("source") or {}).get("type"),
                            "closed" if closed else "open",
                            ticket["status"],
                            ticket.get("subject"),
                            db.ts(_iso_time(ticket["createdAt"])),
                            db.ts(_iso_time(ticket.get("updatedAt")) if closed else None),
                            db.ts(_iso_time(ticket.get("updatedAt"))),
                            assignment.get("ID"),
                            (ticket.get("requester") or {}).get("email"),
                            len(said),
                            db.ts(now),
                            json.dumps({**ticket, "events": [e for e in events if e.get("type") != "message"]}),
                        )
                    )
                    for seq, event in enumerate(said, 1):
                        message = event.get("message") or {}
                        author = event.get("author") or {}
                        messages.append(
                            (
                                INTEGRATION,
                                ticket["ID"],
                                str(event["ID"]),
                                seq,
                                db.ts(_iso_time(event.get("date"))),
                                author.get("type"),
                                author.get("ID"),
                                message.get("text"),
                                message.get("isPrivate") is True,
                                "message",
                                json.dumps(event),
                            )
                        )
                db.write(interactions, messages)
                if len(rows) < PAGE:
                    break
                params["next.value"], params["next.ID"] = rows[-1]["createdAt"], rows[-1]["ID"]
    session.close()
    return db.counts()


def warm_up(sandbox: Sandbox, provider: str, windows: list[tuple[datetime, datetime]]) -> None:
    """One small request per day window, so the sandbox has counted each search (LivePerson) and built its
    ticket snapshot (HelpDesk) before anything is timed."""
    if provider == "liveperson":
        conn = sandbox.connections["sandbox_liveperson_oauth1"]  # the legacy key signs: no token round trip
        extra = conn["extra"]
        auth = OAuth1(conn["login"], conn["password"], extra["access_token"], extra["access_token_secret"])
        url = f"{sandbox.base_url}/messaging_history/api/account/{extra['account_id']}/conversations/search"
        with requests.Session() as session:
            session.auth = auth
            for lo, hi in windows:
                lo_ms, hi_ms = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
                body = {
                    "start": {"from": lo_ms, "to": hi_ms - 1},
                    "status": ["OPEN", "CLOSE"],
                    "contentToRetrieve": _sections(None),
                }
                params = {"offset": 0, "limit": 1, "sort": "start:asc", "v": "2", "source": "cxsync"}
                session.post(url, params=params, json=body, timeout=120).raise_for_status()
    else:
        conn = sandbox.connections["sandbox_helpdesk_main"]
        with requests.Session() as session:
            session.auth = HTTPBasicAuth(conn["login"], conn["password"])
            session.headers["User-Agent"] = "cxsync-floor/1"
            for silo in ("tickets", "archive"):
                params = {"silo": silo, "sortBy": "createdAt", "order": "asc", "pageSize": 1}
                session.get(f"{sandbox.base_url}/v1/tickets", params=params, timeout=120).raise_for_status()
