"""What an analytics run recomputes: only what changed since the last run, and the agent days it touches."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from transcripts import LP, T0, conversation, daily, load, metrics

from cxsync import settings
from cxsync.analytics.run import run_analytics
from cxsync.warehouse import schema as t


def three_conversations(reply_after: int = 10, agent_of_c: str = "a2"):
    return [
        conversation("a", [(0, "customer", "c", "hi"), (reply_after, "agent", "a1", "hello")], agent="a1"),
        conversation("b", [(0, "customer", "c", "hi"), (20, "agent", "a1", "hello")], agent="a1"),
        conversation(
            "c",
            [(0, "customer", "c", "hi"), (30, "agent", agent_of_c, "hello")],
            agent=agent_of_c,
            start=T0 + timedelta(days=1),
        ),
    ]


def stamps(warehouse) -> tuple[dict, dict]:
    return (
        {k: v["computed_at"] for k, v in metrics(warehouse, LP.id).items()},
        {k: v["computed_at"] for k, v in daily(warehouse, LP.id).items()},
    )


def test_a_rerun_computes_nothing(warehouse):
    load(warehouse, LP, *three_conversations())
    first = run_analytics(warehouse, LP, batch_size=2)
    assert (first.interactions_computed, first.batches, first.agent_days_computed) == (3, 2, 2)
    before = stamps(warehouse)
    again = run_analytics(warehouse, LP, batch_size=2)
    assert (again.interactions_computed, again.batches, again.agent_days_computed) == (0, 0, 0)
    assert stamps(warehouse) == before


def test_a_changed_conversation_recomputes_only_it_and_its_agent_day(warehouse):
    load(warehouse, LP, *three_conversations())
    run_analytics(warehouse, LP)
    (rows_before, days_before) = stamps(warehouse)
    load(warehouse, LP, three_conversations(reply_after=70)[0])  # "a" changed: its reply came later
    result = run_analytics(warehouse, LP)
    assert (result.interactions_computed, result.agent_days_computed) == (1, 1)
    rows_after, days_after = stamps(warehouse)
    assert [k for k in rows_after if rows_after[k] != rows_before[k]] == ["a"]
    assert [k for k in days_after if days_after[k] != days_before[k]] == [("a1", "2026-03-02")]
    assert metrics(warehouse, LP.id)["a"]["first_response_seconds"] == 70.0
    assert daily(warehouse, LP.id)[("a1", "2026-03-02")]["median_first_response_seconds"] == 45.0  # of 70 and 20


def test_a_reassigned_conversation_recomputes_both_agent_days(warehouse):
    load(warehouse, LP, *three_conversations())
    run_analytics(warehouse, LP)
    load(warehouse, LP, three_conversations(agent_of_c="a3")[2])
    result = run_analytics(warehouse, LP)
    assert (result.interactions_computed, result.agent_days_computed, result.agent_days_removed) == (1, 1, 1)
    assert set(daily(warehouse, LP.id)) == {("a1", "2026-03-02"), ("a3", "2026-03-03")}


def test_a_metrics_version_bump_and_full_recompute_everything(warehouse, monkeypatch):
    load(warehouse, LP, *three_conversations())
    run_analytics(warehouse, LP)
    assert run_analytics(warehouse, LP, full=True).interactions_computed == 3
    monkeypatch.setattr(settings, "ANALYTICS_METRICS_VERSION", settings.ANALYTICS_METRICS_VERSION + 1)
    bumped = run_analytics(warehouse, LP)
    assert (bumped.interactions_computed, bumped.agent_days_computed) == (3, 2)
    assert {row["metrics_version"] for row in metrics(warehouse, LP.id).values()} == {
        settings.ANALYTICS_METRICS_VERSION
    }
    assert {row["metrics_version"] for row in daily(warehouse, LP.id).values()} == {settings.ANALYTICS_METRICS_VERSION}
    assert run_analytics(warehouse, LP).interactions_computed == 0


def test_a_run_that_stopped_before_the_agent_days_is_finished_by_the_next(warehouse, monkeypatch):
    from cxsync.analytics import run as run_module

    load(warehouse, LP, *three_conversations())

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(run_module, "_recompute_pending_days", crash)
    with pytest.raises(RuntimeError):
        run_analytics(warehouse, LP)
    assert daily(warehouse, LP.id) == {}
    monkeypatch.undo()
    result = run_analytics(warehouse, LP)
    assert (result.interactions_computed, result.agent_days_computed) == (0, 2)
    assert daily(warehouse, LP.id)[("a1", "2026-03-02")]["conversations"] == 2


def test_retention_deletes_the_metrics_of_deleted_interactions_and_the_next_run_their_agent_days(warehouse):
    load(warehouse, LP, *three_conversations())
    run_analytics(warehouse, LP)
    result = warehouse.delete_older_than(LP.id, T0 + timedelta(hours=12))
    assert result.counts["cx_interaction_metrics"] == 2
    assert set(metrics(warehouse, LP.id)) == {"c"}
    after = run_analytics(warehouse, LP)
    assert (after.interactions_computed, after.agent_days_removed) == (0, 1)
    assert set(daily(warehouse, LP.id)) == {("a2", "2026-03-03")}
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.analytics_pending_days)).scalar_one() == 0
