"""Retention deletes exactly what is older than the cutoff, in every table that holds interaction data, on SQLite
and PostgreSQL: nothing older stays, nothing newer is touched (not even rewritten), other integrations keep
every row, and running it again deletes nothing.

The warehouse holds, per provider, two integrations loaded from the sandbox (six days of history, so a
three-day retention cuts through the middle), interactions crafted at the cutoff's edge (exactly at it: kept;
a microsecond before: deleted), and rejected records on both sides of the cutoff. "Older" is by the
interaction's start (its messages go with it) and by a rejected record's time; the tables checked are the
schema's own list of tables that hang off an interaction, plus cx_interactions and cx_rejected_records.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from cxsync import pipeline
from cxsync.config import Retention
from cxsync.records import InteractionRecord, MessageRecord, RejectedRecord
from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t
from support.providers import PROVIDERS
from support.runs import TaskRunner
from support.warehouse import snapshot

MAIN, OTHER = "it_retained", "it_bystander"
RETENTION = Retention(3, "days")


def rows(warehouse: Warehouse, table: sa.Table, integration_id: str) -> list[dict]:
    """Every column of every row, load times included: a row that was rewritten shows."""
    with warehouse.engine.connect() as conn:
        found = conn.execute(sa.select(table).where(table.c.integration_id == integration_id)).mappings().all()
    return sorted((dict(r) for r in found), key=repr)


def interaction_tables() -> list[sa.Table]:
    return [t.interactions, *t.INTERACTION_CHILD_TABLES]


def crafted(cutoff: datetime, provider: str) -> list[InteractionRecord]:
    """One interaction starting exactly at the cutoff and one a microsecond before it, each with messages."""
    out = []
    for name, started in (("edge-kept", cutoff), ("edge-deleted", cutoff - timedelta(microseconds=1))):
        out.append(
            InteractionRecord(
                interaction_id=name,
                provider=provider,
                status="closed",
                started_at=started,
                ended_at=started + timedelta(minutes=5),
                updated_at=started + timedelta(minutes=5),
                messages=[
                    MessageRecord(f"{name}-{n}", n, started + timedelta(minutes=n), "customer", text="hello")
                    for n in (1, 2)
                ],
            )
        )
    return out


def add_rejected(warehouse: Warehouse, integration_id: str, times: list[datetime]) -> None:
    with warehouse.engine.begin() as conn:
        conn.execute(
            t.rejected_records.insert(),
            [
                {
                    "integration_id": integration_id,
                    "stream": "interactions",
                    "record_key": f"bad-{n}",
                    "reason": "test",
                    "raw": "{}",
                    "rejected_at": at,
                }
                for n, at in enumerate(times)
            ],
        )


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_retention_deletes_exactly_what_is_older_than_the_cutoff_and_a_rerun_deletes_nothing(
    provider, sandbox, admin, connect, warehouse
):
    case = PROVIDERS[provider]
    connect(sandbox)
    main = case.integration(MAIN, retention=RETENTION)
    other = case.integration(OTHER, retention=RETENTION)
    for integration in (main, other):
        runner = TaskRunner(case, integration, warehouse, tries=1)
        runner.roster()
        runner.backfill(weeks=1)
    now = admin.now()
    cutoff = pipeline.retention_cutoff(now, RETENTION)
    warehouse.write_interactions(MAIN, crafted(cutoff, provider))
    warehouse.write_interactions(MAIN, [], rejected=[RejectedRecord("interactions", "recent", "test", {})])
    for integration_id in (MAIN, OTHER):
        add_rejected(
            warehouse, integration_id, [cutoff - timedelta(days=2), cutoff - timedelta(microseconds=1), cutoff]
        )

    data_tables = [*interaction_tables(), t.rejected_records]
    before = {table.name: rows(warehouse, table, MAIN) for table in data_tables}
    started = {r["interaction_id"]: r["started_at"] for r in before[t.interactions.name]}
    old_ids = {iid for iid, at in started.items() if at < cutoff}
    assert "edge-deleted" in old_ids and "edge-kept" not in old_ids
    assert 5 < len(old_ids) < len(started) - 5, "the cutoff cuts through the loaded history"
    bystander = snapshot(warehouse.engine, OTHER)
    untouched_tables = {table.name: rows(warehouse, table, MAIN) for table in (t.agents, t.agent_groups, t.skills)}

    dry = pipeline.apply_retention(main, warehouse, dry_run=True, now=now)
    assert {table.name: rows(warehouse, table, MAIN) for table in data_tables} == before
    done = pipeline.apply_retention(main, warehouse, dry_run=False, now=now)
    assert {k: v for k, v in done.items() if k != "dry_run"} == {k: v for k, v in dry.items() if k != "dry_run"}

    # Nothing older stays; everything newer is there, row for row, never rewritten.
    for table in interaction_tables():
        kept = rows(warehouse, table, MAIN)
        assert not [r for r in kept if r["interaction_id"] in old_ids], f"{table.name}: old rows stayed"
        assert kept == [r for r in before[table.name] if r["interaction_id"] not in old_ids], table.name
        assert done[table.name] == len(before[table.name]) - len(kept)
    kept_rejected = rows(warehouse, t.rejected_records, MAIN)
    assert kept_rejected == [r for r in before[t.rejected_records.name] if r["rejected_at"] >= cutoff]
    assert done[t.rejected_records.name] == 2
    with warehouse.engine.connect() as conn:
        orphans = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.messages)
            .where(
                ~sa.exists().where(
                    t.interactions.c.integration_id == t.messages.c.integration_id,
                    t.interactions.c.interaction_id == t.messages.c.interaction_id,
                )
            )
        ).scalar_one()
    assert orphans == 0
    assert {table.name: rows(warehouse, table, MAIN) for table in (t.agents, t.agent_groups, t.skills)} == (
        untouched_tables
    )
    assert snapshot(warehouse.engine, OTHER) == bystander

    # Again: nothing to delete, nothing changed.
    after = snapshot(warehouse.engine, MAIN)
    again = pipeline.apply_retention(main, warehouse, dry_run=False, now=now)
    assert {k: v for k, v in again.items() if k.startswith("cx_")} == dict.fromkeys(
        done.keys() - {"cutoff", "dry_run"}, 0
    )
    later = snapshot(warehouse.engine, MAIN)
    later.pop(t.retention_log.name)
    assert later == {k: v for k, v in after.items() if k != t.retention_log.name}
    with warehouse.engine.connect() as conn:
        logged = conn.execute(
            sa.select(t.retention_log.c.dry_run, t.retention_log.c.interactions_deleted)
            .where(t.retention_log.c.integration_id == MAIN)
            .order_by(t.retention_log.c.id)
        ).all()
    assert [tuple(r) for r in logged] == [(True, len(old_ids)), (False, len(old_ids)), (False, 0)]
