"""Retention is safe to try: a scheduled run that would delete for the first time, or more than the integration's
approval share, waits for a person; dry runs and runs triggered by hand never wait. The DAG wires that decision to
Airflow's ApprovalOperator, and only an approved (or unneeded) approval lets the deletion run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cxsync import pipeline
from cxsync.config import Integration, Retention
from cxsync.records import InteractionRecord

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def integration(share: float = 0.10) -> Integration:
    return Integration("lp_x", "liveperson", "conn", "LP x", retention=Retention(30, "days", share))


def load(warehouse, old: int, new: int, batch: str = "a") -> None:
    def record(n: int, started: datetime) -> InteractionRecord:
        return InteractionRecord(f"{batch}{n}", "liveperson", status="closed", started_at=started, updated_at=started)

    records = [record(n, NOW - timedelta(days=60)) for n in range(old)]
    records += [record(old + n, NOW - timedelta(days=1)) for n in range(new)]
    warehouse.write_interactions("lp_x", records)


def assess(warehouse, *, scheduled: bool, dry_run: bool = False, share: float = 0.10) -> dict:
    return pipeline.assess_retention(integration(share), warehouse, dry_run=dry_run, scheduled=scheduled, now=NOW)


def test_the_first_scheduled_deletion_waits_for_approval_and_says_what_it_would_delete(warehouse):
    load(warehouse, old=2, new=98)
    result = assess(warehouse, scheduled=True)
    assert result["needs_approval"] is True
    assert result["reason"] == "it would be this integration's first deletion"
    assert (
        "would delete everything that started before 2026-05-02 00:00 UTC: 2 of 100 interactions" in (result["summary"])
    )
    assert result["counts"]["cx_interactions"] == 2 and result["total"] == 100
    # assessing deletes nothing and logs no retention run
    assert warehouse.interaction_count("lp_x") == 100 and not warehouse.has_deleted_before("lp_x")


@pytest.mark.parametrize(("scheduled", "dry_run"), [(False, False), (True, True), (False, True)])
def test_dry_runs_and_runs_triggered_by_hand_never_wait(warehouse, scheduled, dry_run):
    load(warehouse, old=50, new=50)
    assert assess(warehouse, scheduled=scheduled, dry_run=dry_run)["needs_approval"] is False


def test_after_a_first_deletion_a_scheduled_run_waits_only_above_the_share(warehouse):
    load(warehouse, old=1, new=99)
    pipeline.apply_retention(integration(), warehouse, dry_run=False, now=NOW)  # chosen by hand
    assert warehouse.has_deleted_before("lp_x")
    load(warehouse, old=10, new=0, batch="b")  # 10 of 109 expired: 9 %
    assert assess(warehouse, scheduled=True)["needs_approval"] is False
    load(warehouse, old=10, new=0, batch="c")  # 20 of 119 expired: 17 %
    result = assess(warehouse, scheduled=True)
    assert result["needs_approval"] is True
    assert "it would delete 17% of this integration's interactions, more than the 10%" in result["reason"]
    assert assess(warehouse, scheduled=True, share=0.5)["needs_approval"] is False


def test_nothing_expired_never_waits(warehouse):
    load(warehouse, old=0, new=10)
    assert assess(warehouse, scheduled=True)["needs_approval"] is False


def test_the_approved_cutoff_is_the_one_deleted_to(warehouse):
    load(warehouse, old=3, new=3)
    approved = assess(warehouse, scheduled=True)
    # the person approves a day later: the run deletes what was approved, not a day more
    later = pipeline.apply_retention(
        integration(),
        warehouse,
        dry_run=False,
        now=NOW + timedelta(days=40),
        cutoff=datetime.fromisoformat(approved["cutoff"]),
    )
    assert later["cx_interactions"] == 3 and warehouse.interaction_count("lp_x") == 3
