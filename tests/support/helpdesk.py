"""HelpDesk test support: the sandbox on a loopback port, its admin API, and connections pointing at it.

Registered for the whole suite by `tests/conftest.py` (`pytest_plugins`), so hook, source, OAuth and DAG
tests share one way to stand up the provider:

- `hd_sandbox(**options)`: start a sandbox (small HelpDesk volumes, fixed seed and clock) and point the
  `sandbox_helpdesk_main` (token) and `sandbox_helpdesk_oauth` connections at it through `AIRFLOW_CONN_*` variables,
  with tiny retry waits and no client-side rate limit, so fault tests never sleep for real.
- `HelpDeskAdmin`: clock, faults, counters, roles, tokens and ground truth, through `/_sandbox/...`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import pytest
import requests

from cxsync.config import Integration, Retention
from cxsync_dev.sandbox.core import Sandbox
from cxsync_dev.sandbox.server import SandboxServer

SANDBOX_NOW = "2025-03-14T09:30:00+00:00"
SEED = 11
# Small and quick: ~6 tickets a day, a 10-day history, archiving after 3 idle days (so a one-week backfill
# meets archived tickets), no trash (a trashed ticket leaves the API, not our warehouse: see the e2e notes).
HD_OPTIONS: dict[str, Any] = {
    "hd_agents": 8,
    "hd_teams": 2,
    "hd_tickets_per_day": 6,
    "hd_days": 6,
    "hd_messages_mean": 5,
    "hd_archive_idle_days": 3,
    "hd_trash_rate": 0.0,
}
# Retries without real waiting: backoff and 429 waits of a few milliseconds, no client-side pacing.
FAST_EXTRAS: dict[str, Any] = {
    "requests_per_second": 0,
    "retry_base_seconds": 0.001,
    "retry_max_seconds": 0.01,
    "rate_limit_min_wait": 0.001,
    "max_attempts": 8,
    "timeout": 10,
    "connect_timeout": 5,
}


@dataclass
class HelpDeskAdmin:
    """The sandbox's admin API, and the connections that point at this sandbox."""

    server: SandboxServer
    monkeypatch: pytest.MonkeyPatch
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.base_url

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = requests.request(method, self.url + path, timeout=30, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    # clock
    def now(self) -> datetime:
        return datetime.fromisoformat(self._call("GET", "/_sandbox/clock")["now"])

    def advance(self, duration: str) -> datetime:
        return datetime.fromisoformat(self._call("POST", "/_sandbox/clock", json={"advance": duration})["now"])

    # faults and counters
    def faults(self, **settings: Any) -> dict[str, Any]:
        return self._call("PUT", "/_sandbox/faults/helpdesk", json=settings)

    def no_faults(self) -> None:
        self.faults(rate_limit_rps=None, p_5xx=0.0, p_reset=0.0, p_slow=0.0, p_truncate=0.0)

    def counters(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/counters")

    def reset_counters(self) -> None:
        self._call("DELETE", "/_sandbox/counters")

    def requests_to(self, endpoint: str, status: str | None = None) -> int:
        served = self.counters()["requests"].get("helpdesk", {}).get("by_endpoint", {}).get(endpoint, {})
        return served.get(status, 0) if status else sum(served.values())

    def fault_count(self, kind: str) -> int:
        return self.counters()["faults"].get("helpdesk", {}).get(kind, 0)

    # world
    def info(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/helpdesk")

    def truth(self, at: datetime | None = None) -> list[dict[str, Any]]:
        params = {"at": at.isoformat()} if at else None
        return self._call("GET", "/_sandbox/truth/helpdesk", params=params)["interactions"]

    def info_tags(self) -> list[dict[str, Any]]:
        """The account's tags as `GET /v1/tags` answers them."""
        conn = self.connection("sandbox_helpdesk_main")
        answer = requests.get(
            f"{self.url}/v1/tags",
            auth=(conn["login"], conn["password"]),
            headers={"User-Agent": "cxsync-tests/1"},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()

    def set_role(self, credential: str, role: str) -> None:
        self._call("PUT", "/_sandbox/helpdesk/role", json={"credential": credential, "role": role})

    def issue_refresh_token(self) -> str:
        return self._call("POST", "/_sandbox/helpdesk/oauth/refresh-token")["refresh_token"]

    def expire_access_tokens(self) -> None:
        self._call("POST", "/_sandbox/helpdesk/oauth/expire")

    def revoke_tokens(self) -> None:
        self._call("POST", "/_sandbox/helpdesk/oauth/revoke")

    # connections
    def connection(self, conn_id: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.connections[conn_id]))

    def set_connection(self, conn_id: str, conn: dict[str, Any]) -> None:
        """Define (or redefine) `conn_id` through its `AIRFLOW_CONN_<ID>` variable for this test."""
        self.connections[conn_id] = conn
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    def derive(self, conn_id: str, base: str = "sandbox_helpdesk_main", **changes: Any) -> str:
        """A new connection like `base` with fields changed; `extra` is merged, not replaced."""
        conn = self.connection(base)
        extra = changes.pop("extra", None)
        conn.update(changes)
        if extra:
            conn["extra"] = {**conn.get("extra", {}), **extra}
        self.set_connection(conn_id, conn)
        return conn_id

    def authorize_oauth(self) -> str:
        """A refresh token as if the owner approved the app; stored in the `sandbox_helpdesk_oauth` connection."""
        token = self.issue_refresh_token()
        self.derive("sandbox_helpdesk_oauth", base="sandbox_helpdesk_oauth", extra={"refresh_token": token})
        return token


@pytest.fixture
def hd_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., HelpDeskAdmin]]:
    """`hd_sandbox(seed=..., now=..., **options)` starts a sandbox and points the HelpDesk connections at it."""
    servers: list[SandboxServer] = []

    def start(seed: int = SEED, now: str = SANDBOX_NOW, **options: Any) -> HelpDeskAdmin:
        sandbox = Sandbox(seed=seed, now=now, options={**HD_OPTIONS, **options})
        server = SandboxServer(sandbox).start()
        servers.append(server)
        admin = HelpDeskAdmin(server, monkeypatch)
        for conn_id, text in server.connection_uris().items():
            if conn_id.startswith("sandbox_helpdesk"):
                conn = json.loads(text)
                conn["extra"] = {**conn.get("extra", {}), **FAST_EXTRAS}
                admin.set_connection(conn_id, conn)
        return admin

    yield start
    for server in servers:
        server.stop()


def integration(conn_id: str = "sandbox_helpdesk_main", integration_id: str = "hd_test", **options: Any) -> Integration:
    return Integration(
        id=integration_id,
        provider="helpdesk",
        conn_id=conn_id,
        label=integration_id,
        retention=Retention(30, "days"),
        options=options,
    )


class AuthorizePage(HTMLParser):
    """The sandbox authorize page's form, read the way a browser reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.action = "/"
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action") or "/"
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            self.buttons[a["value"]] = a["name"]


def play_browser(authorize_url: str, decision: str = "approve") -> requests.Response:
    """Do what a person's browser does: open the authorize URL, press a button, follow the redirect
    (to the command's loopback listener). Returns the listener's answer."""
    page = requests.get(authorize_url, timeout=30)
    page.raise_for_status()
    form = AuthorizePage()
    form.feed(page.text)
    base = authorize_url.split("/?", 1)[0]
    data = {**form.fields, form.buttons[decision]: decision}
    return requests.post(base + form.action, data=data, timeout=30, allow_redirects=True)


# ---- warehouse vs. ground truth ------------------------------------------------------------------------------

LOADED_SILOS = ("tickets", "archive")  # spam and trash are not conversations


QA_SIGNALS = ("csat_score", "tags", "priority", "display_id", "agent_group")
MESSAGE_FIELDS = ("message_id", "seq", "sent_at", "sender_type", "sender_id", "text", "is_private", "attachments")


def expected_from_truth(truth: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the warehouse must hold for the sandbox's ground truth: every ticket of the loaded silos, with
    its messages, and every other event (status, assignment, unknown types) kept in `raw`."""
    out: dict[str, dict[str, Any]] = {}
    for t in truth:
        if t["silo"] not in LOADED_SILOS:
            continue
        ticket = t["ticket"]
        out[t["interaction_id"]] = {
            "provider": "helpdesk",
            "status": t["status"],
            "provider_status": t["provider_status"],
            "subject": t["subject"],
            "channel": ticket["source"]["type"],
            "started_at": t["started_at"],
            "updated_at": t["updated_at"],
            "ended_at": t["ended_at"],
            "agent_id": t["agent_id"],
            "customer_id": t["customer_id"],
            "message_count": t["message_count"],
            **{k: t[k] for k in QA_SIGNALS},
            "raw": {**ticket, "events": [e for e in ticket["events"] if e["type"] != "message"]},
            "messages": [{k: m[k] for k in MESSAGE_FIELDS} for m in t["messages"]],
        }
    return out


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def warehouse_view(warehouse: Any, integration_id: str) -> dict[str, dict[str, Any]]:
    """The warehouse's interactions and messages of one integration, in the shape of `expected_from_truth`."""
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    out: dict[str, dict[str, Any]] = {}
    with warehouse.engine.connect() as conn:
        for row in conn.execute(sa.select(t.interactions).where(t.interactions.c.integration_id == integration_id)):
            out[row.interaction_id] = {
                "provider": row.provider,
                "status": row.status,
                "provider_status": row.provider_status,
                "subject": row.subject,
                "channel": row.channel,
                "started_at": _iso(row.started_at),
                "updated_at": _iso(row.updated_at),
                "ended_at": _iso(row.ended_at),
                "agent_id": row.agent_id,
                "customer_id": row.customer_id,
                "message_count": row.message_count,
                "csat_score": row.csat_score,
                "tags": json.loads(row.tags) if row.tags else [],
                "priority": row.priority,
                "display_id": row.display_id,
                "agent_group": row.agent_group,
                "raw": json.loads(row.raw),
                "messages": [],
            }
        messages = conn.execute(
            sa.select(t.messages)
            .where(t.messages.c.integration_id == integration_id)
            .order_by(t.messages.c.interaction_id, t.messages.c.seq)
        )
        for m in messages:
            out[m.interaction_id]["messages"].append(
                {
                    "message_id": m.message_id,
                    "seq": m.seq,
                    "sent_at": _iso(m.sent_at),
                    "sender_type": m.sender_type,
                    "sender_id": m.sender_id,
                    "text": m.text,
                    "is_private": bool(m.is_private),
                    "attachments": json.loads(m.attachments) if m.attachments else [],
                }
            )
    return out


def warehouse_snapshot(warehouse: Any, integration_id: str) -> dict[str, list[tuple]]:
    """Every row of the integration in every table, minus the sync timestamps a roster run refreshes:
    equal snapshots before and after a re-run mean the re-run changed nothing."""
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    volatile = {"last_synced_at"}
    out: dict[str, list[tuple]] = {}
    with warehouse.engine.connect() as conn:
        for table in (t.agents, t.agent_groups, t.interactions, t.messages, t.sync_state, t.rejected_records):
            columns = [c for c in table.c if c.name not in volatile]
            rows = conn.execute(sa.select(*columns).where(table.c.integration_id == integration_id))
            out[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    return out
