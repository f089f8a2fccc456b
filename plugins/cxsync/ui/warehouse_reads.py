"""What the pages read from the warehouse: aggregates that use its indexes, and tables that may not exist yet.

A warehouse no DAG ran on has no tables at all (every DAG creates them all on its first run), and a
reconciliation table only once that DAG is installed: a page reads a table only when it exists.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from cxsync import settings
from cxsync.ui.totals import totals_and_days
from cxsync.warehouse import schema as t
from cxsync.warehouse.connect import default_sqlite_path, make_engine, url_from_connection

log = logging.getLogger(__name__)

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def warehouse_url(conn_id: str | None) -> sa.URL | str:
    """The warehouse the DAGs write: the `conn_id` connection (from anywhere Airflow keeps connections),
    else the embedded SQLite file. The api-server is not a task, so Airflow core's lookup is used."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    conn_id = conn_id or settings.DEFAULT_WAREHOUSE_CONN_ID
    try:
        return url_from_connection(Connection.get_connection_from_secrets(conn_id))
    except AirflowNotFoundException:
        return sa.URL.create("sqlite", database=str(default_sqlite_path()))


def warehouse_engine(conn_id: str | None) -> sa.Engine:
    """One engine (and connection pool) per warehouse URL for the life of the api-server."""
    url = warehouse_url(conn_id)
    key = sa.make_url(url).render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(url)
        return engine


