"""HelpDesk source: agents and teams, and tickets with their full event history.

What to ask (docs/provider-apis.md, HelpDesk tickets):
- Tickets live in two silos worth loading: `tickets` (recent) and `archive` (idle 60 days, moved
  automatically): every window and every change scan reads both. `spam` and `trash` are not conversations.
- List rows may carry `events`, but whether a row's thread is ever cut short is not documented. A row is used as
  the ticket, without `GET /v1/tickets/{ID}`, only when it proves itself whole (`row_is_whole`: its oldest event
  is dated `createdAt`, its newest `updatedAt`, its newest message `lastMessageAt`: nothing was cut at either
  end), and only once the run's first such rows, fetched anyway, matched their tickets event for event
  (`CALIBRATION_ROWS` of them with a middle event; a server that cuts the middle is caught there, and every ticket
  of the run is then fetched).
  Every other row is fetched whole: losing an event is worse than a request.
- `window(start, end)` lists by `createdAt` ascending with `createdDateFrom`/`createdDateTo`. That filter
  is UNCONFIRMED, so every row is also checked here, and paging stops at the first row past `end`: a
  server that ignores the filter costs pages, never wrong rows; one that refuses it (400/422) is asked
  again without it.
- `changes(since, until)` lists by `updatedAt` descending and stops below `since - overlap`. No
  `updatedAt` range filter is known, so the newest-first order is what bounds the scan; and unlike an
  ascending scan it needs no way to start in the middle. A ticket changed while we page moves to the top,
  behind us, but its new `updatedAt` is after `until`, so the next run (from `until - overlap`) sees it.

Options (`options:` of the integration), declared with defaults and bounds in
`cxsync.providers.helpdesk.HelpDeskOptions`: `overlap_minutes`, `first_run_lookback_hours` (the first incremental
run without a watermark), `page_size`, `max_tickets_per_hour` (a list that pages on past what its span can hold at
that rate is stopped with an error naming the window: `cxsync.hooks.helpdesk.PagingRunaway`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cxsync import options as declared
from cxsync.config import Integration
from cxsync.errors import PermissionDenied, ProviderRequestError
from cxsync.hooks.helpdesk import HelpDeskHook, NotATicket
from cxsync.providers.helpdesk import HelpDeskOptions
from cxsync.records import InteractionRecord, RejectedRecord
from cxsync.redaction.identity import CustomerIdentity
from cxsync.sources import helpdesk_mapping as mapping
from cxsync.sources.base import Listed, Page, Roster
from cxsync.sources.helpers import AGENTS_STREAM, INTERACTIONS_STREAM, TEAMS_STREAM, MappingError, map_all
from cxsync.sources.helpers import rejected as refused
from cxsync.sources.hook_source import HookSource

log = logging.getLogger(__name__)

SILOS = ("tickets", "archive")
# Rows that prove themselves whole are fetched anyway at the start of each run, to check the proof against the
# tickets, until this many with at least CHECKED_ROW_EVENTS events (ends and a middle) matched.
CALIBRATION_ROWS = 2
CHECKED_ROW_EVENTS = 3


class HelpDeskSource(HookSource):
    provider = "helpdesk"
    hook: HelpDeskHook

    def __init__(self, integration: Integration, hook: HelpDeskHook | None = None):
        super().__init__(integration, hook or HelpDeskHook(integration.conn_id))
        options = declared.parse(HelpDeskOptions, integration.options, f"integration {integration.id!r}")
        self.overlap = options.overlap
        self.first_run_lookback = options.first_run_lookback
        self.page_size = options.page_size
        self.max_tickets_per_hour = options.max_tickets_per_hour

        # `createdDateFrom`/`createdDateTo` are UNCONFIRMED: dropped for the run if the server refuses them.
        self.date_filter = True
        # Tag ID -> name from `GET /v1/tags`, read once a run when the first ticket with tags is mapped.
        self._tag_names: dict[str, str] | None = None
        self._unknown_tags: set[str] = set()
        # Whole-looking list rows checked against their tickets so far this run, and whether the rows can be used.
        self._rows_checked = 0
        self._rows_trusted = True

    # ---- roster --------------------------------------------------------------------------------------

    def customer_identity(self, raw: Any) -> CustomerIdentity | None:
        return mapping.customer_identity(raw)

    def roster(self) -> Roster:
        """`/v1/agents` is the whole roster (no paging): agents missing from it are gone."""
        agents, refused_agents = map_all(mapping.map_agent, self.hook.agents(), AGENTS_STREAM)
        groups, refused_teams = map_all(mapping.map_team, self.hook.teams(), TEAMS_STREAM)
        return Roster(agents=agents, groups=groups, complete=True, rejected=refused_agents + refused_teams)

    # ---- windows -------------------------------------------------------------------------------------

    def window(self, start: datetime, end: datetime) -> Iterator[Page]:
        """Tickets created in [start, end), from both silos, one `Page` per list page."""
        start, end = _utc(start), _utc(end)
        yield from self._pages(self._created_listing(start, end))

    def _created_listing(self, start: datetime, end: datetime) -> Iterator[tuple[str, list[Any]]]:
        """(label, rows) of each list page of the window: the rows created in [start, end)."""
        for silo in SILOS:
            for number, rows in enumerate(self._created_pages(silo, start, end), start=1):
                wanted: list[dict[str, Any]] = []
                past_end = False
                for row in rows:
                    created = mapping.parse_time(row.get("createdAt")) if isinstance(row, dict) else None
                    if created is None:
                        wanted.append(row)  # cannot place it: fetch it, the mapping says what is wrong
                    elif created >= end:
                        past_end = True
                    elif created >= start:
                        wanted.append(row)
                yield f"silo {silo} page {number}", wanted
                if past_end:
                    break  # sorted by createdAt: the rest is later still (the server ignored the filter)

    def _created_pages(self, silo: str, start: datetime, end: datetime) -> Iterator[list[dict[str, Any]]]:
        """List pages sorted by `createdAt`, with the date filter while the server takes it. A server that
        rejects the (UNCONFIRMED) filter with 400/422 on the first page is asked again without it, for the
        rest of this run; the caller's own filter and early stop keep the answer right."""
        filters = {"createdDateFrom": _iso(start), "createdDateTo": _iso(_ceil_second(end))}
        pages = self.hook.ticket_pages(
            silo=silo,
            sort_by="createdAt",
            order="asc",
            page_size=self.page_size,
            filters=filters if self.date_filter else None,
            bound=end,
            max_tickets_per_hour=self.max_tickets_per_hour,
            scope=f"the window {_iso(start)} to {_iso(end)}",
        )
        try:
            first = next(pages)
        except StopIteration:
            return
        except ProviderRequestError as exc:
            if not self.date_filter or exc.status not in (400, 422):
                raise
            self.date_filter = False
            log.warning(
                "HelpDesk refused the created-date filter (HTTP %s: %s); listing without it and filtering here",
                exc.status,
                exc.body,
            )
            yield from self._created_pages(silo, start, end)
            return
        yield first
        yield from pages

    # ---- changes ---------------------------------------------------------------------------------------

    def changes(self, since: datetime | None, until: datetime) -> Iterator[Page]:
        """Tickets whose `updatedAt` is at or after `since - overlap` (or the first-run look-back), newest
        first, from both silos; each one fetched again whole and upserted."""
        until = _utc(until)
        floor = _utc(since) - self.overlap if since is not None else until - self.first_run_lookback
        log.info(
            "HelpDesk changes: tickets updated since %s (%s), both silos",
            floor.isoformat(),
            f"watermark minus {self.overlap}" if since is not None else f"first run: {self.first_run_lookback}",
        )
        # What the warehouse already holds as of its list stamp is not fetched again: a run every 15 minutes would
        # otherwise fetch each ticket of the overlap once more on every run.
        stored = self.stored_since(floor) if self.stored_since is not None else {}
        yield from self._pages(self._not_held(self._updated_listing(floor), stored))

    def _not_held(
        self, listing: Iterable[tuple[str, list[Any]]], stored: dict[str, datetime | None]
    ) -> Iterator[tuple[str, list[Any]]]:
        """The listing without the rows the warehouse holds as listed (a stored `updated_at` at or after the row's
        `updatedAt`); a row without a stamp is kept."""
        skipped = 0
        for label, rows in listing:
            if stored:
                kept = [row for row in rows if not _held_as_listed(row, stored)]
                skipped += len(rows) - len(kept)
                rows = kept
            yield label, rows
        if skipped:
            log.info("HelpDesk changes: %d listed ticket(s) not fetched: the warehouse holds them as listed", skipped)

    def _updated_listing(self, floor: datetime) -> Iterator[tuple[str, list[Any]]]:
        """(label, rows) of each list page, newest update first, down to `floor`."""
        for silo in SILOS:
            pages = self.hook.ticket_pages(
                silo=silo,
                sort_by="updatedAt",
                order="desc",
                page_size=self.page_size,
                bound=floor,
                max_tickets_per_hour=self.max_tickets_per_hour,
                scope=f"the changes since {_iso(floor)}",
            )
            for number, rows in enumerate(pages, start=1):
                wanted: list[dict[str, Any]] = []
                below = False
                for row in rows:
                    updated = mapping.parse_time(row.get("updatedAt")) if isinstance(row, dict) else None
                    if updated is not None and updated < floor:
                        below = True
                    else:
                        wanted.append(row)
                yield f"silo {silo} page {number}", wanted
                if below:
                    break  # newest first: everything after this row is older than the floor

    # ---- reconciliation ------------------------------------------------------------------------------------

    def listing(self, start: datetime, end: datetime) -> Iterator[Listed]:
        """List rows only: tickets updated since `start`, from both silos, `updatedAt` newest first down to `start`
        (which holds every ticket created since then: a ticket's update is never before its creation), and the
        `trash` silo (deleted tickets; HelpDesk purges it after about 30 days, so it does not grow with our history).
        `end` is now: nothing is listed past it."""
        start, end = _utc(start), _utc(end)
        seen: set[str] = set()

        def listed(row: Any, deleted: bool = False) -> Listed | None:
            ticket_id = _text_id(row)
            if ticket_id is None or ticket_id in seen:
                return None
            seen.add(ticket_id)
            status = str(row.get("status") or "").strip().lower()
            return Listed(
                interaction_id=ticket_id,
                started_at=mapping.parse_time(row.get("createdAt")),
                status=("closed" if status in mapping.CLOSED_STATUSES else "open") if status else None,
                updated_at=mapping.parse_time(row.get("updatedAt")),
                agent_id=_text_id((row.get("assignment") or {}).get("agent")),
                agent_known=isinstance(row.get("assignment"), dict),
                deleted=deleted,
            )

        for silo in SILOS:
            pages = self.hook.ticket_pages(
                silo=silo,
                sort_by="updatedAt",
                order="desc",
                page_size=self.page_size,
                bound=start,
                max_tickets_per_hour=self.max_tickets_per_hour,
                scope=f"the reconciliation look-back {_iso(start)} to {_iso(end)}",
            )
            for rows in pages:
                below = False
                for row in rows:
                    updated = mapping.parse_time(row.get("updatedAt")) if isinstance(row, dict) else None
                    if updated is not None and updated < start:
                        below = True
                    elif (item := listed(row)) is not None:
                        yield item
                if below:
                    break
        trash = self.hook.ticket_pages(
            silo="trash",
            sort_by="updatedAt",
            order="desc",
            page_size=self.page_size,
            max_tickets_per_hour=self.max_tickets_per_hour,
            scope="the reconciliation's deleted tickets",
        )
        for rows in trash:
            for row in rows:
                if isinstance(row, dict) and (item := listed(row, deleted=True)) is not None:
                    yield item

    def fetch(self, interaction_ids: Sequence[str]) -> Iterator[Page]:
        ids = list(dict.fromkeys(interaction_ids))
        chunks = (
            (
                f"reconciliation: tickets {first + 1}-{min(first + self.page_size, len(ids))} of {len(ids)}",
                [{"ID": ticket_id} for ticket_id in ids[first : first + self.page_size]],
            )
            for first in range(0, len(ids), self.page_size)
        )
        yield from self._pages(chunks)

    # ---- private steps -----------------------------------------------------------------------------------

    def _pages(self, listing: Iterable[tuple[str, list[Any]]]) -> Iterator[Page]:
        """Each listed page's tickets, whole (the list row when it proves itself whole, else fetched by ID) and
        mapped, one `Page` per list page, in order; empty pages are left out. Each ticket once per run, even if
        both silos list it.

        Tickets are fetched with several requests in flight (`InFlight`: as many as the rate limit and the
        latency call for), across page boundaries, and the next list page is requested while the current
        page's tickets are fetched; answers are still taken in list order, so pages come out as before."""
        flight = self._in_flight()
        seen: set[str] = set()
        records: list[InteractionRecord] = []
        rejected: list[RejectedRecord] = []
        hold = 2 * self.page_size  # tickets held at most: two pages' worth
        for (kind, payload), answer in flight.ordered(self._answer, self._items(flight.ahead(listing), seen), hold):
            if kind in ("ticket", "whole") and answer is not None:
                if isinstance(answer, RejectedRecord):
                    rejected.append(answer)
                    continue
                try:
                    mapped = mapping.map_ticket(answer, self._tags_for(answer))
                except MappingError as exc:
                    rejected.append(refused(INTERACTIONS_STREAM, exc, answer))
                    continue
                records.append(mapped.record)
                rejected.extend(mapped.rejected)
            elif kind == "rejected":
                rejected.append(payload)
            elif kind == "end":
                if records or rejected:
                    yield Page(records=records, rejected=rejected, label=payload)
                records, rejected = [], []

    def _items(self, listing: Iterable[tuple[str, list[Any]]], seen: set[str]) -> Iterator[tuple[str, Any]]:
        """The work of each listed page in order: ("ticket", id) to fetch, ("whole", ticket) for a row that is the
        whole ticket already, ("rejected", record) for a row without an `ID`, then ("end", label)."""
        for label, rows in listing:
            for row in rows:
                ticket_id = row.get("ID") if isinstance(row, dict) else None
                if ticket_id in (None, ""):
                    yield (
                        "rejected",
                        RejectedRecord(mapping.INTERACTIONS_STREAM, None, "a ticket list row without an `ID`", row),
                    )
                    continue
                ticket_id = str(ticket_id)
                if ticket_id not in seen:
                    seen.add(ticket_id)
                    if self._rows_trusted and row_is_whole(row):
                        yield "whole", self._use_row(ticket_id, row)
                    else:
                        yield "ticket", ticket_id
            yield "end", label

    def _use_row(self, ticket_id: str, row: dict[str, Any]) -> dict[str, Any] | None:
        """The ticket for a row that proves itself whole: the row itself once the run's first rows matched their
        tickets; until then the ticket fetched (None: gone since listed), compared with the row."""
        if self._rows_checked >= CALIBRATION_ROWS:
            return row
        try:
            ticket = self._fetch(ticket_id)
        except NotATicket:
            ticket = None
        if ticket is None:
            return None
        missing = sorted(set(ticket) - set(row))
        if _event_ids(ticket) == _event_ids(row) and not missing:
            # Only a row with an event between its ends can show that the middle is not cut: a server that sends
            # first and last events only never gets its rows used.
            self._rows_checked += len(_event_ids(row)) >= CHECKED_ROW_EVENTS
        else:
            self._rows_trusted = False
            log.warning(
                "HelpDesk: the list row of ticket %s looked whole (its events run from createdAt to updatedAt) but "
                "the ticket has %d events, the row %d%s; every ticket of this run is fetched by ID",
                ticket_id,
                len(_event_ids(ticket)),
                len(_event_ids(row)),
                f", and the row lacks {', '.join(missing)}" if missing else "",
            )
        return ticket

    def _answer(self, item: tuple[str, Any]) -> dict[str, Any] | RejectedRecord | None:
        """A ticket whole (run in a request thread); a rejected record for an answer that is not a ticket; None for
        a ticket gone since it was listed, and for work that needs no request."""
        kind, ticket_id = item
        if kind == "whole":
            return ticket_id  # the ticket itself: no request
        if kind != "ticket":
            return None
        try:
            return self._fetch(ticket_id)
        except NotATicket as exc:
            return RejectedRecord(mapping.INTERACTIONS_STREAM, ticket_id, str(exc), exc.answer)

    def _tags_for(self, ticket: Any) -> dict[str, str]:
        """The tag names, read from `GET /v1/tags` the first time a ticket has tags; each ID the list lacks is
        logged once (the ticket keeps the ID as its tag)."""
        ids = mapping.tag_ids(ticket.get("tagIDs")) if isinstance(ticket, dict) else []
        if not ids:
            return self._tag_names or {}
        if self._tag_names is None:
            self._tag_names = self._read_tags()
        for tag_id in ids:
            if tag_id not in self._tag_names and tag_id not in self._unknown_tags:
                self._unknown_tags.add(tag_id)
                log.warning(
                    "HelpDesk: tag ID %s (ticket %s) is not in the account's tag list (GET /v1/tags); stored as the ID",
                    tag_id,
                    ticket.get("ID"),
                )
        return self._tag_names

    def _read_tags(self) -> dict[str, str]:
        try:
            rows = self.hook.tags()
        except (PermissionDenied, ProviderRequestError) as exc:
            # Tags are a label, not the conversation: load the tickets with tag IDs rather than fail the run.
            log.warning("HelpDesk: the tag list (GET /v1/tags) was refused (%s); tags are stored as their IDs", exc)
            return {}
        names = {}
        for row in rows:
            if isinstance(row, dict) and row.get("ID") not in (None, "") and isinstance(row.get("name"), str):
                names[str(row["ID"])] = row["name"]
        log.info("HelpDesk: %d tag(s) in the account's tag list", len(names))
        return names

    def _fetch(self, ticket_id: str) -> dict[str, Any] | None:
        try:
            return self.hook.ticket(ticket_id)
        except ProviderRequestError as exc:
            if exc.status == 404:
                # Listed a moment ago, gone now (moved to trash or deleted): nothing left to load.
                log.warning("HelpDesk: ticket %s was listed but is gone (404) when fetched; skipped", ticket_id)
                return None
            raise


