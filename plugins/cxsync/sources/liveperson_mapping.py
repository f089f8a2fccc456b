"""LivePerson answers -> normalized records. Pure functions: a record dict in, a record out.

Mapping (docs/architecture.md): `info.conversationId` is the interaction id; `OPEN`/`CLOSE` map to open/closed
(`provider_status` keeps the raw value); `latestAgentId` is the agent; the first consumer participant is
the customer; `messageRecords` are the messages, ordered by the provider's `seq` then time and numbered
from 1; `sentBy` Agent/Consumer (any case), bots recognised by the participant's user type;
`audience` `AGENTS_AND_MANAGERS` is a private note. Every id is text, every time UTC from epoch ms.

A record that cannot be mapped raises `MappingError` (`cxsync.sources.helpers`, the convention of every
mapping) with a reason a person can act on; the source turns it into a `RejectedRecord` and the run goes on.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cxsync.records import AgentRecord, GroupRecord, InteractionRecord, MessageRecord, SkillRecord
from cxsync.redaction.identity import CustomerIdentity
from cxsync.sources.helpers import MappingError as MappingError  # the shared convention (sources.helpers)
from cxsync.sources.helpers import as_list, as_text, keyed_object

PROVIDER = "liveperson"
PRIVATE_AUDIENCE = "AGENTS_AND_MANAGERS"
STATUS_MAP = {"OPEN": "open", "CLOSE": "closed", "CLOSED": "closed"}
# Users API `userTypeId`: 0 system, 1 human, 2 bot.
USER_TYPE_ROLES = {0: "system", 2: "bot"}
BOT_TYPE_NAMES = {"bot", "2"}
SYSTEM_TYPE_NAMES = {"system", "0"}
# `endTime` of an open conversation.
OPEN_END_MARKERS = {"", "-1", "undefined", "null", "none"}
MAX_DESCRIPTION = 2000
# Time strings LivePerson writes next to the epoch-ms fields, e.g. "2017-06-12 14:26:12.839+0000".
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z")


# ---- small readers ---------------------------------------------------------------------------------


def epoch_ms(value: Any) -> int | None:
    """An epoch-millisecond value (number or numeric string); None when absent or the -1 "not yet" marker."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in OPEN_END_MARKERS:
            return None
        try:
            value = float(text)
        except ValueError:
            raise MappingError(f"{value!r} is not an epoch-milliseconds time") from None
    if not isinstance(value, int | float):
        raise MappingError(f"{value!r} is not an epoch-milliseconds time")
    if value < 0:
        return None
    return int(value)


def from_ms(ms: int) -> datetime:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise MappingError(f"{ms!r} epoch milliseconds is no time a calendar holds") from None


def _plain_ms_time(value: Any) -> datetime | None:
    """A plain non-negative int of epoch ms as a time, else None (then `read_time` decides, with its messages)."""
    if type(value) is int and value >= 0:
        try:
            return from_ms(value)
        except MappingError:
            return None
    return None


