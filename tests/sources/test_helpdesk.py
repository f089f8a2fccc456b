"""HelpDeskSource against the sandbox over real HTTP, and the pipeline around it on a real warehouse.

The exactness tests drive `cxsync.pipeline` (what the DAG tasks run) with the `warehouse` fixture, on
SQLite and PostgreSQL: after a backfill and incremental runs the warehouse equals the sandbox's ground
truth, field for field and message for message, and re-running anything changes nothing.
"""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cxsync import pipeline
from cxsync.config import ConfigError
from cxsync.errors import FatalError
from cxsync.hooks.helpdesk import HelpDeskHook, PagingRunaway
from cxsync.sources.helpdesk import CALIBRATION_ROWS, HelpDeskSource, row_is_whole
from support.helpdesk import (
    HelpDeskAdmin,
    expected_from_truth,
    integration,
    warehouse_snapshot,
    warehouse_view,
)

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


@pytest.fixture
def hd(hd_sandbox) -> HelpDeskAdmin:
    return hd_sandbox()


def load(source: HelpDeskSource, pages) -> tuple[dict, list]:
    records, rejected = {}, []
    for page in pages:
        records.update({r.interaction_id: r for r in page.records})
        rejected.extend(page.rejected)
    return records, rejected


def created_in(truth: list[dict], start: datetime, end: datetime) -> set[str]:
    return {
        t["interaction_id"]
        for t in truth
        if t["silo"] in ("tickets", "archive") and start <= datetime.fromisoformat(t["started_at"]) < end
    }


# ---- roster -----------------------------------------------------------------------------------------------


def test_roster_has_every_agent_with_roles_status_and_teams(hd):
    info = hd.info()
    present = [a for a in info["agents"] if a["deleted_at"] is None or datetime.fromisoformat(a["deleted_at"]) > T0]
    source = HelpDeskSource(integration())
    roster = source.roster()
    assert roster.complete and roster.rejected == []
    assert {a.agent_id for a in roster.agents} == {a["ID"] for a in present}
    by_id = {a.agent_id: a for a in roster.agents}
    for agent in present:
        rec = by_id[agent["ID"]]
        assert rec.email == agent["email"] and rec.display_name == agent["name"]
        assert rec.role in agent["roles"]
        assert rec.is_enabled is (agent["status"] == "active")
        assert rec.group_ids == agent["teamIDs"]
    assert {g.group_id for g in roster.groups} == {t for a in present for t in a["teamIDs"]}
    assert len(roster.groups) == 2


# ---- windows ----------------------------------------------------------------------------------------------


def test_window_reads_both_silos_and_full_ticket_histories(hd):
    truth = hd.truth()
    expected = expected_from_truth(truth)
    start, end = T0 - timedelta(days=7), T0
    source = HelpDeskSource(integration())
    records, rejected = load(source, source.window(start, end))
    assert rejected == []
    assert set(records) == created_in(truth, start, end)
    silos = {t["interaction_id"]: t["silo"] for t in truth}
    assert {silos[i] for i in records} == {"tickets", "archive"}  # archived tickets are in the backfill
    assert "spam" in set(silos.values()) and not any(silos[i] == "spam" for i in records)
    # List rows carry only the newest events; every record has the full history of its ticket.
    for iid, rec in records.items():
        assert [m.message_id for m in rec.messages] == [m["message_id"] for m in expected[iid]["messages"]]
    assert any(m.is_private for r in records.values() for m in r.messages)


