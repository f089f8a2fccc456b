"""Malformed provider records: nothing crashes, and every record received is either loaded or rejected.

Hypothesis builds answers from real records (taken once from the sandbox) by mutating them at random: fields
dropped, set to null, to another type, to weird text (empty, NUL, a lone surrogate, 100,000 characters,
unknown enums, impossible dates), to nested garbage, list items duplicated or cut; some records are pure
garbage, some untouched. Ids take weird forms (numbers, floats, padded, 300 characters long, with NUL) but stay
distinct per record, since two records with one id are legitimately one interaction.

The answers go through everything after the transport: the hook's answer handling (the request layer's JSON
decoding, then `LivePersonHook._answer` / `HelpDeskHook.ticket` and its paging), the source with its mapping,
and `pipeline.load_changes` into a real warehouse (SQLite and PostgreSQL). Then, counted in the warehouse:
- LivePerson: cx_interactions rows + cx_rejected_records rows of the stream = conversation records received;
- HelpDesk: cx_interactions rows + ticket-level rejections = tickets listed; and every message event of a
  loaded ticket is in cx_messages (by its ID: an event repeated whole is one message) or rejected on its own
  (`<ticket>/events[n]`).
In both, every loaded interaction has exactly its `message_count` rows in cx_messages.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxsync import pipeline
from cxsync.hooks.helpdesk import HelpDeskHook
from cxsync.hooks.liveperson import LivePersonHook
from cxsync.sources.helpdesk import HelpDeskSource
from cxsync.sources.liveperson import LivePersonSource
from cxsync.warehouse import schema as t
from cxsync.warehouse.store import storable
from support.providers import PROVIDERS, connection_env, sandbox_connections, start_sandbox

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
# Modest for `make test`; CXSYNC_HYPOTHESIS_EXAMPLES=500 searches harder.
EXAMPLES = int(os.environ.get("CXSYNC_HYPOTHESIS_EXAMPLES", "30"))
_integration_ids = itertools.count(1)

# ---- what the provider might send ------------------------------------------------------------------------

WEIRD_TEXTS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud83d",  # half an emoji: a string cut between the two halves of a surrogate pair
    "null",
    "-1",
    "undefined",
    "NaN",
    "1e309",
    "OPEN",
    "close",
    "CLOSE ",
    "solved",
    "Agent",
    "Consumer",
    "bot",
    "AGENTS_AND_MANAGERS",
    "message",
    "client",
    "2017-06-12 14:26:12.839+0000",
    "9999-12-31T23:59:59Z",
    "0000-00-00T00:00:00Z",
    "2025-13-45T25:61:61Z",
    "\U0001f4ac" * 5,
    "\u202eevil",
    "<p>rich<br>text</p>",
    "x" * 100_000,
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(WEIRD_TEXTS),
)
GARBAGE = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, value: Any, rate: int) -> Any:
    """`value` with about `rate` % of its nodes replaced by garbage, dropped, or (lists) duplicated or cut."""
    if draw(st.integers(0, 99)) < rate:
        return draw(GARBAGE)
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            if draw(st.integers(0, 99)) < rate:
                continue  # the field is missing
            out[key] = draw(mutated(child, rate))
        if draw(st.integers(0, 99)) < rate:
            out[draw(st.text(max_size=8))] = draw(GARBAGE)  # a field nobody documented
        return out
    if isinstance(value, list):
        items = [draw(mutated(child, rate)) for child in value]
        roll = draw(st.integers(0, 99))
        if roll < rate and items:
            items.insert(draw(st.integers(0, len(items))), copy.deepcopy(draw(st.sampled_from(items))))
        elif roll >= 100 - rate:
            items = items[: len(items) // 2]
        return items
    return value


def weird_id(draw: st.DrawFn, base: int) -> Any:
    """An id in an odd but valid form, distinct per `base`; or no usable id at all."""
    return draw(
        st.sampled_from(
            [
                base,
                str(base),
                float(base),
                f"  {base}\t",
                f"conv-{base}-\x00",
                f"{'é' * 300}-{base}",
                f"\U0001f4ac-{base}",
                None,
                "",
                "   ",
                True,
                [],
            ]
        )
    )


@st.composite
def record_batch(draw: st.DrawFn, templates: list[dict], set_id) -> list[Any]:
    """1 to 8 distinct records: most mutated copies of templates, some pure garbage, some untouched. (Two equal
    records are one record sent twice, which a provider's paging can do and the source rightly treats as one.)"""
    records: list[Any] = []
    for base in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "garbage", "untouched"]))
        if kind == "garbage":
            record = draw(GARBAGE)
        else:
            record = copy.deepcopy(draw(st.sampled_from(templates)))
            if kind == "mutated":
                record = draw(mutated(record, draw(st.sampled_from([2, 5, 12]))))
            set_id(record, weird_id(draw, base))
        if all(_canonical(record) != _canonical(other) for other in records):
            records.append(record)
    return records


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def through_json(answer: Any) -> Any:
    """What the request layer hands the hook: the answer encoded as the provider would, decoded as we do
    (msgspec, else the json module, which also reads NaN, huge numbers and lone surrogates)."""
    text = json.dumps(answer)
    try:
        return msgspec.json.decode(text.encode())
    except (msgspec.DecodeError, UnicodeDecodeError):
        return json.loads(text)