def parse_time_string(value: Any) -> datetime | None:
    """LivePerson's time strings; None for the open-conversation markers."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        ms = epoch_ms(value)
        return from_ms(ms) if ms is not None else None
    text = str(value).strip()
    if text.lower() in OPEN_END_MARKERS:
        return None
    candidate = text.replace("Z", "+0000") if text.endswith("Z") else text
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(candidate, fmt).astimezone(UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MappingError(f"{value!r} is not a time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_time(obj: Mapping[str, Any], ms_key: str, text_key: str, what: str) -> datetime | None:
    """The epoch-ms field when present, else the string field; a value that is not a time is an error."""
    try:
        if obj.get(ms_key) is not None:
            ms = epoch_ms(obj.get(ms_key))
            if ms is not None:
                return from_ms(ms)
            # -1: "not yet" (an open conversation's end); the string says the same or nothing.
            text = obj.get(text_key)
            return parse_time_string(text) if text not in (None, -1) else None
        return parse_time_string(obj.get(text_key))
    except MappingError as exc:
        raise MappingError(f"{what}: {exc}") from None


# ---- conversation -> interaction --------------------------------------------------------------------


def conversation_key(record: Any) -> str | None:
    """The conversation id when it can be read at all (for rejected records and dedupe)."""
    if isinstance(record, Mapping) and isinstance(record.get("info"), Mapping):
        return as_text(record["info"].get("conversationId"))
    return None


def conversation_start_ms(record: Any) -> int | None:
    """The start time in epoch ms, or None when the record does not say (the mapping then rejects it)."""
    try:
        info = record["info"]
        started = read_time(info, "startTimeL", "startTime", "start time")
    except (KeyError, TypeError, MappingError):
        return None
    return int(started.timestamp() * 1000) if started else None


def is_partial(record: Any) -> bool:
    """`info.isPartial`: the record was cut short and must be fetched again by id."""
    if not isinstance(record, Mapping) or not isinstance(record.get("info"), Mapping):
        return False
    flag = record["info"].get("isPartial")
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def stable_view(record: Any) -> Any:
    """The record without what depends on the moment it was read: an open conversation's `duration` runs
    until retrieval, so keeping it would make every re-read look like a change."""
    if not isinstance(record, Mapping) or not isinstance(record.get("info"), Mapping):
        return record
    info = record["info"]
    if "duration" not in info or str(info.get("status", "")).upper() != "OPEN":
        return record
    return {**record, "info": {k: v for k, v in info.items() if k != "duration"}}


def participant_types(record: Mapping[str, Any]) -> dict[str, str]:
    """participant id -> lower-case user type name ("human", "bot", "system") from `agentParticipants`."""
    types: dict[str, str] = {}
    for participant in as_list(record.get("agentParticipants")):
        if not isinstance(participant, Mapping):
            continue
        kind = as_text(participant.get("userTypeName")) or as_text(participant.get("userType"))
        if not kind:
            continue
        for key in ("agentId", "participantId", "agentPid"):
            pid = as_text(participant.get(key))
            if pid:
                types[pid] = kind.lower()
    return types


def map_conversation(record: Any, *, bot_ids: Collection[str] = ()) -> InteractionRecord:
    """One `conversationHistoryRecords` entry -> an `InteractionRecord` with its messages.

    `bot_ids`: agent ids the Users API marks as bots (`userTypeId` 2), for participants whose
    `userTypeName` the record leaves out.
    """
    if not isinstance(record, Mapping):
        raise MappingError(f"a conversation record must be a JSON object, got {type(record).__name__}")
    info = record.get("info")
    if not isinstance(info, Mapping):
        raise MappingError("the conversation record has no `info` object")
    conversation_id = as_text(info.get("conversationId"))
    if not conversation_id:
        raise MappingError("`info.conversationId` is missing")
    raw_status = as_text(info.get("status"))
    status = STATUS_MAP.get((raw_status or "").upper())
    if status is None:
        raise MappingError(f"`info.status` {raw_status!r} is neither OPEN nor CLOSE")
    started_at = read_time(info, "startTimeL", "startTime", "`info.startTime`")
    if started_at is None:
        raise MappingError("`info.startTimeL` / `info.startTime` is missing")
    dialogs = dialog_types(record)
    ended_at = main_dialog_end(record, info) if status == "closed" else None

    messages = map_messages(record, conversation_id, bot_ids=bot_ids, dialogs=dialogs)
    consumers = [c for c in as_list(record.get("consumerParticipants")) if isinstance(c, Mapping)]
    customer_id = next((as_text(c.get("participantId")) for c in consumers if as_text(c.get("participantId"))), None)
    agent_id = as_text(info.get("latestAgentId"))
    if agent_id == "-1":
        agent_id = None

    # The latest event the record shows: start, messages, agents joining, transfers, close.
    # `info.endTimeL` is when the last dialog (a post-conversation survey, say) closed: a change too.
    closed_at = read_time(info, "endTimeL", "endTime", "`info.endTime`") if status == "closed" else None
    times = [t for t in (started_at, ended_at, closed_at) if t is not None]
    times += [m.sent_at for m in messages if m.sent_at is not None]
    times += _event_times(record.get("agentParticipants")) + _event_times(record.get("transfers"))
    raw = {k: v for k, v in stable_view(record).items() if k != "messageRecords"}  # messages keep their own raw
    return InteractionRecord(
        interaction_id=conversation_id,
        provider=PROVIDER,
        status=status,
        provider_status=raw_status,
        started_at=started_at,
        ended_at=ended_at,
        updated_at=max(times),
        channel=channel_of(info),
        subject=None,
        agent_id=agent_id,
        customer_id=customer_id,
        messages=messages,
        raw=raw,
        csat_score=csat_of(record, info),
        sentiment_score=_score(info.get("mcs"), 0, 100),
        close_reason=as_text(info.get("closeReason")),
        skill=as_text(info.get("latestSkillName")),
        agent_group=as_text(info.get("latestAgentGroupName")),
    )


def dialog_types(record: Mapping[str, Any]) -> dict[str, str]:
    """dialogId -> its `dialogType`, lowercased (`main`, `post_survey`, ...), from `dialogs[]`."""
    out: dict[str, str] = {}
    for dialog in as_list(record.get("dialogs")):
        if isinstance(dialog, Mapping) and as_text(dialog.get("dialogId")) and as_text(dialog.get("dialogType")):
            out[as_text(dialog["dialogId"])] = as_text(dialog["dialogType"]).lower()
    return out


def main_dialog_end(record: Mapping[str, Any], info: Mapping[str, Any]) -> datetime | None:
    """When the agent's conversation ended: the MAIN dialog's end. `info.endTimeL` includes a post-conversation
    survey that ran after it, so it is the last resort (after `info.conversationEndTimeL`, which some answers
    carry)."""
    ends = []
    for dialog in as_list(record.get("dialogs")):
        if isinstance(dialog, Mapping) and (as_text(dialog.get("dialogType")) or "").upper() == "MAIN":
            end = read_time(dialog, "endTimeL", "endTime", "the MAIN dialog's `endTime`")
            if end is not None:
                ends.append(end)
    if ends:
        return max(ends)
    end = read_time(info, "conversationEndTimeL", "conversationEndTime", "`info.conversationEndTime`")
    return end if end is not None else read_time(info, "endTimeL", "endTime", "`info.endTime`")


def csat_of(record: Mapping[str, Any], info: Mapping[str, Any]) -> float | None:
    """CSAT on LivePerson's 1-5 scale: `info.csat` (or `csatRate`), else a 1-5 answer of a filled survey."""
    for key in ("csat", "csatRate"):
        score = _score(info.get(key), 1, 5)
        if score is not None:
            return score
    for survey in as_list(record.get("conversationSurveys")):
        if not isinstance(survey, Mapping):
            continue
        for item in as_list(survey.get("surveyData")):
            score = _score(item.get("answer"), 1, 5) if isinstance(item, Mapping) else None
            if score is not None:
                return score
    return None


