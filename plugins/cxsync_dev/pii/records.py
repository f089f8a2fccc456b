"""The corpus's conversations as the providers send them: LivePerson conversation records and HelpDesk tickets
(the shapes docs/provider-apis.md describes), so a test or benchmark drives the real mapping and pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cxsync_dev.pii.corpus import AGENT_NAMES, Conversation

EPOCH = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _start(conv: Conversation, n: int) -> datetime:
    return EPOCH + timedelta(minutes=7 * n)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def agent_users() -> list[dict[str, Any]]:
    """The LivePerson users (the roster) the corpus's agents are."""
    return [
        {
            "id": f"agent-{i + 1}",
            "loginName": f"{first.lower()}.{last.lower()}",
            "nickname": first,
            "fullName": f"{first} {last}",
            "email": f"{first.lower()}@support.example",
            "userTypeId": 1,
            "isEnabled": True,
            "deleted": False,
        }
        for i, (first, last) in enumerate(AGENT_NAMES)
    ]


def liveperson_record(conv: Conversation, n: int) -> dict[str, Any]:
    start = _start(conv, n)
    consumer_id = f"c0ffee00-0000-4000-8000-{n:012d}"
    messages = []
    for i, message in enumerate(conv.messages):
        sent = start + timedelta(seconds=30 * (i + 1))
        messages.append(
            {
                "type": "TEXT_PLAIN",
                "messageData": {"msg": {"text": message.text}},
                "messageId": f"ms::conv:{conv.key}::msg:{i}",
                "audience": "AGENTS_AND_MANAGERS" if message.private else "ALL",
                "seq": i,
                "dialogId": conv.key,
                "participantId": conv.agent_id if message.role == "agent" else consumer_id,
                "time": sent.isoformat(),
                "timeL": _ms(sent),
                "sentBy": "Agent" if message.role == "agent" else "Consumer",
            }
        )
    end = start + timedelta(seconds=30 * (len(conv.messages) + 2))
    first, last = conv.agent
    return {
        "info": {
            "conversationId": conv.key,
            "status": "CLOSE",
            "startTime": start.isoformat(),
            "startTimeL": _ms(start),
            "endTime": end.isoformat(),
            "endTimeL": _ms(end),
            "latestAgentId": conv.agent_id,
            "latestAgentLoginName": f"{first.lower()}.{last.lower()}",
            "latestAgentNickname": first,
            "latestAgentFullName": f"{first} {last}",
            "source": "APP",
            "closeReason": "AGENT",
        },
        "messageRecords": messages,
        "agentParticipants": [
            {
                "agentId": conv.agent_id,
                "agentLoginName": f"{first.lower()}.{last.lower()}",
                "agentNickname": first,
                "agentFullName": f"{first} {last}",
                "role": "ASSIGNED_AGENT",
                "userTypeName": "Human",
                "time": start.isoformat(),
                "timeL": _ms(start),
            }
        ],
        "consumerParticipants": [
            {
                "participantId": consumer_id,
                "firstName": conv.customer.first,
                "lastName": conv.customer.last,
                "consumerName": conv.customer.first,
                "email": conv.customer.email,
                "phone": conv.customer.phone,
                "time": start.isoformat(),
                "timeL": _ms(start),
            }
        ],
        "summary": {"text": "Order question"},
    }


def helpdesk_ticket(conv: Conversation, n: int) -> dict[str, Any]:
    start = _start(conv, n)
    customer = conv.customer
    requester = {
        "type": "client",
        "ID": f"client-{n}",
        "name": f"{customer.first} {customer.last}",
        "email": customer.email,
    }
    first, last = conv.agent
    agent = {
        "type": "agent",
        "ID": conv.agent_id,
        "name": f"{first} {last}",
        "email": f"{first.lower()}@support.example",
    }
    events = []
    for i, message in enumerate(conv.messages):
        events.append(
            {
                "ID": f"{conv.key}-e{i}",
                "type": "message",
                "date": (start + timedelta(seconds=30 * (i + 1))).isoformat().replace("+00:00", "Z"),
                "author": agent if message.role == "agent" else requester,
                "message": {
                    "text": message.text,
                    "richTextHtml": f"<p>{message.text}</p>",
                    "isPrivate": message.private,
                    "attachments": [],
                },
            }
        )
    return {
        "ID": f"ticket-{conv.key}",
        "shortID": 1000 + n,
        "subject": "".join(s.text for s in conv.subject),
        "status": "solved",
        "priority": 1,
        "requester": {"email": customer.email, "name": f"{customer.first} {customer.last}"},
        "assignment": {"agent": agent},
        "source": {"type": "mail"},
        "createdAt": start.isoformat().replace("+00:00", "Z"),
        "updatedAt": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "events": events,
    }
