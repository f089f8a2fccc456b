"""QA list runs as the QA-list DAGs wrote them, read through the QA layer (`cxsync.qa.lists`), and one run as
CSV for the evaluators."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pandas as pd
import sqlalchemy as sa

from cxsync import settings
from cxsync.qa import lists as qa_lists
from cxsync.qa.csv_cells import safe_cell
from cxsync.ui.warehouse_reads import existing_tables
from cxsync.warehouse import schema as t
from cxsync.warehouse.store import Warehouse

CSV_COLUMNS = ["list_run_id", "list_id", "rank", "integration_id", "interaction_id", "agent_id", "staff_id",
               "evaluator_id", *qa_lists.DETAIL_COLUMNS]  # fmt: skip
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
    for run in runs:
        run["per_evaluator"] = dict(sorted(per_evaluator.get(run["list_run_id"], {}).items()))
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
    items = qa_lists.read_items(Warehouse(engine), list_run_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    fixed = {"list_run_id": list_run_id, "list_id": list_id}
    for row in items.to_dict("records"):
        writer.writerow([_csv_safe(fixed[c] if c in fixed else row[c]) for c in CSV_COLUMNS])
    return iter([buffer.getvalue()])


def _csv_safe(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return safe_cell(value)