def _score(value: Any, low: float, high: float) -> float | None:
    """A number on the scale low..high; anything else (absent, -1, text) is no score."""
    number = _number(value)
    return number if number is not None and low <= number <= high else None


def attachments_of(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A file message's metadata, {name, type, size}: the caption (or the path's last part) and `fileType`.
    LivePerson's record gives no size; the file itself is never fetched."""
    data = item.get("messageData")
    file = data.get("file") if isinstance(data, Mapping) else None
    if not isinstance(file, Mapping):
        return []
    path = as_text(file.get("relativePath")) or ""
    name = as_text(file.get("caption")) or (path.rsplit("/", 1)[-1] if path else None)
    return [{"name": name, "type": as_text(file.get("fileType")), "size": _number(file.get("size"))}]


def _event_times(items: Any) -> list[datetime]:
    """`timeL` of participants or transfers; an unreadable one only leaves `updated_at` less precise."""
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping):
            try:
                moment = read_time(item, "timeL", "time", "event")
            except MappingError:
                continue
            if moment is not None:
                out.append(moment)
    return out


def channel_of(info: Mapping[str, Any]) -> str:
    """Messaging, with the entry point when the record says (e.g. `messaging:app`)."""
    source = as_text(info.get("source"))
    return f"messaging:{source.lower()}" if source else "messaging"


def map_messages(
    record: Mapping[str, Any],
    conversation_id: str,
    *,
    bot_ids: Collection[str] = (),
    dialogs: Mapping[str, str] | None = None,
) -> list[MessageRecord]:
    items = record.get("messageRecords")
    if items is None:
        return []
    if not isinstance(items, list):
        raise MappingError("`messageRecords` must be a list")
    types = participant_types(record)
    bots = {str(b) for b in bot_ids}
    parsed: list[tuple[tuple, MessageRecord]] = []
    for index, item in enumerate(items):
        if type(item) is not dict and not isinstance(item, Mapping):
            raise MappingError(f"message {index + 1} of {conversation_id} is not a JSON object")
        message = map_message(item, types, bots, where=f"message {index + 1}", dialogs=dialogs)
        seq = _number(item.get("seq"))
        moment = message.sent_at.timestamp() if message.sent_at else float("inf")
        parsed.append(((seq if seq is not None else float("inf"), moment, index), message))
    parsed.sort(key=lambda pair: pair[0])

    out: list[MessageRecord] = []
    by_id: dict[str, MessageRecord] = {}
    for _, message in parsed:
        seen = by_id.get(message.message_id)
        if seen is not None:
            if seen.raw != message.raw:
                raise MappingError(f"message id {message.message_id!r} appears twice with different content")
            continue  # the same message sent twice in one answer
        by_id[message.message_id] = message
        message.seq = len(out) + 1
        out.append(message)
    return out