# ---- hooks that answer from memory, everything after the transport left as it is ---------------------------


class ServedLivePersonHook(LivePersonHook):
    def __init__(self, records: list[Any]):
        super().__init__("liveperson_served")
        self.records = records

    def server_now(self) -> datetime:
        return NOW

    def search_conversations(self, body, *, offset=0, limit=100, **retry):
        page = self.records[offset : offset + limit]
        return self._answer(
            through_json({"_metadata": {"count": len(self.records)}, "conversationHistoryRecords": page})
        )

    def conversations_by_id(self, conversation_ids, content_to_retrieve=None, **retry):
        """A record flagged `isPartial` comes back whole when asked by id."""
        from cxsync.sources.liveperson_mapping import conversation_key

        wanted = {str(i) for i in conversation_ids}
        whole = []
        for record in self.records:
            if conversation_key(record) in wanted:
                record = copy.deepcopy(record)
                record["info"].pop("isPartial", None)
                whole.append(record)
        return self._answer(through_json({"_metadata": {"count": len(whole)}, "conversationHistoryRecords": whole}))

    def users(self):
        return []

    def close(self) -> None:
        pass


class ServedHelpDeskHook(HelpDeskHook):
    """The list answers rows with each ticket's ID and a recent `updatedAt`; the detail is the malformed ticket."""

    def __init__(self, ids: list[str], tickets: dict[str, Any]):
        super().__init__("helpdesk_served")
        self.ids = ids
        self.tickets = tickets

    def get(self, path, params=None):
        if path == "/tickets":
            if params.get("silo") != "tickets" or "next.ID" in params:
                return through_json([])
            updated = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            return through_json([{"ID": i, "updatedAt": updated} for i in self.ids])
        if path == "/tags":  # no tag names: a ticket's tags stay as its ids
            return through_json([])
        return through_json(self.tickets[path.rsplit("/", 1)[1]])

    def server_now(self) -> datetime:
        return NOW


