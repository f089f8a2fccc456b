"""LivePersonSource against the sandbox over real HTTP: windows, changes, paging, partial answers,
truncated records, result sets that move while paging, roster, and rejected records."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest

from cxsync.config import Integration
from cxsync.errors import PermissionDenied, RetriableError
from cxsync.hooks.liveperson import LivePersonHook, users_permission_message
from cxsync.sources.liveperson import LivePersonSource
from support.liveperson import (
    LPSandbox,
    actual_interaction,
    assert_equal_to_truth,
    day_windows,
    export_connections,
    start_lp_sandbox,
)


@pytest.fixture
def lp(monkeypatch) -> LPSandbox:
    sandbox = start_lp_sandbox()
    export_connections(sandbox, monkeypatch)
    yield sandbox
    sandbox.server.stop()


@pytest.fixture
def lp_busy(monkeypatch) -> LPSandbox:
    """250 conversations a day: a day window needs three pages of 100."""
    sandbox = start_lp_sandbox(lp_conversations_per_day=250, lp_days=2, lp_messages="2:4")
    export_connections(sandbox, monkeypatch)
    yield sandbox
    sandbox.server.stop()


def source(conn_id: str = "sandbox_liveperson_main", hook: LivePersonHook | None = None, **options) -> LivePersonSource:
    integration = Integration(id="lp_test", provider="liveperson", conn_id=conn_id, label="test", options=options)
    return LivePersonSource(integration, hook=hook)


def collect(pages) -> tuple[list, list, list[str]]:
    records, rejected, labels = [], [], []
    for page in pages:
        records += page.records
        rejected += page.rejected
        labels.append(page.label)
    return records, rejected, labels


def started_in(truth: list[dict], start: datetime, end: datetime) -> list[dict]:
    return [t for t in truth if start <= datetime.fromisoformat(t["started_at"]) < end]


# ---- windows ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("conn_id", ["sandbox_liveperson_main", "sandbox_liveperson_oauth2"])
def test_day_windows_load_every_conversation_exactly_once(lp, conn_id):
    src = source(conn_id)
    now = src.server_now()
    assert now == lp.now()  # the provider's clock, from its Date header
    end = now - timedelta(minutes=7, seconds=13)  # boundaries off the 10-minute grid: the API rounds them
    seen: dict[str, object] = {}
    for start, stop in day_windows(end, 7):
        records, rejected, _ = collect(src.window(start, stop))
        assert not rejected
        for record in records:
            assert start <= record.started_at < stop
            assert record.interaction_id not in seen, "a conversation loaded by two windows"
            seen[record.interaction_id] = actual_interaction(record)
    truth = started_in(lp.truth(), end - timedelta(days=7), end)
    assert len(truth) > 50
    assert_equal_to_truth(seen, truth)


def test_post_survey_dialogs_are_marked_and_the_conversation_ends_with_the_main_dialog(lp):
    src = source()
    now = src.server_now()
    records, rejected, _ = collect(src.window(now - timedelta(days=7), now))
    assert not rejected
    surveyed = [r for r in records if any(m.dialog_type == "post_survey" for m in r.messages)]
    assert len(surveyed) > 5
    for record in surveyed:
        info_end = record.raw["info"]["endTimeL"]  # includes the survey dialog
        survey_messages = [m for m in record.messages if m.dialog_type == "post_survey"]
        assert record.ended_at is not None and record.ended_at.timestamp() * 1000 < info_end
        assert all(m.sent_at > record.ended_at for m in survey_messages)
        assert all(m.sent_at <= record.ended_at for m in record.messages if m.dialog_type == "main")
        # the survey's answer is the CSAT (1-5), as `info.csat` says too
        assert record.csat_score == float(survey_messages[-1].text) == record.raw["info"]["csat"]


def test_qa_signals_come_from_the_record(lp):
    src = source()
    now = src.server_now()
    records, _, _ = collect(src.window(now - timedelta(days=7), now))
    for record in records:
        info = record.raw["info"]
        assert record.sentiment_score == info["mcs"] and 0 <= record.sentiment_score <= 100
        assert record.skill == info["latestSkillName"]
        assert record.agent_group == info.get("latestAgentGroupName")
        assert record.close_reason == info.get("closeReason")
        for message in record.messages:
            file = (message.raw.get("messageData") or {}).get("file")
            if file:
                assert message.attachments == [{"name": file["caption"], "type": file["fileType"], "size": None}]
            else:
                assert message.attachments == []
    assert any(m.attachments for r in records for m in r.messages)
    assert any(r.agent_group for r in records) and any(r.close_reason for r in records)


def test_a_window_pages_by_100_until_the_count(lp_busy, caplog):
    src = source()
    now = src.server_now()
    lp_busy.reset_counters()
    records, _, labels = collect(src.window(now - timedelta(days=1), now))
    assert len(records) == len(started_in(lp_busy.truth(), now - timedelta(days=1), now)) > 200
    assert len(labels) == lp_busy.lp_requests("conversations_search") == 3
    assert labels[-1].endswith("page 3 of 3")
    assert len({r.interaction_id for r in records}) == len(records)


def test_windows_wider_than_three_months_are_split(lp):
    src = source()
    now = src.server_now()
    lp.reset_counters()
    records, _, labels = collect(src.window(now - timedelta(days=120), now))  # one request would be a 400
    assert lp.lp_requests("conversations_search") == 2 and lp.lp_requests(status=400) == 0
    assert "part 2 of 2" in labels[-1]
    assert len(records) == len(lp.truth())


# ---- incomplete answers ------------------------------------------------------------------------------------


def test_partial_answers_are_asked_again(lp_busy):
    src = source()
    now = src.server_now()
    expected = started_in(lp_busy.truth(), now - timedelta(days=1), now)
    lp_busy.faults(p_partial=0.3)
    records, _, _ = collect(src.window(now - timedelta(days=1), now))
    assert lp_busy.fault_count("partial") > 0
    assert_equal_to_truth({r.interaction_id: actual_interaction(r) for r in records}, expected)


def test_an_answer_that_stays_partial_is_never_accepted(lp):
    src = source(partial_retries=2)
    now = src.server_now()
    lp.faults(p_partial=1.0)
    lp.reset_counters()
    with pytest.raises(RetriableError, match="only partially"):
        collect(src.window(now - timedelta(days=1), now))
    assert lp.lp_requests("conversations_search") == 3


def test_truncated_records_are_fetched_again_by_id_in_batches_of_at_most_100(lp_busy):
    src = source()
    now = src.server_now()
    expected = started_in(lp_busy.truth(), now - timedelta(days=1), now)
    sent = []
    src.hook.get_conn().session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    lp_busy.faults(p_is_partial=0.6)
    records, _, _ = collect(src.window(now - timedelta(days=1), now))
    assert lp_busy.fault_count("is_partial") > 100
    by_id = [json.loads(r.body) for r in sent if "/conversation/search" in r.url]
    assert by_id and all(1 <= len(body["conversationIds"]) <= 100 for body in by_id)
    assert "source=cxsync" in next(r.url for r in sent if "/conversation/search" in r.url)
    assert_equal_to_truth({r.interaction_id: actual_interaction(r) for r in records}, expected)


# ---- moving result sets --------------------------------------------------------------------------------------


class ClockMovingHook(LivePersonHook):
    """Moves the sandbox clock right after the first search page: the result set changes mid-paging."""

    def __init__(self, conn_id: str, lp: LPSandbox, advance: str):
        super().__init__(conn_id)
        self.lp, self.advance, self.pages = lp, advance, 0

    def search_conversations(self, body, *, offset=0, limit=100, **retry):
        answer = super().search_conversations(body, offset=offset, limit=limit, **retry)
        self.pages += 1
        if self.pages == 1:
            self.lp.advance(self.advance)
        return answer


def test_a_result_set_that_moves_while_paging_is_paged_again_without_loss_or_duplicates(lp_busy, caplog):
    hook = ClockMovingHook("sandbox_liveperson_main", lp_busy, "2h")
    src = source(hook=hook)
    now = src.server_now()
    since = now - timedelta(hours=20)
    with caplog.at_level(logging.WARNING):
        records, _, labels = collect(src.changes(since, now))
    assert any("moved while paging" in r.getMessage() for r in caplog.records)
    assert any("(pass 2)" in label for label in labels)
    # Everything the query answers once the clock stopped moving was delivered, each copy once.
    final, _, _ = collect(source().changes(since, now))
    delivered = set()
    for record in records:
        # A copy comes again only when the provider's record changed meanwhile (an upsert, not a duplicate).
        key = json.dumps([record.interaction_id, record.raw, [m.raw for m in record.messages]], default=str)
        assert key not in delivered, "the same copy delivered twice"
        delivered.add(key)
    assert {r.interaction_id for r in final} <= {r.interaction_id for r in records}
    latest = {r.interaction_id: actual_interaction(r) for r in records}  # the last copy wins, as in the warehouse
    assert all(latest[r.interaction_id] == actual_interaction(r) for r in final)


# ---- changes ---------------------------------------------------------------------------------------------------


def test_changes_pick_up_closed_and_new_conversations(lp):
    src = source()
    t0 = src.server_now()
    open_then = {t["interaction_id"] for t in lp.truth() if t["status"] == "OPEN"}
    lp.advance("1d")
    t1 = src.server_now()
    records, _, _ = collect(src.changes(t0, t1))
    changed = {r.interaction_id: actual_interaction(r) for r in records}
    truth = lp.truth()
    since = t0 - src.options.overlap
    touched = [t for t in truth if datetime.fromisoformat(t["updated_at"]) >= t0]
    assert {t["interaction_id"] for t in touched} <= set(changed)
    assert all(r.updated_at >= since - timedelta(minutes=10) for r in records)  # LivePerson rounds `from` down
    # What it loaded is what the provider holds now: closed ones closed, new messages in.
    assert_equal_to_truth(changed, [t for t in truth if t["interaction_id"] in changed])
    closed_since = [i for i in open_then if changed.get(i, {}).get("status") == "closed"]
    new = [t for t in touched if datetime.fromisoformat(t["started_at"]) >= t0]
    assert closed_since and new


def test_first_run_without_a_watermark_looks_back(lp):
    src = source(open_conversation_days=30)
    now = src.server_now()
    records, _, _ = collect(src.changes(None, now))
    assert_equal_to_truth({r.interaction_id: actual_interaction(r) for r in records}, lp.truth())


def test_nothing_changed_costs_one_search(monkeypatch):
    quiet = start_lp_sandbox(lp_conversations_per_day=0)
    try:
        export_connections(quiet, monkeypatch)
        for conn_id, expected_requests in (("sandbox_liveperson_oauth1", 2), ("sandbox_liveperson_main", 3)):
            src = source(conn_id)
            quiet.reset_counters()
            now = src.server_now()
            pages = list(src.changes(now - timedelta(hours=24), now))
            assert [p.records for p in pages] == [[]]  # one empty page: it carries the watermark
            assert quiet.lp_requests("conversations_search") == 1
            assert quiet.lp_requests() == expected_requests  # + CSDS (+ one token)
    finally:
        quiet.server.stop()


@pytest.mark.parametrize("accepted", ["object", "number"])
def test_latest_update_time_falls_back_to_the_other_reading_once_and_remembers_it(monkeypatch, accepted):
    from cxsync.hooks.liveperson import LATEST_UPDATE_NUMBER, LATEST_UPDATE_OBJECT

    strict = start_lp_sandbox(lp_latest_update_time=accepted)
    both = start_lp_sandbox()
    try:
        export_connections(strict, monkeypatch)
        src = source("sandbox_liveperson_oauth1")
        now = src.server_now()
        strict.reset_counters()
        first = collect(src.changes(now - timedelta(hours=24), now))[0]
        refused = strict.lp_requests("conversations_search", 400)
        assert refused == (1 if accepted == "number" else 0)  # the object reading is tried first
        reading = {"object": LATEST_UPDATE_OBJECT, "number": LATEST_UPDATE_NUMBER}[accepted]
        assert src.hook.latest_update_reading() == reading
        # remembered: the next run of this connection sends the accepted reading at once
        again = source("sandbox_liveperson_oauth1")
        collect(again.changes(now - timedelta(hours=12), now))
        assert strict.lp_requests("conversations_search", 400) == refused
        # both readings find the same changes
        export_connections(both, monkeypatch)
        expected = collect(source("sandbox_liveperson_oauth1").changes(now - timedelta(hours=24), now))[0]
        assert sorted(r.interaction_id for r in first) == sorted(r.interaction_id for r in expected) != []
    finally:
        strict.server.stop()
        both.server.stop()


# ---- roster ------------------------------------------------------------------------------------------------------


def test_roster_has_every_agent_deleted_ones_too_with_groups_and_skills(lp):
    roster = source().roster()
    users = LivePersonHook("sandbox_liveperson_main").users()
    assert {a.agent_id for a in roster.agents} == {str(u["id"]) for u in users}
    assert any(a.is_deleted for a in roster.agents) and any(not a.is_deleted for a in roster.agents)
    # roles from `profileIds` through the Profiles API: the account admin is not an agent
    roles = {str(u["id"]): a.role for u in users for a in roster.agents if a.agent_id == str(u["id"])}
    assert roles["3600000001"] == "admin" and set(roles.values()) == {"admin", "agent", "bot"}
    assert len(roster.groups) == 3 and len(roster.skills) == 4 and roster.complete and not roster.rejected
    assert roster.warnings == []


def test_roster_of_a_guide_made_key_loads_agents_and_names_each_missing_privilege(lp, warehouse):
    from cxsync.pipeline import sync_roster
    from cxsync.ui.warehouse_reads import watermarks

    src = source("sandbox_liveperson_guide")
    roster = src.roster()
    assert len(roster.agents) == 8 and roster.groups == [] and roster.skills == []
    assert {a.role for a in roster.agents} == {"agent", "bot"}  # no Profiles API: managerOf and user type only
    assert len(roster.warnings) == 3
    for privilege, resource in (("Agent Groups", "agentGroups"), ("Skills", "skills"), ("Profiles", "profiles")):
        assert any(f'"{privilege} API Read"' in w and resource in w for w in roster.warnings)
    # the roster sync logs them and keeps them where the status page reads them
    result = sync_roster(src.integration, src, warehouse)
    assert result["agents"] == 8 and len(result["warnings"]) == 3
    with warehouse.engine.connect() as conn:
        rows = watermarks(conn, [src.integration.id], {"cx_sync_state"})[src.integration.id]
    stored = json.loads(next(r["watermark"] for r in rows if r["stream"] == "roster_warnings"))
    assert stored == roster.warnings
    # a later sync with every privilege clears them
    full = source()
    sync_roster(src.integration, full, warehouse)
    with warehouse.engine.connect() as conn:
        rows = watermarks(conn, [src.integration.id], {"cx_sync_state"})[src.integration.id]
    assert json.loads(next(r["watermark"] for r in rows if r["stream"] == "roster_warnings")) == []


def test_roster_without_the_users_permission_fails_with_the_plain_message(lp):
    with pytest.raises(PermissionDenied) as info:
        source("sandbox_liveperson_nousers").roster()
    assert str(info.value).startswith(users_permission_message("sandbox_liveperson_nousers"))


# ---- rejected records --------------------------------------------------------------------------------------------


class CorruptingHook(LivePersonHook):
    """Spoils two records of every answer the way a provider bug might."""

    def search_conversations(self, body, *, offset=0, limit=100, **retry):
        answer = super().search_conversations(body, offset=offset, limit=limit, **retry)
        records = answer["conversationHistoryRecords"]
        records[0]["info"]["status"] = "ARCHIVED"
        del records[1]["info"]["conversationId"]
        return answer


def test_unmappable_records_are_rejected_with_the_reason_and_the_run_goes_on(lp):
    src = source(hook=CorruptingHook("sandbox_liveperson_main"))
    now = src.server_now()
    records, rejected, _ = collect(src.window(now - timedelta(days=2), now))
    assert len(rejected) == 2
    assert {r.stream for r in rejected} == {"interactions"}
    assert "neither OPEN nor CLOSE" in rejected[0].reason and rejected[0].record_key
    assert "conversationId` is missing" in rejected[1].reason and rejected[1].record_key is None
    assert rejected[1].raw["info"]["startTimeL"]
    assert len(records) == len(started_in(lp.truth(), now - timedelta(days=2), now)) - 2


def test_offsets_asked_side_by_side_give_the_pages_of_one_at_a_time_in_order(monkeypatch):
    """With answers finishing out of order (latency jitter) and failing now and then (5xx, retried by the request
    layer), several offsets in flight give the same pages, in the same order, as one request at a time."""
    sandbox = start_lp_sandbox(lp_conversations_per_day=450, lp_days=2, lp_messages="1:2")
    try:
        sandbox.faults(latency_ms=15, latency_jitter_ms=15, p_5xx=0.15)
        end = sandbox.now()
        runs = {}
        for in_flight in (1, 8):
            export_connections(sandbox, monkeypatch, max_in_flight=in_flight, max_attempts=20)
            lp_source = source()
            try:
                runs[in_flight] = [
                    (page.label, [r.interaction_id for r in page.records])
                    for page in lp_source.window(end - timedelta(days=1), end)
                ]
            finally:
                lp_source.close()
        assert sandbox.counters()["faults"]["liveperson"]["5xx"] > 0
    finally:
        sandbox.server.stop()
    assert len(runs[1]) >= 4 and runs[8] == runs[1]
