"""Manage Users: every provider agent with its staff match, and the overrides people set on them.

The agent-matching DAG owns `cx_staff` and `cx_agent_matches`; this page reads them through the QA layer
(`cxsync.qa.matching`) and writes overrides, and applies one at once: the agent is matched again as the matcher
would match it (`apply_now`), so the page shows the outcome without waiting for the next matching run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cxsync import settings
from cxsync.errors import CxsyncError
from cxsync.qa import matching as qa_matching
from cxsync.qa.staff import StaffMember
from cxsync.ui.warehouse_reads import existing_tables
from cxsync.warehouse import schema as t
from cxsync.warehouse.store import Warehouse

NOT_MATCHED_YET = "not matched yet"  # an agent the matcher has not seen yet (no cx_agent_matches row)
# Unmatched and ambiguous first: they are what a QA admin comes here to fix.
METHOD_ORDER = ["unmatched", "ambiguous", NOT_MATCHED_YET, "bot", "name", "email", "external_id", "manual"]
METHODS = ["unmatched", "ambiguous", "manual", "external_id", "email", "name", "bot", NOT_MATCHED_YET]
# The tables the page needs; every cxsync DAG creates them (Warehouse.ensure_schema) on its first run.
TABLES = (t.agents, t.staff, t.agent_matches, t.agent_match_overrides)


class OverrideError(CxsyncError):
    """An override that cannot be written; the message says why."""


def agent_rows(
    engine: sa.Engine, integration_id: str | None = None, method: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, facts): every agent with its match, staff member and override, the ones to fix first; facts say
    whether the warehouse has its tables, whether matching ever ran, how many rows there were before the
    page's limit, and the staff an override may name."""
    with engine.connect() as conn:
        if not {table.name for table in TABLES} <= existing_tables(conn):
            return [], {"tables": False, "matched_any": False, "total": 0, "staff": []}
        staff = [
            dict(row)
            for row in conn.execute(
                sa.select(t.staff.c.staff_id, t.staff.c.name, t.staff.c.team).order_by(
                    t.staff.c.name, t.staff.c.staff_id
                )
            ).mappings()
        ]
        matched_any = conn.execute(sa.select(sa.literal(1)).select_from(t.agent_matches).limit(1)).first() is not None
    rows = qa_matching.list_matches(Warehouse(engine), integration_id=integration_id)
    for row in rows:
        row["method"] = row["method"] or NOT_MATCHED_YET
    if method:
        rows = [row for row in rows if row["method"] == method]
    rank = {m: n for n, m in enumerate(METHOD_ORDER)}
    rows.sort(
        key=lambda r: (rank.get(r["method"], len(rank)), r["integration_id"], r["display_name"] or "", r["agent_id"])
    )
    facts = {"tables": True, "matched_any": matched_any, "total": len(rows), "staff": staff}
    return rows[: settings.UI_MAX_AGENT_ROWS], facts


def set_override(
    engine: sa.Engine,
    integration_id: str,
    agent_id: str,
    staff_id: str | None,
    note: str,
    set_by: str,
    now: datetime | None = None,
) -> None:
    """Write (or replace) the override of one agent: `staff_id` None means "never match this agent". The agent
    must exist, and the staff member be in `cx_staff` (the matcher ignores an override naming anyone else)."""
    with engine.connect() as conn:
        if not {table.name for table in TABLES} <= existing_tables(conn):
            raise OverrideError("the warehouse has no cxsync tables yet: run a roster sync DAG of the integration")
        agent = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.agents)
            .where(t.agents.c.integration_id == integration_id, t.agents.c.agent_id == agent_id)
        ).scalar_one()
        if not agent:
            raise OverrideError(f"there is no agent {agent_id!r} in integration {integration_id!r}")
        if (
            staff_id is not None
            and not conn.execute(
                sa.select(sa.func.count()).select_from(t.staff).where(t.staff.c.staff_id == staff_id)
            ).scalar_one()
        ):
            raise OverrideError(f"there is no staff member {staff_id!r} in cx_staff (the staff file)")
    qa_matching.set_override(
        Warehouse(engine), integration_id, agent_id, staff_id, note=note or None, set_by=set_by, now=now
    )


def clear_override(engine: sa.Engine, integration_id: str, agent_id: str) -> bool:
    with engine.connect() as conn:
        if t.agent_match_overrides.name not in existing_tables(conn):
            return False
    return qa_matching.clear_override(Warehouse(engine), integration_id, agent_id)


def apply_now(engine: sa.Engine, integration_id: str, agent_id: str) -> str | None:
    """Match one agent again as the matcher does (its override first, then external id, e-mail, name against
    the staff in the staff file) and store it; the method it got, or None without that agent."""
    warehouse = Warehouse(engine)
    agents = [
        a for a in qa_matching.read_agents(warehouse) if (a.integration_id, a.agent_id) == (integration_id, agent_id)
    ]
    if not agents:
        return None
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.staff)).mappings().all()
    known = {row["staff_id"] for row in rows}
    staff = [_member(row) for row in rows if row["in_file"]]  # the matcher matches against the file's people
    outcome = qa_matching.match_agents(agents, staff, qa_matching.read_overrides(warehouse), known_staff_ids=known)
    qa_matching.write_matches(warehouse, outcome.matches)
    return outcome.matches[0].method


def _member(row: Any) -> StaffMember:
    import json

    external = []
    for item in json.loads(row["external_ids"] or "[]"):
        integration, _, agent = str(item).partition(":")
        if agent:
            external.append((integration, agent))
    return StaffMember(
        staff_id=row["staff_id"], name=row["name"], email=row["email"], team=row["team"], role=row["role"],
        active=bool(row["is_active"]), external_ids=tuple(external),
    )  # fmt: skip


def staff_names(facts: dict[str, Any]) -> dict[str, str]:
    """staff id -> name, for candidates and overrides shown by name."""
    return {s["staff_id"]: s["name"] for s in facts.get("staff", []) if s.get("name")}
