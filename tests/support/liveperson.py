"""Helpers for tests that talk to the sandbox's LivePerson over real HTTP.

`LPSandbox` wraps a started `SandboxServer` with its admin API (clock, faults, switches, counters,
ground truth); `export_connections` publishes its connections as `AIRFLOW_CONN_*` with tiny retry
delays, so recovery from faults costs milliseconds, never Airflow retry delays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from cxsync_dev.sandbox.app import provider_modules
from cxsync_dev.sandbox.core import Sandbox
from cxsync_dev.sandbox.server import SandboxServer

SANDBOX_NOW = "2025-03-14T09:30:00+00:00"
SANDBOX_SEED = 7
# Retries in milliseconds, no client-side rate limit: tests never sit through real backoff.
FAST_EXTRAS: dict[str, Any] = {
    "requests_per_second": 0,
    "retry_base_seconds": 0.005,
    "retry_max_seconds": 0.02,
    "rate_limit_min_wait": 0.01,
    "max_attempts": 8,
    "timeout": 5,
}


class LPSandbox:
    def __init__(self, server: SandboxServer):
        self.server = server
        self.base_url = server.base_url
        self.session = requests.Session()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(method, f"{self.base_url}/_sandbox{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def now(self) -> datetime:
        return datetime.fromisoformat(self.admin("GET", "/clock")["now"])

    def advance(self, duration: str | float) -> datetime:
        return datetime.fromisoformat(self.admin("POST", "/clock", {"advance": duration})["now"])

    def faults(self, **settings: Any) -> dict:
        return self.admin("PUT", "/faults/liveperson", settings)

    def no_faults(self) -> None:
        self.faults(
            rate_limit_rps=None, p_5xx=0.0, p_reset=0.0, p_slow=0.0, p_truncate=0.0, p_partial=0.0, p_is_partial=0.0
        )

    def switch(self, credential: str, **values: Any) -> dict:
        return self.admin("PUT", f"/switches/liveperson/{credential}", values)

    def counters(self) -> dict:
        return self.admin("GET", "/counters")

    def reset_counters(self) -> None:
        self.admin("DELETE", "/counters")

    def lp_requests(self, endpoint: str | None = None, status: int | None = None) -> int:
        """How many LivePerson requests the sandbox served (of one endpoint, with one status)."""
        lp = self.counters()["requests"].get("liveperson", {})
        if endpoint is None:
            return lp.get("total", 0) if status is None else lp.get("by_status", {}).get(str(status), 0)
        by_status = lp.get("by_endpoint", {}).get(endpoint, {})
        return sum(by_status.values()) if status is None else by_status.get(str(status), 0)

    def fault_count(self, kind: str) -> int:
        return self.counters()["faults"].get("liveperson", {}).get(kind, 0)

    def truth(self, at: datetime | None = None) -> list[dict[str, Any]]:
        suffix = f"?at={at.isoformat().replace('+00:00', 'Z')}" if at else ""
        return self.admin("GET", f"/truth/liveperson{suffix}")["interactions"]

    def connections(self, **extra_overrides: Any) -> dict[str, dict[str, Any]]:
        """The sandbox's Airflow connections (dicts) with fast retries and `extra_overrides` merged in."""
        out = {}
        for conn_id, text in self.server.connection_uris().items():
            conn = json.loads(text)
            if conn.get("conn_type") != "liveperson":
                continue
            conn["extra"] = {**conn.get("extra", {}), **FAST_EXTRAS, **extra_overrides}
            out[conn_id] = conn
        return out


def small_options() -> dict[str, Any]:
    """Every provider module's small test volumes (LivePerson: 12 conversations a day, a week of history)."""
    options: dict[str, Any] = {}
    for module in provider_modules().values():
        options.update(getattr(module, "TEST_OPTIONS", {}))
    return options


def start_lp_sandbox(now: str = SANDBOX_NOW, **options: Any) -> LPSandbox:
    sandbox = Sandbox(seed=SANDBOX_SEED, now=now, options={**small_options(), **options})
    return LPSandbox(SandboxServer(sandbox).start())


def export_connections(lp: LPSandbox, monkeypatch, **extra_overrides: Any) -> dict[str, dict[str, Any]]:
    conns = lp.connections(**extra_overrides)
    for conn_id, conn in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conns


