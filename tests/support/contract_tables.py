"""The matching and QA-list tables as the product documents them (README: agent matching, QA lists), built
here from their documented columns so UI tests can fill them without the DAGs that own them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cxsync.warehouse.schema import UTCDateTime

metadata = sa.MetaData()

staff = sa.Table(
    "cx_staff",
    metadata,
    sa.Column("staff_id", sa.String(255), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("team", sa.Text),
    sa.Column("role", sa.Text),
    sa.Column("is_active", sa.Boolean),
    sa.Column("updated_at", UTCDateTime),
)
agent_matches = sa.Table(
    "cx_agent_matches",
    metadata,
    sa.Column("integration_id", sa.String(255), primary_key=True),
    sa.Column("agent_id", sa.String(255), primary_key=True),
    sa.Column("staff_id", sa.String(255)),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("confidence", sa.Float),
    sa.Column("candidates", sa.Text),
    sa.Column("matched_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime),
)
agent_match_overrides = sa.Table(
    "cx_agent_match_overrides",
    metadata,
    sa.Column("integration_id", sa.String(255), primary_key=True),
    sa.Column("agent_id", sa.String(255), primary_key=True),
    sa.Column("staff_id", sa.String(255)),
    sa.Column("note", sa.Text),
    sa.Column("set_by", sa.Text),
    sa.Column("set_at", UTCDateTime),
)
qa_lists = sa.Table(
    "cx_qa_lists",
    metadata,
    sa.Column("list_run_id", sa.String(255), primary_key=True),
    sa.Column("list_id", sa.String(255), nullable=False),
    sa.Column("run_at", UTCDateTime, nullable=False),
    sa.Column("period_start", UTCDateTime),
    sa.Column("period_end", UTCDateTime),
    sa.Column("seed", sa.Text),
    sa.Column("population_size", sa.Integer),
    sa.Column("population_hash", sa.Text),
    sa.Column("item_count", sa.Integer),
    sa.Column("shortfall", sa.Text),
    sa.Column("definition", sa.Text),
)
qa_list_items = sa.Table(
    "cx_qa_list_items",
    metadata,
    sa.Column("list_run_id", sa.String(255), primary_key=True),
    sa.Column("integration_id", sa.String(255), primary_key=True),
    sa.Column("interaction_id", sa.String(255), primary_key=True),
    sa.Column("staff_id", sa.String(255)),
    sa.Column("agent_id", sa.String(255)),
    sa.Column("evaluator_id", sa.String(255)),
    sa.Column("rank", sa.Integer),
)


def create(engine: sa.Engine) -> None:
    metadata.create_all(engine)


def fill_matching(engine: sa.Engine, integration_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Staff for the integration's agents: the first agent matched by email, the second ambiguous, the rest
    unmatched. Returns what it wrote."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        agents = conn.execute(
            sa.text("SELECT agent_id, display_name, email FROM cx_agents WHERE integration_id = :i ORDER BY agent_id"),
            {"i": integration_id},
        ).all()
        people = [
            {"staff_id": "s-100", "name": "Ada Evaluator", "email": "ada@example.com", "team": "QA"},
            {"staff_id": "s-101", "name": agents[0].display_name, "email": agents[0].email, "team": "Support"},
            {"staff_id": "s-102", "name": "Sam Twin", "email": "sam1@example.com", "team": "Support"},
            {"staff_id": "s-103", "name": "Sam Twin", "email": "sam2@example.com", "team": "Support"},
        ]
        conn.execute(staff.insert(), [{**p, "role": "agent", "is_active": True, "updated_at": now} for p in people])
        matches = []
        for n, agent in enumerate(agents):
            if n == 0:
                row = {"staff_id": "s-101", "method": "email", "confidence": 1.0, "candidates": None}
            elif n == 1:
                row = {"staff_id": None, "method": "ambiguous", "confidence": 0.0, "candidates": '["s-102","s-103"]'}
            else:
                row = {"staff_id": None, "method": "unmatched", "confidence": 0.0, "candidates": None}
            matches.append(
                {
                    "integration_id": integration_id,
                    "agent_id": agent.agent_id,
                    **row,
                    "matched_at": now,
                    "updated_at": now,
                }
            )
        conn.execute(agent_matches.insert(), matches)
    return {"staff": people, "matches": matches}


def fill_qa_list(
    engine: sa.Engine, list_run_id: str, list_id: str, items: Iterable[Mapping[str, Any]], now: datetime | None = None
) -> None:
    now = now or datetime.now(UTC)
    items = list(items)
    with engine.begin() as conn:
        conn.execute(
            qa_lists.insert().values(
                list_run_id=list_run_id,
                list_id=list_id,
                run_at=now,
                period_start=now.replace(hour=0, minute=0, second=0, microsecond=0),
                period_end=now,
                seed="42",
                population_size=len(items) + 7,
                population_hash="0" * 64,
                item_count=len(items),
                shortfall=json.dumps({"s-101": 2, "s-102": 0}),
                definition=json.dumps({"type": "random", "per_agent": 3}),
            )
        )
        conn.execute(qa_list_items.insert(), [{"list_run_id": list_run_id, **item} for item in items])
