"""LivePerson record -> normalized record mapping, including the traps of docs/provider-apis.md."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from cxsync.sources import liveperson_mapping as m

START = 1_741_939_200_000  # 2025-03-14 08:00:00 UTC
CONSUMER = "0f8b0c2e-9a1b-4c55-8e3d-1a2b3c4d5e6f"


def conversation(**info_overrides) -> dict:
    info = {
        "conversationId": "c-1",
        "status": "CLOSE",
        "startTime": "2025-03-14 08:00:00.000+0000",
        "startTimeL": START,
        "endTime": "2025-03-14 08:20:00.000+0000",
        "endTimeL": START + 1_200_000,
        "latestAgentId": 3677470410,
        "source": "APP",
        "isPartial": False,
    }
    info.update(info_overrides)
    return {
        "info": info,
        "agentParticipants": [
            {"agentId": "3677470410", "userType": "1", "userTypeName": "Human", "timeL": START + 10_000},
            {"agentId": "4100000000", "userType": "2", "userTypeName": "Bot", "timeL": START + 1_000},
        ],
        "consumerParticipants": [{"participantId": CONSUMER, "firstName": "Ava", "timeL": START}],
        "transfers": [{"timeL": START + 900_000, "reason": "Skill"}],
        "messageRecords": [
            # Deliberately out of order, with non-contiguous seq and varying sentBy case.
            {
                "messageId": "ms::conv:c-1::msg:2",
                "seq": 4,
                "timeL": START + 60_000,
                "sentBy": "agent",
                "participantId": "3677470410",
                "audience": "ALL",
                "type": "TEXT_PLAIN",
                "messageData": {"msg": {"text": "Hello! Let me look."}},
            },
            {
                "messageId": "ms::conv:c-1::msg:0",
                "seq": 0,
                "timeL": START + 5_000,
                "sentBy": "CONSUMER",
                "participantId": CONSUMER,
                "audience": "ALL",
                "type": "TEXT_PLAIN",
                "messageData": {"msg": {"text": "Hi, my order"}},
            },
            {
                "messageId": "ms::conv:c-1::msg:1",
                "seq": 1,
                "timeL": START + 20_000,
                "sentBy": "Agent",
                "participantId": "4100000000",
                "audience": "ALL",
                "type": "TEXT_PLAIN",
                "messageData": {"msg": {"text": "I'm the virtual assistant"}},
            },
            {
                "messageId": "ms::conv:c-1::msg:3",
                "seq": 7,
                "timeL": START + 70_000,
                "sentBy": "Agent",
                "participantId": 3677470410,
                "audience": "AGENTS_AND_MANAGERS",
                "type": "TEXT_PLAIN",
                "messageData": {"msg": {"text": "Refund approved by supervisor"}},
            },
        ],
    }


def test_a_closed_conversation_maps_ids_times_status_agent_and_customer():
    record = m.map_conversation(conversation())
    assert record.interaction_id == "c-1"
    assert record.provider == "liveperson"
    assert (record.status, record.provider_status) == ("closed", "CLOSE")
    assert record.started_at == datetime(2025, 3, 14, 8, 0, tzinfo=UTC)
    assert record.ended_at == datetime(2025, 3, 14, 8, 20, tzinfo=UTC)
    assert record.agent_id == "3677470410"  # a number in the answer, text in the warehouse
    assert record.customer_id == CONSUMER
    assert record.channel == "messaging:app"
    assert record.message_count == 4
    assert "messageRecords" not in record.raw and record.raw["info"]["conversationId"] == "c-1"
    # updated_at is the latest event the record shows: here the close.
    assert record.updated_at == record.ended_at


def test_messages_are_ordered_by_provider_seq_and_numbered_from_one():
    messages = m.map_conversation(conversation()).messages
    assert [x.message_id for x in messages] == [f"ms::conv:c-1::msg:{n}" for n in range(4)]
    assert [x.seq for x in messages] == [1, 2, 3, 4]
    assert [x.sender_type for x in messages] == ["customer", "bot", "agent", "agent"]
    assert [x.sender_id for x in messages] == [CONSUMER, "4100000000", "3677470410", "3677470410"]
    assert [x.is_private for x in messages] == [False, False, False, True]
    assert messages[0].sent_at == datetime(2025, 3, 14, 8, 0, 5, tzinfo=UTC)
    assert messages[0].text == "Hi, my order" and messages[0].message_type == "TEXT_PLAIN"
    assert messages[0].raw["seq"] == 0


def test_equal_seq_falls_back_to_time():
    rec = conversation()
    for msg in rec["messageRecords"]:
        msg["seq"] = 5
    messages = m.map_conversation(rec).messages
    assert [x.message_id for x in messages] == [f"ms::conv:c-1::msg:{n}" for n in range(4)]


def test_an_open_conversation_has_no_end():
    for end, end_l in (("undefined", -1), ("undefined", "-1"), (None, None)):
        rec = conversation(status="OPEN", endTime=end, endTimeL=end_l)
        record = m.map_conversation(rec)
        assert (record.status, record.provider_status, record.ended_at) == ("open", "OPEN", None)


def test_the_retrieval_time_duration_of_an_open_conversation_is_not_stored():
    opened = m.map_conversation(conversation(status="OPEN", endTime="undefined", endTimeL=-1, duration=5000))
    closed = m.map_conversation(conversation(duration=1_200_000))
    assert "duration" not in opened.raw["info"] and closed.raw["info"]["duration"] == 1_200_000


def test_times_from_strings_when_the_epoch_fields_are_missing():
    rec = conversation()
    del rec["info"]["startTimeL"], rec["info"]["endTimeL"]
    for msg in rec["messageRecords"]:
        msg["time"] = "2025-03-14 08:00:05.250+0000"
        del msg["timeL"]
    record = m.map_conversation(rec)
    assert record.started_at == datetime(2025, 3, 14, 8, 0, tzinfo=UTC)
    assert record.ended_at == datetime(2025, 3, 14, 8, 20, tzinfo=UTC)
    assert record.messages[0].sent_at == datetime(2025, 3, 14, 8, 0, 5, 250_000, tzinfo=UTC)


def test_bots_from_the_users_api_when_the_record_has_no_user_type():
    rec = conversation()
    for participant in rec["agentParticipants"]:
        participant.pop("userTypeName")
        participant.pop("userType")
    assert m.map_conversation(rec).messages[1].sender_type == "agent"
    assert m.map_conversation(rec, bot_ids={"4100000000"}).messages[1].sender_type == "bot"


def test_system_messages_and_system_participants():
    rec = conversation()
    rec["messageRecords"][0]["sentBy"] = "System"
    rec["agentParticipants"][0]["userTypeName"] = "System"
    types = {x.message_id: x.sender_type for x in m.map_conversation(rec).messages}
    assert types["ms::conv:c-1::msg:2"] == "system"
    assert types["ms::conv:c-1::msg:3"] == "system"


def test_file_and_rich_content_messages_are_kept_with_a_caption_or_a_description():
    rec = conversation()
    rec["messageRecords"][0].update(
        type="HOSTED_FILE", messageData={"file": {"relativePath": "/v1/x.png", "fileType": "PNG", "caption": "receipt"}}
    )
    rich = {
        "type": "vertical",
        "elements": [
            {"type": "text", "text": "Your order status"},
            {"type": "button", "title": "Orders", "click": {"actions": [{"type": "publishText", "text": "Orders"}]}},
        ],
    }
    rec["messageRecords"][1].update(type="RICH_CONTENT", messageData={"richContent": {"content": json.dumps(rich)}})
    rec["messageRecords"][2].update(type="HOSTED_FILE", messageData={"file": {"fileType": "PDF"}})
    messages = {x.message_id: x for x in m.map_conversation(rec).messages}
    assert messages["ms::conv:c-1::msg:2"].text == "receipt"
    assert messages["ms::conv:c-1::msg:2"].raw["messageData"]["file"]["relativePath"] == "/v1/x.png"
    assert messages["ms::conv:c-1::msg:0"].text == "[rich content] Your order status / Orders"
    assert messages["ms::conv:c-1::msg:0"].message_type == "RICH_CONTENT"
    assert messages["ms::conv:c-1::msg:1"].text == "[file: PDF]"


def test_identical_duplicate_messages_collapse_to_one():
    rec = conversation()
    rec["messageRecords"].append(copy.deepcopy(rec["messageRecords"][0]))
    assert m.map_conversation(rec).message_count == 4


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.pop("info"), "no `info`"),
        (lambda r: r["info"].pop("conversationId"), "conversationId` is missing"),
        (lambda r: r["info"].update(status="PENDING"), "neither OPEN nor CLOSE"),
        (lambda r: r["info"].update(startTimeL=None, startTime=None), "startTime` is missing"),
        (lambda r: r["info"].update(startTimeL="yesterday"), "not an epoch-milliseconds time"),
        (lambda r: r.update(messageRecords={"a": 1}), "must be a list"),
        (lambda r: r["messageRecords"][1].pop("messageId"), "`messageId` is missing"),
        (lambda r: r["messageRecords"][1].update(sentBy="Martian"), "neither Agent nor Consumer"),
        (lambda r: r["messageRecords"][1].update(timeL="soon"), "not an epoch-milliseconds time"),
        (lambda r: r["messageRecords"].append({**r["messageRecords"][0], "seq": 99}), "appears twice"),
        (lambda r: r["messageRecords"].append("text"), "not a JSON object"),
    ],
)
def test_malformed_records_raise_a_mapping_error_with_the_reason(mutate, reason):
    rec = conversation()
    mutate(rec)
    with pytest.raises(m.MappingError, match=reason.replace("`", ".").replace("(", r"\(")):
        m.map_conversation(rec)


def test_a_record_that_is_not_an_object_is_unmappable():
    with pytest.raises(m.MappingError, match="JSON object"):
        m.map_conversation(["not", "a", "record"])


def test_helpers_for_paging():
    rec = conversation(isPartial=True)
    assert m.is_partial(rec) and not m.is_partial(conversation())
    assert m.conversation_key(rec) == "c-1" and m.conversation_key({"x": 1}) is None
    assert m.conversation_start_ms(rec) == START
    assert m.conversation_start_ms({"info": {}}) is None


def user(**overrides) -> dict:
    base = {
        "id": 3677470410,
        "pid": "abc",
        "deleted": False,
        "loginName": "ava.smith0@example.com",
        "fullName": "",
        "nickname": "Ava S.",
        "email": "ava.smith0@example.com",
        "isEnabled": True,
        "skillIds": [1101, 1103],
        "memberOf": {"agentGroupId": "2201", "assignmentDate": "2025-01-01 00:00:00"},
        "profileIds": [3],
        "userTypeId": 1,
        "isApiUser": False,
    }
    base.update(overrides)
    return base


def test_users_map_to_agents_with_text_ids_and_sensible_roles():
    agent = m.map_user(user())
    assert agent.agent_id == "3677470410"
    assert agent.login_name == "ava.smith0@example.com"
    assert agent.display_name == "Ava S."  # fullName comes back empty on purpose
    assert (agent.role, agent.is_enabled, agent.is_deleted) == ("agent", True, False)
    assert agent.group_ids == ["2201"] and agent.skill_ids == ["1101", "1103"]
    assert m.map_user(user(userTypeId=2, isApiUser=True)).role == "bot"
    assert m.map_user(user(userTypeId=0)).role == "system"
    assert m.map_user(user(managerOf=[{"agentGroupId": "1"}])).role == "agent_manager"
    deleted = m.map_user(user(id="3677478329", deleted=True, isEnabled=False))
    assert (deleted.agent_id, deleted.is_deleted, deleted.is_enabled) == ("3677478329", True, False)
    assert m.bot_ids_of([user(), user(id=41, userTypeId=2)]) == {"41"}


def test_malformed_users_groups_and_skills():
    with pytest.raises(m.MappingError, match="no `id`"):
        m.map_user(user(id=None))
    with pytest.raises(m.MappingError, match="true or false"):
        m.map_user(user(deleted="maybe"))
    with pytest.raises(m.MappingError):
        m.map_group({"name": "Tier 1"})
    with pytest.raises(m.MappingError):
        m.map_skill("billing")
    assert m.map_group({"id": -1, "name": "Main Group"}).group_id == "-1"
    assert m.map_skill({"id": 1101, "name": "billing"}).name == "billing"
