"""The demo's last step: match the sandbox's agents to the sample staff file and build one QA list, with
`airflow dags test` like every other demo run, then print who matched how and the list per evaluator."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import TYPE_CHECKING

from cxsync import settings

if TYPE_CHECKING:
    from cxsync.qa.lists_config import QaList
    from cxsync_dev.demo.state import Demo


def run_global_dag(demo: Demo, dag_id: str, what: str) -> bool:
    from cxsync_dev.demo.helpers import dag_run_succeeded, failure_reason
    from cxsync_dev.demo.state import RunResult

    demo.begin(f"  {what:<32}")
    log = demo.logs / f"{dag_id}.log"
    started = time.monotonic()
    code = demo.runner(["dags", "test", dag_id], log, demo.env)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace") if log.exists() else ""
    ok = code == 0 and dag_run_succeeded(text, dag_id)
    if ok:
        demo.out(f"ok {seconds:5.1f} s")
    else:
        reason = failure_reason(text) or f"exit status {code}"
        demo.out(f"FAILED after {seconds:.1f} s: {reason}")
        demo.out(f"      log: {demo.show(log)}")
        demo.problems.append(f"{what} failed (log: {demo.show(log)})")
    demo.runs.append(RunResult("-", what, ok, seconds, log, ""))
    return ok


def demo_list(demo: Demo) -> QaList | None:
    """The first list of the QA lists file that only needs integrations the demo loaded."""
    from cxsync.qa.lists_config import load_qa_lists

    served = {i.id for i in demo.integrations if i.id not in demo.failed}
    for qa_list in load_qa_lists().lists:
        if set(qa_list.integrations or served) <= served:
            return qa_list
    return None


def match_and_list(demo: Demo) -> None:
    from cxsync.qa.staff import staff_path

    demo.heading(f"QA: agents matched to {demo.show(staff_path())}, then one QA list (airflow dags test)")
    if run_global_dag(demo, settings.AGENT_MATCHING_DAG_ID, "agent matching"):
        show_matches(demo)
    qa_list = demo_list(demo)
    if qa_list is None:
        demo.out("no QA list of the QA lists file covers only the demo's integrations: none built")
        return
    if run_global_dag(demo, settings.qa_list_dag_id(qa_list.id), f"QA list {qa_list.id}"):
        show_list(demo, qa_list)


def show_matches(demo: Demo) -> None:
    from cxsync.qa.matching import METHODS, list_matches

    assert demo.warehouse is not None
    rows = list_matches(demo.warehouse)
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row["method"] or "not matched yet"].append(row)
    demo.out(f"{len(rows)} provider agents: " + ", ".join(f"{m} {len(grouped[m])}" for m in METHODS if grouped[m]))
    for method in (*METHODS, "not matched yet"):
        for row in grouped.get(method, []):
            agent = f"{row['display_name'] or '?'} ({row['integration_id']}:{row['agent_id']}"
            agent += ", deleted)" if row["is_deleted"] else ")"
            if row["staff_id"]:
                to = f"-> {row['staff_id']} {row['staff_name'] or ''}".rstrip()
            elif row["candidates"]:
                to = f"-> one of {', '.join(row['candidates'])}: set an override"
            else:
                to = ""
            demo.out(f"    {method:<11} {agent:<58} {to}".rstrip())


def show_list(demo: Demo, qa_list: QaList) -> None:
    import sqlalchemy as sa

    from cxsync.qa.lists import list_runs, read_items
    from cxsync.warehouse import schema as t

    assert demo.warehouse is not None
    (run,) = list_runs(demo.warehouse, qa_list.id, limit=1) or [None]
    if run is None:
        demo.out(f"no run of {qa_list.id} in cx_qa_lists")
        demo.problems.append(f"QA list {qa_list.id}: no run recorded")
        return
    items = read_items(demo.warehouse, run["list_run_id"])
    with demo.warehouse.engine.connect() as conn:
        names = dict(conn.execute(sa.select(t.staff.c.staff_id, t.staff.c.name)).all())
    demo.out(
        f"{run['list_run_id']}: {run['item_count']} of {run['population_size']} eligible interactions "
        f"(seed {run['seed']}, population hash {run['population_hash'][:12]})"
    )
    for evaluator, group in items.groupby(items["evaluator_id"].fillna("(no evaluator)"), sort=True):
        demo.out(f"  evaluator {evaluator} {names.get(evaluator, '')}: {len(group)} conversation(s)".rstrip())
        for item in group.itertuples(index=False):
            demo.out(
                f"    #{item.rank:<3} {item.integration_id}:{item.interaction_id:<40} "
                f"{item.staff_id} {names.get(item.staff_id, '')}"
            )
    if run["shortfall"]:
        short = ", ".join(f"{names.get(s, s)} {n}" for s, n in run["shortfall"].items())
        demo.out(f"  short of the quota: {short}")
    demo.out(f"  exported for QA tools: {demo.show(run['export_path'])}" if run["export_path"] else "")
