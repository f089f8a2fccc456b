"""Manage Users: every provider agent with its staff match, and the overrides people set on them.

The matching DAG owns `cx_staff`, `cx_agent_matches` and `cx_agent_match_overrides`; this page reads the
first two when they exist and writes only overrides, which the next matching run applies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cxsync import settings
from cxsync.errors import CxsyncError
from cxsync.ui.warehouse_reads import existing_tables, reflect
from cxsync.warehouse import schema as t

# Unmatched and ambiguous first: they are what a QA admin comes here to fix.
METHOD_ORDER = ["unmatched", "ambiguous", "not matched yet", "bot", "name", "email", "external_id", "manual"]
METHODS = ["unmatched", "ambiguous", "manual", "external_id", "email", "name", "bot"]


class OverrideError(CxsyncError):
    """An override that cannot be written; the message says why."""


def agent_rows(
    engine: sa.Engine, integration_id: str | None = None, method: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, facts): agents left-joined to their match, staff member and override; facts say which tables
    exist and how many rows there were before the page's limit."""
    with engine.connect() as conn:
        present = existing_tables(conn)
        if t.agents.name not in present:
            return [], {"agents_table": False, "matches_table": False, "total": 0, "staff": []}
        a = t.agents
        matches = reflect(conn, "cx_agent_matches", present)
        staff = reflect(conn, "cx_staff", present)
        overrides = reflect(conn, "cx_agent_match_overrides", present)
        columns: list[Any] = [
            a.c.integration_id,
            a.c.agent_id,
            a.c.display_name,
            a.c.login_name,
            a.c.email,
            a.c.is_deleted,
        ]
        source: Any = a
        if matches is not None:
            source = source.outerjoin(
                matches, sa.and_(matches.c.integration_id == a.c.integration_id, matches.c.agent_id == a.c.agent_id)
            )
            method_col = sa.func.coalesce(matches.c.method, "not matched yet")
            columns += [
                matches.c.staff_id,
                method_col.label("method"),
                matches.c.confidence,
                matches.c.candidates,
                matches.c.matched_at,
            ]
            if staff is not None:
                source = source.outerjoin(staff, staff.c.staff_id == matches.c.staff_id)
                columns += [staff.c.name.label("staff_name"), staff.c.team.label("staff_team")]
        else:
            method_col = sa.literal("not matched yet")
            columns.append(method_col.label("method"))
        if overrides is not None:
            source = source.outerjoin(
                overrides,
                sa.and_(overrides.c.integration_id == a.c.integration_id, overrides.c.agent_id == a.c.agent_id),
            )
            columns += [
                overrides.c.staff_id.label("override_staff_id"),
                overrides.c.set_by.label("override_set_by"),
                overrides.c.set_at.label("override_set_at"),
                overrides.c.note.label("override_note"),
                (overrides.c.agent_id.is_not(None)).label("has_override"),
            ]
        query = sa.select(*columns).select_from(source)
        if integration_id:
            query = query.where(a.c.integration_id == integration_id)
        if method:
            query = query.where(method_col == method)
        rank = sa.case({m: n for n, m in enumerate(METHOD_ORDER)}, value=method_col, else_=len(METHOD_ORDER))
        total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = [
            dict(row)
            for row in conn.execute(
                query.order_by(rank, a.c.integration_id, a.c.display_name, a.c.agent_id).limit(
                    settings.UI_MAX_AGENT_ROWS
                )
            ).mappings()
        ]
        staff_list = (
            [
                dict(row)
                for row in conn.execute(
                    sa.select(staff.c.staff_id, staff.c.name, staff.c.team).order_by(staff.c.name, staff.c.staff_id)
                ).mappings()
            ]
            if staff is not None
            else []
        )
    facts = {
        "agents_table": True,
        "matches_table": matches is not None,
        "overrides_table": overrides is not None,
        "total": total,
        "staff": staff_list,
    }
    return rows, facts


def set_override(
    engine: sa.Engine,
    integration_id: str,
    agent_id: str,
    staff_id: str | None,
    note: str,
    set_by: str,
    now: datetime | None = None,
) -> None:
    """Write (or replace) the override of one agent: `staff_id` None means "never match this agent"."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        present = existing_tables(conn)
        overrides = _overrides_table(conn, present)
        if (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t.agents)
                .where(t.agents.c.integration_id == integration_id, t.agents.c.agent_id == agent_id)
            ).scalar_one()
            == 0
        ):
            raise OverrideError(f"there is no agent {agent_id!r} in integration {integration_id!r}")
        if staff_id is not None:
            staff = reflect(conn, "cx_staff", present)
            if (
                staff is None
                or conn.execute(
                    sa.select(sa.func.count()).select_from(staff).where(staff.c.staff_id == staff_id)
                ).scalar_one()
                == 0
            ):
                raise OverrideError(f"there is no staff member {staff_id!r} in cx_staff (the staff file)")
        key = sa.and_(overrides.c.integration_id == integration_id, overrides.c.agent_id == agent_id)
        # Delete-then-insert in one transaction: the same upsert on SQLite and PostgreSQL.
        conn.execute(overrides.delete().where(key))
        conn.execute(
            overrides.insert().values(
                integration_id=integration_id,
                agent_id=agent_id,
                staff_id=staff_id,
                note=note or None,
                set_by=set_by,
                set_at=now if conn.dialect.name == "postgresql" else now.replace(tzinfo=None),
            )
        )


def clear_override(engine: sa.Engine, integration_id: str, agent_id: str) -> bool:
    with engine.begin() as conn:
        overrides = _overrides_table(conn, existing_tables(conn))
        done = conn.execute(
            overrides.delete().where(overrides.c.integration_id == integration_id, overrides.c.agent_id == agent_id)
        )
        return bool(done.rowcount)


def _overrides_table(conn: sa.Connection, present: set[str]) -> sa.Table:
    overrides = reflect(conn, "cx_agent_match_overrides", present)
    if overrides is None:
        raise OverrideError(
            "the warehouse has no cx_agent_match_overrides table yet: run the cxsync_agent_matching DAG once "
            "(it creates the matching tables)"
        )
    return overrides
