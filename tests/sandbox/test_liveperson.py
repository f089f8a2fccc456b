"""The sandbox LivePerson against docs/provider-apis.md, over plain HTTP (requests + requests_oauthlib).

Default fixture world: account 12345678, clock 2025-03-14T09:30Z, 7 days of history, 12 conversations/day.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
import requests
from requests_oauthlib import OAuth1

from cxsync_dev.sandbox.liveperson_auth import GUIDE_CLIENT, MAIN_KEY, NOUSERS_KEY, OAUTH2_CLIENT

ACCOUNT = "12345678"
NOW_MS = int(datetime(2025, 3, 14, 9, 30, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000
TEN_MIN = 600_000
HISTORY = {"from": NOW_MS - 8 * DAY_MS, "to": NOW_MS + DAY_MS}


def oauth1(key=MAIN_KEY, secret=None) -> OAuth1:
    return OAuth1(key.app_key, secret or key.app_secret, key.access_token, key.access_token_secret)


def users_url(server, what="users") -> str:
    return f"{server.base_url}/api/account/{ACCOUNT}/configuration/le-users/{what}"


def search_url(server) -> str:
    return f"{server.base_url}/messaging_history/api/account/{ACCOUNT}/conversations/search"


def by_id_url(server) -> str:
    return f"{server.base_url}/messaging_history/api/account/{ACCOUNT}/conversations/conversation/search"


def search(server, body, auth=None, **params) -> requests.Response:
    query = {"offset": 0, "limit": 100, "sort": "start:asc", "v": 2, "source": "cxsync", **params}
    query = {k: v for k, v in query.items() if v is not None}
    return requests.post(search_url(server), params=query, json=body, auth=auth or oauth1(), timeout=10)


def search_all(server, body, limit=100, **params) -> tuple[list[dict], int]:
    records: list[dict] = []
    offset, count = 0, None
    while count is None or offset < count:
        r = search(server, body, offset=offset, limit=limit, **params)
        assert r.status_code == 200, r.text
        data = r.json()
        count = data["_metadata"]["count"]
        records.extend(data["conversationHistoryRecords"])
        offset += limit
    return records, count


def truth(server, at: str | None = None) -> list[dict]:
    params = {"at": at} if at else {}
    return requests.get(f"{server.base_url}/_sandbox/truth/liveperson", params=params, timeout=30).json()[
        "interactions"
    ]


def advance(server, by: str) -> None:
    assert requests.post(f"{server.base_url}/_sandbox/clock", json={"advance": by}, timeout=5).status_code == 200


def set_faults(server, **values) -> None:
    assert requests.put(f"{server.base_url}/_sandbox/faults/liveperson", json=values, timeout=5).status_code == 200


def bearer(server, client=OAUTH2_CLIENT) -> str:
    r = requests.post(
        f"{server.base_url}/sentinel/api/v2/account/{ACCOUNT}/app/token",
        data={
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "grant_type": "client_credentials",
        },
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


# -------------------------------------------------------------------------------------------- CSDS
def test_csds_resolves_one_service_to_the_host_without_port(sandbox_server):
    r = requests.get(
        f"{sandbox_server.base_url}/api/account/{ACCOUNT}/service/msgHist/baseURI.json?version=1.0", timeout=5
    )
    assert r.status_code == 200
    assert r.json() == {"service": "msgHist", "account": ACCOUNT, "baseURI": "127.0.0.1"}


def test_csds_resolves_all_services(sandbox_server):
    r = requests.get(f"{sandbox_server.base_url}/api/account/{ACCOUNT}/service/baseURI.json?version=1.0", timeout=5)
    uris = {u["service"]: u["baseURI"] for u in r.json()["baseURIs"]}
    assert {"msgHist", "accountConfigReadOnly", "sentinel", "rtbf"} <= set(uris)
    assert set(uris.values()) == {"127.0.0.1"}


def test_csds_names_are_case_sensitive_and_accounts_checked(sandbox_server):
    base = sandbox_server.base_url
    assert requests.get(f"{base}/api/account/{ACCOUNT}/service/msghist/baseURI.json?version=1.0").status_code == 404
    assert requests.get(f"{base}/api/account/999/service/msgHist/baseURI.json?version=1.0").status_code == 404
    assert requests.get(f"{base}/api/account/{ACCOUNT}/service/msgHist/baseURI.json").status_code == 400


# ---------------------------------------------------------------------------------------- OAuth 1.0
def test_correctly_signed_oauth1_request_is_answered(sandbox_server):
    r = requests.get(users_url(sandbox_server), params={"v": "4.0"}, auth=oauth1(), timeout=5)
    assert r.status_code == 200
    assert isinstance(r.json(), list) and r.json()


def test_badly_signed_oauth1_request_is_refused_with_a_body(sandbox_server):
    r = requests.get(users_url(sandbox_server), params={"v": "4.0"}, auth=oauth1(secret="wrong"), timeout=5)
    assert r.status_code == 401
    assert r.json()["error"] == "Not Authenticated"
    assert "signature" in r.json()["message"]
    assert MAIN_KEY.app_secret not in r.text


def test_signature_covers_the_query_string(sandbox_server):
    signed = requests.Request("GET", users_url(sandbox_server), params={"v": "4.0"}, auth=oauth1()).prepare()
    signed.url = signed.url.replace("v=4.0", "v=6.0")  # tampered after signing
    assert requests.Session().send(signed, timeout=5).status_code == 401


def test_unknown_key_and_missing_credentials_get_401(sandbox_server):
    unknown = OAuth1("nobody", "x", "y", "z")
    assert requests.get(users_url(sandbox_server), params={"v": "4.0"}, auth=unknown).status_code == 401
    r = requests.get(users_url(sandbox_server), params={"v": "4.0"}, timeout=5)
    assert r.status_code == 401 and r.json()["message"]


# ---------------------------------------------------------------------------------------- OAuth 2.0
def test_sentinel_issues_jwt_looking_bearer_tokens(sandbox_server):
    r = requests.post(
        f"{sandbox_server.base_url}/sentinel/api/v2/account/{ACCOUNT}/app/token",
        data={
            "client_id": OAUTH2_CLIENT.client_id,
            "client_secret": OAUTH2_CLIENT.client_secret,
            "grant_type": "client_credentials",
        },
        timeout=5,
    )
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    _header, payload, _sig = body["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["iat"] == NOW_MS // 1000  # the sandbox clock, not the real one
    token = body["access_token"]
    r = requests.get(users_url(sandbox_server), params={"v": "4.0"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


def test_sentinel_refuses_bad_clients_and_grants(sandbox_server):
    url = f"{sandbox_server.base_url}/sentinel/api/v2/account/{ACCOUNT}/app/token"
    wrong = {"client_id": OAUTH2_CLIENT.client_id, "client_secret": "nope", "grant_type": "client_credentials"}
    r = requests.post(url, data=wrong, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    grant = {**wrong, "client_secret": OAUTH2_CLIENT.client_secret, "grant_type": "password"}
    assert requests.post(url, data=grant, timeout=5).json()["error"] == "unsupported_grant_type"


def test_bearer_tokens_expire_on_the_sandbox_clock(sandbox_factory):
    server = sandbox_factory(lp_token_ttl=600)
    token = bearer(server)
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(users_url(server), params={"v": "4.0"}, headers=headers).status_code == 200
    advance(server, "9m")
    assert requests.get(users_url(server), params={"v": "4.0"}, headers=headers).status_code == 200
    advance(server, "1m")
    r = requests.get(users_url(server), params={"v": "4.0"}, headers=headers)
    assert r.status_code == 401 and "expired" in r.json()["message"]
    fresh = {"Authorization": f"Bearer {bearer(server)}"}
    assert requests.get(users_url(server), params={"v": "4.0"}, headers=fresh).status_code == 200


def test_unknown_bearer_token_is_refused(sandbox_server):
    r = requests.get(users_url(sandbox_server), params={"v": "4.0"}, headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401


# ---------------------------------------------------------------------------------------- Users API
def test_users_api_requires_v(sandbox_server):
    r = requests.get(users_url(sandbox_server), auth=oauth1(), timeout=5)
    assert r.status_code == 400 and "v" in r.json()["message"]


def test_users_api_include_deleted(sandbox_server):
    everyone = requests.get(users_url(sandbox_server), params={"v": "4.0", "include_deleted": "true"}, auth=oauth1())
    current = requests.get(users_url(sandbox_server), params={"v": "4.0"}, auth=oauth1())
    deleted = [u for u in everyone.json() if u["deleted"]]
    assert deleted, "the fixture world deletes an agent before its start time"
    assert all(not u["deleted"] for u in current.json())
    assert len(current.json()) == len(everyone.json()) - len(deleted)


def test_users_api_record_shape_bots_ids_and_empty_full_name(sandbox_server):
    users = requests.get(users_url(sandbox_server), params={"v": "4.0", "include_deleted": "true"}, auth=oauth1())
    users = users.json()
    assert {u["userTypeId"] for u in users} == {1, 2}
    assert {type(u["id"]) for u in users} == {int, str}  # numbers and strings: store ids as text
    assert all(u["fullName"] == "" for u in users)
    for field in ("pid", "loginName", "nickname", "email", "isEnabled", "skillIds", "memberOf", "profileIds"):
        assert all(field in u for u in users), field
    assert all({"agentGroupId", "assignmentDate"} <= set(u["memberOf"]) for u in users)


def test_users_api_revision_and_if_match_304(sandbox_factory):
    server = sandbox_factory()
    first = requests.get(users_url(server), params={"v": "4.0", "include_deleted": "true"}, auth=oauth1())
    revision = first.headers["ac-revision"]
    again = requests.get(
        users_url(server), params={"v": "4.0", "include_deleted": "true"}, auth=oauth1(), headers={"If-Match": revision}
    )
    assert again.status_code == 304 and again.content == b""
    advance(server, "3d")  # the second deletion lies 0.5-2 days after the start
    changed = requests.get(
        users_url(server), params={"v": "4.0", "include_deleted": "true"}, auth=oauth1(), headers={"If-Match": revision}
    )
    assert changed.status_code == 200 and changed.headers["ac-revision"] != revision


def test_agents_get_deleted_as_the_clock_moves(sandbox_factory):
    server = sandbox_factory()
    params = {"v": "4.0", "include_deleted": "true"}
    before = {str(u["id"]): u["deleted"] for u in requests.get(users_url(server), params=params, auth=oauth1()).json()}
    advance(server, "3d")
    after = {str(u["id"]): u["deleted"] for u in requests.get(users_url(server), params=params, auth=oauth1()).json()}
    newly = [i for i in before if not before[i] and after[i]]
    assert len(newly) == 1
    current = requests.get(users_url(server), params={"v": "4.0"}, auth=oauth1()).json()
    assert newly[0] not in {str(u["id"]) for u in current}


def test_agent_groups_and_skills(sandbox_server):
    for what in ("agentGroups", "skills"):
        r = requests.get(users_url(sandbox_server, what), params={"v": "4.0"}, auth=oauth1(), timeout=5)
        assert r.status_code == 200 and r.headers["ac-revision"]
        assert all({"id", "name", "deleted"} <= set(item) for item in r.json())
        assert requests.get(users_url(sandbox_server, what), auth=oauth1()).status_code == 400


def test_key_without_users_permission_gets_403_but_msghist_works(sandbox_server):
    for what in ("users", "agentGroups", "skills"):
        r = requests.get(users_url(sandbox_server, what), params={"v": "4.0"}, auth=oauth1(NOUSERS_KEY), timeout=5)
        assert r.status_code == 403, what
        assert r.json()["error"] == "Not Authorized" and "Users" in r.json()["message"]
    assert search(sandbox_server, {"start": HISTORY}, auth=oauth1(NOUSERS_KEY)).status_code == 200


def test_a_client_made_by_the_guide_reads_users_and_history_but_not_groups_skills_or_profiles(sandbox_server):
    headers = {"Authorization": f"Bearer {bearer(sandbox_server, GUIDE_CLIENT)}"}
    assert requests.get(users_url(sandbox_server), params={"v": "4.0"}, headers=headers).status_code == 200
    for what, privilege in (("agentGroups", "Agent Groups"), ("skills", "Skills"), ("profiles", "Profiles")):
        r = requests.get(users_url(sandbox_server, what), params={"v": "4.0"}, headers=headers, timeout=5)
        assert r.status_code == 403 and f"{privilege} API Read" in r.json()["message"], what
    query = {"offset": 0, "limit": 1, "v": 2, "source": "cxsync"}
    r = requests.post(search_url(sandbox_server), params=query, json={"start": HISTORY}, headers=headers, timeout=10)
    assert r.status_code == 200


def test_profiles_api_names_each_profile_and_its_role_type_and_users_carry_only_profile_ids(sandbox_server):
    profiles = requests.get(users_url(sandbox_server, "profiles"), params={"v": "4.0"}, auth=oauth1()).json()
    assert {p["roleTypeId"] for p in profiles} == {1, 2, 3, 4} and all(p["name"] for p in profiles)
    users = requests.get(users_url(sandbox_server), params={"v": "4.0"}, auth=oauth1()).json()
    assert all("profiles" not in u and u["profileIds"] for u in users)
    admin_ids = {p["id"] for p in profiles if p["roleTypeId"] == 1}
    admins = [u for u in users if set(u["profileIds"]) <= admin_ids]
    assert len(admins) == 1  # the account admin, who takes no conversations
    records = search(sandbox_server, {"start": HISTORY}).json()["conversationHistoryRecords"]
    assert admins[0]["id"] not in {r["info"].get("latestAgentId") for r in records}


def test_post_conversation_surveys_are_their_own_dialog_after_the_main_one(sandbox_server):
    records, _ = search_all(sandbox_server, {"start": HISTORY, "status": ["CLOSE"]})
    surveyed = [r for r in records if len(r.get("dialogs", [])) == 2]
    assert surveyed
    for record in surveyed:
        main, survey = record["dialogs"]
        assert (main["dialogType"], survey["dialogType"]) == ("MAIN", "POST_SURVEY")
        assert main["endTimeL"] <= survey["startTimeL"] and record["info"]["endTimeL"] == survey["endTimeL"]
        in_survey = [m for m in record["messageRecords"] if m["dialogId"] == survey["dialogId"]]
        assert len(in_survey) == 2 and all(m["timeL"] > main["endTimeL"] for m in in_survey)
        answer = record["conversationSurveys"][0]["surveyData"][0]["answer"]
        assert str(record["info"]["csat"]) == answer == in_survey[-1]["messageData"]["msg"]["text"]


@pytest.mark.parametrize("accepted", ["both", "object", "number"])
def test_latest_update_time_readings_the_sandbox_accepts(sandbox_factory, accepted):
    server = sandbox_factory(lp_latest_update_time=accepted)
    since = NOW_MS - DAY_MS
    as_object = search(server, {"start": HISTORY, "latestUpdateTime": {"from": since}})
    as_number = search(server, {"start": HISTORY, "latestUpdateTime": since})
    assert (as_object.status_code, as_number.status_code) == {
        "both": (200, 200),
        "object": (200, 400),
        "number": (400, 200),
    }[accepted]
    for refused in (r for r in (as_object, as_number) if r.status_code == 400):
        assert "latestUpdateTime" in refused.json()["message"]
    if accepted == "both":
        assert as_object.json()["_metadata"]["count"] == as_number.json()["_metadata"]["count"] > 0


def test_users_permission_switch_toggles_per_credential(sandbox_server):
    switch = f"{sandbox_server.base_url}/_sandbox/switches/liveperson"
    requests.put(f"{switch}/{MAIN_KEY.app_key}", json={"users_permission": False}, timeout=5)
    assert requests.get(users_url(sandbox_server), params={"v": "4.0"}, auth=oauth1()).status_code == 403
    requests.put(f"{switch}/{OAUTH2_CLIENT.client_id}", json={"users_permission": False}, timeout=5)
    headers = {"Authorization": f"Bearer {bearer(sandbox_server)}"}
    assert requests.get(users_url(sandbox_server), params={"v": "4.0"}, headers=headers).status_code == 403
    requests.delete(f"{switch}/{MAIN_KEY.app_key}", timeout=5)
    assert requests.get(users_url(sandbox_server), params={"v": "4.0"}, auth=oauth1()).status_code == 200


# ------------------------------------------------------------------------------------------ msgHist
def test_msghist_requires_source(sandbox_server):
    r = search(sandbox_server, {"start": HISTORY}, source=None)
    assert r.status_code == 400 and "source" in r.json()["message"]
    assert search(sandbox_server, {"start": HISTORY}, source="x" * 21).status_code == 400


def test_msghist_requires_start(sandbox_server):
    r = search(sandbox_server, {"status": ["OPEN"]})
    assert r.status_code == 400 and "start" in r.json()["message"]


def test_msghist_limit_above_100_is_refused_and_default_is_50(sandbox_server):
    assert search(sandbox_server, {"start": HISTORY}, limit=101).status_code == 400
    assert len(search(sandbox_server, {"start": HISTORY}, limit=100).json()["conversationHistoryRecords"]) > 50
    default = search(sandbox_server, {"start": HISTORY}, limit=None).json()
    assert default["_metadata"]["count"] > 50
    assert len(default["conversationHistoryRecords"]) == 50


def test_msghist_range_over_three_months_is_refused(sandbox_server):
    start = int(datetime(2024, 12, 1, tzinfo=UTC).timestamp() * 1000)
    three_months = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)
    assert search(sandbox_server, {"start": {"from": start, "to": three_months}}).status_code == 200
    r = search(sandbox_server, {"start": {"from": start, "to": three_months + DAY_MS}})
    assert r.status_code == 400 and "three months" in r.json()["message"]
    unaligned = 7 * 60_000 + 123  # an exact 3-month window off the 10-minute grid is not refused for rounding
    assert search(sandbox_server, {"start": {"from": start + unaligned, "to": three_months + unaligned}}).ok


def _a_conversation_away_from_ten_minute_edges(server) -> dict:
    for conv in truth(server):
        ms = int(datetime.fromisoformat(conv["started_at"]).timestamp() * 1000)
        if 5_000 < ms % TEN_MIN < TEN_MIN - 5_000:
            return {**conv, "start_ms": ms}
    raise AssertionError("no conversation away from a 10-minute edge")


def test_msghist_rounds_from_down_to_ten_minutes(sandbox_server):
    conv = _a_conversation_away_from_ten_minute_edges(sandbox_server)
    start = conv["start_ms"]
    body = {"start": {"from": start + 1, "to": start + 60_000}}  # from is after the start: rounding includes it
    ids = [r["info"]["conversationId"] for r in search(sandbox_server, body).json()["conversationHistoryRecords"]]
    assert conv["interaction_id"] in ids


def test_msghist_rounds_to_up_to_ten_minutes(sandbox_server):
    conv = _a_conversation_away_from_ten_minute_edges(sandbox_server)
    start = conv["start_ms"]
    body = {"start": {"from": start - 60_000, "to": start - 1}}  # to is before the start: rounding includes it
    ids = [r["info"]["conversationId"] for r in search(sandbox_server, body).json()["conversationHistoryRecords"]]
    assert conv["interaction_id"] in ids


def test_msghist_offset_paging_with_count(sandbox_server):
    records, count = search_all(sandbox_server, {"start": HISTORY}, limit=10)
    ids = [r["info"]["conversationId"] for r in records]
    assert len(ids) == count == len(set(ids))
    assert set(ids) == {c["interaction_id"] for c in truth(sandbox_server)}
    first = search(sandbox_server, {"start": HISTORY}, limit=10).json()["_metadata"]
    assert "offset=10" in first["next"]["href"]


def test_msghist_sort(sandbox_server):
    asc, _ = search_all(sandbox_server, {"start": HISTORY}, sort="start:asc")
    desc, _ = search_all(sandbox_server, {"start": HISTORY}, sort="start:desc")
    starts = [r["info"]["startTimeL"] for r in asc]
    assert starts == sorted(starts)
    assert [r["info"]["conversationId"] for r in desc] == [r["info"]["conversationId"] for r in reversed(asc)]
    assert search(sandbox_server, {"start": HISTORY}, sort="sideways").status_code == 400


def test_msghist_status_filter(sandbox_server):
    open_, n_open = search_all(sandbox_server, {"start": HISTORY, "status": ["OPEN"]})
    closed, n_closed = search_all(sandbox_server, {"start": HISTORY, "status": ["CLOSE"]})
    _, n_all = search_all(sandbox_server, {"start": HISTORY})
    assert n_open > 0 and n_closed > 0 and n_open + n_closed == n_all
    assert all(r["info"]["status"] == "OPEN" for r in open_)
    assert all(r["info"]["endTimeL"] == -1 and r["info"]["endTime"] == "undefined" for r in open_)
    assert all(r["info"]["status"] == "CLOSE" and r["info"]["endTimeL"] > 0 for r in closed)
    assert search(sandbox_server, {"start": HISTORY, "status": ["CLOSED"]}).status_code == 400


def test_msghist_latest_update_time_filter_rounds_down(sandbox_server):
    since = NOW_MS - 6 * 3_600_000 + 7 * 60_000  # 7 minutes past a 10-minute edge
    rounded = since - since % TEN_MIN
    got, _ = search_all(sandbox_server, {"start": HISTORY, "latestUpdateTime": {"from": since}})
    got_ids = {r["info"]["conversationId"] for r in got}
    expected = {
        c["interaction_id"]
        for c in truth(sandbox_server)
        if datetime.fromisoformat(c["updated_at"]).timestamp() * 1000 >= rounded
    }
    assert got_ids == expected
    assert 0 < len(got_ids) < len(truth(sandbox_server))


def test_msghist_content_to_retrieve(sandbox_server):
    body = {"start": HISTORY, "contentToRetrieve": ["messageRecords", "agentParticipants"]}
    records = search(sandbox_server, body, limit=20).json()["conversationHistoryRecords"]
    assert records and all(set(r) == {"info", "messageRecords", "agentParticipants"} for r in records)
    full = search(sandbox_server, {"start": HISTORY}, limit=20).json()["conversationHistoryRecords"]
    assert {"consumerParticipants", "transfers", "messageRecords", "agentParticipants"} <= set(full[0])
    assert search(sandbox_server, {"start": HISTORY, "contentToRetrieve": ["everything"]}).status_code == 400
    # an empty list is undocumented: the sandbox takes the costly reading (the default sections, every message)
    empty = search(sandbox_server, {"start": HISTORY, "contentToRetrieve": []}, limit=20).json()
    assert set(empty["conversationHistoryRecords"][0]) == set(full[0])


def test_partial_result_switch(sandbox_server):
    whole = search(sandbox_server, {"start": HISTORY}).json()
    assert whole["_metadata"]["shardsStatusResult"]["partialResult"] is False
    set_faults(sandbox_server, p_partial=1.0)
    partial = search(sandbox_server, {"start": HISTORY}).json()
    assert partial["_metadata"]["shardsStatusResult"]["partialResult"] is True
    assert len(partial["conversationHistoryRecords"]) < len(whole["conversationHistoryRecords"])
    snap = requests.get(f"{sandbox_server.base_url}/_sandbox/counters", timeout=5).json()
    assert snap["faults"]["liveperson"]["partial"] == 1


def test_is_partial_records_are_whole_by_id(sandbox_server):
    set_faults(sandbox_server, p_is_partial=1.0)
    records = search(sandbox_server, {"start": HISTORY}, limit=10).json()["conversationHistoryRecords"]
    assert all(r["info"]["isPartial"] is True for r in records)
    long_one = max(records, key=lambda r: len(r["messageRecords"]))
    cid = long_one["info"]["conversationId"]
    r = requests.post(
        by_id_url(sandbox_server), params={"source": "cxsync"}, json={"conversationId": cid}, auth=oauth1()
    )
    whole = r.json()["conversationHistoryRecords"][0]
    assert whole["info"]["isPartial"] is False
    assert len(whole["messageRecords"]) > len(long_one["messageRecords"])
    expected = next(c for c in truth(sandbox_server) if c["interaction_id"] == cid)
    assert [m["messageId"] for m in whole["messageRecords"]] == [m["message_id"] for m in expected["messages"]]


def test_by_id_search_one_and_many(sandbox_server):
    ids = [c["interaction_id"] for c in truth(sandbox_server)]
    url, params = by_id_url(sandbox_server), {"source": "cxsync"}
    one = requests.post(url, params=params, json={"conversationId": ids[0]}, auth=oauth1()).json()
    assert [r["info"]["conversationId"] for r in one["conversationHistoryRecords"]] == [ids[0]]
    many = requests.post(url, params=params, json={"conversationIds": [*ids[:30], "not-a-real-id"]}, auth=oauth1())
    assert many.json()["_metadata"]["count"] == 30
    assert {r["info"]["conversationId"] for r in many.json()["conversationHistoryRecords"]} == set(ids[:30])
    too_many = requests.post(url, params=params, json={"conversationIds": [ids[0]] * 101}, auth=oauth1())
    assert too_many.status_code == 400
    assert requests.post(url, params=params, json={}, auth=oauth1()).status_code == 400
    assert requests.post(url, json={"conversationId": ids[0]}, auth=oauth1()).status_code == 400  # no source


def test_record_shape_has_the_documented_traps(sandbox_factory):
    server = sandbox_factory(lp_conversations_per_day=40, lp_bots=2)
    records, _ = search_all(server, {"start": HISTORY})
    messages = [m for r in records for m in r["messageRecords"]]
    assert {m["sentBy"] for m in messages} > {"Agent", "Consumer"}  # the case varies
    assert {m["sentBy"].lower() for m in messages} == {"agent", "consumer"}
    # message ids name the conversation; a post-survey message's dialogId is its survey dialog's
    assert all(
        m["messageId"] == f"ms::conv:{r['info']['conversationId']}::msg:{m['messageId'].rsplit(':', 1)[1]}"
        and m["dialogId"] in {d["dialogId"] for d in r["dialogs"]}
        for r in records
        for m in r["messageRecords"]
    )
    assert any(m["audience"] == "AGENTS_AND_MANAGERS" for m in messages)
    assert {"TEXT_PLAIN", "RICH_CONTENT", "HOSTED_FILE"} <= {m["type"] for m in messages}
    assert any("file" in m["messageData"] and "relativePath" in m["messageData"]["file"] for m in messages)
    gaps = [
        b["seq"] - a["seq"] for r in records for a, b in zip(r["messageRecords"], r["messageRecords"][1:], strict=False)
    ]
    assert all(g > 0 for g in gaps) and any(g > 1 for g in gaps)  # ordered, not contiguous
    participants = [p for r in records for p in r["agentParticipants"]]
    assert {"Human", "Bot"} <= {p["userTypeName"] for p in participants}
    assert {"ASSIGNED_AGENT", "READER"} <= {p["permission"] for p in participants}
    assert any(r["transfers"] for r in records)
    assert {type(r["info"]["latestAgentId"]) for r in records if "latestAgentId" in r["info"]} == {int, str}
    assert all(r["consumerParticipants"][0]["participantId"] for r in records)
    info = records[0]["info"]
    for field in ("conversationId", "status", "startTime", "startTimeL", "endTime", "endTimeL", "duration"):
        assert field in info
    for field in ("latestSkillId", "latestSkillName", "isPartial", "source", "device", "mcs", "language"):
        assert field in info


def test_same_seed_same_data_other_seed_other_data(sandbox_factory):
    a = search(sandbox_factory(seed=3), {"start": HISTORY}).content
    b = search(sandbox_factory(seed=3), {"start": HISTORY}).content
    c = search(sandbox_factory(seed=4), {"start": HISTORY}).content

    def strip_host(raw: bytes) -> dict:
        data = json.loads(raw)
        data.pop("_metadata")
        return data

    assert strip_host(a) == strip_host(b)
    assert strip_host(a) != strip_host(c)


def test_open_conversations_close_and_new_messages_arrive_as_the_clock_moves(sandbox_factory):
    server = sandbox_factory(lp_conversations_per_day=40)
    open_before, _ = search_all(server, {"start": HISTORY, "status": ["OPEN"]})
    assert open_before
    advance(server, "4d")
    url = by_id_url(server)
    ids = [r["info"]["conversationId"] for r in open_before]
    after = requests.post(url, params={"source": "t"}, json={"conversationIds": ids}, auth=oauth1()).json()
    after_by_id = {r["info"]["conversationId"]: r for r in after["conversationHistoryRecords"]}
    assert all(after_by_id[i]["info"]["status"] == "CLOSE" for i in ids)
    assert all(after_by_id[i]["info"]["endTimeL"] > 0 for i in ids)
    grew = [
        r
        for r in open_before
        if len(after_by_id[r["info"]["conversationId"]]["messageRecords"]) > len(r["messageRecords"])
    ]
    assert grew, "some open conversation receives new messages later"
    for r in open_before:
        later = after_by_id[r["info"]["conversationId"]]["messageRecords"]
        assert later[: len(r["messageRecords"])] == r["messageRecords"]  # history never rewritten


def test_new_conversations_arrive_as_the_clock_moves(sandbox_server):
    window = {"start": {"from": NOW_MS - DAY_MS, "to": NOW_MS + 2 * DAY_MS}}
    before = search(sandbox_server, window).json()["_metadata"]["count"]
    advance(sandbox_server, "1d")
    after = search(sandbox_server, window).json()["_metadata"]["count"]
    arrived = [
        c
        for c in truth(sandbox_server)
        if NOW_MS < datetime.fromisoformat(c["started_at"]).timestamp() * 1000 <= NOW_MS + DAY_MS
    ]
    assert len(arrived) >= 6  # about 12 a day in the fixture world
    assert after - before == len(arrived)


def test_ground_truth_matches_what_search_returns(sandbox_server):
    records, _ = search_all(sandbox_server, {"start": HISTORY})
    expected = {c["interaction_id"]: c for c in truth(sandbox_server)}
    assert len(records) == len(expected)
    for r in records:
        info = r["info"]
        t = expected[info["conversationId"]]
        assert info["status"] == t["status"]
        assert (str(info["latestAgentId"]) if "latestAgentId" in info else None) == t["agent_id"]
        assert r["consumerParticipants"][0]["participantId"] == t["customer_id"]
        assert [
            (m["messageId"], m["seq"], m["sentBy"], m["participantId"], m["messageData"].get("msg", {}).get("text"))
            for m in r["messageRecords"]
        ] == [(m["message_id"], m["seq"], m["sent_by"], m["participant_id"], m["text"]) for m in t["messages"]]
        assert [m["audience"] == "AGENTS_AND_MANAGERS" for m in r["messageRecords"]] == [
            m["is_private"] for m in t["messages"]
        ]


def test_ground_truth_at_an_earlier_time(sandbox_server):
    earlier = truth(sandbox_server, at="2025-03-12T00:00:00Z")
    now = truth(sandbox_server)
    assert 0 < len(earlier) < len(now)
    assert all(datetime.fromisoformat(c["started_at"]) <= datetime(2025, 3, 12, tzinfo=UTC) for c in earlier)


def test_msghist_unknown_account_and_bad_body(sandbox_server):
    r = requests.post(
        f"{sandbox_server.base_url}/messaging_history/api/account/999/conversations/search",
        params={"source": "cxsync"},
        json={"start": HISTORY},
        auth=oauth1(),
    )
    assert r.status_code == 404
    r = requests.post(search_url(sandbox_server), params={"source": "cxsync"}, data="nope", auth=oauth1())
    assert r.status_code == 400


@pytest.mark.parametrize("spec", ["4", "2:9", "6/2"])
def test_message_count_distribution_is_honoured(sandbox_factory, spec):
    server = sandbox_factory(lp_messages=spec, lp_conversations_per_day=30)
    advance(server, "5d")  # every conversation of the history is closed and complete
    # the spec is the agent's conversation (the MAIN dialog): post-conversation survey messages come on top
    closed = [c for c in truth(server, at="2025-03-14T00:00:00Z") if c["status"] == "CLOSE"]
    counts = [sum(m["dialog_type"] == "main" for m in c["messages"]) for c in closed]
    if spec == "4":
        assert set(counts) == {4}
    elif spec == "2:9":
        assert min(counts) >= 2 and max(counts) <= 9 and len(set(counts)) > 3
    else:
        assert 4 < sum(counts) / len(counts) < 8
