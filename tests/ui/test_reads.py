"""What the pages read and write in the warehouse, on SQLite and PostgreSQL, without a browser: totals and the
per-day chart, tables that do not exist yet, overrides, QA list runs and their CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from cxsync import settings
from cxsync.ui import matching, qa_lists
from cxsync.ui import totals as totals_module
from cxsync.ui.warehouse_reads import existing_tables, integration_counts
from cxsync.warehouse import schema as t
from support import contract_tables

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
    assert hd["unmatched_agents"] is None  # no matching table yet
    expected_days = {(NOW - timedelta(days=d, hours=1)).strftime("%Y-%m-%d"): 4 for d in range(5)}
    assert hd["per_day"] == expected_days
    assert counts["none"]["agents"] == 0 and counts["none"]["per_day"] == {}

    contract_tables.create(engine)
    contract_tables.fill_matching(engine, "hd")
    with engine.connect() as conn:
        assert integration_counts(conn, ["hd"], NOW, existing_tables(conn))["hd"]["unmatched_agents"] == 2


def test_overrides_need_the_tables_a_real_agent_and_a_real_staff_member(warehouse):
    engine = warehouse.engine
    _agents(engine, "hd", 3)
    rows, facts = matching.agent_rows(engine)
    assert [r["method"] for r in rows] == ["not matched yet"] * 3 and not facts["matches_table"]
    with pytest.raises(matching.OverrideError, match="run the cxsync_agent_matching DAG once"):
        matching.set_override(engine, "hd", "a1", None, "", "admin")

    contract_tables.create(engine)
    contract_tables.fill_matching(engine, "hd")
    with pytest.raises(matching.OverrideError, match="no agent 'a9'"):
        matching.set_override(engine, "hd", "a9", "s-100", "", "admin")
    with pytest.raises(matching.OverrideError, match="no staff member 's-999'"):
        matching.set_override(engine, "hd", "a1", "s-999", "", "admin")

    matching.set_override(engine, "hd", "a2", "s-100", "first try", "admin", now=NOW)
    matching.set_override(engine, "hd", "a2", "s-102", "same person", "qa-lead", now=NOW)  # replaces, no duplicate
    matching.set_override(engine, "hd", "a0", None, "a bot account", "qa-lead", now=NOW)
    rows, facts = matching.agent_rows(engine)
    assert [r["method"] for r in rows] == ["unmatched", "ambiguous", "email"]
    by_agent = {r["agent_id"]: r for r in rows}
    assert (by_agent["a2"]["override_staff_id"], by_agent["a2"]["override_set_by"]) == ("s-102", "qa-lead")
    assert by_agent["a2"]["override_set_at"].replace(tzinfo=UTC) == NOW
    assert by_agent["a0"]["has_override"] and by_agent["a0"]["override_staff_id"] is None
    assert by_agent["a0"]["staff_name"] == "Agent 0"  # the email match's staff row
    assert [r["agent_id"] for r in matching.agent_rows(engine, "hd", "ambiguous")[0]] == ["a1"]

    assert matching.clear_override(engine, "hd", "a2") and not matching.clear_override(engine, "hd", "a2")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cx_agent_match_overrides")).scalar_one() == 1


def test_qa_list_runs_and_csv(warehouse):
    engine = warehouse.engine
    assert qa_lists.list_runs(engine) == ([], False) and qa_lists.list_csv(engine, "r1") is None
    contract_tables.create(engine)
    items = [
        {"integration_id": "hd", "interaction_id": f"c{n}", "agent_id": "a1", "staff_id": "s-101",
         "evaluator_id": "s-100" if n < 2 else None, "rank": 3 - n}
        for n in range(3)
    ]  # fmt: skip
    items[0]["interaction_id"] = "=HYPERLINK(1)"
    contract_tables.fill_qa_list(engine, "r1", "weekly", items, now=NOW)
    runs, exists = qa_lists.list_runs(engine)
    assert exists and len(runs) == 1
    assert runs[0]["per_evaluator"] == {"(no evaluator)": 1, "s-100": 2}
    assert runs[0]["shortfall"] == {"s-101": 2} and runs[0]["shortfall_total"] == 2
    assert qa_lists.list_runs(engine, "another")[0] == []

    table = list(csv.DictReader(io.StringIO("".join(qa_lists.list_csv(engine, "r1")))))
    assert [r["rank"] for r in table] == ["1", "2", "3"]
    assert table[-1]["interaction_id"] == "'=HYPERLINK(1)"  # never a spreadsheet formula
    assert {r["list_id"] for r in table} == {"weekly"} and qa_lists.list_csv(engine, "nope") is None


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
