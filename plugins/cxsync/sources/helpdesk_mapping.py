"""HelpDesk answers to normalized records: pure functions, no I/O.

Tickets (docs/architecture.md, "Mapping"): the ticket `ID` is the interaction id; `solved`/`closed` are `closed`,
every other status `open` (the raw one kept in `provider_status`); `assignment.agent.ID` is the agent;
the requester's email is the customer; message events are the messages.

Choices where the notes leave room:
- Messages are the `message` events only, private notes included (`is_private`), attachment-only
  messages too (text None). Status, assignment and unknown events are not conversation turns: they stay
  in the interaction's `raw["events"]`, which holds every event but the messages (those are in
  cx_messages already). An event of a type we do not know is kept there, never an error.
- `seq` follows event order, i.e. `(date, ID)`: the array order when the API sends it chronologically,
  and still the conversation's order when it does not.
- `ended_at` of a solved or closed ticket is the date of the status event that set that status (the
  latest change to `solved`/`closed`: solved, then closed by the system days later, ended when closed,
  as the ticket's own history says). Without such a status event: `updatedAt`.
- `sender_id` is the event author's `ID` (the client's email when a client author has no ID).
- `text` is the message's `text` as sent (empty for attachment-only messages); only when it is missing
  or empty and `richTextHtml` has content is the plain text derived from the HTML.

QA signals (docs/metrics.md, docs/provider-apis.md):
- `csat_score` from the ticket's `rating`: `good` is 5 and `bad` is 1 (the 1-5 scale LivePerson's CSAT uses, so
  "CSAT at most 2" means the same on both); `rated_good`/`rated_bad` and any letter case are read alike; no
  rating, or a value we do not know, is no score (the value stays in raw).
- `tags` are names: `tagIDs` looked up in the account's `GET /v1/tags` (the source fetches it once a run); an
  id missing from that list is kept as the id (the source logs it).
- `priority` as sent, as text (an integer in the notes; no names for its values are documented).
- `display_id` is `shortID`; `agent_group` the assigned team's name (`assignment.team.name`), its ID when the
  ticket names none.
- A message's `attachments` are each file's `name`, `type` and `size`, never the file or its URL: from the
  event's `attachments.files[]` as the notes give it, or a list there or under `message.attachments`
  (`contentType`/`mimeType` read as `type`).

A ticket without a usable `ID` or `createdAt` raises `MappingError` with the reason (`cxsync.sources.helpers`,
the convention of every mapping; the source stores it as a rejected record); one bad message event is
rejected on its own and the ticket still loads, its rejection handed back with the record. A message event
sent twice whole is one message; a second event with the same `ID` but other content is rejected (a message
id is a key).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cxsync.records import AgentRecord, GroupRecord, InteractionRecord, MessageRecord, RejectedRecord
from cxsync.redaction.identity import CustomerIdentity
from cxsync.sources.helpers import (
    INTERACTIONS_STREAM,
    MappingError,
    as_text,
    dig,
    keyed_object,
    parse_iso_time,
    rejected,
)

PROVIDER = "helpdesk"
CLOSED_STATUSES = frozenset({"solved", "closed"})
SENDER_TYPES = {"agent": "agent", "client": "customer", "customer": "customer", "system": "system"}
# Highest privilege first: an agent with several roles is stored with the strongest one (all in raw).
ROLE_ORDER = ("owner", "admin", "normal", "viewer")
# `rating` to `csat_score`, on a 1-5 scale (docs/metrics.md).
RATING_SCORES = {"good": 5.0, "rated_good": 5.0, "bad": 1.0, "rated_bad": 1.0}


@dataclass
class MappedTicket:
    """A mapped ticket: its record, and the message events rejected on their own (the ticket loads without them)."""

    record: InteractionRecord
    rejected: list[RejectedRecord] = field(default_factory=list)


# ---- time ------------------------------------------------------------------------------------------------


parse_time = parse_iso_time


# ---- tickets ---------------------------------------------------------------------------------------------


def map_ticket(ticket: Any, tag_names: Mapping[str, str] | None = None) -> MappedTicket:
    """One ticket (with its `events[]`) to an `InteractionRecord`; `MappingError` says why not. `tag_names` maps
    tag IDs to names (`GET /v1/tags`); an ID it lacks is kept as it is."""
    if not isinstance(ticket, dict):
        raise MappingError(f"a ticket must be a JSON object, got {type(ticket).__name__}")
    ticket_id = ticket.get("ID")
    if not isinstance(ticket_id, str | int) or isinstance(ticket_id, bool) or not str(ticket_id).strip():
        raise MappingError("the ticket has no `ID`")
    ticket_id = str(ticket_id)
    started_at = parse_time(ticket.get("createdAt"))
    if started_at is None:
        raise MappingError(
            f"`createdAt` is missing or not an ISO 8601 time: {ticket.get('createdAt')!r}", key=ticket_id
        )
    provider_status = ticket.get("status")
    if not isinstance(provider_status, str) or not provider_status.strip():
        raise MappingError(f"`status` is missing or not text: {provider_status!r}", key=ticket_id)
    events = ticket.get("events")
    if events is None:
        events = []
    if not isinstance(events, list):
        raise MappingError(f"`events` must be a list, got {type(events).__name__}", key=ticket_id)

    refused: list[RejectedRecord] = []
    ordered = _in_event_order(events)
    messages: list[MessageRecord] = []
    kept_events: list[Any] = []
    by_id: dict[str, MessageRecord] = {}
    for position, event in ordered:
        if isinstance(event, dict) and event.get("type") == "message":
            try:
                message = map_message_event(event, seq=len(messages) + 1)
                if message.message_id in by_id:
                    if by_id[message.message_id].raw == event:
                        continue  # the same event sent twice: one message
                    raise MappingError(f"message event {message.message_id} appears twice with different content")
            except MappingError as exc:
                refused.append(rejected(INTERACTIONS_STREAM, exc, event, f"{ticket_id}/events[{position}]"))
                continue
            by_id[message.message_id] = message
            messages.append(message)
        else:
            kept_events.append(event)  # status, assignment and unknown types: kept raw, never fatal

    status_key = provider_status.strip().lower()
    closed = status_key in CLOSED_STATUSES
    record = InteractionRecord(
        interaction_id=ticket_id,
        provider=PROVIDER,
        status="closed" if closed else "open",
        provider_status=provider_status,
        started_at=started_at,
        channel=_text(_get(ticket, "source", "type")),
        subject=ticket["subject"] if isinstance(ticket.get("subject"), str) else None,  # as written, spaces kept
        ended_at=_ended_at(kept_events, ticket) if closed else None,
        updated_at=parse_time(ticket.get("updatedAt")),
        agent_id=_text(_get(ticket, "assignment", "agent", "ID")),
        customer_id=_text(_get(ticket, "requester", "email")),
        messages=messages,
        raw={**ticket, "events": kept_events},
        agents_seen=agents_named(ticket),
        csat_score=rating_score(ticket.get("rating")),
        agent_group=_text(_get(ticket, "assignment", "team", "name"))
        or _text(_get(ticket, "assignment", "team", "ID")),
        tags=tag_list(ticket.get("tagIDs"), tag_names or {}),
        priority=_priority(ticket.get("priority")),
        display_id=_text(ticket.get("shortID")),
    )
    return MappedTicket(record, refused)


def rating_score(rating: Any) -> float | None:
    """`good` 5, `bad` 1 (docs/metrics.md); anything else (unrated, unknown) no score."""
    if isinstance(rating, dict):  # an object form is not documented; read its value if it has one
        rating = rating.get("rate", rating.get("value"))
    return RATING_SCORES.get(rating.strip().lower()) if isinstance(rating, str) else None


def tag_ids(value: Any) -> list[str]:
    """The ticket's `tagIDs` as text, in order, each once."""
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(str(t) for t in value if isinstance(t, str | int) and not isinstance(t, bool) and str(t)))


