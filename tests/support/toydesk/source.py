"""ToyDesk's source: tickets of a time range, page by page, as normalized records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from cxsync import options as declared
from cxsync.records import AgentRecord, InteractionRecord, MessageRecord
from cxsync.sources.base import Page, Roster, Source
from support.toydesk.declarations import ToyDeskOptions
from support.toydesk.hook import ToyDeskHook


class ToyDeskSource(Source):
    provider = "toydesk"

    def __init__(self, integration, hook: ToyDeskHook | None = None):
        super().__init__(integration)
        self.options = declared.parse(ToyDeskOptions, integration.options, f"integration {integration.id!r}")
        self.hook = hook or ToyDeskHook(integration.conn_id)

    def server_now(self) -> datetime:
        return datetime.fromisoformat(self.hook.get("/now")["now"])

    def roster(self) -> Roster:
        return Roster(agents=[AgentRecord(a["id"], display_name=a["name"]) for a in self.hook.get("/agents")])

    def window(self, start: datetime, end: datetime) -> Iterator[Page]:
        offset = 0
        while True:
            rows = self.hook.get(
                "/tickets", start=start.isoformat(), end=end.isoformat(), offset=offset, limit=self.options.page_size
            )
            if rows:
                yield Page([self._record(row) for row in rows], label=f"offset {offset}")
            if len(rows) < self.options.page_size:
                return
            offset += len(rows)

    def changes(self, since: datetime | None, until: datetime) -> Iterator[Page]:
        return iter(())

    def _record(self, row: dict) -> InteractionRecord:
        started = datetime.fromisoformat(row["created"])
        return InteractionRecord(
            interaction_id=row["id"],
            provider=self.provider,
            status="closed",
            started_at=started,
            channel=self.options.channel,
            agent_id=row["agent"],
            messages=[
                MessageRecord(f"{row['id']}-{n}", n, started, "agent" if n % 2 else "customer", text=text)
                for n, text in enumerate(row["messages"])
            ],
            raw=row,
        )

    def close(self) -> None:
        self.hook.close()
