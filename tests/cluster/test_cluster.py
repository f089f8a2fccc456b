"""cxsync on a real Celery cluster, driven only through Airflow's REST API, as a person in the UI would.

1. A first deployment: the DAGs get parsed, the plugin has created the pools, roster syncs run, the backfills
   of a LivePerson and a HelpDesk integration run at the same time with their day tasks in the provider
   pools, a day later (sandbox clock) the incremental runs, then retention as a dry run; every run succeeds,
   no task waits long in the queue, and the PostgreSQL warehouse equals the sandbox's ground truth.
2. The Celery worker is SIGKILLed while a backfill's day tasks run; a new worker starts; the scheduler finds
   the dead tasks, retries them, and the run still ends with exactly the ground truth.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from cxsync import registry, settings
from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t
from support.cluster import HD, INTEGRATIONS, KILL, LP, Cluster
from support.providers import PROVIDERS, first_difference
from support.warehouse import snapshot

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

KINDS = ("roster_sync", "backfill", "incremental", "retention")
RUN_TIMEOUT = 240.0
# Handed to the executor, a task starts within this (worker start-up of a task included, on a busy machine).
MAX_QUEUED_SECONDS = 45.0
# Waiting for a pool slot or the worker is fine; sitting "scheduled" for longer than this is not.
MAX_SCHEDULED_SECONDS = 120.0
PROVIDER_OF = {entry["id"]: entry["provider"] for entry in INTEGRATIONS}


def dag(integration_id: str, kind: str) -> str:
    return settings.dag_id(integration_id, kind)


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def assert_loaded_equals_truth(warehouse: Warehouse, integration_id: str, truth: list[dict[str, Any]]) -> None:
    case = PROVIDERS[PROVIDER_OF[integration_id]]
    loaded, expected = case.loaded(warehouse, integration_id), case.expected(truth)
    assert expected, f"{integration_id}: the sandbox has no interaction to compare with"
    assert loaded == expected, f"{integration_id}: {first_difference(loaded, expected)}"


def assert_not_sat_waiting(tis: list[dict[str, Any]]) -> None:
    for ti in tis:
        name = f"{ti['dag_id']}.{ti['task_id']}[{ti['map_index']}] try {ti['try_number']}"
        queued, scheduled, start = when(ti["queued_when"]), when(ti["scheduled_when"]), when(ti["start_date"])
        assert start is not None, f"{name} never started"
        if queued is not None:
            assert (start - queued).total_seconds() < MAX_QUEUED_SECONDS, f"{name} sat queued from {queued} to {start}"
        if scheduled is not None:
            waited = (start - scheduled).total_seconds()
            assert waited < MAX_SCHEDULED_SECONDS, f"{name} sat scheduled from {scheduled} to {start}"


def run_and_wait(cluster: Cluster, dag_ids: list[str], conf: dict[str, Any] | None = None) -> dict[str, str]:
    """Unpause and trigger the DAGs as the trigger dialog does (all at once), wait for every run of them
    (scheduled runs that unpausing started too), and check they all succeeded. Returns the triggered run ids."""
    api = cluster.api
    run_ids = {}
    for dag_id in dag_ids:
        api.unpause(dag_id)
        run_ids[dag_id] = api.trigger(dag_id, conf)
    for dag_id in dag_ids:
        api.wait_finished(dag_id, run_ids[dag_id], RUN_TIMEOUT)
        runs = api.wait_all_finished(dag_id, RUN_TIMEOUT)
        failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
        assert not failed, f"{dag_id}: runs {failed} did not succeed; tasks: {api.task_instances(dag_id, failed[0])}"
        for run in runs:
            assert_not_sat_waiting(api.task_instances(dag_id, run["dag_run_id"]))
    return run_ids


def test_a_first_deployment_from_roster_to_retention_lands_exactly_the_ground_truth(cluster: Cluster):
    api, sandbox = cluster.api, cluster.sandbox
    for provider in ("liveperson", "helpdesk"):
        sandbox.no_faults(provider)
    wanted = {dag(i["id"], kind) for i in INTEGRATIONS for kind in KINDS}
    parsed = cluster.components.wait_for(
        "the DAGs parsed", lambda: (ids := api.dag_ids(settings.DAG_TAG)) >= wanted and ids, 120
    )
    assert "cxsync_config_errors" not in parsed

    # The plugin created the provider pools when the api-server started; nobody else did.
    pools = api.pools()
    for spec in registry.PROVIDERS.values():
        assert pools[spec.pool]["slots"] == spec.pool_slots, pools

    run_and_wait(cluster, [dag(LP, "roster_sync"), dag(HD, "roster_sync")])
    warehouse = Warehouse.from_url(cluster.warehouse_url)
    try:
        with warehouse.engine.connect() as conn:
            agents = dict(
                conn.execute(
                    sa.select(t.agents.c.integration_id, sa.func.count()).group_by(t.agents.c.integration_id)
                ).all()
            )
        assert agents.get(LP, 0) > 0 and agents.get(HD, 0) > 0, agents

        backfills = [dag(LP, "backfill"), dag(HD, "backfill")]
        run_ids = run_and_wait(cluster, backfills, {"weeks": 1})
        spans = []
        for dag_id, integration_id in zip(backfills, (LP, HD), strict=True):
            run = api.run(dag_id, run_ids[dag_id])
            spans.append((when(run["start_date"]), when(run["end_date"])))
            days = [ti for ti in api.task_instances(dag_id, run_ids[dag_id]) if ti["task_id"] == "load_window"]
            assert len(days) >= 7 and all(ti["map_index"] >= 0 for ti in days)
            pool = settings.pool_name(PROVIDER_OF[integration_id])
            assert {ti["pool"] for ti in days} == {pool}, f"{dag_id}: day tasks ran outside {pool}"
            assert {ti["state"] for ti in days} == {"success"}
            assert_loaded_equals_truth(warehouse, integration_id, sandbox.truth(PROVIDER_OF[integration_id]))
        (lp_start, lp_end), (hd_start, hd_end) = spans
        assert lp_start < hd_end and hd_start < lp_end, f"the two backfills did not overlap: {spans}"

        sandbox.advance("1d")
        run_and_wait(cluster, [dag(LP, "incremental"), dag(HD, "incremental")])
        for integration_id in (LP, HD):
            assert_loaded_equals_truth(warehouse, integration_id, sandbox.truth(PROVIDER_OF[integration_id]))

        before = _data(warehouse)
        run_and_wait(cluster, [dag(LP, "retention"), dag(HD, "retention")], {"dry_run": True})
        with warehouse.engine.connect() as conn:
            dry = conn.execute(sa.select(t.retention_log).where(t.retention_log.c.dry_run.is_(True))).all()
        assert {row.integration_id for row in dry} == {LP, HD}
        assert _data(warehouse) == before, "a dry run changed the warehouse"
        for integration_id in (LP, HD):
            assert_loaded_equals_truth(warehouse, integration_id, sandbox.truth(PROVIDER_OF[integration_id]))
    finally:
        warehouse.dispose()


def test_a_worker_killed_mid_backfill_is_replaced_and_the_run_still_lands_exactly_the_ground_truth(
    cluster: Cluster,
):
    api, sandbox = cluster.api, cluster.kill_sandbox
    dag_id = dag(KILL, "backfill")
    cluster.components.wait_for("the DAGs parsed", lambda: dag_id in api.dag_ids(settings.DAG_TAG), 120)
    # Slow answers keep the day tasks running long enough to be caught by the kill.
    sandbox.faults("liveperson", **{**_no_faults(), "p_slow": 1.0, "slow_seconds": 2.0})
    api.unpause(dag_id)
    run_id = api.trigger(dag_id, {"weeks": 1})

    def running_days() -> list[dict[str, Any]] | None:
        tis = api.task_instances(dag_id, run_id)
        running = [ti for ti in tis if ti["task_id"] == "load_window" and ti["state"] == "running"]
        return running if len(running) >= 2 else None

    caught = cluster.components.wait_for("two day tasks running", running_days, RUN_TIMEOUT, interval=0.3)
    cluster.components.kill("airflow-worker")
    sandbox.faults("liveperson", **_no_faults())
    killed_at = time.monotonic()
    cluster.start_worker()

    run = api.wait_finished(dag_id, run_id, RUN_TIMEOUT)
    recovered = time.monotonic() - killed_at
    tis = {(ti["task_id"], ti["map_index"]): ti for ti in api.task_instances(dag_id, run_id)}
    assert run["state"] == "success", f"the run ended {run['state']}: {tis}"
    for ti in caught:  # the tasks the kill interrupted ran again, in a later try
        assert tis[(ti["task_id"], ti["map_index"])]["try_number"] > ti["try_number"], tis
    warehouse = Warehouse.from_url(cluster.warehouse_url)
    try:
        assert_loaded_equals_truth(warehouse, KILL, sandbox.truth("liveperson"))
    finally:
        warehouse.dispose()
    print(f"\nworker killed with {len(caught)} day task(s) running; the run succeeded {recovered:.0f} s later")


def _data(warehouse: Warehouse) -> dict[tuple[str, str], list[tuple]]:
    """The rows of LP and HD in every table but the retention log, where each run (dry or not) adds one."""
    return {
        (integration_id, name): rows
        for integration_id in (LP, HD)
        for name, rows in snapshot(warehouse.engine, integration_id).items()
        if name != t.retention_log.name
    }


def _no_faults() -> dict[str, Any]:
    from support.providers import NO_FAULTS

    return dict(NO_FAULTS)
