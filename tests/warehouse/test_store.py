"""The warehouse store, on SQLite and on PostgreSQL (every test runs on both, via the `warehouse` fixture)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from cxsync import settings
from cxsync.records import AgentRecord, GroupRecord, InteractionRecord, MessageRecord, RejectedRecord, SkillRecord
from cxsync.warehouse import Warehouse, format_watermark, parse_watermark
from cxsync.warehouse import schema as t

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(mid: str, seq: int, text: str = "hello", sender_type: str = "customer", **kw) -> MessageRecord:
    return MessageRecord(
        message_id=mid,
        seq=seq,
        sent_at=T0 + timedelta(minutes=seq),
        sender_type=sender_type,
        sender_id=kw.pop("sender_id", "c1"),
        text=text,
        **kw,
    )


def interaction(iid: str, started_at: datetime = T0, n_messages: int = 2, **kw) -> InteractionRecord:
    messages = kw.pop("messages", None)
    if messages is None:
        messages = [message(f"{iid}-m{i}", i, f"text {i} of {iid}") for i in range(1, n_messages + 1)]
    return InteractionRecord(
        interaction_id=iid,
        provider=kw.pop("provider", "liveperson"),
        status=kw.pop("status", "closed"),
        started_at=started_at,
        channel=kw.pop("channel", "messaging"),
        agent_id=kw.pop("agent_id", "a1"),
        customer_id="c1",
        updated_at=started_at + timedelta(hours=1),
        messages=messages,
        raw=kw.pop("raw", {"id": iid}),
        **kw,
    )


def rows(wh: Warehouse, table: sa.Table, *where) -> list[dict]:
    with wh.engine.connect() as conn:
        query = sa.select(table).where(*where).order_by(*table.primary_key.columns)
        return [dict(r._mapping) for r in conn.execute(query)]


def count(wh: Warehouse, table: sa.Table, *where) -> int:
    with wh.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()


def backdate_rejected(wh: Warehouse, integration_id: str, when: datetime) -> None:
    with wh.engine.begin() as conn:
        conn.execute(
            t.rejected_records.update()
            .where(t.rejected_records.c.integration_id == integration_id)
            .values(rejected_at=when)
        )


# ---- interactions and messages -------------------------------------------------------------------


def test_upsert_twice_keeps_one_row_per_primary_key(warehouse):
    records = [interaction("c1"), interaction("c2", n_messages=3)]
    first = warehouse.write_interactions("lp", records)
    assert (first.inserted, first.updated, first.unchanged, first.messages_written) == (2, 0, 0, 5)
    warehouse.write_interactions("lp", records)
    assert count(warehouse, t.interactions) == 2
    assert count(warehouse, t.messages) == 5
    stored = rows(warehouse, t.interactions)
    assert [r["interaction_id"] for r in stored] == ["c1", "c2"]
    assert stored[1]["message_count"] == 3
    assert stored[0]["status"] == "closed" and stored[0]["provider"] == "liveperson"
    assert json.loads(stored[0]["raw"]) == {"id": "c1"}
    msgs = rows(warehouse, t.messages, t.messages.c.interaction_id == "c2")
    assert [(m["message_id"], m["seq"], m["text"]) for m in msgs] == [
        ("c2-m1", 1, "text 1 of c2"),
        ("c2-m2", 2, "text 2 of c2"),
        ("c2-m3", 3, "text 3 of c2"),
    ]


def test_rerun_writes_nothing_and_keeps_loaded_at(warehouse):
    records = [interaction(f"c{i}") for i in range(5)]
    warehouse.write_interactions("lp", records)
    before = {r["interaction_id"]: r["loaded_at"] for r in rows(warehouse, t.interactions)}
    again = warehouse.write_interactions("lp", [interaction(f"c{i}") for i in range(5)])
    assert (again.inserted, again.updated, again.unchanged, again.messages_written) == (0, 0, 5, 0)
    after = {r["interaction_id"]: r["loaded_at"] for r in rows(warehouse, t.interactions)}
    assert after == before


def test_same_ids_in_two_integrations_are_distinct_rows(warehouse):
    warehouse.write_interactions("lp_a", [interaction("c1")])
    warehouse.write_interactions("lp_b", [interaction("c1")])
    assert count(warehouse, t.interactions) == 2
    assert count(warehouse, t.messages) == 4


def test_changed_interaction_replaces_its_message_set(warehouse):
    warehouse.write_interactions("lp", [interaction("c1", n_messages=3, status="open"), interaction("c2")])
    loaded_before = rows(warehouse, t.interactions, t.interactions.c.interaction_id == "c1")[0]["loaded_at"]
    changed = interaction(
        "c1",
        status="closed",
        messages=[
            message("c1-m1", 1, "text 1 of c1"),
            message("c1-m3", 2, "edited", sender_type="agent", sender_id="a1"),
            message("c1-m9", 3, "new"),
        ],
    )
    stats = warehouse.write_interactions("lp", [changed, interaction("c2")])
    assert (stats.inserted, stats.updated, stats.unchanged) == (0, 1, 1)
    assert stats.messages_removed == 1  # c1-m2 is gone
    row = rows(warehouse, t.interactions, t.interactions.c.interaction_id == "c1")[0]
    assert row["status"] == "closed" and row["message_count"] == 3
    assert row["loaded_at"] > loaded_before
    msgs = rows(warehouse, t.messages, t.messages.c.interaction_id == "c1")
    assert [(m["message_id"], m["seq"], m["text"], m["sender_type"]) for m in msgs] == [
        ("c1-m1", 1, "text 1 of c1", "customer"),
        ("c1-m3", 2, "edited", "agent"),
        ("c1-m9", 3, "new", "customer"),
    ]
    # the unchanged neighbour kept its messages
    assert count(warehouse, t.messages, t.messages.c.interaction_id == "c2") == 2


def test_interaction_that_loses_all_messages(warehouse):
    warehouse.write_interactions("lp", [interaction("c1", n_messages=2)])
    warehouse.write_interactions("lp", [interaction("c1", messages=[])])
    assert count(warehouse, t.messages) == 0
    assert rows(warehouse, t.interactions)[0]["message_count"] == 0


def test_last_copy_in_a_batch_wins(warehouse):
    stats = warehouse.write_interactions("lp", [interaction("c1", status="open"), interaction("c1", status="closed")])
    assert stats.inserted == 1
    assert [r["status"] for r in rows(warehouse, t.interactions)] == ["closed"]


def test_upserts_are_batched(warehouse, monkeypatch):
    monkeypatch.setattr(settings, "UPSERT_BATCH_ROWS", 3)
    records = [interaction(f"c{i:02d}", n_messages=4) for i in range(20)]
    stats = warehouse.write_interactions("lp", records)
    assert stats.inserted == 20 and stats.messages_written == 80
    assert count(warehouse, t.interactions) == 20 and count(warehouse, t.messages) == 80
    # the existing-row lookup runs in batches too: a re-run finds all 20 unchanged
    assert warehouse.write_interactions("lp", records).unchanged == 20


def test_times_are_utc_aware_and_naive_times_are_refused(warehouse):
    paris = timezone(timedelta(hours=2))
    record = interaction("c1", started_at=datetime(2026, 3, 1, 14, 0, tzinfo=paris))
    warehouse.write_interactions("lp", [record])
    row = rows(warehouse, t.interactions)[0]
    assert row["started_at"] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert row["started_at"].utcoffset() == timedelta(0)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        warehouse.write_interactions("lp", [interaction("c2", started_at=datetime(2026, 3, 1))])
    assert count(warehouse, t.interactions) == 1


# ---- watermarks --------------------------------------------------------------------------------------


def test_watermark_format_round_trips_and_sorts_as_text():
    moments = [
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
    ]
    for moment in moments:
        assert parse_watermark(format_watermark(moment)) == moment
    assert sorted(moments) == sorted(moments, key=format_watermark)


def test_watermark_commits_with_the_rows(warehouse):
    mark = format_watermark(T0)
    assert warehouse.get_watermark("lp", "interactions") is None
    warehouse.write_interactions("lp", [interaction("c1")], stream="interactions", watermark=mark)
    assert warehouse.get_watermark("lp", "interactions") == mark
    assert warehouse.get_watermark("other", "interactions") is None
    assert count(warehouse, t.interactions) == 1


def test_failed_watermark_write_rolls_back_the_rows(warehouse, monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full while writing the watermark")

    monkeypatch.setattr(Warehouse, "_set_watermark", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        warehouse.write_interactions(
            "lp",
            [interaction("c1"), interaction("c2")],
            rejected=[RejectedRecord("interactions", "x", "bad")],
            stream="interactions",
            watermark=format_watermark(T0),
        )
    assert count(warehouse, t.interactions) == 0
    assert count(warehouse, t.messages) == 0
    assert count(warehouse, t.rejected_records) == 0
    monkeypatch.undo()
    assert warehouse.get_watermark("lp", "interactions") is None


def test_failure_after_the_rows_leaves_neither_rows_nor_watermark(warehouse):
    warehouse.write_interactions("lp", [interaction("c0")], stream="interactions", watermark=format_watermark(T0))
    # The rejected record is written after the rows and before the watermark; a NULL reason breaks
    # the NOT NULL constraint, mid-transaction.
    with pytest.raises(sa.exc.IntegrityError):
        warehouse.write_interactions(
            "lp",
            [interaction("c1"), interaction("c0", status="open")],
            rejected=[RejectedRecord("interactions", "x", None)],  # type: ignore[arg-type]
            stream="interactions",
            watermark=format_watermark(T0 + timedelta(days=1)),
        )
    assert [(r["interaction_id"], r["status"]) for r in rows(warehouse, t.interactions)] == [("c0", "closed")]
    assert count(warehouse, t.messages) == 2
    assert warehouse.get_watermark("lp", "interactions") == format_watermark(T0)


def test_watermark_never_moves_backwards(warehouse):
    late, early = format_watermark(T0 + timedelta(days=2)), format_watermark(T0)
    warehouse.set_watermark("lp", "interactions", late)
    warehouse.set_watermark("lp", "interactions", early)
    assert warehouse.get_watermark("lp", "interactions") == late
    warehouse.write_interactions("lp", [interaction("c1")], stream="interactions", watermark=early)
    assert warehouse.get_watermark("lp", "interactions") == late
    assert count(warehouse, t.interactions) == 1  # the rows still land
    later = format_watermark(T0 + timedelta(days=3))
    warehouse.set_watermark("lp", "interactions", later)
    assert warehouse.get_watermark("lp", "interactions") == later
    assert count(warehouse, t.sync_state) == 1


def test_watermarks_are_per_integration_and_stream(warehouse):
    warehouse.set_watermark("lp", "interactions", format_watermark(T0))
    warehouse.set_watermark("lp", "other", format_watermark(T0 + timedelta(days=1)))
    warehouse.set_watermark("hd", "interactions", format_watermark(T0 + timedelta(days=2)))
    assert warehouse.get_watermark("lp", "interactions") == format_watermark(T0)
    assert warehouse.get_watermark("lp", "other") == format_watermark(T0 + timedelta(days=1))
    assert warehouse.get_watermark("hd", "interactions") == format_watermark(T0 + timedelta(days=2))


# ---- agents ---------------------------------------------------------------------------------------------


def agent(aid: str, **kw) -> AgentRecord:
    return AgentRecord(
        agent_id=aid,
        login_name=f"{aid}@example.com",
        display_name=aid.upper(),
        email=f"{aid}@example.com",
        role="agent",
        is_enabled=True,
        raw={"id": aid},
        **kw,
    )


def agents_by_id(wh: Warehouse, integration_id: str = "lp") -> dict[str, dict]:
    return {r["agent_id"]: r for r in rows(wh, t.agents, t.agents.c.integration_id == integration_id)}


def test_roster_upsert_twice_keeps_one_row(warehouse):
    first = warehouse.sync_agents("lp", [agent("a1"), agent("a2", group_ids=["g2", "g1"])], synced_at=T0)
    assert (first.seen, first.inserted, first.updated, first.marked_deleted) == (2, 2, 0, 0)
    second = warehouse.sync_agents("lp", [agent("a1"), agent("a2", group_ids=["g2", "g1"])], synced_at=T0)
    assert (second.inserted, second.updated) == (0, 2)
    stored = agents_by_id(warehouse)
    assert set(stored) == {"a1", "a2"}
    assert stored["a2"]["display_name"] == "A2" and stored["a2"]["is_deleted"] is False
    assert json.loads(stored["a2"]["group_ids"]) == ["g1", "g2"]
    assert json.loads(stored["a1"]["raw"]) == {"id": "a1"}


def test_vanished_agents_are_marked_deleted_never_removed(warehouse):
    t1, t2, t3 = T0, T0 + timedelta(days=1), T0 + timedelta(days=2)
    warehouse.sync_agents("lp", [agent("a1"), agent("a2"), agent("a3")], synced_at=t1)
    warehouse.sync_agents("other", [agent("a3")], synced_at=t1)
    stats = warehouse.sync_agents("lp", [agent("a1"), agent("a2")], synced_at=t2)
    assert stats.marked_deleted == 1
    stored = agents_by_id(warehouse)
    assert set(stored) == {"a1", "a2", "a3"}
    assert stored["a3"]["is_deleted"] is True and stored["a3"]["deleted_at"] == t2
    assert stored["a3"]["first_seen_at"] == t1
    assert stored["a1"]["is_deleted"] is False
    # first_seen_at is kept; last_synced_at moves
    assert stored["a1"]["first_seen_at"] == t1 and stored["a1"]["last_synced_at"] == t2
    # another integration's agent of the same id is untouched
    assert agents_by_id(warehouse, "other")["a3"]["is_deleted"] is False
    # still gone on the next sync: counted once, deleted_at unchanged
    assert warehouse.sync_agents("lp", [agent("a1"), agent("a2")], synced_at=t3).marked_deleted == 0
    assert agents_by_id(warehouse)["a3"]["deleted_at"] == t2
    # back again: no longer deleted
    warehouse.sync_agents("lp", [agent("a1"), agent("a2"), agent("a3")], synced_at=t3)
    back = agents_by_id(warehouse)["a3"]
    assert back["is_deleted"] is False and back["deleted_at"] is None and back["first_seen_at"] == t1


def test_partial_roster_marks_nobody_deleted(warehouse):
    warehouse.sync_agents("lp", [agent("a1"), agent("a2")], synced_at=T0)
    stats = warehouse.sync_agents("lp", [agent("a1")], complete=False, synced_at=T0 + timedelta(days=1))
    assert stats.marked_deleted == 0
    assert all(not r["is_deleted"] for r in agents_by_id(warehouse).values())


def test_agent_the_provider_reports_deleted_keeps_its_first_deletion_time(warehouse):
    t1, t2 = T0, T0 + timedelta(days=1)
    warehouse.sync_agents("lp", [agent("a1", is_deleted=True)], synced_at=t1)
    warehouse.sync_agents("lp", [agent("a1", is_deleted=True)], synced_at=t2)
    row = agents_by_id(warehouse)["a1"]
    assert row["is_deleted"] is True and row["deleted_at"] == t1 and row["last_synced_at"] == t2


def test_empty_complete_roster_marks_everyone_deleted(warehouse):
    warehouse.sync_agents("lp", [agent("a1"), agent("a2")], synced_at=T0)
    assert warehouse.sync_agents("lp", [], synced_at=T0 + timedelta(days=1)).marked_deleted == 2
    assert count(warehouse, t.agents) == 2


def test_groups_and_skills_upsert(warehouse):
    assert warehouse.upsert_groups("lp", [GroupRecord("g1", "Sales"), GroupRecord("g2", "Support")]) == 2
    warehouse.upsert_groups("lp", [GroupRecord("g1", "Sales EU")])
    assert {r["group_id"]: r["name"] for r in rows(warehouse, t.agent_groups)} == {"g1": "Sales EU", "g2": "Support"}
    warehouse.upsert_skills("lp", [SkillRecord("s1", "Billing", raw={"id": 1})])
    warehouse.upsert_skills("lp", [SkillRecord("s1", "Billing")])
    assert [(r["skill_id"], r["name"]) for r in rows(warehouse, t.skills)] == [("s1", "Billing")]
    assert warehouse.upsert_groups("lp", []) == 0


# ---- rejected records ----------------------------------------------------------------------------------


def test_rejected_records_are_written_never_dropped(warehouse):
    stats = warehouse.write_interactions(
        "lp",
        [interaction("c1")],
        rejected=[
            RejectedRecord("interactions", "conv-9", "missing conversationId", raw={"info": {}}),
            RejectedRecord("interactions", None, "not JSON", raw="<html>oops</html>"),
        ],
    )
    assert stats.rejected == 2 and stats.received == 3
    assert warehouse.reject("lp", [RejectedRecord("agents", "u1", "no id")]) == 1
    assert warehouse.reject("lp", []) == 0
    stored = sorted(rows(warehouse, t.rejected_records), key=lambda r: r["id"])
    assert [(r["integration_id"], r["stream"], r["record_key"], r["reason"]) for r in stored] == [
        ("lp", "interactions", "conv-9", "missing conversationId"),
        ("lp", "interactions", None, "not JSON"),
        ("lp", "agents", "u1", "no id"),
    ]
    assert json.loads(stored[0]["raw"]) == {"info": {}}
    assert stored[1]["raw"] == "<html>oops</html>"
    assert all(r["rejected_at"].tzinfo is not None for r in stored)


def test_the_same_bad_record_met_again_stays_one_row(warehouse):
    bad = RejectedRecord("interactions", "conv-9", "missing conversationId", raw={"info": {}})
    warehouse.write_interactions("lp", [], rejected=[bad, bad])
    warehouse.write_interactions("lp", [], rejected=[bad])  # a re-run meets it again
    warehouse.reject("hd", [bad])  # another integration keeps its own
    changed = RejectedRecord("interactions", "conv-9", "missing conversationId", raw={"info": {"x": 1}})
    warehouse.write_interactions("lp", [], rejected=[changed])  # other content: another row
    stored = rows(warehouse, t.rejected_records)
    assert sorted((r["integration_id"], r["raw"]) for r in stored) == [
        ("hd", '{"info":{}}'),
        ("lp", '{"info":{"x":1}}'),
        ("lp", '{"info":{}}'),
    ]


# ---- retention --------------------------------------------------------------------------------------------


def _retention_fixture(warehouse: Warehouse, cutoff: datetime) -> None:
    old = [interaction(f"old{i}", started_at=cutoff - timedelta(days=i + 1), n_messages=i + 1) for i in range(5)]
    exact = interaction("exact", started_at=cutoff, n_messages=1)  # not older than the cutoff: kept
    new = [interaction(f"new{i}", started_at=cutoff + timedelta(days=i), n_messages=2) for i in range(3)]
    warehouse.write_interactions("lp", [*old, exact, *new], rejected=[RejectedRecord("interactions", "r-old", "x")])
    backdate_rejected(warehouse, "lp", cutoff - timedelta(days=1))
    warehouse.reject("lp", [RejectedRecord("interactions", "r-new", "y")])
    # another integration with old rows: untouched by lp's retention
    hd_old = interaction("old0", started_at=cutoff - timedelta(days=30), provider="helpdesk")
    warehouse.write_interactions("hd", [hd_old], rejected=[RejectedRecord("interactions", "r-hd", "z")])
    backdate_rejected(warehouse, "hd", cutoff - timedelta(days=30))
    warehouse.sync_agents("lp", [agent("a1")], synced_at=cutoff - timedelta(days=400))
    warehouse.set_watermark("lp", "interactions", format_watermark(cutoff - timedelta(days=100)))


def test_retention_deletes_exactly_the_rows_older_than_the_cutoff_in_every_table(warehouse):
    cutoff = T0
    _retention_fixture(warehouse, cutoff)
    result = warehouse.delete_older_than("lp", cutoff, batch_size=2)
    assert result.counts == {
        "cx_interactions": 5,
        "cx_messages": 15,
        "cx_qa_list_items": 0,
        "cx_interaction_metrics": 0,
        "cx_rejected_records": 1,
    }
    lp = t.interactions.c.integration_id == "lp"
    assert sorted(r["interaction_id"] for r in rows(warehouse, t.interactions, lp)) == ["exact", "new0", "new1", "new2"]
    assert count(warehouse, t.messages, t.messages.c.integration_id == "lp") == 1 + 3 * 2
    assert [
        r["record_key"] for r in rows(warehouse, t.rejected_records, t.rejected_records.c.integration_id == "lp")
    ] == ["r-new"]
    # other integration, roster and watermarks are not retention's business
    assert count(warehouse, t.interactions, t.interactions.c.integration_id == "hd") == 1
    assert count(warehouse, t.messages, t.messages.c.integration_id == "hd") == 2
    assert count(warehouse, t.rejected_records, t.rejected_records.c.integration_id == "hd") == 1
    assert count(warehouse, t.agents) == 1
    assert warehouse.get_watermark("lp", "interactions") is not None
    (log,) = rows(warehouse, t.retention_log)
    assert log["integration_id"] == "lp" and log["dry_run"] is False and log["cutoff"] == cutoff
    assert (log["interactions_deleted"], log["messages_deleted"], log["rejected_deleted"]) == (5, 15, 1)
    assert json.loads(log["details"]) == result.counts
    assert log["run_at"].tzinfo is not None


def test_retention_dry_run_counts_and_deletes_nothing(warehouse):
    _retention_fixture(warehouse, T0)
    before = warehouse.table_counts()
    result = warehouse.delete_older_than("lp", T0, dry_run=True)
    assert result.dry_run is True
    assert result.counts == {
        "cx_interactions": 5,
        "cx_messages": 15,
        "cx_qa_list_items": 0,
        "cx_interaction_metrics": 0,
        "cx_rejected_records": 1,
    }
    after = warehouse.table_counts()
    assert after["cx_retention_log"] == before["cx_retention_log"] + 1
    assert {k: v for k, v in after.items() if k != "cx_retention_log"} == {
        k: v for k, v in before.items() if k != "cx_retention_log"
    }
    (log,) = rows(warehouse, t.retention_log)
    assert log["dry_run"] is True and log["interactions_deleted"] == 5


def test_second_retention_run_deletes_nothing(warehouse):
    _retention_fixture(warehouse, T0)
    warehouse.delete_older_than("lp", T0)
    second = warehouse.delete_older_than("lp", T0)
    assert second.counts == {
        "cx_interactions": 0,
        "cx_messages": 0,
        "cx_qa_list_items": 0,
        "cx_interaction_metrics": 0,
        "cx_rejected_records": 0,
    }
    logs = sorted(rows(warehouse, t.retention_log), key=lambda r: r["id"])
    assert [(r["interactions_deleted"], r["messages_deleted"]) for r in logs] == [(5, 15), (0, 0)]


# ---- counts ---------------------------------------------------------------------------------------------------


def test_table_counts_overall_and_per_integration(warehouse):
    warehouse.write_interactions("lp", [interaction("c1"), interaction("c2")])
    warehouse.write_interactions("hd", [interaction("t1", n_messages=1, provider="helpdesk")])
    warehouse.sync_agents("lp", [agent("a1")])
    overall = warehouse.table_counts()
    assert overall["cx_interactions"] == 3 and overall["cx_messages"] == 5 and overall["cx_agents"] == 1
    per = warehouse.table_counts("hd")
    assert per["cx_interactions"] == 1 and per["cx_messages"] == 1 and per["cx_agents"] == 0
    assert set(overall) >= {
        "cx_agents",
        "cx_interactions",
        "cx_messages",
        "cx_sync_state",
        "cx_retention_log",
        "cx_rejected_records",
    }


# ---- the content hash: what makes an interaction "changed" ------------------------------------------------


def _hash(record: InteractionRecord) -> str:
    from cxsync.warehouse.store import _interaction_row, to_json

    raws = [to_json(m.raw) for m in record.messages]
    return _interaction_row("lp", record, T0, raws)["content_hash"]


def test_the_content_hash_follows_every_message_field_and_nothing_else():
    def base(**changes) -> InteractionRecord:
        first = {"mid": "m1", "seq": 1, "text": "hi", "raw": {"messageId": "m1", "n": 1.5}} | changes
        return interaction("c1", messages=[message(**first), message("m2", 2, "bye", raw={"messageId": "m2"})])

    same = _hash(base())
    assert _hash(base()) == same  # a fresh, equal record: unchanged
    variants = [
        base(text="hi!"),
        base(raw={"messageId": "m1", "n": 1.25}),
        base(seq=3),
        base(is_private=True),
        base(sender_id="c2"),
        base(sender_type="agent"),
        base(message_type="note"),
        base(mid="m0"),
    ]
    moved = base()
    moved.messages[0].sent_at += timedelta(seconds=1)
    variants.append(moved)
    hashes = [_hash(v) for v in variants]
    assert same not in hashes and len(set(hashes)) == len(hashes)


def test_text_that_is_not_unicode_text_still_hashes_the_same_way_twice():
    lone = interaction("c1", messages=[message("m1", 1, "cut \ud83d here")])
    replaced = interaction("c1", messages=[message("m1", 1, "cut \ufffd here")])
    assert _hash(lone) == _hash(interaction("c1", messages=[message("m1", 1, "cut \ud83d here")]))
    assert _hash(lone) != _hash(replaced)


def test_a_page_prepared_beforehand_is_written_as_a_direct_write_is(warehouse):
    records = [interaction("c2"), interaction("c1", n_messages=3)]
    ready = warehouse.prepare_interactions("prepared", records, rejected=[RejectedRecord("interactions", "x", "bad")])
    stats = warehouse.write_interactions("prepared", records, prepared=ready)
    direct = warehouse.write_interactions("direct", records, rejected=[RejectedRecord("interactions", "x", "bad")])
    assert stats == direct and stats.inserted == 2 and stats.messages_written == 5 and stats.rejected == 1

    def written(integration: str) -> list[list[dict]]:
        skip = {"integration_id", "loaded_at"}
        tables = (t.interactions, t.messages)
        found = [rows(warehouse, table, table.c.integration_id == integration) for table in tables]
        return [[{k: v for k, v in row.items() if k not in skip} for row in table_rows] for table_rows in found]

    assert written("prepared") == written("direct")
    again = warehouse.prepare_interactions("prepared", records)
    assert warehouse.write_interactions("prepared", records, prepared=again).unchanged == 2


@pytest.mark.parametrize("email_first", [True, False])
def test_an_agent_known_only_from_records_gains_what_later_records_name_whatever_the_order(warehouse, email_first):
    def record(iid: str, email: str | None) -> InteractionRecord:
        seen = AgentRecord("gone", display_name="Sven García", email=email, login_name=email)
        seen.raw = {"seen_in": "ticket events", "ID": "gone", "name": "Sven García", "email": email}
        return InteractionRecord(iid, "helpdesk", status="closed", started_at=T0, updated_at=T0, agents_seen=[seen])

    pages = [[record("t1", "sven@example.com")], [record("t2", None)]]
    for page in pages if email_first else pages[::-1]:
        warehouse.write_interactions("hd", page)
    with warehouse.engine.connect() as conn:
        row = conn.execute(sa.select(t.agents).where(t.agents.c.agent_id == "gone")).mappings().one()
    assert (row["email"], row["login_name"], row["display_name"]) == ("sven@example.com",) * 2 + ("Sven García",)
    assert '"email":"sven@example.com"' in row["raw"] and row["is_deleted"]
    # a roster sync's row is never changed by what records name
    warehouse.sync_agents("hd", [AgentRecord("gone", display_name="Sven G.", email="s@roster.example")])
    warehouse.write_interactions("hd", [record("t3", "other@example.com")])
    with warehouse.engine.connect() as conn:
        row = conn.execute(sa.select(t.agents).where(t.agents.c.agent_id == "gone")).mappings().one()
    assert (row["email"], row["display_name"]) == ("s@roster.example", "Sven G.")