# ---- real records to start from ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def templates() -> dict[str, list[dict]]:
    """A dozen real conversation records and tickets (open and closed, with notes, bots, files, transfers)."""
    server = start_sandbox()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in connection_env(sandbox_connections(server)).items():
                mp.setenv(name, value)
            lp = LivePersonHook("sandbox_liveperson_main")
            answer = lp.search_conversations(
                {
                    "start": {
                        "from": int((NOW - timedelta(days=7)).timestamp() * 1000),
                        "to": int(NOW.timestamp() * 1000),
                    }
                },
                limit=100,
            )
            lp.close()
            hd = HelpDeskHook("sandbox_helpdesk_main")
            rows = next(hd.ticket_pages(silo="tickets", sort_by="updatedAt", order="desc", page_size=30))
            tickets = [hd.ticket(row["ID"]) for row in rows[:12]]
            hd.close()
    finally:
        server.stop()
    conversations = answer["conversationHistoryRecords"]
    conversations = conversations[:: max(1, len(conversations) // 12)]
    assert conversations and tickets
    return {"liveperson": conversations, "helpdesk": tickets}


def _set_conversation_id(record: Any, value: Any) -> None:
    if isinstance(record, dict) and isinstance(record.get("info"), dict):
        record["info"]["conversationId"] = value


def _set_ticket_id(record: Any, value: Any) -> None:
    if isinstance(record, dict):
        record["ID"] = value


# ---- counting in the warehouse -----------------------------------------------------------------------------


def counts(engine: sa.Engine, integration_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        interactions = dict(
            conn.execute(
                sa.select(t.interactions.c.interaction_id, t.interactions.c.message_count).where(
                    t.interactions.c.integration_id == integration_id
                )
            ).all()
        )
        messages: dict[str, set[str]] = {}
        for iid, message_id in conn.execute(
            sa.select(t.messages.c.interaction_id, t.messages.c.message_id).where(
                t.messages.c.integration_id == integration_id
            )
        ):
            messages.setdefault(iid, set()).add(message_id)
        rejected = [
            key
            for (key,) in conn.execute(
                sa.select(t.rejected_records.c.record_key).where(
                    t.rejected_records.c.integration_id == integration_id,
                    t.rejected_records.c.stream == "interactions",
                )
            )
        ]
    return {"interactions": interactions, "messages": messages, "rejected": rejected}


def assert_messages_consistent(found: dict[str, Any]) -> None:
    for iid, message_count in found["interactions"].items():
        assert len(found["messages"].get(iid, ())) == message_count, f"{iid}: message_count vs cx_messages rows"


# ---- the properties --------------------------------------------------------------------------------------------

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(data=st.data())
def test_malformed_liveperson_conversations_are_loaded_or_rejected_never_lost(data, templates, warehouse):
    records = data.draw(record_batch(templates["liveperson"], _set_conversation_id))
    integration = PROVIDERS["liveperson"].integration(f"lp_bad_{next(_integration_ids)}")
    source = LivePersonSource(integration, hook=ServedLivePersonHook(records))

    pipeline.load_changes(integration, source, warehouse)

    found = counts(warehouse.engine, integration.id)
    assert len(found["interactions"]) + len(found["rejected"]) == len(records), found
    assert_messages_consistent(found)


@SETTINGS
@given(data=st.data())
def test_malformed_helpdesk_tickets_are_loaded_or_rejected_never_lost(data, templates, warehouse):
    tickets = data.draw(record_batch(templates["helpdesk"], _set_ticket_id))
    listed = [f"ticket-{n}" for n in range(len(tickets))]
    integration = PROVIDERS["helpdesk"].integration(f"hd_bad_{next(_integration_ids)}")
    source = HelpDeskSource(integration, hook=ServedHelpDeskHook(listed, dict(zip(listed, tickets, strict=True))))

    pipeline.load_changes(integration, source, warehouse)

    found = counts(warehouse.engine, integration.id)
    message_level = [k for k in found["rejected"] if k and "/events[" in k]
    ticket_level = [k for k in found["rejected"] if not (k and "/events[" in k)]
    assert len(found["interactions"]) + len(ticket_level) == len(tickets), found
    assert_messages_consistent(found)
    for iid in found["interactions"]:
        stored = found["messages"].get(iid, set())
        for position, event in enumerate(_ticket_events(tickets, iid)):
            if isinstance(event, dict) and event.get("type") == "message":
                kept = storable(str(event.get("ID"))) in stored
                assert kept or f"{iid}/events[{position}]" in message_level, f"{iid}: message event {position} lost"


def _ticket_events(tickets: list[Any], iid: str) -> list[Any]:
    for ticket in tickets:
        if isinstance(ticket, dict) and storable(str(ticket.get("ID"))) == iid:
            events = ticket.get("events")
            return events if isinstance(events, list) else []
    raise AssertionError(f"loaded interaction {iid!r} matches no ticket sent")