def map_message(
    item: Mapping[str, Any],
    types: Mapping[str, str],
    bots: Collection[str],
    *,
    where: str,
    dialogs: Mapping[str, str] | None = None,
) -> MessageRecord:
    message_id = as_text(item.get("messageId"))
    if not message_id:
        raise MappingError(f"{where}: `messageId` is missing")
    sent_at = _plain_ms_time(item.get("timeL"))  # what LivePerson sends; anything else takes the general path
    if sent_at is None:
        sent_at = read_time(item, "timeL", "time", f"{where} ({message_id}) time")
    participant = as_text(item.get("participantId"))
    sender_type = sender_type_of(
        item.get("sentBy"), types.get(participant or ""), participant in bots, where=f"{where} ({message_id})"
    )
    audience = (as_text(item.get("audience")) or "ALL").upper()
    return MessageRecord(
        message_id=message_id,
        seq=0,  # numbered once all messages are ordered
        sent_at=sent_at,
        sender_type=sender_type,
        sender_id=participant,
        text=message_text(item),
        is_private=audience == PRIVATE_AUDIENCE,
        message_type=as_text(item.get("type")),
        # a message of a dialog `dialogs[]` does not list (or with no dialogId) belongs to the conversation itself
        dialog_type=(dialogs or {}).get(as_text(item.get("dialogId")) or "", "main"),
        attachments=attachments_of(item),
        raw=dict(item),
    )


def sender_type_of(sent_by: Any, participant_type: str | None, listed_bot: bool, *, where: str) -> str:
    who = (as_text(sent_by) or "").lower()
    if who == "consumer":
        return "customer"
    if who == "agent":
        if listed_bot or participant_type in BOT_TYPE_NAMES:
            return "bot"
        if participant_type in SYSTEM_TYPE_NAMES:
            return "system"
        return "agent"
    if who == "bot":
        return "bot"
    if who == "system":
        return "system"
    raise MappingError(f"{where}: `sentBy` {sent_by!r} is neither Agent nor Consumer")


def message_text(item: Mapping[str, Any]) -> str | None:
    """The words of a message: `msg.text`; a file's caption or a short description; rich content's texts."""
    data = item.get("messageData")
    if type(data) is not dict and not isinstance(data, Mapping):
        return None
    msg = data.get("msg")
    if (type(msg) is dict or isinstance(msg, Mapping)) and msg.get("text") is not None:
        return str(msg["text"])
    file = data.get("file")
    if isinstance(file, Mapping):
        caption = as_text(file.get("caption"))
        if caption:
            return caption
        kind = as_text(file.get("fileType"))
        return f"[file: {kind}]" if kind else "[file]"
    rich = data.get("richContent")
    if rich is not None:
        content = rich.get("content") if isinstance(rich, Mapping) else rich
        if isinstance(content, str):
            try:
                content = json.loads(content)
            except ValueError:
                return _short(f"[rich content] {content}")
        texts = _texts(content)
        return _short("[rich content] " + " / ".join(texts)) if texts else "[rich content]"
    kind = as_text(item.get("type"))
    return f"[{kind.lower()}]" if kind else None


# Parts of structured content that are not shown (what a click does, tracking data).
HIDDEN_RICH_KEYS = frozenset({"click", "actions", "metadata", "tooltip"})


def _texts(node: Any) -> list[str]:
    """The shown `title` and `text` strings of a structured-content tree, in order."""
    found: list[str] = []
    if isinstance(node, Mapping):
        for key in ("title", "text"):
            value = node.get(key)
            if isinstance(value, str) and value.strip():
                found.append(value.strip())
        for key, value in node.items():
            if isinstance(value, list | Mapping) and key not in HIDDEN_RICH_KEYS:
                found.extend(_texts(value))
    elif isinstance(node, list):
        for child in node:
            found.extend(_texts(child))
    return found


