"""HelpDesk sandbox: agents, teams, licenses, the tickets list (silos, keyset cursor, ranges) and detail."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests

UA = {"User-Agent": "cxsync-sandbox-tests/1.0"}
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)  # tests/sandbox/conftest.py SANDBOX_NOW
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TICKET_FIELDS = {
    "ID", "shortID", "subject", "status", "priority", "requester", "assignment", "teamIDs", "tagIDs",
    "createdAt", "updatedAt", "lastMessageAt", "source", "spam", "customFields", "events",
    "rating", "ratingRequestSent",
}  # fmt: skip


def api(server) -> requests.Session:
    c = json.loads(server.connection_uris()["sandbox_helpdesk_main"])
    session = requests.Session()
    session.auth = (c["login"], c["password"])
    session.headers.update(UA)
    return session


def get(server, path: str, **params) -> requests.Response:
    return api(server).get(server.base_url + path, params=params)


def truth(server, at: str | None = None) -> list[dict]:
    answer = requests.get(server.base_url + "/_sandbox/truth/helpdesk", params={"at": at} if at else {})
    assert answer.status_code == 200
    return answer.json()["interactions"]


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_all(server, size: int = 7, **params) -> tuple[list[dict], int]:
    """Every row of a listing by following the keyset cursor; (rows, pages)."""
    session, rows, cursor, pages = api(server), [], {}, 0
    sort_by = params.get("sortBy", "createdAt")
    while True:
        answer = session.get(server.base_url + "/v1/tickets", params={**params, "pageSize": size, **cursor})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages += 1
        rows += page
        if len(page) < size:
            return rows, pages
        cursor = {"next.value": page[-1][sort_by], "next.ID": page[-1]["ID"]}
        assert pages < 1000, "the cursor does not advance"


# --------------------------------------------------------------------------------- agents, teams
def test_agents_are_a_bare_array_with_the_documented_fields(sandbox_server):
    agents = get(sandbox_server, "/v1/agents").json()
    assert isinstance(agents, list) and len(agents) >= 2
    teams = {t["ID"] for t in get(sandbox_server, "/v1/teams").json()}
    for agent in agents:
        assert set(agent) == {"ID", "email", "name", "roles", "teamIDs", "status"}
        assert UUID.match(agent["ID"]) and "@" in agent["email"]
        assert set(agent["roles"]) <= {"owner", "normal", "viewer"}
        assert agent["status"] in ("active", "invited")
        assert set(agent["teamIDs"]) <= teams
    assert Counter(r for a in agents for r in a["roles"])["owner"] == 1


def test_teams_and_licenses_are_bare_arrays(sandbox_server):
    teams = get(sandbox_server, "/v1/teams").json()
    assert isinstance(teams, list) and len(teams) == 2  # TEST_OPTIONS hd_teams
    assert all(set(t) == {"ID", "name"} for t in teams)
    licenses = get(sandbox_server, "/v1/licenses")
    assert licenses.status_code == 200 and isinstance(licenses.json(), list)


# ------------------------------------------------------------------------------------ ticket list
def test_default_listing_is_twenty_newest_tickets(sandbox_server):
    rows = get(sandbox_server, "/v1/tickets").json()
    assert isinstance(rows, list) and len(rows) == 20
    created = [parse(r["createdAt"]) for r in rows]
    assert created == sorted(created, reverse=True)
    assert all(c <= NOW for c in created)
    assert set(rows[0]) == TICKET_FIELDS


@pytest.mark.parametrize("sort_by", ["createdAt", "updatedAt", "lastMessageAt"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_keyset_paging_reads_every_ticket_once_in_order(sandbox_server, sort_by, order):
    expected = {t["interaction_id"] for t in truth(sandbox_server) if t["silo"] == "tickets"}
    rows, pages = read_all(sandbox_server, size=9, sortBy=sort_by, order=order)
    ids = [r["ID"] for r in rows]
    assert len(ids) == len(set(ids)), "a ticket came twice"
    assert set(ids) == expected
    assert pages > 10
    keys = [(r[sort_by], r["ID"]) for r in rows]
    assert keys == sorted(keys, reverse=order == "desc")


def test_cursor_is_strictly_after_value_and_id_so_ties_survive(sandbox_server):
    tickets = [t for t in truth(sandbox_server) if t["silo"] == "tickets"]
    by_created = Counter(t["started_at"] for t in tickets)
    tie = next(value for value, n in sorted(by_created.items()) if n >= 2)  # bulk-imported tickets share a second
    tied = sorted(t["interaction_id"] for t in tickets if t["started_at"] == tie)
    page = get(sandbox_server, "/v1/tickets", sortBy="createdAt", order="asc", pageSize=100, **{
        "next.value": tie, "next.ID": tied[0]})  # fmt: skip
    assert [r["ID"] for r in page.json()[: len(tied) - 1]] == tied[1:]
    value_only = get(sandbox_server, "/v1/tickets", sortBy="createdAt", order="asc", **{"next.value": tie}).json()
    assert all(parse(r["createdAt"]) > parse(tie) for r in value_only)
    desc = get(sandbox_server, "/v1/tickets", sortBy="createdAt", order="desc", pageSize=100, **{
        "next.value": tie, "next.ID": tied[-1]}).json()  # fmt: skip
    assert [r["ID"] for r in desc[: len(tied) - 1]] == tied[-2::-1]


def test_page_size_limit_is_100_and_larger_is_422(sandbox_server):
    assert len(get(sandbox_server, "/v1/tickets", pageSize=100).json()) == 100
    for bad in (101, 0, "ten"):
        answer = get(sandbox_server, "/v1/tickets", pageSize=bad)
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "pageSize"


@pytest.mark.parametrize(
    "params", [{"silo": "inbox"}, {"sortBy": "ID"}, {"order": "up"}, {"createdDateFrom": "yesterday"},
               {"next.value": "not-a-date", "next.ID": "x"}, {"next.ID": "x"}],
)  # fmt: skip
def test_invalid_list_parameters_are_422_naming_the_field(sandbox_server, params):
    answer = get(sandbox_server, "/v1/tickets", **params)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] in {*params, "next.value"}


def test_created_range_is_half_open(sandbox_server):
    tickets = [t for t in truth(sandbox_server) if t["silo"] == "tickets"]
    starts = sorted({t["started_at"] for t in tickets})
    lo, hi = starts[5], starts[25]
    rows, _ = read_all(sandbox_server, size=100, createdDateFrom=lo, createdDateTo=hi, order="asc")
    got = {r["ID"] for r in rows}
    want = {t["interaction_id"] for t in tickets if lo <= t["started_at"] < hi}
    assert got == want
    assert any(r["createdAt"] == lo for r in rows)
    assert not any(r["createdAt"] == hi for r in rows)


def test_created_range_accepts_relative_dates(sandbox_server):
    rows, _ = read_all(sandbox_server, size=100, createdDateFrom="-7d")
    assert rows
    cutoff = NOW - timedelta(days=7)
    assert all(parse(r["createdAt"]) >= cutoff for r in rows)
    tickets = [t for t in truth(sandbox_server) if t["silo"] == "tickets"]
    assert len(rows) == sum(parse(t["started_at"]) >= cutoff for t in tickets)
    day_rows, _ = read_all(sandbox_server, size=100, createdDateFrom="2025-03-10", createdDateTo="2025-03-11")
    assert day_rows and all(r["createdAt"].startswith("2025-03-10") for r in day_rows)


def test_silos_split_tickets_and_archive_holds_the_idle_ones(sandbox_server):
    silos = {}
    for silo in ("tickets", "archive", "spam", "trash"):
        rows, _ = read_all(sandbox_server, size=100, silo=silo)
        silos[silo] = rows
    ids = [r["ID"] for rows in silos.values() for r in rows]
    assert len(ids) == len(set(ids)), "a ticket sits in two silos"
    assert silos["archive"] and silos["tickets"] and silos["spam"]
    idle = NOW - timedelta(days=60)
    assert all(parse(r["updatedAt"]) <= idle for r in silos["archive"])
    assert all(parse(r["updatedAt"]) > idle for r in silos["tickets"])
    assert all(r["spam"] for r in silos["spam"]) and not any(r["spam"] for r in silos["tickets"])


def test_tickets_move_to_archive_after_idle_days(sandbox_factory):
    server = sandbox_factory(hd_archive_idle_days=2)
    before = {r["ID"] for r in read_all(server, size=100)[0]}
    assert requests.post(server.base_url + "/_sandbox/clock", json={"advance": "3d"}).ok
    now = NOW + timedelta(days=3)
    archived, _ = read_all(server, size=100, silo="archive")
    current, _ = read_all(server, size=100, silo="tickets")
    moved = before & {r["ID"] for r in archived}
    assert moved, "no ticket went from tickets to archive"
    assert not moved & {r["ID"] for r in current}
    assert all(parse(r["updatedAt"]) <= now - timedelta(days=2) for r in archived)
    assert all(parse(r["updatedAt"]) > now - timedelta(days=2) for r in current)
    ticket = next(iter(moved))
    detail = get(server, f"/v1/tickets/{ticket}")
    assert detail.status_code == 200  # archived tickets stay readable by ID


def test_list_rows_carry_only_the_newest_events(sandbox_server):
    rows = get(sandbox_server, "/v1/tickets", pageSize=50, sortBy="updatedAt").json()
    cut = 0
    for row in rows:
        full = get(sandbox_server, f"/v1/tickets/{row['ID']}").json()
        assert len(row["events"]) <= 3
        assert row["events"] == full["events"][-len(row["events"]) :]
        cut += len(full["events"]) > len(row["events"])
        assert {k: v for k, v in row.items() if k != "events"} == {k: v for k, v in full.items() if k != "events"}
    assert cut > 0


def test_delete_moves_a_ticket_to_trash(sandbox_server):
    session = api(sandbox_server)
    victim = get(sandbox_server, "/v1/tickets").json()[0]["ID"]
    assert session.delete(f"{sandbox_server.base_url}/v1/tickets/{victim}").status_code == 204
    assert victim not in {r["ID"] for r in read_all(sandbox_server, size=100)[0]}
    assert victim in {r["ID"] for r in read_all(sandbox_server, size=100, silo="trash")[0]}
    assert get(sandbox_server, f"/v1/tickets/{victim}").status_code == 200


# ---------------------------------------------------------------------------------- ticket detail
def test_ticket_detail_by_id_and_404s(sandbox_server):
    row = get(sandbox_server, "/v1/tickets").json()[0]
    detail = get(sandbox_server, f"/v1/tickets/{row['ID']}")
    assert detail.status_code == 200
    assert set(detail.json()) == TICKET_FIELDS
    for unknown in (row["shortID"], "00000000-0000-4000-8000-000000000000", row["ID"][:-1] + "0"):
        if unknown == row["ID"]:
            continue
        answer = get(sandbox_server, f"/v1/tickets/{unknown}")
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"


def test_ticket_detail_has_every_kind_of_event(sandbox_server):
    seen: Counter = Counter()
    examples: dict[str, dict] = {}
    for record in truth(sandbox_server)[-150:]:
        detail = get(sandbox_server, f"/v1/tickets/{record['interaction_id']}").json()
        ids = [e["ID"] for e in detail["events"]]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
        dates = [e["date"] for e in detail["events"]]
        assert dates == sorted(dates)
        for event in detail["events"]:
            assert event["author"]["type"] in ("agent", "client", "system")
            assert {"ID", "name", "email"} <= set(event["author"])
            kind = event["type"]
            if kind == "message":
                m = event["message"]
                assert {"text", "richTextHtml", "isPrivate"} <= set(m)
                if m["isPrivate"]:
                    kind = "private note"
                    assert event["author"]["type"] == "agent"
                elif not m["text"] and event.get("attachments", {}).get("files"):
                    kind = "attachment only"
            elif kind == "status":
                assert set(event["status"]) == {"old", "new"}
                assert event["status"]["new"] in ("open", "pending", "onhold", "solved", "closed")
            elif kind == "assignment":
                assert set(event["assignment"]) == {"old", "new"}
                assert set(event["assignment"]["new"]) == {"team", "agent"}
            seen[kind] += 1
            examples.setdefault(kind, event)
    for kind in ("message", "private note", "attachment only", "status", "assignment"):
        assert seen[kind], f"no {kind} event in 150 tickets"
    assert {"tags", "merge"} & set(seen), "no event of a type outside the documented ones"
    assert "<p>" in examples["message"]["message"]["richTextHtml"]


def test_ticket_fields_follow_the_events(sandbox_server):
    rows = get(sandbox_server, "/v1/tickets", pageSize=100, sortBy="updatedAt").json()
    for row in rows[:40]:
        t = get(sandbox_server, f"/v1/tickets/{row['ID']}").json()
        events = t["events"]
        statuses = [e["status"]["new"] for e in events if e["type"] == "status"]
        assert t["status"] == (statuses[-1] if statuses else "open")
        assert t["updatedAt"] == events[-1]["date"]
        assert t["lastMessageAt"] == [e["date"] for e in events if e["type"] == "message"][-1]
        assert t["createdAt"] == events[0]["date"]
        assignments = [e["assignment"]["new"] for e in events if e["type"] == "assignment"]
        if assignments:
            assert t["assignment"] == assignments[-1]
        assert t["teamIDs"] == [t["assignment"]["team"]["ID"]]
        assert UUID.match(t["ID"]) and t["shortID"] != t["ID"]
        assert isinstance(t["priority"], int) and {"email", "name"} <= set(t["requester"])


# ------------------------------------------------------------------------------------------- QA signals
def test_tags_list_names_every_tag_id_tickets_carry(sandbox_server):
    tags = get(sandbox_server, "/v1/tags").json()
    assert tags and all(set(t) == {"ID", "name"} for t in tags)
    known = {t["ID"] for t in tags}
    carried = {tag for record in truth(sandbox_server) for tag in record["ticket"]["tagIDs"]}
    assert carried and carried <= known


def test_rating_comes_once_the_ticket_is_solved_and_attachments_are_files(sandbox_server):
    records = truth(sandbox_server)
    seen = {"good": 0, "bad": 0, None: 0}
    for record in records:
        ticket = record["ticket"]
        solved = any(e["type"] == "status" and e["status"]["new"] in ("solved", "closed") for e in ticket["events"])
        assert ticket["rating"] in ("good", "bad", None)
        if not solved:
            assert ticket["rating"] is None and ticket["ratingRequestSent"] is False
        elif ticket["ratingRequestSent"]:
            seen[ticket["rating"]] += 1
        else:
            assert ticket["rating"] is None
    assert all(seen.values()), seen  # good, bad, and asked but never answered
    files = [f for r in records for e in r["ticket"]["events"] for f in e.get("attachments", {}).get("files", [])]
    assert files and all({"name", "url", "type", "size"} <= set(f) for f in files)
