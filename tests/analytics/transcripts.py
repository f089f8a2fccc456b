"""Hand-written transcripts for the analytics tests, loaded into a warehouse the way the load path writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cxsync.config import Integration
from cxsync.records import InteractionRecord, MessageRecord
from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC
LP = Integration(id="lp_metrics", provider="liveperson", conn_id="lp", label="lp", conversation_analytics=True)
HD = Integration(id="hd_metrics", provider="helpdesk", conn_id="hd", label="hd", conversation_analytics=True)


def conversation(
    iid: str,
    lines: list[tuple],
    *,
    agent: str | None = "a1",
    start: datetime = T0,
    ended_after: float | None = 1200,
    provider: str = "liveperson",
    raw: Any = None,
) -> InteractionRecord:
    """`lines`: (seconds after `start`, sender type, sender id, text[, private]); seq follows the list order.

    Message ids run backwards, so the id order is not the `seq` order (metrics must follow `seq`)."""
    messages = []
    for seq, line in enumerate(lines, start=1):
        offset, sender_type, sender_id, text, *rest = line
        messages.append(
            MessageRecord(
                message_id=f"m{len(lines) - seq:03d}",
                seq=seq,
                sent_at=None if offset is None else start + timedelta(seconds=offset),
                sender_type=sender_type,
                sender_id=sender_id,
                text=text,
                is_private=bool(rest and rest[0]),
            )
        )
    closed = ended_after is not None
    return InteractionRecord(
        interaction_id=iid,
        provider=provider,
        status="closed" if closed else "open",
        started_at=start,
        ended_at=start + timedelta(seconds=ended_after) if closed else None,
        updated_at=start + timedelta(seconds=ended_after or 0),
        agent_id=agent,
        customer_id="c1",
        messages=messages,
        raw=raw if raw is not None else {"id": iid},
    )


# The worked example of docs/metrics.md ("A worked example"): keep the two identical.
WORKED_EXAMPLE = conversation(
    "worked",
    [
        (0, "customer", "c1", "Hi, my order never arrived"),
        (5, "bot", "b1", "Thanks! An agent will be with you shortly."),
        (30, "customer", "c1", "Order 1234"),
        (120, "agent", "a1", "Hello, let me check that for you"),
        (130, "system", None, "Agent a1 joined"),
        (180, "agent", "a1", "customer is a VIP", True),
        (300, "customer", "c1", "This is taking too long, I want to speak to a manager"),
        (300, "customer", "c1", "now please"),
        (360, "agent", "a2", "I'm the supervisor, I can help"),
        (600, "customer", "c1", "Thanks, bye"),
    ],
)
WORKED_EXAMPLE_METRICS = {
    "first_response_seconds": 120.0,
    "avg_response_seconds": 90.0,
    "max_response_seconds": 120.0,
    "customer_runs": 3,
    "unanswered_runs": 1,
    "handle_seconds": 1200.0,
    "agent_messages": 2,
    "customer_messages": 5,
    "bot_messages": 1,
    "system_messages": 1,
    "private_notes": 1,
    "agent_words": 13,
    "customer_words": 23,
    "turns": 7,
    "agents_involved": 2,
    "flags": ["long_wait", "escalation_request"],
}


def load(warehouse: Warehouse, integration: Integration, *records: InteractionRecord) -> None:
    warehouse.write_interactions(integration.id, list(records))


def metrics(warehouse: Warehouse, integration_id: str) -> dict[str, dict[str, Any]]:
    mt = t.interaction_metrics
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(mt).where(mt.c.integration_id == integration_id)).mappings().all()
    return {row["interaction_id"]: dict(row) for row in rows}


def daily(warehouse: Warehouse, integration_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    dt = t.agent_daily_metrics
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(dt).where(dt.c.integration_id == integration_id)).mappings().all()
    return {(row["agent_id"], row["day"].isoformat()): dict(row) for row in rows}
