"""The four DAGs of a LivePerson integration, run with `airflow dags test` against the sandbox.

The runs build on each other like a first deployment: roster sync, a one-week backfill, a day later
(sandbox clock) the incremental run, then retention. The warehouse must then hold exactly the sandbox's
ground truth. A key without the Users permission must fail the roster task at once, with the plain
message. Field-by-field exactness over many scenarios (two incremental runs, re-runs, faults, OAuth 2.0,
retention dry runs) is proven faster in-process by tests/e2e/test_liveperson_pipeline.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from cxsync.hooks.liveperson import users_permission_message
from cxsync.warehouse import parse_watermark
from cxsync.warehouse import schema as t
from support.liveperson import assert_equal_to_truth, warehouse_interactions

pytestmark = pytest.mark.slow

LP = "lp_e2e"
NOUSERS = "lp_e2e_nousers"
NO_FAULTS = {
    "rate_limit_rps": None,
    "p_5xx": 0.0,
    "p_reset": 0.0,
    "p_slow": 0.0,
    "p_truncate": 0.0,
    "p_partial": 0.0,
    "p_is_partial": 0.0,
}


@pytest.fixture(scope="module")
def env(airflow_env):
    airflow_env.add_integrations(
        {
            "id": LP,
            "provider": "liveperson",
            "label": "LivePerson e2e (OAuth 1.0)",
            "conn_id": "sandbox_liveperson_main",
            "backfill_weeks": 1,
            "retention": {"value": 3, "unit": "days"},
        },
        {
            "id": NOUSERS,
            "provider": "liveperson",
            "label": "LivePerson key without Users",
            "conn_id": "sandbox_liveperson_nousers",
        },
    )
    airflow_env.sandbox("PUT", "/faults/liveperson", NO_FAULTS)
    return airflow_env


def now_of(env) -> datetime:
    return datetime.fromisoformat(env.sandbox("GET", "/clock")["now"])


def truth(env) -> list[dict]:
    return env.sandbox("GET", "/truth/liveperson")["interactions"]


def test_roster_backfill_incremental_and_retention_dags_land_exactly_the_ground_truth(env):
    roster = env.run_dag(f"cxsync_{LP}_roster_sync")
    assert roster.succeeded, roster.tail()
    wh = env.warehouse()
    with wh.engine.connect() as conn:
        agents = conn.execute(
            sa.select(t.agents.c.agent_id, t.agents.c.is_deleted, t.agents.c.role).where(
                t.agents.c.integration_id == LP
            )
        ).all()
    assert len(agents) == 8 and any(row.is_deleted for row in agents)
    assert {row.role for row in agents} == {"agent", "bot", "admin"}  # the admin's role from the Profiles API

    planned_at = now_of(env)
    backfill = env.run_dag(f"cxsync_{LP}_backfill", {"weeks": 1})
    assert backfill.succeeded, backfill.tail()
    assert "page 1 of 1" in backfill.output and backfill.output.count("finished:") >= 7
    week_start = planned_at - timedelta(weeks=1)

    def in_week(items: list[dict]) -> list[dict]:
        return [x for x in items if datetime.fromisoformat(x["started_at"]) >= week_start]

    assert_equal_to_truth(warehouse_interactions(wh.engine, LP), in_week(truth(env)))

    env.sandbox("POST", "/clock", {"advance": "1d"})
    incremental = env.run_dag(f"cxsync_{LP}_incremental")
    assert incremental.succeeded, incremental.tail()
    loaded = warehouse_interactions(wh.engine, LP)
    now_truth = truth(env)
    # Everything of the week, updated in place, plus whatever older conversation changed meanwhile.
    assert_equal_to_truth(loaded, [x for x in now_truth if x["interaction_id"] in loaded])
    assert {x["interaction_id"] for x in in_week(now_truth)} <= set(loaded)
    assert parse_watermark(wh.get_watermark(LP, "interactions")) == now_of(env)

    before = len(loaded)
    # a run by hand starts as a dry run (the trigger form's default): turning it off deletes at once
    retention = env.run_dag(f"cxsync_{LP}_retention", {"dry_run": False})
    assert retention.succeeded, retention.tail()
    with wh.engine.connect() as conn:
        log = conn.execute(sa.select(t.retention_log).where(t.retention_log.c.integration_id == LP)).one()
    kept = warehouse_interactions(wh.engine, LP)
    assert log.dry_run is False and log.interactions_deleted == before - len(kept) > 0
    assert all(row["started_at"] >= log.cutoff for row in kept.values())
    assert_equal_to_truth(kept, [x for x in now_truth if x["interaction_id"] in kept])
    wh.dispose()


def test_roster_sync_without_the_users_permission_fails_at_once_with_the_plain_message(env):
    result = env.run_dag(f"cxsync_{NOUSERS}_roster_sync")
    assert not result.succeeded and not result.retried, result.tail()
    assert "AirflowFailException" in result.output
    assert users_permission_message("sandbox_liveperson_nousers") in result.output
