"""QA list runs as the QA-list DAGs wrote them, read through the QA layer (`cxsync.qa.lists`): every list the
QA lists file defines (run or not, with its next run), each run's items with names, start time, channel and a
link to the transcript, one run as CSV for the evaluators, and one interaction's transcript."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pandas as pd
import sqlalchemy as sa

from cxsync import settings
from cxsync.qa import lists as qa_lists
from cxsync.qa.csv_cells import safe_cell
from cxsync.qa.lists_config import load_qa_lists
from cxsync.ui.warehouse_reads import existing_tables
from cxsync.warehouse import schema as t
from cxsync.warehouse.store import Warehouse

CSV_COLUMNS = ["list_run_id", "list_id", "rank", "integration_id", "interaction_id", "started_at", "agent_id",
               "agent_name", "staff_id", "staff_name", "evaluator_id", "evaluator_name",
               *qa_lists.DETAIL_COLUMNS]  # fmt: skip
NO_EVALUATOR = "(no evaluator)"
TOTAL_LABEL = "total"  # how the page names the shortfall of a list with a `total` quota


def _tables_exist(engine: sa.Engine) -> bool:
    """Every cxsync DAG creates the QA-list tables on its first run; a warehouse nothing ran on has none."""
    with engine.connect() as conn:
        return {t.qa_lists.name, t.qa_list_items.name} <= existing_tables(conn)


def list_runs(engine: sa.Engine, list_id: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """(newest runs first with their items per evaluator and their shortfall, whether the tables exist)."""
    if not _tables_exist(engine):
        return [], False
    runs = qa_lists.list_runs(Warehouse(engine), list_id, limit=settings.UI_MAX_LIST_RUNS)
    ids = [run["list_run_id"] for run in runs]
    per_evaluator: dict[str, dict[str, int]] = {}
    if ids:
        items = t.qa_list_items
        with engine.connect() as conn:
            for run_id, evaluator, count in conn.execute(
                sa.select(items.c.list_run_id, items.c.evaluator_id, sa.func.count())
                .where(items.c.list_run_id.in_(ids))
                .group_by(items.c.list_run_id, items.c.evaluator_id)
            ):
                per_evaluator.setdefault(run_id, {})[evaluator or NO_EVALUATOR] = count
    names = staff_names(engine)
    for run in runs:
        run["per_evaluator"] = {
            (f"{names[e]} ({e})" if e in names else e): n
            for e, n in sorted(per_evaluator.get(run["list_run_id"], {}).items())
        }
        shortfall = run.get("shortfall") or {}
        run["shortfall"] = {(TOTAL_LABEL if key == qa_lists.TOTAL_KEY else key): n for key, n in shortfall.items() if n}
        run["shortfall_total"] = sum(run["shortfall"].values())
    return runs, True


def list_csv(engine: sa.Engine, list_run_id: str) -> Iterator[str] | None:
    """The run's items as CSV text chunks, in rank order; None when there is no such run."""
    if not _tables_exist(engine):
        return None
    with engine.connect() as conn:
        list_id = conn.execute(sa.select(t.qa_lists.c.list_id).where(t.qa_lists.c.list_run_id == list_run_id)).scalar()
    if list_id is None:
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    fixed = {"list_run_id": list_run_id, "list_id": list_id}
    for row in run_items(engine, list_run_id):
        row = {**row, "started_at": row["started_at"].isoformat() if row["started_at"] is not None else None}
        writer.writerow([_csv_safe(fixed[c] if c in fixed else row[c]) for c in CSV_COLUMNS])
    return iter([buffer.getvalue()])


