"""QA layer test data: provider agents and interactions written through the warehouse's own API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cxsync.records import AgentRecord, InteractionRecord, MessageRecord

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def add_agents(warehouse, integration_id: str, agents: Sequence[dict]) -> None:
    warehouse.sync_agents(integration_id, [AgentRecord(**a) for a in agents])


def interaction(
    interaction_id: str,
    agent_id: str,
    ended_hours_ago: float,
    *,
    status: str = "closed",
    channel: str = "messaging",
    agent_messages: int = 2,
    customer_messages: int = 2,
    private_notes: int = 0,
    minutes: float = 10,
    now: datetime = NOW,
) -> InteractionRecord:
    ended = now - timedelta(hours=ended_hours_ago)
    started = ended - timedelta(minutes=minutes)
    messages = []
    kinds = ["customer"] * customer_messages + ["agent"] * agent_messages + ["private"] * private_notes
    for n, kind in enumerate(kinds, start=1):
        messages.append(
            MessageRecord(
                message_id=f"{interaction_id}-m{n}",
                seq=n,
                sent_at=started + timedelta(seconds=n),
                sender_type="agent" if kind == "private" else kind,
                sender_id=agent_id if kind != "customer" else "c1",
                text=f"message {n}",
                is_private=kind == "private",
            )
        )
    return InteractionRecord(
        interaction_id=interaction_id,
        provider="helpdesk",
        status=status,
        started_at=started,
        channel=channel,
        ended_at=ended,  # a reopened ticket keeps the end it had: the status filter, not the period, decides
        updated_at=ended,
        agent_id=agent_id,
        customer_id="c1",
        messages=messages,
    )


def add_interactions(warehouse, integration_id: str, records: Sequence[InteractionRecord]) -> None:
    warehouse.write_interactions(integration_id, list(records))