def set_connection(monkeypatch, conn_id: str, conn: Mapping[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(dict(conn)))


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def day_windows(end: datetime, days: int) -> list[tuple[datetime, datetime]]:
    return [(end - timedelta(days=n + 1), end - timedelta(days=n)) for n in reversed(range(days))]


# ---- comparing what we loaded with the sandbox's ground truth --------------------------------------------


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(UTC)


def expected_text(message: Mapping[str, Any]) -> str | None:
    """What the documented mapping makes of a ground-truth message's words (written independently of the code)."""
    if message.get("text") is not None:
        return message["text"]
    if message.get("file"):
        file = message["file"]
        return file.get("caption") or (f"[file: {file['fileType']}]" if file.get("fileType") else "[file]")
    if message.get("rich_content"):
        shown = []
        for element in json.loads(message["rich_content"]).get("elements", []):
            shown += [element[k] for k in ("title", "text") if element.get(k)]
        return "[rich content] " + " / ".join(shown) if shown else "[rich content]"
    return None


def expected_interaction(truth: Mapping[str, Any]) -> dict[str, Any]:
    ordered = sorted(truth["messages"], key=lambda m: (m["seq"], m["sent_at"]))
    return {
        "interaction_id": truth["interaction_id"],
        "status": {"OPEN": "open", "CLOSE": "closed"}[truth["status"]],
        "provider_status": truth["status"],
        "started_at": _when(truth["started_at"]),
        "ended_at": _when(truth["ended_at"]),
        "updated_at": _when(truth["updated_at"]),
        "agent_id": truth["agent_id"],
        "customer_id": truth["customer_id"],
        "message_count": truth["message_count"],
        "messages": [
            {
                "message_id": m["message_id"],
                "seq": n,
                "sent_at": _when(m["sent_at"]),
                "sender_type": m["sender_type"],
                "sender_id": m["participant_id"],
                "text": expected_text(m),
                "is_private": m["is_private"],
                "message_type": m["type"],
                "dialog_type": m["dialog_type"],
            }
            for n, m in enumerate(ordered, 1)
        ],
    }


def actual_interaction(record: Any) -> dict[str, Any]:
    """An `InteractionRecord` in the same shape as `expected_interaction`."""
    return {
        "interaction_id": record.interaction_id,
        "status": record.status,
        "provider_status": record.provider_status,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "updated_at": record.updated_at,
        "agent_id": record.agent_id,
        "customer_id": record.customer_id,
        "message_count": record.message_count,
        "messages": [
            {
                "message_id": m.message_id,
                "seq": m.seq,
                "sent_at": m.sent_at,
                "sender_type": m.sender_type,
                "sender_id": m.sender_id,
                "text": m.text,
                "is_private": m.is_private,
                "message_type": m.message_type,
                "dialog_type": m.dialog_type,
            }
            for m in record.messages
        ],
    }


def warehouse_interactions(engine: Any, integration_id: str) -> dict[str, dict[str, Any]]:
    """`cx_interactions` with their `cx_messages`, in the same shape as `expected_interaction`."""
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(sa.select(t.interactions).where(t.interactions.c.integration_id == integration_id)):
            out[row.interaction_id] = {
                "interaction_id": row.interaction_id,
                "status": row.status,
                "provider_status": row.provider_status,
                "started_at": row.started_at,
                "ended_at": row.ended_at,
                "updated_at": row.updated_at,
                "agent_id": row.agent_id,
                "customer_id": row.customer_id,
                "message_count": row.message_count,
                "messages": [],
            }
        query = (
            sa.select(t.messages)
            .where(t.messages.c.integration_id == integration_id)
            .order_by(t.messages.c.interaction_id, t.messages.c.seq)
        )
        for m in conn.execute(query):
            out[m.interaction_id]["messages"].append(
                {
                    "message_id": m.message_id,
                    "seq": m.seq,
                    "sent_at": m.sent_at,
                    "sender_type": m.sender_type,
                    "sender_id": m.sender_id,
                    "text": m.text,
                    "is_private": m.is_private,
                    "message_type": m.message_type,
                    "dialog_type": m.dialog_type,
                }
            )
    return out


def assert_equal_to_truth(actual: Mapping[str, dict[str, Any]], truth: list[Mapping[str, Any]]) -> None:
    """Every interaction and every message, by key and content; a readable diff of the first difference."""
    expected = {t["interaction_id"]: expected_interaction(t) for t in truth}
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]} ({len(missing)}), unexpected {extra[:5]} ({len(extra)})"
    for key, want in expected.items():
        assert actual[key] == want, f"interaction {key} differs"
