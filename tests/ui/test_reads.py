"""What the pages read and write in the warehouse, on SQLite and PostgreSQL, without a browser: totals and the
per-day chart, a warehouse no DAG has created yet, overrides (before and after matching ran), QA list runs and
their CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from tests.ui.conftest import DIFFERING_DAY_WARNING, add_reconciliation

from cxsync import settings
from cxsync.qa import matching as qa_matching
from cxsync.ui import matching, qa_lists
from cxsync.ui import totals as totals_module
from cxsync.ui.warehouse_reads import RECONCILIATION_COLUMNS, existing_tables, integration_counts, reconciliation
from cxsync.warehouse import schema as t
from support import qa_state

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _interaction(n: int, integration_id: str, started: datetime, status: str, messages: int) -> dict:
    return {
        "integration_id": integration_id,
        "interaction_id": f"c{n}",
        "provider": "helpdesk",
        "status": status,
        "started_at": started,
        "message_count": messages,
        "loaded_at": NOW,
        "content_hash": "0" * 64,
        "agent_id": f"a{n % 3}",
    }


def _agents(engine: sa.Engine, integration_id: str, count: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            t.agents.insert(),
            [
                {
                    "integration_id": integration_id,
                    "agent_id": f"a{n}",
                    "display_name": f"Agent {n}",
                    "email": f"a{n}@example.com",
                    "is_deleted": False,
                    "first_seen_at": NOW,
                    "last_synced_at": NOW,
                }
                for n in range(count)
            ],
        )


def test_totals_and_interactions_per_day(warehouse):
    engine = warehouse.engine
    _agents(engine, "hd", 3)
    rows = [_interaction(n, "hd", NOW - timedelta(days=n % 5, hours=1), "open" if n % 4 == 0 else "closed", n)
            for n in range(20)]  # fmt: skip
    rows.append(_interaction(99, "hd", NOW - timedelta(days=60), "closed", 7))  # outside the 4 weeks
    rows.append(_interaction(98, "other", NOW, "closed", 1))
    with engine.begin() as conn:
        conn.execute(t.interactions.insert(), rows)
        conn.execute(
            t.rejected_records.insert(),
            [
                {"integration_id": "hd", "stream": "interactions", "reason": "bad",
                 "rejected_at": NOW - timedelta(hours=h), "record_hash": f"h{h}"}
                for h in (1, 2, 30)
            ],
        )  # fmt: skip
    with engine.connect() as conn:
        counts = integration_counts(conn, ["hd", "none"], NOW, existing_tables(conn))
    hd = counts["hd"]
    assert (hd["agents"], hd["interactions_open"], hd["interactions_closed"]) == (3, 5, 16)
    assert hd["messages"] == sum(range(20)) + 7
    assert (hd["rejected"], hd["rejected_last_24h"]) == (3, 2)
    assert hd["unmatched_agents"] == 0  # matching never ran: its agents are not matched yet, not unmatched
    expected_days = {(NOW - timedelta(days=d, hours=1)).strftime("%Y-%m-%d"): 4 for d in range(5)}
    assert hd["per_day"] == expected_days
    assert counts["none"]["agents"] == 0 and counts["none"]["per_day"] == {}

    qa_state.fill_matching(warehouse, "hd")
    with engine.connect() as conn:
        assert integration_counts(conn, ["hd"], NOW, existing_tables(conn))["hd"]["unmatched_agents"] == 2


def test_a_warehouse_no_dag_created_yet(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    rows, facts = matching.agent_rows(engine)
    assert rows == [] and not facts["tables"]
    with pytest.raises(matching.OverrideError, match="run a roster sync DAG"):
        matching.set_override(engine, "hd", "a1", None, "", "admin")
    assert not matching.clear_override(engine, "hd", "a1")
    assert qa_lists.list_runs(engine) == ([], False) and qa_lists.list_csv(engine, "r1") is None
    engine.dispose()


def test_an_override_set_before_matching_ran_is_what_the_matcher_applies(warehouse):
    engine = warehouse.engine
    _agents(engine, "hd", 3)
    rows, facts = matching.agent_rows(engine)
    assert [r["method"] for r in rows] == ["not matched yet"] * 3 and facts["tables"] and not facts["matched_any"]
    matching.set_override(engine, "hd", "a1", None, "a bot account", "admin", now=NOW)
    rows, _ = matching.agent_rows(engine, method="not matched yet")
    assert [(r["agent_id"], r["has_override"], r["override_set_by"]) for r in rows if r["has_override"]] == [
        ("a1", True, "admin")
    ]
    outcome = qa_matching.match_agents(
        qa_matching.read_agents(warehouse), [], qa_matching.read_overrides(warehouse), known_staff_ids=[]
    )
    assert {m.agent_id: m.method for m in outcome.matches} == {"a0": "unmatched", "a1": "manual", "a2": "unmatched"}


def test_overrides_need_a_real_agent_and_a_real_staff_member(warehouse):
    engine = warehouse.engine
    _agents(engine, "hd", 3)
    qa_state.fill_matching(warehouse, "hd", now=NOW)
    with pytest.raises(matching.OverrideError, match="no agent 'a9'"):
        matching.set_override(engine, "hd", "a9", "s-100", "", "admin")
    with pytest.raises(matching.OverrideError, match="no staff member 's-999'"):
        matching.set_override(engine, "hd", "a1", "s-999", "", "admin")

    matching.set_override(engine, "hd", "a2", "s-100", "first try", "admin", now=NOW)
    matching.set_override(engine, "hd", "a2", "s-102", "same person", "qa-lead", now=NOW)  # replaces, no duplicate
    matching.set_override(engine, "hd", "a0", None, "a bot account", "qa-lead", now=NOW)
    rows, facts = matching.agent_rows(engine)
    assert [r["method"] for r in rows] == ["unmatched", "ambiguous", "email"] and facts["matched_any"]
    assert facts["total"] == 3 and [s["staff_id"] for s in facts["staff"]] == ["s-100", "s-101", "s-102", "s-103"]
    by_agent = {r["agent_id"]: r for r in rows}
    assert (by_agent["a2"]["override_staff_id"], by_agent["a2"]["override_set_by"]) == ("s-102", "qa-lead")
    assert by_agent["a2"]["override_set_at"].replace(tzinfo=UTC) == NOW
    assert by_agent["a0"]["has_override"] and by_agent["a0"]["override_staff_id"] is None
    assert by_agent["a0"]["staff_name"] == "Agent 0"  # the email match's staff row
    assert by_agent["a1"]["candidates"] == ["s-102", "s-103"]
    assert [r["agent_id"] for r in matching.agent_rows(engine, "hd", "ambiguous")[0]] == ["a1"]
    assert matching.agent_rows(engine, "other")[0] == []

    assert matching.clear_override(engine, "hd", "a2") and not matching.clear_override(engine, "hd", "a2")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cx_agent_match_overrides")).scalar_one() == 1


def test_qa_list_runs_and_csv(warehouse):
    engine = warehouse.engine
    assert qa_lists.list_runs(engine) == ([], True) and qa_lists.list_csv(engine, "r1") is None
    items = [
        {"integration_id": "hd", "interaction_id": f"c{n}", "agent_id": "a1", "staff_id": "s-101",
         "evaluator_id": "s-100" if n < 2 else None, "rank": 3 - n}
        for n in range(3)
    ]  # fmt: skip
    items[0]["interaction_id"] = "=HYPERLINK(1)"
    items[1]["agent_id"] = "\t=1+1"  # a leading tab hides the formula at a glance; spreadsheets still run it
    qa_state.fill_qa_list(warehouse, "r1", "weekly", items, now=NOW)
    runs, exists = qa_lists.list_runs(engine)
    assert exists and len(runs) == 1
    assert runs[0]["per_evaluator"] == {"(no evaluator)": 1, "s-100": 2}
    assert runs[0]["shortfall"] == {"s-101": 2} and runs[0]["shortfall_total"] == 2
    assert (runs[0]["population_size"], runs[0]["item_count"], runs[0]["seed"]) == (10, 3, 42)
    assert qa_lists.list_runs(engine, "another")[0] == []
    qa_state.fill_qa_list(warehouse, "r2", "another", items[:1], shortfall={"_total": 4}, now=NOW)
    [another], _ = qa_lists.list_runs(engine, "another")
    assert another["shortfall"] == {"total": 4} and another["per_evaluator"] == {"s-100": 1}

    # The QA signals of an item's interaction come with it; provider text never becomes a spreadsheet formula.
    signals = {"display_id": "77", "csat_score": 1.0, "sentiment_score": 12.5, "tags": '["refund"]'}
    with engine.begin() as conn:
        conn.execute(t.interactions.insert(), [{**_interaction(1, "hd", NOW, "closed", 2), **signals,
                                                "close_reason": "=cmd"}])  # fmt: skip
    table = list(csv.DictReader(io.StringIO("".join(qa_lists.list_csv(engine, "r1")))))
    assert {k: table[1][k] for k in ("interaction_id", *signals, "status", "close_reason")} == {
        "interaction_id": "c1",
        "display_id": "77",
        "csat_score": "1.0",
        "sentiment_score": "12.5",
        "tags": '["refund"]',
        "status": "closed",
        "close_reason": "'=cmd",
    }
    assert table[0]["display_id"] == table[0]["csat_score"] == ""  # no such interaction (any more)
    assert [r["rank"] for r in table] == ["1", "2", "3"]
    assert table[-1]["interaction_id"] == "'=HYPERLINK(1)"  # never a spreadsheet formula
    assert table[1]["agent_id"] == "'\t=1+1"
    assert [r["evaluator_id"] for r in table] == ["", "s-100", "s-100"]
    assert {r["list_id"] for r in table} == {"weekly"} and {r["list_run_id"] for r in table} == {"r1"}
    assert qa_lists.list_csv(engine, "nope") is None


def test_totals_are_counted_once_and_again_only_after_a_load_or_a_retention_run(warehouse, monkeypatch):
    engine = warehouse.engine
    with engine.begin() as conn:
        conn.execute(t.interactions.insert(), [_interaction(n, "hd", NOW, "open", 2) for n in range(4)])
    counted: list[list[str]] = []
    real_count = totals_module._count
    monkeypatch.setattr(totals_module, "_count", lambda conn, ids: counted.append(ids) or real_count(conn, ids))

    assert totals_module.totals(engine, ["hd", "empty"], NOW) == {"hd": {"open": (4, 8)}, "empty": {}}
    assert totals_module.totals(engine, ["hd", "empty"], NOW + timedelta(minutes=5)) == {
        "hd": {"open": (4, 8)},
        "empty": {"open": (0, 0)},
    }
    assert counted == [["hd", "empty"]]  # the second request read cx_status_totals only

    later = NOW + timedelta(hours=1)  # a load closes one interaction: its loaded_at moves
    with engine.begin() as conn:
        conn.execute(
            t.interactions.update()
            .where(t.interactions.c.interaction_id == "c1")
            .values(status="closed", message_count=5, loaded_at=later)
        )
    assert totals_module.totals(engine, ["hd", "empty"], later)["hd"] == {"open": (3, 6), "closed": (1, 5)}
    assert counted[-1] == ["hd"]

    with engine.begin() as conn:  # retention deleted rows and logged it
        conn.execute(t.interactions.delete().where(t.interactions.c.interaction_id == "c2"))
        conn.execute(
            t.retention_log.insert().values(
                integration_id="hd", run_at=later, cutoff=NOW, dry_run=False,
                interactions_deleted=1, messages_deleted=2, rejected_deleted=0,
            )
        )  # fmt: skip
    assert totals_module.totals(engine, ["hd"], later)["hd"] == {"open": (2, 4), "closed": (1, 5)}
    stale = later + timedelta(seconds=settings.UI_TOTALS_MAX_AGE_SECONDS + 1)
    totals_module.totals(engine, ["hd"], stale)
    assert counted[-2:] == [["hd"], ["hd"]] and len(counted) == 4  # a too-old row is recounted


def test_completeness_records_show_the_days_that_differ_first(warehouse):
    engine = warehouse.engine
    with engine.connect() as conn:
        assert reconciliation(conn, ["hd"], existing_tables(conn)) == {"hd": []}  # no reconciliation DAG yet
    add_reconciliation(engine, "hd", NOW)
    day = NOW.date()
    with engine.connect() as conn:
        shown = reconciliation(conn, ["hd", "other"], existing_tables(conn))
    assert shown["other"] == []
    # the day the reconciliation could not repair first, then the newest; the repaired day (7) is complete again
    assert [(str(r["day"])[:10], r["differs"]) for r in shown["hd"]] == [
        (str(day - timedelta(days=5)), True),
        *[(str(day - timedelta(days=n)), False) for n in (0, 1, 2, 3, 4, 6)],
    ]
    assert shown["hd"][0]["warning"] == DIFFERING_DAY_WARNING and shown["hd"][0]["missing"] == 2
    assert set(shown["hd"][0]) == {*RECONCILIATION_COLUMNS, "differs"}


def test_request_statistics_of_the_last_day_per_integration(warehouse):
    from cxsync.http.client import RequestStats
    from cxsync.ui.warehouse_reads import request_stats

    def stats(requests: int, rate_limited: int = 0) -> RequestStats:
        return RequestStats(requests=requests, retries=1, rate_limited=rate_limited, waited_seconds=1.5)

    warehouse.record_request_stats("hd", stats(100, 2), {"dag_id": "cxsync_hd_backfill"}, at=NOW - timedelta(hours=1))
    warehouse.record_request_stats("hd", stats(50), at=NOW - timedelta(hours=23))
    warehouse.record_request_stats("hd", stats(999), at=NOW - timedelta(hours=25))  # older than a day
    warehouse.record_request_stats("other", stats(7), at=NOW)
    with warehouse.engine.connect() as conn:
        shown = request_stats(conn, ["hd", "none"], NOW, existing_tables(conn))
    assert shown["none"] is None
    hd = shown["hd"]
    assert (hd["tasks"], hd["requests"], hd["retries"], hd["rate_limited"], hd["waited_seconds"]) == (2, 150, 2, 2, 3.0)


def test_redaction_statistics_per_integration_sum_the_last_days_counts(warehouse):
    from cxsync.ui.warehouse_reads import redaction_stats

    def tally(scanned: int, redacted: int, **by_entity: int) -> dict:
        return {"interactions": 1, "messages_scanned": scanned, "messages_redacted": redacted, "by_entity": by_entity}

    warehouse.record_redaction_stats("hd", tally(10, 3, EMAIL=2, CARD=1), version="r1-a", mode="redact", at=NOW)
    warehouse.record_redaction_stats(
        "hd", tally(5, 1, EMAIL=1), version="r1-b", mode="redact", at=NOW - timedelta(days=2)
    )
    warehouse.record_redaction_stats(
        "hd", tally(99, 99, IP=9), version="r1-a", mode="redact", at=NOW - timedelta(days=31)
    )
    with warehouse.engine.connect() as conn:
        shown = redaction_stats(conn, ["hd", "none"], NOW, existing_tables(conn))
    assert shown["none"] is None
    hd = shown["hd"]
    assert (hd["tasks"], hd["messages_scanned"], hd["messages_redacted"]) == (2, 15, 4)
    assert hd["by_entity"] == {"CARD": 1, "EMAIL": 3}
    assert hd["version"] == "r1-a"  # the newest row's rules


def test_the_status_page_lists_the_redact_dag_of_integrations_that_redact():
    from cxsync.config import Integration
    from cxsync.redaction.options import RedactionPolicy
    from cxsync.ui.status import dag_kinds

    plain = Integration("a", "helpdesk", "c", "A")
    redacting = Integration("b", "helpdesk", "c", "B", pii_redaction=RedactionPolicy())
    assert "redact" not in dag_kinds(plain)
    assert dag_kinds(redacting)[-1] == "redact"
