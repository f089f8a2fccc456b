"""LivePerson through the provider-agnostic pipeline, in-process (fast), against the sandbox over real
HTTP: after roster sync, backfill and incremental runs the warehouse equals the sandbox's ground truth
exactly; re-runs change nothing; faults change nothing; retention honours dry_run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from cxsync import pipeline, tasks
from cxsync.config import Integration, Retention
from cxsync.errors import PermissionDenied
from cxsync.hooks.liveperson import LivePersonHook, users_permission_message
from cxsync.sources.liveperson import LivePersonSource
from cxsync.warehouse import Warehouse, parse_watermark
from cxsync.warehouse import schema as t
from support.liveperson import (
    LPSandbox,
    assert_equal_to_truth,
    export_connections,
    start_lp_sandbox,
    warehouse_interactions,
)

# Six days of history: a one-week backfill covers all of it, so "equal to the ground truth" is exact.
OPTIONS = {"lp_days": 6, "lp_conversations_per_day": 12}


@pytest.fixture
def lp(monkeypatch) -> LPSandbox:
    sandbox = start_lp_sandbox(**OPTIONS)
    export_connections(sandbox, monkeypatch)
    yield sandbox
    sandbox.server.stop()


@pytest.fixture
def sqlite_warehouse(tmp_path) -> Warehouse:
    wh = Warehouse.from_url(f"sqlite:///{tmp_path / 'wh.db'}")
    wh.ensure_schema()
    yield wh
    wh.dispose()


def integration(conn_id: str = "sandbox_liveperson_main", **kwargs) -> Integration:
    return Integration(
        id=kwargs.pop("id", "lp_main"), provider="liveperson", conn_id=conn_id, label="LivePerson", **kwargs
    )


def each_task(integ: Integration) -> Callable[[], LivePersonSource]:
    """A fresh source per step, as every Airflow task builds its own."""
    return lambda: LivePersonSource(integ)


def run(step, integ: Integration, warehouse: Warehouse, *args, **kwargs):
    source = LivePersonSource(integ)
    try:
        return step(integ, source, warehouse, *args, **kwargs)
    finally:
        source.close()


def backfill(integ: Integration, warehouse: Warehouse, weeks: int = 1) -> list[dict]:
    source = LivePersonSource(integ)
    end = source.server_now()
    source.close()
    results = [run(pipeline.load_window, integ, warehouse, window) for window in pipeline.plan_windows(end, weeks)]
    pipeline.finish_backfill(integ, warehouse, end)
    return results


def snapshot(warehouse: Warehouse, integration_id: str) -> dict:
    """Every row of the integration's data tables, minus the sync bookkeeping times."""
    out = {}
    with warehouse.engine.connect() as conn:
        for table in (t.agents, t.agent_groups, t.skills, t.interactions, t.messages, t.rejected_records):
            skip = {"last_synced_at", "id", "rejected_at"}
            cols = [c for c in table.c if c.name not in skip]
            rows = conn.execute(sa.select(*cols).where(table.c.integration_id == integration_id)).all()
            out[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    return out


def test_backfill_and_two_incremental_runs_equal_the_ground_truth_and_reruns_change_nothing(lp, warehouse):
    integ = integration()
    roster = run(pipeline.sync_roster, integ, warehouse)
    # 8 users: the sandbox's agents, a deleted one and the account admin (stored with its role, never an agent)
    assert roster["agents"] == 8 and roster["groups"] == 3 and roster["skills"] == 4

    backfill(integ, warehouse)
    assert_equal_to_truth(warehouse_interactions(warehouse.engine, "lp_main"), lp.truth())
    assert parse_watermark(warehouse.get_watermark("lp_main", "interactions")) == lp.now()
    before = snapshot(warehouse, "lp_main")
    for result in backfill(integ, warehouse):  # a backfill run again at once writes nothing
        assert (result["inserted"], result["updated"]) == (0, 0) and result["unchanged"] > 0
    assert snapshot(warehouse, "lp_main") == before

    # Run 1, two hours later: conversations closed, got messages, or started meanwhile.
    lp.advance("2h")
    first = run(pipeline.load_changes, integ, warehouse)
    assert first["updated"] > 0 and first["inserted"] > 0
    loaded = warehouse_interactions(warehouse.engine, "lp_main")
    assert_equal_to_truth(loaded, lp.truth())
    open_after_run_1 = {key for key, row in loaded.items() if row["status"] == "open"}
    assert open_after_run_1

    # Run 2, a day later: the ones that closed are closed in the warehouse, updated in place.
    lp.advance("1d")
    second = run(pipeline.load_changes, integ, warehouse)
    loaded = warehouse_interactions(warehouse.engine, "lp_main")
    assert_equal_to_truth(loaded, lp.truth())
    assert any(loaded[key]["status"] == "closed" for key in open_after_run_1)
    assert second["updated"] >= sum(loaded[key]["status"] == "closed" for key in open_after_run_1)
    assert parse_watermark(second["watermark"]) == lp.now()
    assert warehouse.get_watermark("lp_main", "interactions") == second["watermark"]

    # Re-running anything changes nothing.
    run(pipeline.sync_roster, integ, warehouse)  # agents deleted during the day are marked so, first
    before = snapshot(warehouse, "lp_main")
    again = run(pipeline.load_changes, integ, warehouse)
    assert (again["inserted"], again["updated"], again["rejected"]) == (0, 0, 0) and again["unchanged"] > 0
    assert run(pipeline.sync_roster, integ, warehouse)["marked_deleted"] == 0
    pipeline.apply_retention(integ, warehouse, dry_run=True, now=lp.now())
    assert snapshot(warehouse, "lp_main") == before


def test_oauth2_end_to_end_equals_the_ground_truth_with_a_token_per_task(lp, sqlite_warehouse):
    integ = integration("sandbox_liveperson_oauth2", id="lp_oauth2")
    run(pipeline.sync_roster, integ, sqlite_warehouse)
    lp.reset_counters()
    backfill(integ, sqlite_warehouse)
    assert lp.lp_requests("sentinel_token") == 7  # one token per window task, reused within it (the plan
    # reads the provider's clock from CSDS, which needs none)
    lp.advance("1d6h")  # well past every token's hour
    run(pipeline.load_changes, integ, sqlite_warehouse)
    assert lp.lp_requests(status=401) == 0
    assert_equal_to_truth(warehouse_interactions(sqlite_warehouse.engine, "lp_oauth2"), lp.truth())


def test_faults_partial_answers_and_truncated_records_change_nothing(lp, sqlite_warehouse):
    integ = integration()
    lp.faults(p_5xx=0.1, p_reset=0.05, p_truncate=0.05, p_partial=0.4, p_is_partial=0.2)
    backfill(integ, sqlite_warehouse)
    lp.advance("8h")
    run(pipeline.load_changes, integ, sqlite_warehouse)
    faults = lp.counters()["faults"]["liveperson"]
    assert all(faults.get(kind, 0) > 0 for kind in ("5xx", "reset", "truncate", "partial", "is_partial")), faults
    lp.no_faults()
    assert_equal_to_truth(warehouse_interactions(sqlite_warehouse.engine, "lp_main"), lp.truth())


def test_retention_honours_dry_run_and_a_second_run_deletes_nothing(lp, sqlite_warehouse):
    integ = integration(retention=Retention(3, "days"))
    backfill(integ, sqlite_warehouse)
    now = lp.now()
    cutoff = now - timedelta(days=3)
    old = [x for x in lp.truth() if datetime.fromisoformat(x["started_at"]) < cutoff]
    old_messages = sum(x["message_count"] for x in old)
    assert old and len(old) < len(lp.truth())
    before = snapshot(sqlite_warehouse, "lp_main")

    dry = pipeline.apply_retention(integ, sqlite_warehouse, dry_run=True, now=now)
    assert (dry["cx_interactions"], dry["cx_messages"], dry["dry_run"]) == (len(old), old_messages, True)
    assert snapshot(sqlite_warehouse, "lp_main") == before

    done = pipeline.apply_retention(integ, sqlite_warehouse, dry_run=False, now=now)
    assert (done["cx_interactions"], done["cx_messages"]) == (len(old), old_messages)
    kept = warehouse_interactions(sqlite_warehouse.engine, "lp_main")
    assert_equal_to_truth(kept, [x for x in lp.truth() if x not in old])

    again = pipeline.apply_retention(integ, sqlite_warehouse, dry_run=False, now=now)
    assert again["cx_interactions"] == again["cx_messages"] == 0
    with sqlite_warehouse.engine.connect() as conn:
        log = conn.execute(
            sa.select(t.retention_log.c.dry_run, t.retention_log.c.interactions_deleted).order_by(t.retention_log.c.id)
        ).all()
    assert [tuple(row) for row in log] == [(True, len(old)), (False, len(old)), (False, 0)]


def test_roster_without_users_permission_fails_the_task_at_once_with_the_plain_message(lp, sqlite_warehouse):
    from airflow.sdk.exceptions import AirflowFailException

    integ = integration("sandbox_liveperson_nousers", id="lp_nousers")
    with pytest.raises(AirflowFailException) as info, tasks.fail_fast():
        run(pipeline.sync_roster, integ, sqlite_warehouse)
    assert isinstance(info.value.__cause__, PermissionDenied)
    assert str(info.value).startswith(users_permission_message("sandbox_liveperson_nousers"))
    assert lp.lp_requests("users", 403) == 1  # asked once: no retry of a missing permission
    assert LivePersonHook("sandbox_liveperson_nousers").test_connection()[0] is False