def row_is_whole(row: dict[str, Any]) -> bool:
    """A list row's `events` provably end where the ticket does at both ends: the oldest event is dated
    `createdAt` (nothing older was cut), the newest `updatedAt` (nothing newer), and the newest message
    `lastMessageAt` when the row has one. No documented field counts the events, so a cut in the middle is not
    visible here (the run's first rows are checked against their tickets for that, `CALIBRATION_ROWS`)."""
    events = row.get("events")
    if not isinstance(events, list) or not events:
        return False
    dates = []
    message_dates = []
    for event in events:
        when = mapping.parse_time(event.get("date")) if isinstance(event, dict) else None
        if when is None or event.get("ID") in (None, ""):
            return False
        dates.append(when)
        if event.get("type") == "message":
            message_dates.append(when)
    created, updated = mapping.parse_time(row.get("createdAt")), mapping.parse_time(row.get("updatedAt"))
    if created is None or updated is None or min(dates) != created or max(dates) != updated:
        return False
    if "lastMessageAt" in row:
        last_message = mapping.parse_time(row.get("lastMessageAt"))
        if not message_dates or last_message != max(message_dates):
            return False
    return True


def _event_ids(ticket: dict[str, Any]) -> list[str]:
    events = ticket.get("events")
    return sorted(str(e.get("ID")) for e in events if isinstance(e, dict)) if isinstance(events, list) else []


def _text_id(row: Any) -> str | None:
    value = row.get("ID") if isinstance(row, dict) else None
    return None if value in (None, "") else str(value)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ceil_second(moment: datetime) -> datetime:
    """The server filter works on whole seconds, maybe; ask for a little more and filter here."""
    return moment if moment.microsecond == 0 else moment.replace(microsecond=0) + timedelta(seconds=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _held_as_listed(row: Any, stored: dict[str, datetime | None]) -> bool:
    if not isinstance(row, dict):
        return False
    ticket_id = _text_id(row)
    held = stored.get(ticket_id) if ticket_id is not None else None
    listed = mapping.parse_time(row.get("updatedAt"))
    return held is not None and listed is not None and listed <= held
