"""A source serving the labelled PII corpus as LivePerson conversations or HelpDesk tickets, through the real
mapping modules (what the providers' sources map), plus one record each mapping refuses (a rejected record
holding planted values)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cxsync.records import RejectedRecord
from cxsync.sources import helpdesk_mapping, liveperson_mapping
from cxsync.sources.base import Listed, Page, Roster, Source
from cxsync.sources.helpers import INTERACTIONS_STREAM, MappingError
from cxsync.sources.helpers import rejected as refused
from cxsync.warehouse import schema as t
from cxsync_dev.pii.corpus import Conversation, generate
from cxsync_dev.pii.records import EPOCH, agent_users, helpdesk_ticket, liveperson_record

PAGE = 25


class CorpusSource(Source):
    def __init__(self, integration, conversations: list[Conversation] | None = None):
        super().__init__(integration)
        self.provider = integration.provider
        self.conversations = conversations if conversations is not None else generate(120)
        self.mapping = liveperson_mapping if self.provider == "liveperson" else helpdesk_mapping

    def raws(self) -> list[dict[str, Any]]:
        make = liveperson_record if self.provider == "liveperson" else helpdesk_ticket
        return [make(conv, n) for n, conv in enumerate(self.conversations)]

    def server_now(self) -> datetime:
        return EPOCH + timedelta(days=30)

    def roster(self) -> Roster:
        return Roster([liveperson_mapping.map_user(u) for u in agent_users()])

    def window(self, start: datetime, end: datetime) -> Iterator[Page]:
        raws = self.raws()
        for first in range(0, len(raws), PAGE):
            records, rejected = [], []
            for raw in raws[first : first + PAGE]:
                if self.provider == "liveperson":
                    records.append(liveperson_mapping.map_conversation(raw))
                else:
                    mapped = helpdesk_mapping.map_ticket(raw)
                    records.append(mapped.record)
                    rejected += mapped.rejected
            if first == 0:
                rejected.append(self.broken(raws[0]))
            yield Page(records, rejected, label=f"corpus page {first // PAGE + 1}")

    def broken(self, raw: dict[str, Any]) -> RejectedRecord:
        """The first record with a status the mapping refuses: stored whole as a rejected record."""
        bad = copy.deepcopy(raw)
        if self.provider == "liveperson":
            bad["info"]["status"] = "WEIRD"
            bad["info"]["conversationId"] += "-broken"
            try:
                liveperson_mapping.map_conversation(bad)
            except MappingError as exc:
                return refused(INTERACTIONS_STREAM, exc, bad, bad["info"]["conversationId"])
        else:
            bad["ID"] += "-broken"
            bad["status"] = None
            try:
                helpdesk_mapping.map_ticket(bad)
            except MappingError as exc:
                return refused(INTERACTIONS_STREAM, exc, bad, bad["ID"])
        raise AssertionError("the broken record was mapped")

    def changes(self, since, until) -> Iterator[Page]:
        yield from self.window(EPOCH, until)

    def listing(self, start: datetime, end: datetime) -> Iterator[Listed]:
        for page in self.window(start, end):
            for record in page.records:
                yield Listed(record.interaction_id, record.started_at, record.status, record.updated_at)

    def fetch(self, interaction_ids) -> Iterator[Page]:
        wanted = set(interaction_ids)
        for page in self.window(EPOCH, self.server_now()):
            yield Page([r for r in page.records if r.interaction_id in wanted], page.rejected, page.label)

    def customer_identity(self, raw: Any):
        return self.mapping.customer_identity(raw)


def planted_values(conversations: list[Conversation]) -> set[str]:
    values: set[str] = set()
    for conv in conversations:
        values |= conv.planted()
    return {v for v in values if len(v) >= 3}


def stored_text(engine: sa.Engine) -> list[tuple[str, str, str]]:
    """(table, column, value) of every non-null value of every table of the warehouse, as text."""
    out = []
    with engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if value is not None:
                        out.append((table.name, column, str(value)))
    return out


def leaks(engine: sa.Engine, values: set[str]) -> list[tuple[str, str, str]]:
    """Every stored value that holds a planted value (any case): (table, column, planted value)."""
    lowered = [(v, v.lower()) for v in values]
    found = []
    for table, column, text in stored_text(engine):
        low = text.lower()
        found += [(table, column, v) for v, v_low in lowered if v_low in low]
    return found
