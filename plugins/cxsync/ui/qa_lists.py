"""QA list runs as the QA-list DAGs wrote them (`cx_qa_lists`, `cx_qa_list_items`), and one run as CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from cxsync import settings
from cxsync.ui.warehouse_reads import existing_tables, reflect

CSV_COLUMNS = ["list_run_id", "list_id", "rank", "integration_id", "interaction_id", "agent_id", "staff_id",
               "evaluator_id"]  # fmt: skip


def list_runs(engine: sa.Engine, list_id: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """(newest runs first with their items per evaluator, whether the tables exist)."""
    with engine.connect() as conn:
        present = existing_tables(conn)
        lists = reflect(conn, "cx_qa_lists", present)
        items = reflect(conn, "cx_qa_list_items", present)
        if lists is None or items is None:
            return [], False
        query = sa.select(lists).order_by(lists.c.run_at.desc(), lists.c.list_run_id).limit(settings.UI_MAX_LIST_RUNS)
        if list_id:
            query = query.where(lists.c.list_id == list_id)
        runs = [dict(row) for row in conn.execute(query).mappings()]
        ids = [run["list_run_id"] for run in runs]
        per_evaluator: dict[str, dict[str, int]] = {}
        if ids:
            for run_id, evaluator, count in conn.execute(
                sa.select(items.c.list_run_id, items.c.evaluator_id, sa.func.count())
                .where(items.c.list_run_id.in_(ids))
                .group_by(items.c.list_run_id, items.c.evaluator_id)
            ):
                per_evaluator.setdefault(run_id, {})[evaluator or "(no evaluator)"] = count
    for run in runs:
        run["per_evaluator"] = dict(sorted(per_evaluator.get(run["list_run_id"], {}).items()))
        shortfall = _json(run.get("shortfall")) or {}
        run["shortfall"] = {k: v for k, v in shortfall.items() if v} if isinstance(shortfall, dict) else shortfall
        run["shortfall_total"] = (
            sum(v for v in run["shortfall"].values() if isinstance(v, int | float))
            if isinstance(run["shortfall"], dict)
            else None
        )
    return runs, True


def list_csv(engine: sa.Engine, list_run_id: str) -> Iterator[str] | None:
    """The run's items as CSV text chunks, in rank order; None when there is no such run."""
    with engine.connect() as conn:
        present = existing_tables(conn)
        lists = reflect(conn, "cx_qa_lists", present)
        items = reflect(conn, "cx_qa_list_items", present)
        if lists is None or items is None:
            return None
        list_id = conn.execute(sa.select(lists.c.list_id).where(lists.c.list_run_id == list_run_id)).scalar()
        if list_id is None:
            return None
        rows = (
            conn.execute(
                sa.select(items)
                .where(items.c.list_run_id == list_run_id)
                .order_by(items.c.rank, items.c.integration_id, items.c.interaction_id)
            )
            .mappings()
            .all()
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([list_id if c == "list_id" else _csv_safe(row.get(c)) for c in CSV_COLUMNS])
    return iter([buffer.getvalue()])


def _csv_safe(value: Any) -> Any:
    # A cell starting with = + - @ is a formula in spreadsheets; ids never need that, so quote it away.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _json(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