def _short(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---- roster -------------------------------------------------------------------------------------------


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise MappingError(f"{value!r} is not true or false")


def user_type(user: Mapping[str, Any]) -> int | None:
    value = _number(user.get("userTypeId"))
    return int(value) if value is not None else None


# The Profiles API's `roleTypeId`s, and the role cxsync stores for each.
ROLE_TYPES = {1: "admin", 2: "agent", 3: "agent_manager", 4: "campaign_manager"}
# A user with several profiles takes the first of these it holds: an admin who may also chat is an admin, not
# one of the agents whose conversations are scored.
ROLE_PRECEDENCE = ("admin", "agent_manager", "campaign_manager", "agent")


def profile_roles(profiles: Sequence[Any]) -> dict[str, str]:
    """Profile id -> role, from the Profiles API (`id`, `roleTypeId`); unknown role types are skipped."""
    out: dict[str, str] = {}
    for profile in profiles:
        if not isinstance(profile, Mapping) or not as_text(profile.get("id")):
            continue
        kind = _number(profile.get("roleTypeId"))
        if kind is not None and int(kind) in ROLE_TYPES:
            out[as_text(profile["id"])] = ROLE_TYPES[int(kind)]
    return out


def role_of(user: Mapping[str, Any], roles: Mapping[str, str] | None = None) -> str:
    """bot / system by user type; for people, the role of their `profileIds` (through the Profiles API's
    `roleTypeId`, `roles`); without the Profiles API, agent_manager for managers of groups, else agent."""
    kind = user_type(user)
    if kind in USER_TYPE_ROLES:
        return USER_TYPE_ROLES[kind]
    held = {roles[p] for p in (as_text(x) for x in as_list(user.get("profileIds"))) if roles and p in roles}
    for role in ROLE_PRECEDENCE:
        if role in held:
            return role
    if user.get("managerOf"):
        return "agent_manager"
    return "agent"


def map_user(user: Any, roles: Mapping[str, str] | None = None) -> AgentRecord:
    agent_id = keyed_object(user, "a user", "id")
    try:
        deleted = bool(_bool(user.get("deleted")))
        enabled = _bool(user.get("isEnabled"))
    except MappingError as exc:
        raise MappingError(f"user {agent_id}: {exc}") from None
    member_of = user.get("memberOf")
    groups = []
    if isinstance(member_of, Mapping) and as_text(member_of.get("agentGroupId")):
        groups.append(as_text(member_of.get("agentGroupId")))
    elif isinstance(member_of, list):
        groups = [g for g in (as_text(m.get("agentGroupId")) for m in member_of if isinstance(m, Mapping)) if g]
    skills = [s for s in (as_text(x) for x in as_list(user.get("skillIds"))) if s]
    display = as_text(user.get("fullName")) or as_text(user.get("nickname")) or as_text(user.get("loginName"))
    return AgentRecord(
        agent_id=agent_id,
        login_name=as_text(user.get("loginName")),
        display_name=display,
        email=as_text(user.get("email")),
        role=role_of(user, roles),
        is_enabled=enabled,
        is_deleted=deleted,
        group_ids=[g for g in groups if g],
        skill_ids=skills,
        raw=dict(user),
    )


def map_group(group: Any) -> GroupRecord:
    if not isinstance(group, Mapping) or not as_text(group.get("id")):
        raise MappingError("an agent group without an `id`")
    return GroupRecord(group_id=as_text(group["id"]), name=as_text(group.get("name")), raw=dict(group))


def map_skill(skill: Any) -> SkillRecord:
    if not isinstance(skill, Mapping) or not as_text(skill.get("id")):
        raise MappingError("a skill without an `id`")
    return SkillRecord(skill_id=as_text(skill["id"]), name=as_text(skill.get("name")), raw=dict(skill))


def bot_ids_of(users: Collection[Mapping[str, Any]]) -> set[str]:
    """Agent ids the Users API marks as bots."""
    return {as_text(u.get("id")) for u in users if isinstance(u, Mapping) and user_type(u) == 2 and u.get("id")}


def customer_identity(raw: Any) -> CustomerIdentity | None:
    """The consumer participants' names, e-mail and phone, and those the `personalInfo` SDEs carry."""
    if not isinstance(raw, Mapping):
        return None
    names: list[Any] = []
    emails: list[Any] = []
    phones: list[Any] = []
    for consumer in as_list(raw.get("consumerParticipants")):
        if isinstance(consumer, Mapping):
            names += [consumer.get("firstName"), consumer.get("lastName"), consumer.get("consumerName")]
            emails.append(consumer.get("email"))
            phones.append(consumer.get("phone"))
    sdes = raw.get("sdes")
    for event in as_list(sdes.get("events")) if isinstance(sdes, Mapping) else []:
        info = _get_path(event, "personalInfo", "personalInfo")
        if isinstance(info, Mapping):
            names += [info.get("firstname"), info.get("lastname")]
            for contact in as_list(info.get("contacts")):
                if isinstance(contact, Mapping):
                    emails.append(contact.get("email"))
                    phones.append(contact.get("phone"))
    return CustomerIdentity.of(names, emails, phones)


def _get_path(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