def tag_list(value: Any, names: Mapping[str, str]) -> list[str]:
    """Tag names for `tagIDs`; an ID the account's tag list lacks stays as the ID."""
    return list(dict.fromkeys(names.get(t, t) for t in tag_ids(value)))


def _priority(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    return str(value).strip() or None if isinstance(value, str | int | float) else None


def attachments_of(event: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
    """Each attached file's `name`, `type` and `size` (never the file, never its URL)."""
    found: list[Any] = []
    for holder in (event.get("attachments"), message.get("attachments")):
        if isinstance(holder, dict):
            holder = holder.get("files")
        if isinstance(holder, list):
            found.extend(holder)
    out = []
    for item in found:
        if not isinstance(item, dict):
            continue
        size = item.get("size")
        kind = item.get("type", item.get("contentType", item.get("mimeType")))
        out.append(
            {
                "name": _text(item.get("name")),
                "type": _text(kind),
                "size": size if isinstance(size, int) and not isinstance(size, bool) else None,
            }
        )
    return out


def agents_named(ticket: dict[str, Any]) -> list[AgentRecord]:
    """Every agent the ticket names (event authors, old and new assignees, the current assignee), by ID: an agent
    deleted before our first roster sync is missing from `/v1/agents` but lives on here."""
    found: dict[str, AgentRecord] = {}

    def add(who: Any, email: Any = None) -> None:
        agent_id = _text(who.get("ID")) if isinstance(who, dict) else None
        if not agent_id:
            return
        known = found.get(agent_id)
        name, mail = _text(who.get("name")), _text(email if email is not None else who.get("email"))
        if known is None:
            found[agent_id] = AgentRecord(
                agent_id=agent_id,
                display_name=name,
                email=mail,
                login_name=mail,
                raw={"seen_in": "ticket events", "ID": agent_id, "name": name, "email": mail},
            )
        elif known.email is None and mail:
            known.email = known.login_name = mail

    for event in ticket.get("events") or []:
        if not isinstance(event, dict):
            continue
        author = event.get("author")
        if isinstance(author, dict) and str(author.get("type", "")).lower() == "agent":
            add(author)
        assignment = event.get("assignment")
        if isinstance(assignment, dict):
            for side in ("old", "new"):
                add(_get(assignment, side, "agent"))
    add(_get(ticket, "assignment", "agent"))
    return [found[k] for k in sorted(found)]


def map_message_event(event: dict[str, Any], seq: int) -> MessageRecord:
    """A `message` event to a `MessageRecord`; `MappingError` says why it cannot be one."""
    event_id = event.get("ID")
    if event_id is None or isinstance(event_id, bool) or str(event_id).strip() == "":
        raise MappingError("message event without an `ID`")
    message = event.get("message")
    if message is None:
        message = {}
    if not isinstance(message, dict):
        raise MappingError(f"message event {event_id}: `message` must be an object, got {type(message).__name__}")
    author = event.get("author") if isinstance(event.get("author"), dict) else {}
    author_type = str(author.get("type") or "system").lower()
    sender_type = SENDER_TYPES.get(author_type, "system")
    sender_id = _text(author.get("ID"))
    if sender_id is None and sender_type == "customer":
        sender_id = _text(author.get("email"))
    private = message.get("isPrivate") is True
    return MessageRecord(
        message_id=str(event_id),
        seq=seq,
        sent_at=parse_time(event.get("date")),
        sender_type=sender_type,
        sender_id=sender_id,
        text=_message_text(message),
        is_private=private,
        message_type="note" if private else "message",
        attachments=attachments_of(event, message),
        raw=event,
    )


def _message_text(message: dict[str, Any]) -> str | None:
    """The plain text as sent; derived from `richTextHtml` only when `text` is missing or empty."""
    text = message.get("text")
    if isinstance(text, str) and text != "":
        return text
    rich = message.get("richTextHtml")
    if isinstance(rich, str) and rich.strip():
        return html_to_text(rich)
    return text if isinstance(text, str) else None


_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_PARAGRAPH_END = re.compile(r"</p\s*>", re.IGNORECASE)


def html_to_text(markup: str) -> str:
    """Rich text to plain: line breaks and paragraphs kept, tags dropped, entities decoded. Linear in the input
    (a message is whatever a customer sent: 200 KB of `<` must not stall a load)."""
    text = _BREAK.sub("\n", markup)
    text = _PARAGRAPH_END.sub("\n\n", text)
    return html.unescape(_drop_tags(text)).strip()


def _drop_tags(text: str) -> str:
    """What `re.sub(r"<[^>]+>", "", text)` gives, in one pass: that regex retries from every `<` and scans to the
    end each time when no `>` follows, which is quadratic. A tag runs from a `<` to the first `>` after it (other
    `<` inside included) and holds at least one character; `<>` and a `<` with no `>` after it are text."""
    out: list[str] = []
    at = 0
    while True:
        opening = text.find("<", at)
        if opening < 0:
            break
        closing = text.find(">", opening + 1)
        if closing < 0:
            break  # no `>` anywhere after: no later `<` can open a tag either
        if closing == opening + 1:
            out.append(text[at : opening + 1])  # `<>` is not a tag: keep the `<`, look again after it
            at = opening + 1
            continue
        out.append(text[at:opening])
        at = closing + 1
    out.append(text[at:])
    return "".join(out)


def _in_event_order(events: list[Any]) -> list[tuple[int, Any]]:
    """(position in the array, event), ordered by (date, ID); events without a date keep their place."""

    def key(item: tuple[int, Any]) -> tuple:
        position, event = item
        when = parse_time(event.get("date")) if isinstance(event, dict) else None
        ident = event.get("ID") if isinstance(event, dict) else None
        ident_key = (0, ident, "") if isinstance(ident, int) and not isinstance(ident, bool) else (1, 0, str(ident))
        return (when or datetime.min.replace(tzinfo=UTC), ident_key, position)

    indexed = list(enumerate(events))
    if any(not isinstance(e, dict) or parse_time(e.get("date")) is None for _, e in indexed):
        return indexed
    return sorted(indexed, key=key)


def _ended_at(events: list[Any], ticket: dict[str, Any]) -> datetime | None:
    """The date of the latest status change to `solved`/`closed`; `updatedAt` when there is none."""
    ended: datetime | None = None
    for event in events:
        if not isinstance(event, dict) or event.get("type") != "status":
            continue
        change = event.get("status") if isinstance(event.get("status"), dict) else {}
        if str(change.get("new") or "").lower() in CLOSED_STATUSES:
            ended = parse_time(event.get("date")) or ended
    return ended or parse_time(ticket.get("updatedAt"))


# ---- roster ----------------------------------------------------------------------------------------------


def map_agent(agent: Any) -> AgentRecord:
    """`/v1/agents` row to an `AgentRecord`: `active` agents are enabled, `invited` ones not yet."""
    agent_id = keyed_object(agent, "an agent", "ID")
    roles = agent.get("roles")
    roles = [str(r) for r in roles if isinstance(r, str | int)] if isinstance(roles, list) else []
    team_ids = agent.get("teamIDs")
    team_ids = [str(t) for t in team_ids if t is not None] if isinstance(team_ids, list) else []
    status = _text(agent.get("status"))
    email = _text(agent.get("email"))
    return AgentRecord(
        agent_id=agent_id,
        login_name=email,
        display_name=_text(agent.get("name")),
        email=email,
        role=primary_role(roles),
        is_enabled=(status.lower() == "active") if status else None,
        is_deleted=False,
        group_ids=team_ids,
        raw=agent,
    )


def primary_role(roles: list[str]) -> str | None:
    """The strongest of an agent's roles; unknown roles after the known ones, in their order."""
    if not roles:
        return None
    known = [r for r in ROLE_ORDER if r in roles]
    return known[0] if known else roles[0]


def map_team(team: Any) -> GroupRecord:
    if not isinstance(team, dict) or not _text(team.get("ID")):
        raise MappingError("a team must be a JSON object with an `ID`")
    return GroupRecord(group_id=str(team["ID"]), name=_text(team.get("name")), raw=team)


# ---- helpers ---------------------------------------------------------------------------------------------


_get = dig
_text = as_text


def customer_identity(raw: Any) -> CustomerIdentity | None:
    """The requester's name and e-mail, and those of the ticket's client authors (a ticket's events are its raw)."""
    if not isinstance(raw, dict):
        return None
    people = [raw.get("requester")]
    for event in raw.get("events") or []:
        author = event.get("author") if isinstance(event, dict) else None
        if isinstance(author, dict) and str(author.get("type", "")).lower() == "client":
            people.append(author)
    if isinstance(raw.get("author"), dict) and str(raw["author"].get("type", "")).lower() == "client":
        people.append(raw["author"])  # a message event alone (a refused one, as a rejected record)
    people = [p for p in people if isinstance(p, dict)]
    return CustomerIdentity.of([p.get("name") for p in people], [p.get("email") for p in people])