def test_adjacent_windows_split_a_day_without_gaps_or_overlaps(hd):
    """Windows are half-open [start, end): a ticket created exactly at a cut belongs to the later window."""
    truth = hd.truth()
    day = T0 - timedelta(days=3)
    on_that_day = sorted(
        datetime.fromisoformat(t["started_at"])
        for t in truth
        if day <= datetime.fromisoformat(t["started_at"]) < day + timedelta(days=1)
    )
    cut = on_that_day[len(on_that_day) // 2]
    cuts = [day, cut, cut + timedelta(microseconds=500_000), day + timedelta(days=1)]
    source = HelpDeskSource(integration(page_size=5))
    seen: list[str] = []
    for start, end in itertools.pairwise(cuts):
        records, _ = load(source, source.window(start, end))
        assert set(records) == created_in(truth, start, end)
        seen += list(records)
    assert len(seen) == len(set(seen))
    assert set(seen) == created_in(truth, cuts[0], cuts[-1])
    assert created_in(truth, cut, cut + timedelta(seconds=1))  # the ticket at the cut was in a window


class FilterIgnoringHook(HelpDeskHook):
    """A server that ignores `createdDateFrom`/`createdDateTo` (the filter is UNCONFIRMED)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.list_pages = 0

    def ticket_pages(self, **kwargs):
        kwargs.pop("filters", None)
        for page in super().ticket_pages(**kwargs):
            self.list_pages += 1
            yield page


def test_window_is_right_when_the_server_ignores_the_date_filter(hd):
    truth = hd.truth()
    start, end = T0 - timedelta(days=5), T0 - timedelta(days=4)
    hook = FilterIgnoringHook("sandbox_helpdesk_main")
    source = HelpDeskSource(integration(page_size=4), hook=hook)
    records, _ = load(source, source.window(start, end))
    assert set(records) == created_in(truth, start, end)
    # Sorted by createdAt: paging stops at the first ticket past the window, long before the end of the list.
    all_pages = sum(
        1
        for silo in ("tickets", "archive")
        for _ in hook.ticket_pages(silo=silo, sort_by="createdAt", order="asc", page_size=4)
    )
    hook.list_pages = 0
    load(source, source.window(start, end))
    assert hook.list_pages < all_pages - 3


class FilterRefusingHook(HelpDeskHook):
    """A server that answers 422 to the date filter: here it gets a value the sandbox validates and refuses."""

    def ticket_pages(self, **kwargs):
        if kwargs.get("filters"):
            kwargs["filters"] = {name: "last tuesday" for name in kwargs["filters"]}
        return super().ticket_pages(**kwargs)


def test_window_lists_without_the_date_filter_when_the_server_refuses_it(hd, caplog):
    truth = hd.truth()
    start, end = T0 - timedelta(days=3), T0 - timedelta(days=2)
    source = HelpDeskSource(integration(page_size=10), hook=FilterRefusingHook("sandbox_helpdesk_main"))
    records, _ = load(source, source.window(start, end))
    assert set(records) == created_in(truth, start, end)
    assert "HelpDesk refused the created-date filter (HTTP 422" in caplog.text
    assert source.date_filter is False
    assert hd.requests_to("helpdesk_tickets", "422") == 1  # asked once per run, not once per silo or window


# ---- changes ----------------------------------------------------------------------------------------------


def test_changes_pick_up_new_tickets_messages_and_status_changes(hd):
    before = {t["interaction_id"]: t for t in hd.truth()}
    hd.advance("1d")
    now = hd.now()
    after = hd.truth()
    source = HelpDeskSource(integration())
    records, rejected = load(source, source.changes(T0, now))
    assert rejected == []
    floor = T0 - timedelta(minutes=10)
    changed = {
        t["interaction_id"]
        for t in after
        if t["silo"] in ("tickets", "archive") and datetime.fromisoformat(t["updated_at"]) >= floor
    }
    assert set(records) == changed
    new = {i for i in changed if i not in before}
    status_changed = {i for i in changed if i in before and before[i]["provider_status"] != records[i].provider_status}
    assert new and status_changed
    expected = expected_from_truth(after)
    for iid in status_changed:
        assert records[iid].provider_status == expected[iid]["provider_status"]
        assert records[iid].status == expected[iid]["status"]


def test_first_incremental_run_looks_back_the_configured_hours(hd):
    truth = hd.truth()
    source = HelpDeskSource(integration(first_run_lookback_hours=36))
    records, _ = load(source, source.changes(None, T0))
    floor = T0 - timedelta(hours=36)
    assert set(records) == {
        t["interaction_id"]
        for t in truth
        if t["silo"] in ("tickets", "archive") and datetime.fromisoformat(t["updated_at"]) >= floor
    }


@pytest.mark.parametrize(
    ("option", "value"), [("overlap_minutes", -1), ("page_size", 500), ("first_run_lookback_hours", "a day")]
)
def test_bad_options_name_the_integration_and_option(option, value):
    with pytest.raises(ConfigError, match=f"integration 'hd_test': option `{option}`"):
        HelpDeskSource(integration(**{option: value}))


class CorruptingHook(HelpDeskHook):
    """Answers one ticket without `createdAt`, as a broken record would arrive."""

    def ticket(self, ticket_id):
        ticket = super().ticket(ticket_id)
        if ticket_id == self.broken_id:
            ticket = {**ticket, "createdAt": None}
        return ticket


def test_unmappable_ticket_is_rejected_and_the_run_goes_on(hd, warehouse):
    truth = hd.truth()
    start, end = T0 - timedelta(days=2), T0 - timedelta(days=1)
    wanted = sorted(created_in(truth, start, end))
    hook = CorruptingHook("sandbox_helpdesk_main")
    hook.broken_id = wanted[0]
    source = HelpDeskSource(integration(), hook=hook)
    result = pipeline.load_window(source.integration, source, warehouse, pipeline.Window(start, end))
    assert result["rejected"] == 1 and result["conversations"] == len(wanted) - 1
    counts = warehouse.table_counts("hd_test")
    assert counts["cx_rejected_records"] == 1 and counts["cx_interactions"] == len(wanted) - 1


def test_window_survives_rate_limits_and_server_errors(hd):
    hd.derive("hd_patient", extra={"rate_limit_min_wait": 0.05, "retry_max_seconds": 0.2, "max_attempts": 12})
    hd.faults(rate_limit_rps=25, p_5xx=0.15, p_reset=0.05, p_truncate=0.05)
    truth = hd.truth()
    start, end = T0 - timedelta(days=7), T0
    source = HelpDeskSource(integration("hd_patient"))
    records, rejected = load(source, source.window(start, end))
    assert rejected == [] and set(records) == created_in(truth, start, end)
    expected = expected_from_truth(truth)
    assert all(r.message_count == expected[i]["message_count"] for i, r in records.items())
    assert hd.fault_count("rate_limit") > 0 and hd.fault_count("5xx") > 0


class VanishingHook(HelpDeskHook):
    """One listed ticket is gone (404) by the time it is fetched, as after a purge from trash."""

    def ticket(self, ticket_id):
        return super().ticket(ticket_id + "0" if ticket_id == self.gone_id else ticket_id)


def test_a_ticket_gone_between_list_and_fetch_is_skipped_with_a_warning(hd, caplog):
    truth = hd.truth()
    start, end = T0 - timedelta(days=2), T0 - timedelta(days=1)
    wanted = sorted(created_in(truth, start, end))
    hook = VanishingHook("sandbox_helpdesk_main")
    hook.gone_id = wanted[-1]
    source = HelpDeskSource(integration(), hook=hook)
    records, rejected = load(source, source.window(start, end))
    assert set(records) == set(wanted[:-1]) and rejected == []
    assert f"ticket {wanted[-1]} was listed but is gone (404)" in caplog.text


# ---- the pipeline on a warehouse: exactly the ground truth --------------------------------------------------


def backfill(source: HelpDeskSource, warehouse, weeks: int = 1) -> list[dict]:
    end = source.server_now()
    windows = pipeline.plan_windows(end, weeks)
    results = [pipeline.load_window(source.integration, source, warehouse, w) for w in windows]
    pipeline.finish_backfill(source.integration, warehouse, end)
    return results


def test_backfill_then_incremental_equals_ground_truth_and_reruns_change_nothing(hd, warehouse):
    source = HelpDeskSource(integration())
    pipeline.sync_roster(source.integration, source, warehouse)
    backfill(source, warehouse)
    truth = hd.truth()
    assert {t["silo"] for t in truth} >= {"tickets", "archive", "spam"}
    assert warehouse_view(warehouse, "hd_test") == expected_from_truth(truth)

    # Nights later: new tickets, replies, notes, status changes, archiving, agents deleted.
    inserted = status_changes = deleted_agents = 0
    before = expected_from_truth(truth)
    for step in ("1d", "7h", "3d"):
        now = hd.advance(step)
        source = HelpDeskSource(integration())
        result = pipeline.load_changes(source.integration, source, warehouse)
        deleted_agents += pipeline.sync_roster(source.integration, source, warehouse)["marked_deleted"]
        after = expected_from_truth(hd.truth())
        assert warehouse_view(warehouse, "hd_test") == after, step
        assert result["inserted"] == len(set(after) - set(before))
        assert result["watermark"] == now.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        inserted += result["inserted"]
        status_changes += sum(after[i]["provider_status"] != before[i]["provider_status"] for i in before)
        before = after
    assert inserted > 0 and status_changes > 0 and deleted_agents >= 1

    # Re-running each step changes nothing.
    snapshot = warehouse_snapshot(warehouse, "hd_test")
    again = pipeline.load_changes(source.integration, source, warehouse)
    assert (again["inserted"], again["updated"], again["rejected"]) == (0, 0, 0)
    for page in source.changes(T0, hd.now()):  # every change since the backfill, written once more
        stats = warehouse.write_interactions("hd_test", page.records, rejected=page.rejected)
        assert (stats.inserted, stats.updated, stats.unchanged) == (0, 0, len(page.records))
    for result in backfill(source, warehouse):
        assert (result["inserted"], result["updated"]) == (0, 0)
    pipeline.sync_roster(source.integration, source, warehouse)
    assert warehouse_snapshot(warehouse, "hd_test") == snapshot


def test_retention_dry_run_counts_and_the_real_run_deletes(hd, warehouse):
    source = HelpDeskSource(integration())
    backfill(source, warehouse)
    expected = expected_from_truth(hd.truth())
    cutoff = T0 - timedelta(days=3)
    old = {i for i, t in expected.items() if datetime.fromisoformat(t["started_at"]) < cutoff}
    old_messages = sum(expected[i]["message_count"] for i in old)
    assert 0 < len(old) < len(expected)
    retention = source.integration.retention  # 30 days: run it "27 days later"
    now = cutoff + timedelta(days=retention.value)

    dry = pipeline.apply_retention(source.integration, warehouse, dry_run=True, now=now)
    assert (dry["dry_run"], dry["cx_interactions"], dry["cx_messages"]) == (True, len(old), old_messages)
    assert set(warehouse_view(warehouse, "hd_test")) == set(expected)

    real = pipeline.apply_retention(source.integration, warehouse, dry_run=False, now=now)
    assert (real["cx_interactions"], real["cx_messages"]) == (len(old), old_messages)
    assert set(warehouse_view(warehouse, "hd_test")) == set(expected) - old


def test_a_ticket_deleted_at_helpdesk_keeps_its_warehouse_copy(hd, warehouse):
    """DELETE moves a ticket to `trash`, which cxsync does not read: our copy stays until our own retention."""
    source = HelpDeskSource(integration())
    backfill(source, warehouse)
    loaded = warehouse_view(warehouse, "hd_test")
    victim = sorted(loaded)[0]
    conn = hd.connection("sandbox_helpdesk_main")
    deleted = requests.delete(
        f"{hd.url}/v1/tickets/{victim}",
        auth=(conn["login"], conn["password"]),
        headers={"User-Agent": "cxsync-tests/1.0"},
        timeout=10,
    )
    assert deleted.status_code == 204
    assert {t["interaction_id"]: t["silo"] for t in hd.truth()}[victim] == "trash"
    hd.advance("1h")
    source = HelpDeskSource(integration())
    pipeline.load_changes(source.integration, source, warehouse)
    assert warehouse_view(warehouse, "hd_test")[victim] == loaded[victim]


def test_tickets_fetched_side_by_side_give_the_pages_of_one_at_a_time_in_order(hd_sandbox):
    """With answers finishing out of order (latency jitter) and failing now and then (5xx, retried by the request
    layer), several tickets in flight give the same pages, in the same order, as one request at a time."""
    hd = hd_sandbox(hd_tickets_per_day=60, hd_days=4)
    hd.faults(latency_ms=10, latency_jitter_ms=10, p_5xx=0.1)
    end = hd.now()
    runs = {}
    for in_flight in (1, 8):
        conn_id = hd.derive(f"hd_in_flight_{in_flight}", extra={"max_in_flight": in_flight, "max_attempts": 20})
        source = HelpDeskSource(integration(conn_id, page_size=25))
        try:
            runs[in_flight] = [
                (page.label, [r.interaction_id for r in page.records])
                for page in source.window(end - timedelta(days=3), end)
            ]
        finally:
            source.close()
    assert hd.fault_count("5xx") > 0
    assert len(runs[1]) >= 4 and runs[8] == runs[1]


# ---- a list that never ends -----------------------------------------------------------------------------------


class _EndlessTicketList(BaseHTTPRequestHandler):
    """Every list page full of new tickets, all created in one second inside the window: the cursor moves every
    time (new IDs), so the stalled-cursor check never fires, and the list never ends."""

    served = 0

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        size = int(query["pageSize"][0])
        type(self).served += 1
        first = type(self).served * size
        at = "2025-03-01T00:30:00Z"
        rows = [{"ID": f"t{first + i:08d}", "createdAt": at, "updatedAt": at, "status": "open"} for i in range(size)]
        body = json.dumps(rows).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return


@pytest.mark.parametrize("listing", ["window", "changes"])
def test_a_window_whose_cursor_keeps_changing_is_stopped_at_what_the_window_can_hold(monkeypatch, listing):
    _EndlessTicketList.served = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessTicketList)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = {
            "conn_type": "helpdesk",
            "host": "127.0.0.1",
            "port": server.server_address[1],
            "schema": "http",
            "login": "acc",
            "password": "dal:x",
            "extra": {"requests_per_second": 0, "allow_plain_http_loopback": True},
        }
        monkeypatch.setenv("AIRFLOW_CONN_HD_ENDLESS", json.dumps(conn))
        source = HelpDeskSource(integration("hd_endless", page_size=10, max_tickets_per_hour=100))
        start, end = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, 1, tzinfo=UTC)
        # Listing only (no ticket fetches): the rows of each page as the load sees them. The window reads from its
        # end back to the first row; the changes scan from the first (newest) row down to its floor, an hour
        # before: 30 minutes either way.
        if listing == "window":
            pages, named = (
                source._created_listing(start, end),
                "the window 2025-03-01T00:00:00Z to 2025-03-01T01:00:00Z",
            )
        else:
            pages, named = source._updated_listing(start), "the changes since 2025-03-01T00:00:00Z"
        with pytest.raises(PagingRunaway) as runaway:
            for number, _ in enumerate(pages):
                assert number < 100, "paging did not stop"
        message = str(runaway.value)
        assert isinstance(runaway.value, FatalError)
        assert named in message
        assert "max_tickets_per_hour" in message and "Retrying does not help" in message
        # 30 minutes to the window's end hold 50 tickets at 100 an hour: 5 pages of 10, plus the first and the last.
        assert _EndlessTicketList.served == 7
    finally:
        server.shutdown()
        server.server_close()


# ---- QA signals -------------------------------------------------------------------------------------------------


class TagLosingHook(HelpDeskHook):
    """A tag deleted from the account's list while tickets still carry its ID."""

    lost = "refund"

    def tags(self):
        return [t for t in super().tags() if t["name"] != self.lost]


def test_tags_are_read_once_a_run_and_an_unknown_id_is_logged(hd, caplog):
    truth = hd.truth()
    start, end = T0 - timedelta(days=7), T0
    tagged = [t for t in truth if t["tags"] and t["silo"] in ("tickets", "archive")]
    assert tagged, "the sandbox must tag some tickets"
    names = [name for t in truth if start <= datetime.fromisoformat(t["started_at"]) < end for name in t["tags"]]
    lost = max(set(names), key=names.count)  # the tag most tickets of the window carry
    hd.reset_counters()
    hook = TagLosingHook("sandbox_helpdesk_main")
    hook.lost = lost
    source = HelpDeskSource(integration(), hook=hook)
    with caplog.at_level("WARNING", logger="cxsync.sources.helpdesk"):
        records, _ = load(source, source.window(start, end))
    assert hd.requests_to("helpdesk_tags") == 1
    lost_id = next(x["ID"] for x in hd.info_tags() if x["name"] == lost)
    for ticket in (t for t in truth if t["interaction_id"] in records):
        expected = [lost_id if name == lost else name for name in ticket["tags"]]
        assert records[ticket["interaction_id"]].tags == expected
    assert sum(lost_id in r.tags for r in records.values()) >= 2  # several tickets carry the lost tag
    assert f"tag ID {lost_id}" in caplog.text and "stored as the ID" in caplog.text
    assert caplog.text.count(f"tag ID {lost_id}") == 1  # once a run, not once a ticket


def test_qa_signals_of_a_window_match_the_ground_truth(hd):
    truth = {t["interaction_id"]: t for t in hd.truth()}
    source = HelpDeskSource(integration())
    records, _ = load(source, source.window(T0 - timedelta(days=7), T0))
    rated = [r for r in records.values() if r.csat_score is not None]
    assert {r.csat_score for r in rated} == {1.0, 5.0}
    attached = [x for r in records.values() for x in r.messages if x.attachments]
    assert attached and all(set(a) == {"name", "type", "size"} for x in attached for a in x.attachments)
    for rec in records.values():
        t = truth[rec.interaction_id]
        assert (rec.csat_score, rec.tags, rec.priority, rec.display_id, rec.agent_group) == (
            t["csat_score"],
            t["tags"],
            t["priority"],
            t["display_id"],
            t["agent_group"],
        )


# ---- list rows used as tickets when they prove themselves whole --------------------------------------------------


def _week(hd, **options):
    truth = hd.truth()
    start, end = T0 - timedelta(days=7), T0
    hd.reset_counters()
    source = HelpDeskSource(integration(**options))
    records, rejected = load(source, source.window(start, end))
    assert rejected == [] and set(records) == created_in(truth, start, end)
    expected = expected_from_truth(truth)
    for iid, rec in records.items():  # every event of every ticket, whichever way it came
        assert [m.message_id for m in rec.messages] == [m["message_id"] for m in expected[iid]["messages"]]
        assert rec.raw["events"] == expected[iid]["raw"]["events"]
    return truth, records


def test_whole_list_rows_are_not_fetched_again(hd_sandbox):
    hd = hd_sandbox(hd_list_events=-1)  # every list row carries every event
    _, records = _week(hd)
    assert len(records) > 20
    # Only the run's first rows, checked against their tickets until CALIBRATION_ROWS with a middle event matched.
    assert CALIBRATION_ROWS <= hd.requests_to("helpdesk_ticket") <= CALIBRATION_ROWS + 8


def test_list_rows_cut_short_are_fetched_by_id(hd_sandbox):
    hd = hd_sandbox(hd_list_events=1)  # only the newest event on each row
    truth, records = _week(hd)
    events = {t["interaction_id"]: len(t["ticket"]["events"]) for t in truth}
    assert all(events[i] > 1 for i in records)
    assert hd.requests_to("helpdesk_ticket") == len(records)


def test_whole_and_cut_rows_of_one_listing(hd):
    """The default sandbox: rows carry their newest 3 events, so short tickets are whole and long ones cut."""
    truth, records = _week(hd)
    events = {t["interaction_id"]: len(t["ticket"]["events"]) for t in truth}
    long_ones = sum(events[i] > 3 for i in records)
    assert 0 < long_ones < len(records)
    assert long_ones + CALIBRATION_ROWS <= hd.requests_to("helpdesk_ticket") <= long_ones + CALIBRATION_ROWS + 8


class MiddleCuttingHook(HelpDeskHook):
    """A server whose list rows keep a ticket's first and last events only: the ends prove nothing then."""

    def ticket_pages(self, **kwargs):
        for page in super().ticket_pages(**kwargs):
            yield [{**row, "events": row["events"][:1] + row["events"][-1:]} for row in page]


def test_a_server_that_cuts_the_middle_is_caught_by_the_first_rows_and_every_ticket_is_fetched(hd_sandbox, caplog):
    hd = hd_sandbox(hd_list_events=-1)
    truth = hd.truth()
    start, end = T0 - timedelta(days=7), T0
    hd.reset_counters()
    source = HelpDeskSource(integration(), hook=MiddleCuttingHook("sandbox_helpdesk_main"))
    with caplog.at_level("WARNING", logger="cxsync.sources.helpdesk"):
        records, _ = load(source, source.window(start, end))
    expected = expected_from_truth(truth)
    for iid, rec in records.items():
        assert [m.message_id for m in rec.messages] == [m["message_id"] for m in expected[iid]["messages"]]
    assert "every ticket of this run is fetched by ID" in caplog.text
    assert hd.requests_to("helpdesk_ticket") == len(records)  # rows with two events never prove the middle


@pytest.mark.parametrize(
    ("change", "whole"),
    [
        ({}, True),
        ({"events": []}, False),
        ({"events": None}, False),
        ({"updatedAt": "2025-03-10T12:00:01Z"}, False),  # something newer than the newest event: cut at the end
        ({"createdAt": "2025-03-10T09:59:59Z"}, False),  # something older than the oldest: cut at the start
        ({"lastMessageAt": "2025-03-10T11:00:00Z"}, False),
        ({"lastMessageAt": None}, False),
    ],
)
def test_a_row_is_whole_only_when_its_events_reach_both_ends(change, whole):
    row = {
        "ID": "t1",
        "createdAt": "2025-03-10T10:00:00Z",
        "updatedAt": "2025-03-10T12:00:00Z",
        "lastMessageAt": "2025-03-10T11:30:00Z",
        "events": [
            {"ID": 1, "type": "message", "date": "2025-03-10T10:00:00Z"},
            {"ID": 4, "type": "message", "date": "2025-03-10T11:30:00Z"},
            {"ID": 5, "type": "status", "date": "2025-03-10T12:00:00Z"},
        ],
    }
    assert row_is_whole({**row, **change}) is whole


class FieldDroppingHook(HelpDeskHook):
    """List rows with every event but without a field the ticket itself has."""

    def ticket_pages(self, **kwargs):
        for page in super().ticket_pages(**kwargs):
            yield [{k: v for k, v in row.items() if k != "customFields"} for row in page]


def test_rows_lacking_a_field_of_the_ticket_are_not_used(hd_sandbox, caplog):
    hd = hd_sandbox(hd_list_events=-1)
    start, end = T0 - timedelta(days=2), T0
    source = HelpDeskSource(integration(), hook=FieldDroppingHook("sandbox_helpdesk_main"))
    hd.reset_counters()
    with caplog.at_level("WARNING", logger="cxsync.sources.helpdesk"):
        records, _ = load(source, source.window(start, end))
    assert records and all("customFields" in r.raw for r in records.values())
    assert "the row lacks customFields" in caplog.text
    assert hd.requests_to("helpdesk_ticket") == len(records)
