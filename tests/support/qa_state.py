"""The matching and QA-list tables as the QA layer's DAGs leave them, written through its own functions
(`write_staff`, `write_matches`, `write_run`), for tests of what reads them (the UI pages)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from cxsync.qa.lists import ITEM_COLUMNS, ListRun, write_run
from cxsync.qa.lists_config import Period, QaList
from cxsync.qa.matching import Match, write_matches
from cxsync.qa.staff import StaffMember, write_staff
from cxsync.warehouse import schema as t
from cxsync.warehouse.store import Warehouse


def fill_matching(warehouse: Warehouse, integration_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Staff for the integration's agents (in agent id order): the first matched by email, the second ambiguous
    between two people of the same name, the rest unmatched. Returns the staff and matches it wrote."""
    with warehouse.engine.connect() as conn:
        agents = conn.execute(
            sa.select(t.agents.c.agent_id, t.agents.c.display_name, t.agents.c.email)
            .where(t.agents.c.integration_id == integration_id)
            .order_by(t.agents.c.agent_id)
        ).all()
    staff = [
        StaffMember("s-100", "Ada Evaluator", "ada@example.com", "QA", "evaluator"),
        StaffMember("s-101", agents[0].display_name, agents[0].email, "Support", "agent"),
        StaffMember("s-102", "Sam Twin", "sam1@example.com", "Support", "agent"),
        StaffMember("s-103", "Sam Twin", "sam2@example.com", "Support", "agent"),
    ]
    write_staff(warehouse, staff, now=now)
    matches = []
    for n, agent in enumerate(agents):
        if n == 0:
            matches.append(Match(integration_id, agent.agent_id, "s-101", "email", 1.0))
        elif n == 1:
            matches.append(Match(integration_id, agent.agent_id, None, "ambiguous", 0.0, ("s-102", "s-103")))
        else:
            matches.append(Match(integration_id, agent.agent_id, None, "unmatched", 0.0))
    write_matches(warehouse, matches, now=now)
    return {"staff": staff, "matches": matches}


def fill_qa_list(
    warehouse: Warehouse,
    list_run_id: str,
    list_id: str,
    items: Iterable[Mapping[str, Any]],
    *,
    shortfall: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> ListRun:
    """One recorded run of a random list with these items (`rank`, `integration_id`, `interaction_id`,
    `agent_id`, `staff_id`, `evaluator_id`): a population of 7 more than it listed, s-101 2 short."""
    now = now or datetime.now(UTC)
    frame = pd.DataFrame([{"ended_at": None, **item} for item in items], columns=ITEM_COLUMNS)
    qa_list = QaList(id=list_id, type="random", period=Period(1, "weeks"), per_agent=3)
    run = ListRun(
        list_run_id=list_run_id,
        list_id=list_id,
        run_at=now,
        period_start=now.replace(hour=0, minute=0, second=0, microsecond=0),
        period_end=now,
        seed=42,
        population_size=len(frame) + 7,
        population_hash="0" * 64,
        items=frame,
        shortfall=dict(shortfall if shortfall is not None else {"s-101": 2}),
    )
    write_run(warehouse, run, qa_list)
    return run