def staff_names(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        if t.staff.name not in existing_tables(conn):
            return {}
        return {sid: name for sid, name in conn.execute(sa.select(t.staff.c.staff_id, t.staff.c.name)) if name}


def run_items(engine: sa.Engine, list_run_id: str) -> list[dict[str, Any]]:
    """A run's items in rank order: the interaction's start time, channel and QA signals (`DETAIL_COLUMNS`), the
    agent's, staff member's and evaluator's names (None where retention removed the interaction or nobody has a
    name)."""
    li, i, a = t.qa_list_items, t.interactions, t.agents
    query = (
        sa.select(
            li.c.rank,
            li.c.integration_id,
            li.c.interaction_id,
            i.c.started_at,
            i.c.channel,
            li.c.agent_id,
            a.c.display_name.label("agent_name"),
            li.c.staff_id,
            li.c.evaluator_id,
            # What a QA team sorts a list by (CSAT, MCS, tags, ...): in the CSV beside the names.
            *(i.c[c] for c in qa_lists.DETAIL_COLUMNS if c != "channel"),
        )
        .select_from(
            li.outerjoin(
                i, sa.and_(i.c.integration_id == li.c.integration_id, i.c.interaction_id == li.c.interaction_id)
            ).outerjoin(a, sa.and_(a.c.integration_id == li.c.integration_id, a.c.agent_id == li.c.agent_id))
        )
        .where(li.c.list_run_id == list_run_id)
        .order_by(li.c.rank)
    )
    names = staff_names(engine)
    with engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(query).mappings()]
    for row in rows:
        row["staff_name"] = names.get(row["staff_id"] or "")
        row["evaluator_name"] = names.get(row["evaluator_id"] or "")
        started = row["started_at"]
        row["started_at"] = started.replace(tzinfo=UTC) if started is not None and started.tzinfo is None else started
    return rows


def defined_lists(runs: list[dict[str, Any]], next_runs: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(every list of the QA lists file, with its DAG, schedule, newest run and next run; the file's errors)."""
    config = load_qa_lists()
    newest: dict[str, dict] = {}
    for run in runs:  # newest first
        newest.setdefault(run["list_id"], run)
    lists = [
        {
            "id": q.id,
            "label": q.label,
            "dag_id": settings.qa_list_dag_id(q.id),
            "schedule": q.schedule,
            "last_run": newest.get(q.id),
            "next_run": next_runs.get(settings.qa_list_dag_id(q.id)),
        }
        for q in config.lists
    ]
    return lists, list(config.errors)


def next_runs(dag_ids: list[str]) -> dict[str, Any]:
    """When Airflow will next run each DAG (DagModel.next_dagrun_create_after); none while paused."""
    if not dag_ids:
        return {}
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            sa.select(DagModel.dag_id, DagModel.next_dagrun_create_after, DagModel.is_paused).where(
                DagModel.dag_id.in_(dag_ids)
            )
        ).all()
    return {dag_id: (None if paused else at) for dag_id, at, paused in rows}


def transcript(engine: sa.Engine, integration_id: str, interaction_id: str) -> dict[str, Any] | None:
    """One interaction and its messages in order, for the evaluator; None when the warehouse has no such one."""
    i, m, a = t.interactions, t.messages, t.agents
    with engine.connect() as conn:
        if not {i.name, m.name} <= existing_tables(conn):
            return None
        head = (
            conn.execute(
                sa.select(
                    i.c.integration_id,
                    i.c.interaction_id,
                    i.c.channel,
                    i.c.status,
                    i.c.subject,
                    i.c.started_at,
                    i.c.ended_at,
                    i.c.agent_id,
                    a.c.display_name.label("agent_name"),
                )
                .select_from(
                    i.outerjoin(a, sa.and_(a.c.integration_id == i.c.integration_id, a.c.agent_id == i.c.agent_id))
                )
                .where(i.c.integration_id == integration_id, i.c.interaction_id == interaction_id)
            )
            .mappings()
            .first()
        )
        if head is None:
            return None
        messages = (
            conn.execute(
                sa.select(m.c.seq, m.c.sent_at, m.c.sender_type, m.c.sender_id, m.c.text, m.c.is_private)
                .where(m.c.integration_id == integration_id, m.c.interaction_id == interaction_id)
                .order_by(m.c.seq, m.c.sent_at)
            )
            .mappings()
            .all()
        )
    return {**dict(head), "messages": [dict(row) for row in messages]}


def _csv_safe(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return safe_cell(value)