def existing_tables(conn: sa.Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


_reflected: dict[tuple[str, str], tuple[float, sa.Table]] = {}
# Reflection reads the database's catalog (several queries on PostgreSQL): once a minute per table is enough
# to notice a table that its DAG created or changed.
_REFLECT_SECONDS = 60.0


def reflect(conn: sa.Connection, name: str, present: set[str]) -> sa.Table | None:
    """The table as the database has it, or None when it does not exist (yet)."""
    if name not in present:
        return None
    key = (conn.engine.url.render_as_string(hide_password=True), name)
    cached = _reflected.get(key)
    if cached and time.monotonic() - cached[0] < _REFLECT_SECONDS:
        return cached[1]
    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    _reflected[key] = (time.monotonic(), table)
    return table


def day_of(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """The UTC day of a time column, to group by (formatted by `day_text` after grouping)."""
    if dialect == "postgresql":
        return sa.func.date_trunc("day", sa.func.timezone("UTC", column))
    return sa.func.substr(column, 1, 10)  # SQLite keeps UTC times as text


def day_text(value: object) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else str(value)


def integration_counts(conn: sa.Connection, ids: list[str], now: datetime, present: set[str]) -> dict[str, dict]:
    """Per integration: agents, interactions open/closed, messages, rejected (total and last 24 h), unmatched
    agents, and interactions per day of the last four weeks. Interaction totals come from cx_status_totals
    and the chart's days from cx_status_days (cxsync.ui.totals), both recounted only after a load."""
    out: dict[str, dict] = {
        i: {
            "agents": 0,
            "interactions_open": 0,
            "interactions_closed": 0,
            "messages": 0,
            "rejected": 0,
            "rejected_last_24h": 0,
            "unmatched_agents": None,
            "per_day": {},
        }
        for i in ids
    }
    if not ids or t.interactions.name not in present:
        return out
    a = t.agents
    for integration_id, count in conn.execute(
        sa.select(a.c.integration_id, sa.func.count()).where(a.c.integration_id.in_(ids)).group_by(a.c.integration_id)
    ):
        out[integration_id]["agents"] = count
    by_status, by_day = totals_and_days(conn.engine, ids, now)
    first_day = (now - timedelta(days=settings.UI_CHART_DAYS - 1)).strftime("%Y-%m-%d")
    for integration_id in ids:
        for status, (count, messages) in by_status.get(integration_id, {}).items():
            out[integration_id]["interactions_closed" if status == "closed" else "interactions_open"] += count
            out[integration_id]["messages"] += messages
        out[integration_id]["per_day"] = {d: n for d, n in by_day.get(integration_id, {}).items() if d >= first_day}
    r = t.rejected_records
    recent = sa.func.sum(sa.case((r.c.rejected_at >= now - timedelta(hours=24), 1), else_=0))
    for integration_id, total, last_day in conn.execute(
        sa.select(r.c.integration_id, sa.func.count(), recent)
        .where(r.c.integration_id.in_(ids))
        .group_by(r.c.integration_id)
    ):
        out[integration_id]["rejected"] = total
        out[integration_id]["rejected_last_24h"] = int(last_day or 0)
    if t.agent_matches.name in present:
        # Agents the matcher has not seen yet (no row) are "not matched yet", not unmatched.
        matches = t.agent_matches
        for integration_id in ids:
            out[integration_id]["unmatched_agents"] = 0
        for integration_id, count in conn.execute(
            sa.select(matches.c.integration_id, sa.func.count())
            .where(matches.c.integration_id.in_(ids), matches.c.method.in_(("unmatched", "ambiguous")))
            .group_by(matches.c.integration_id)
        ):
            out[integration_id]["unmatched_agents"] = count
    return out


def watermarks(conn: sa.Connection, ids: list[str], present: set[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {i: [] for i in ids}
    if not ids or t.sync_state.name not in present:
        return out
    s = t.sync_state
    for row in conn.execute(
        sa.select(s.c.integration_id, s.c.stream, s.c.watermark, s.c.updated_at)
        .where(s.c.integration_id.in_(ids))
        .order_by(s.c.integration_id, s.c.stream)
    ):
        out[row.integration_id].append({"stream": row.stream, "watermark": row.watermark, "updated_at": row.updated_at})
    return out


def last_retention(conn: sa.Connection, ids: list[str], present: set[str]) -> dict[str, dict | None]:
    out: dict[str, dict | None] = {i: None for i in ids}
    if not ids or t.retention_log.name not in present:
        return out
    log_ = t.retention_log
    newest = (
        sa.select(log_.c.integration_id, sa.func.max(log_.c.id).label("id"))
        .where(log_.c.integration_id.in_(ids))
        .group_by(log_.c.integration_id)
        .subquery()
    )
    for row in conn.execute(sa.select(log_).join(newest, newest.c.id == log_.c.id)).mappings():
        out[row["integration_id"]] = {
            "run_at": row["run_at"],
            "cutoff": row["cutoff"],
            "dry_run": row["dry_run"],
            "interactions_deleted": row["interactions_deleted"],
            "messages_deleted": row["messages_deleted"],
            "rejected_deleted": row["rejected_deleted"],
        }
    return out


def request_stats(conn: sa.Connection, ids: list[str], now: datetime, present: set[str]) -> dict[str, dict | None]:
    """Per integration, the provider requests of the last 24 hours' task tries (`cx_request_stats`, an index
    range per integration): requests, retries, 429 answers, seconds waited, task tries. None: no request yet."""
    out: dict[str, dict | None] = {i: None for i in ids}
    if not ids or t.request_stats.name not in present:
        return out
    rs = t.request_stats
    rows = conn.execute(
        sa.select(
            rs.c.integration_id,
            sa.func.count().label("tasks"),
            sa.func.sum(rs.c.requests).label("requests"),
            sa.func.sum(rs.c.retries).label("retries"),
            sa.func.sum(rs.c.rate_limited).label("rate_limited"),
            sa.func.sum(rs.c.waited_seconds).label("waited_seconds"),
            sa.func.max(rs.c.recorded_at).label("last_at"),
        )
        .where(rs.c.integration_id.in_(ids), rs.c.recorded_at >= now - timedelta(hours=24))
        .group_by(rs.c.integration_id)
    ).mappings()
    for row in rows:
        out[row["integration_id"]] = {
            "tasks": int(row["tasks"]),
            "requests": int(row["requests"] or 0),
            "retries": int(row["retries"] or 0),
            "rate_limited": int(row["rate_limited"] or 0),
            "waited_seconds": round(float(row["waited_seconds"] or 0), 1),
            "last_at": row["last_at"],
        }
    return out


def redaction_stats(
    conn: sa.Connection, ids: list[str], now: datetime, present: set[str], days: int = 30
) -> dict[str, dict | None]:
    """Per integration, what PII redaction scanned and replaced in the last `days` days' task tries
    (`cx_redaction_stats`): messages scanned and redacted, replacements by entity type, the newest rules version.
    None: nothing redacted in that time. Counts only: the table holds no values."""
    out: dict[str, dict | None] = {i: None for i in ids}
    if not ids or t.redaction_stats.name not in present:
        return out
    rs = t.redaction_stats
    rows = conn.execute(
        sa.select(
            rs.c.integration_id,
            rs.c.messages_scanned,
            rs.c.messages_redacted,
            rs.c.by_entity,
            rs.c.redaction_version,
            rs.c.recorded_at,
        )
        .where(rs.c.integration_id.in_(ids), rs.c.recorded_at >= now - timedelta(days=days))
        .order_by(rs.c.integration_id, rs.c.recorded_at)
    ).mappings()
    for row in rows:
        entry = out[row["integration_id"]] or {
            "days": days,
            "tasks": 0,
            "messages_scanned": 0,
            "messages_redacted": 0,
            "by_entity": {},
        }
        entry["tasks"] += 1
        entry["messages_scanned"] += int(row["messages_scanned"])
        entry["messages_redacted"] += int(row["messages_redacted"])
        try:
            counts = json.loads(row["by_entity"] or "{}")
        except ValueError:
            counts = {}
        for entity, n in counts.items():
            entry["by_entity"][entity] = entry["by_entity"].get(entity, 0) + int(n)
        entry["version"], entry["last_at"] = row["redaction_version"], row["recorded_at"]
        out[row["integration_id"]] = entry
    for entry in out.values():
        if entry is not None:
            entry["by_entity"] = dict(sorted(entry["by_entity"].items()))
    return out


RECONCILIATION_COLUMNS = ("day", "checked_from", "checked_until", "provider_count", "warehouse_count", "missing",
                          "stale", "deleted", "repaired", "status", "warning", "checked_at")  # fmt: skip


def reconciliation(conn: sa.Connection, ids: list[str], present: set[str], limit: int = 7) -> dict[str, list[dict]]:
    """Per integration, the completeness records the reconciliation DAG writes to `cx_reconciliation` (one per
    day checked against the provider): the days that differ first, then the newest. Each record has the
    columns of RECONCILIATION_COLUMNS (None for one the table lacks) and `differs`. No table: no records."""
    out: dict[str, list[dict]] = {i: [] for i in ids}
    table = reflect(conn, "cx_reconciliation", present)
    if table is None or "integration_id" not in table.c or "day" not in table.c:
        return out

    def column(name: str) -> sa.ColumnElement:
        return table.c[name] if name in table.c else sa.null()

    # The reconciliation marks a day it could not repair `differs`; a day it repaired is complete again.
    differs = table.c.status == "differs"
    flag = sa.case((differs, 1), else_=0)
    for integration_id in ids:
        rows = conn.execute(
            sa.select(*[column(name).label(name) for name in RECONCILIATION_COLUMNS], flag.label("differs"))
            .where(table.c.integration_id == integration_id)
            .order_by(flag.desc(), table.c.day.desc())
            .limit(limit)
        ).mappings()
        out[integration_id] = [{**row, "differs": bool(row["differs"])} for row in rows]
    return out
