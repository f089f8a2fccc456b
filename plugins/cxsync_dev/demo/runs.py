"""One DAG run of the demo: `airflow dags test` in a subprocess, its outcome and a line about what it loaded."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cxsync import settings
from cxsync.config import Integration
from cxsync.pipeline import INTERACTIONS_STREAM
from cxsync_dev.demo.helpers import clock_text, dag_run_succeeded, failure_reason, retention_text
from cxsync_dev.demo.reads import agent_figures, count_rows, diff, latest_retention, snapshot
from cxsync_dev.demo.state import Demo, RunResult, Snapshot

if TYPE_CHECKING:
    from cxsync.warehouse import Warehouse


def run_dag(
    demo: Demo, integration: Integration, kind: str, conf: Mapping[str, Any] | None = None, what: str | None = None
) -> RunResult | None:
    what = what or kind
    demo.begin(f"  {integration.id:<12} {what:<19}")
    if integration.id in demo.failed:
        demo.out("skipped: an earlier run of this integration failed")
        return None
    assert demo.warehouse is not None
    dag_id = settings.dag_id(integration.id, kind)
    args = ["dags", "test", dag_id] + (["-c", json.dumps(dict(conf))] if conf else [])
    log = demo.logs / f"{integration.id}.{what.replace(' ', '_')}.log"
    before = snapshot(demo.warehouse, integration.id)
    started = time.monotonic()
    code = demo.runner(args, log, demo.env)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace") if log.exists() else ""
    ok = code == 0 and dag_run_succeeded(text, dag_id)
    if ok:
        summary, problem = summarize(demo, integration, kind, conf or {}, before)
        demo.out(f"ok {seconds:5.1f} s  {summary}")
        if problem:
            demo.out(f"      {problem}")
            demo.problems.append(f"{integration.id} {what}: {problem}")
    else:
        summary = failure_reason(text) or f"exit status {code}"
        demo.out(f"FAILED after {seconds:.1f} s: {summary}")
        demo.out(f"      log: {demo.show(log)}")
        demo.problems.append(f"{integration.id} {what} failed (log: {demo.show(log)})")
        demo.failed.add(integration.id)
    result = RunResult(integration.id, what, ok, seconds, log, summary)
    demo.runs.append(result)
    return result


def summarize(
    demo: Demo, integration: Integration, kind: str, conf: Mapping[str, Any], before: Snapshot
) -> tuple[str, str | None]:
    """One plain phrase about what the run did, read from the warehouse; and a problem, if the run did not
    do what the demo expects of it."""
    assert demo.warehouse is not None
    warehouse = demo.warehouse
    if kind == "roster_sync":
        counts = {label: per.get(integration.id, 0) for label, per in count_rows(warehouse, [integration.id])}
        agents, deleted = counts["agents"], counts["agents deleted"]
        groups, skills = counts["agent groups / teams"], counts["skills"]
        problem = None if agents else "the roster sync loaded no agent"
        return f"{agents} agents ({deleted} deleted), {groups} groups/teams, {skills} skills", problem
    if kind in ("backfill", "incremental"):
        after = snapshot(warehouse, integration.id)
        new, closed, changed = diff(before, after)
        if kind == "backfill":
            return (
                f"{len(after.rows)} interactions in the warehouse ({new} new, {closed + changed} updated)",
                None if after.rows else "the backfill loaded no interaction",
            )
        mark = warehouse.get_watermark(integration.id, INTERACTIONS_STREAM)
        summary = (
            f"{new + closed + changed} changed: {new} new, {closed} closed since the last run, "
            f"{changed} otherwise updated (new messages, reassigned); watermark {clock_text(mark)}"
        )
        problem = None if new or closed else "a sandbox day later the incremental run found nothing new or closed"
        summary, problem = _with_reconciliation(warehouse, integration, summary, problem)
        return summary, problem
    if kind == "analytics":
        figures = agent_figures(warehouse, integration.id)
        computed = sum(row["conversations"] for row in figures)
        return (
            f"metrics of {computed} conversations with an agent, {len(figures)} agents",
            None if figures else "the analytics run computed no agent figures",
        )
    # retention: the run's own row in cx_retention_log
    row = latest_retention(warehouse, integration.id)
    if row is None or bool(row["dry_run"]) != bool(conf.get("dry_run")):
        return "no row in cx_retention_log", "the retention run logged nothing"
    verb = "would delete" if row["dry_run"] else "deleted"
    return (
        f"{verb} {row['interactions_deleted']} interactions, {row['messages_deleted']} messages, "
        f"{row['rejected_deleted']} rejected records that started before {clock_text(row['cutoff'])} "
        f"(retention {retention_text(integration)})"
    ), None


def _with_reconciliation(
    warehouse: Warehouse, integration: Integration, summary: str, problem: str | None
) -> tuple[str, str | None]:
    """The incremental DAG's reconcile task: what its cx_reconciliation rows say."""
    from cxsync.reconcile import last_check

    check = last_check(warehouse, integration.id)
    if check is None:
        return summary, problem
    summary += (
        f"; reconciled {check['days']} days: {check['provider_count']} listed, {check['missing']} missing, "
        f"{check['stale']} stale, {check['repaired']} repaired"
    )
    if check["differing"]:
        problem = problem or f"reconciliation: days still differing {check['differing']}"
    return summary, problem
