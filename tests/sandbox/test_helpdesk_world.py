"""HelpDesk sandbox: determinism per seed, history that moves with the clock, and ground truth == the API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import requests

UA = {"User-Agent": "cxsync-sandbox-tests/1.0"}
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)  # tests/sandbox/conftest.py SANDBOX_NOW
SILOS = ("tickets", "archive", "spam", "trash")


def api(server) -> requests.Session:
    c = json.loads(server.connection_uris()["sandbox_helpdesk_main"])
    session = requests.Session()
    session.auth = (c["login"], c["password"])
    session.headers.update(UA)
    return session


def get(server, path: str, **params) -> requests.Response:
    answer = api(server).get(server.base_url + path, params=params)
    return answer


def truth(server, at: datetime | None = None) -> list[dict]:
    params = {"at": at.isoformat()} if at else {}
    answer = requests.get(server.base_url + "/_sandbox/truth/helpdesk", params=params)
    assert answer.status_code == 200
    return answer.json()["interactions"]


def advance(server, delta: str) -> None:
    assert requests.post(server.base_url + "/_sandbox/clock", json={"advance": delta}).status_code == 200


def listing(server, silo: str) -> list[dict]:
    session, rows, cursor = api(server), [], {}
    while True:
        page = session.get(
            server.base_url + "/v1/tickets", params={"silo": silo, "pageSize": 100, "order": "asc", **cursor}
        ).json()
        rows += page
        if len(page) < 100:
            return rows
        cursor = {"next.value": page[-1]["createdAt"], "next.ID": page[-1]["ID"]}


def test_same_seed_same_answers_and_another_seed_differs(sandbox_factory):
    a, b, c = sandbox_factory(seed=5), sandbox_factory(seed=5), sandbox_factory(seed=6)

    def sample(server) -> tuple:
        page = get(server, "/v1/tickets", pageSize=30, sortBy="updatedAt").json()
        detail = get(server, f"/v1/tickets/{page[7]['ID']}").json()
        return get(server, "/v1/agents").json(), get(server, "/v1/teams").json(), page, detail

    assert sample(a) == sample(b)
    assert (
        json.loads(a.connection_uris()["sandbox_helpdesk_main"])["password"]
        == json.loads(b.connection_uris()["sandbox_helpdesk_main"])["password"]
    )
    assert sample(a)[2] != sample(c)[2]


def test_the_past_does_not_change_when_the_clock_moves(sandbox_factory):
    server = sandbox_factory()
    before = truth(server)
    advance(server, "3d")
    assert truth(server, at=NOW) == before
    assert truth(sandbox_factory(), at=NOW) == before


def test_tomorrow_brings_new_tickets_new_messages_status_changes_and_a_deleted_agent(sandbox_server):
    agents_before = {a["ID"]: a for a in get(sandbox_server, "/v1/agents").json()}
    before = {t["interaction_id"]: t for t in truth(sandbox_server)}
    advance(sandbox_server, "1d")
    after = {t["interaction_id"]: t for t in truth(sandbox_server)}
    agents_after = {a["ID"] for a in get(sandbox_server, "/v1/agents").json()}

    new = set(after) - set(before)
    assert new
    assert all(after[i]["started_at"] > NOW.strftime("%Y-%m-%dT%H:%M:%SZ") for i in new)
    listed = {r["ID"] for r in get(sandbox_server, "/v1/tickets", pageSize=100).json()}
    assert {i for i in new if after[i]["silo"] == "tickets"} <= listed

    common = set(before) & set(after)
    assert any(after[i]["message_count"] > before[i]["message_count"] for i in common)
    changed = [i for i in common if after[i]["provider_status"] != before[i]["provider_status"]]
    assert changed
    detail = get(sandbox_server, f"/v1/tickets/{changed[0]}").json()
    assert detail["status"] == after[changed[0]]["provider_status"]

    gone = set(agents_before) - agents_after
    assert gone, "no agent was deleted overnight"
    acted = {e["author"]["ID"] for t in after.values() for e in t["ticket"]["events"] if e["author"]["type"] == "agent"}
    assert gone & acted, "the deleted agent's id should stay in ticket events"


def test_ground_truth_equals_what_the_api_serves(sandbox_factory):
    server = sandbox_factory(hd_tickets_per_day=3, hd_days=64)
    advance(server, "5h")  # also check a clock that moved
    records = truth(server)
    expected = {r["interaction_id"]: r for r in records}
    served = {}
    for silo in SILOS:
        for row in listing(server, silo):
            detail = get(server, f"/v1/tickets/{row['ID']}")
            assert detail.status_code == 200
            served[row["ID"]] = (silo, detail.json())
    assert set(served) == set(expected)
    for ticket_id, (silo, ticket) in served.items():
        assert expected[ticket_id]["silo"] == silo
        assert expected[ticket_id]["ticket"] == ticket


def test_ground_truth_maps_tickets_as_the_design_says(sandbox_server):
    for record in truth(sandbox_server):
        ticket = record["ticket"]
        message_events = [e for e in ticket["events"] if e["type"] == "message"]
        assert record["message_count"] == len(message_events) == len(record["messages"])
        assert record["status"] == ("closed" if ticket["status"] in ("solved", "closed") else "open")
        agent = ticket["assignment"]["agent"]
        assert record["agent_id"] == (agent["ID"] if agent else None)
        for seq, (message, event) in enumerate(zip(record["messages"], message_events, strict=True), start=1):
            assert message["seq"] == seq and message["message_id"] == str(event["ID"])
            assert message["is_private"] == event["message"]["isPrivate"]
            kind = event["author"]["type"]
            assert message["sender_type"] == {"client": "customer"}.get(kind, kind)
            assert message["text"] == event["message"]["text"]


def test_deleted_ticket_is_purged_from_trash_after_30_days(sandbox_server):
    victim = get(sandbox_server, "/v1/tickets").json()[0]["ID"]
    assert api(sandbox_server).delete(f"{sandbox_server.base_url}/v1/tickets/{victim}").status_code == 204
    advance(sandbox_server, "29d")
    assert get(sandbox_server, f"/v1/tickets/{victim}").status_code == 200
    advance(sandbox_server, "1d")
    assert get(sandbox_server, f"/v1/tickets/{victim}").status_code == 404
    assert victim not in {t["interaction_id"] for t in truth(sandbox_server)}


def test_a_large_history_is_generated_lazily(sandbox_factory):
    started = time.perf_counter()
    server = sandbox_factory(hd_tickets_per_day=1200, hd_days=90)  # about 100,000 tickets of history
    world = server.sandbox.helpdesk.world
    day = (int(NOW.timestamp()) - 80 * 86400) // 86400
    ticket_id = world.ticket_id(day, 500)
    answer = get(server, f"/v1/tickets/{ticket_id}")
    assert answer.status_code == 200
    assert answer.json()["createdAt"].startswith(datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d"))
    assert time.perf_counter() - started < 5
    assert get(server, f"/v1/tickets/{world.ticket_id(day + 100, 3)}").status_code == 404  # not created yet
