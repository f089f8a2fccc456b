"""The four DAGs of a HelpDesk integration, run with `airflow dags test` against the sandbox.

The runs build on each other like a first deployment: roster sync, a one-week backfill, a day later
(sandbox clock) the nightly incremental run, then retention as a dry run. The warehouse must then hold
exactly what the sandbox's ground truth says these runs could see. A token sent the wrong way must fail
the roster task at once, with the plain message. Field-by-field exactness over more scenarios (several
nights, re-runs of every step, faults, deleted tickets, retention for real) is proven faster in-process by
tests/sources/test_helpdesk.py, which drives the same pipeline functions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from cxsync.warehouse import parse_watermark
from cxsync.warehouse import schema as t
from support.helpdesk import LOADED_SILOS, expected_from_truth, warehouse_snapshot, warehouse_view

pytestmark = pytest.mark.slow

HD = "hd_e2e"
WRONG_SCHEME = "hd_e2e_wrong_scheme"
OVERLAP = timedelta(minutes=10)
NO_FAULTS = {"rate_limit_rps": None, "p_5xx": 0.0, "p_reset": 0.0, "p_slow": 0.0, "p_truncate": 0.0}


@pytest.fixture(scope="module")
def env(airflow_env):
    token_conn = airflow_env.connection("sandbox_helpdesk_main")
    airflow_env.set_connection(WRONG_SCHEME, {**token_conn, "password": f"Bearer {token_conn['password']}"})
    airflow_env.add_integrations(
        {
            "id": HD,
            "provider": "helpdesk",
            "label": "HelpDesk e2e (token)",
            "conn_id": "sandbox_helpdesk_main",
            "backfill_weeks": 1,
            "retention": {"value": 4, "unit": "days"},
        },
        {
            "id": WRONG_SCHEME,
            "provider": "helpdesk",
            "label": "HelpDesk token pasted as a Bearer header",
            "conn_id": WRONG_SCHEME,
        },
    )
    airflow_env.sandbox("PUT", "/faults/helpdesk", NO_FAULTS)
    return airflow_env


def now_of(env) -> datetime:
    return datetime.fromisoformat(env.sandbox("GET", "/clock")["now"])


def truth(env, at: datetime) -> dict[str, dict]:
    answer = env.sandbox("GET", f"/truth/helpdesk?at={at.isoformat().replace('+', '%2B')}")
    return {x["interaction_id"]: x for x in answer["interactions"]}


def seen_by(runs: list[tuple[dict[str, dict], Callable[[dict], bool]]]) -> list[dict]:
    """The ground-truth records the runs could load, each as of the latest run that loaded it: a run at
    time T loads the tickets of the loaded silos at T that its predicate selects."""
    latest: dict[str, dict] = {}
    for snapshot, selects in runs:
        for iid, record in snapshot.items():
            if record["silo"] in LOADED_SILOS and selects(record):
                latest[iid] = record
    # Ground truth rows as the sandbox gives them (the silo is only what it was at loading time).
    return [{**record, "silo": "tickets"} for record in latest.values()]


def started(record: dict) -> datetime:
    return datetime.fromisoformat(record["started_at"])


def test_roster_backfill_incremental_and_retention_dags_land_exactly_the_ground_truth(env):
    roster = env.run_dag(f"cxsync_{HD}_roster_sync")
    assert roster.succeeded, roster.tail()
    wh = env.warehouse()
    with wh.engine.connect() as conn:
        agents = conn.execute(
            sa.select(t.agents.c.agent_id, t.agents.c.role, t.agents.c.group_ids).where(t.agents.c.integration_id == HD)
        ).all()
    assert len(agents) >= 6 and {row.role for row in agents} >= {"owner", "normal"}

    t0 = now_of(env)
    backfill = env.run_dag(f"cxsync_{HD}_backfill", {"weeks": 1})
    assert backfill.succeeded, backfill.tail()
    assert backfill.output.count("finished:") >= 7  # one task per day window
    week_start = t0 - timedelta(weeks=1)
    at_t0 = truth(env, t0)
    loaded_by_backfill = [(at_t0, lambda r: week_start <= started(r) < t0)]
    loaded = warehouse_view(wh, HD)
    assert loaded == expected_from_truth(seen_by(loaded_by_backfill))
    assert len(loaded) >= 20 and any(m["is_private"] for r in loaded.values() for m in r["messages"])
    assert parse_watermark(wh.get_watermark(HD, "interactions")) == t0

    env.sandbox("POST", "/clock", {"advance": "1d"})
    t1 = now_of(env)
    incremental = env.run_dag(f"cxsync_{HD}_incremental")
    assert incremental.succeeded, incremental.tail()
    at_t1 = truth(env, t1)
    runs = [*loaded_by_backfill, (at_t1, lambda r: datetime.fromisoformat(r["updated_at"]) >= t0 - OVERLAP)]
    assert warehouse_view(wh, HD) == expected_from_truth(seen_by(runs))
    assert parse_watermark(wh.get_watermark(HD, "interactions")) == t1
    changed = [
        iid
        for iid, r in at_t1.items()
        if iid in at_t0 and r["provider_status"] != at_t0[iid]["provider_status"] and started(r) >= week_start
    ]
    assert changed, "a day of the sandbox changes some ticket's status"

    snapshot = warehouse_snapshot(wh, HD)
    retention = env.run_dag(f"cxsync_{HD}_retention", {"dry_run": True})
    assert retention.succeeded, retention.tail()
    with wh.engine.connect() as conn:
        log = conn.execute(sa.select(t.retention_log).where(t.retention_log.c.integration_id == HD)).one()
    old = [r for r in warehouse_view(wh, HD).values() if datetime.fromisoformat(r["started_at"]) < log.cutoff]
    assert log.dry_run is True and log.interactions_deleted == len(old) > 0
    assert log.messages_deleted == sum(r["message_count"] for r in old)
    assert warehouse_snapshot(wh, HD) == snapshot  # a dry run deletes nothing
    wh.dispose()


def test_a_token_sent_as_a_bearer_header_fails_the_roster_at_once_in_plain_words(env):
    result = env.run_dag(f"cxsync_{WRONG_SCHEME}_roster_sync")
    assert not result.succeeded and not result.retried, result.tail()
    assert "AirflowFailException" in result.output
    assert "HelpDesk expects HTTP Basic auth with the account ID as user name" in result.output
    assert env.connection("sandbox_helpdesk_main")["password"] not in result.output
