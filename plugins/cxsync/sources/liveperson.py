"""LivePerson source: Messaging Interactions pages in, complete normalized records out.

What it asks, and why:
- `window(start, end)`: every conversation that *started* in [start, end). LivePerson rounds `start.from`
  down and `start.to` up to 10 minutes, so an answer may hold conversations of the neighbouring windows:
  they are left to those windows (day windows never double-load) and counted in the log.
- `changes(since, until)`: conversations updated since `since` minus an overlap (the 10-minute rounding
  plus late data), among those that started within a look-back wide enough for conversations still open.
- Both page with `limit=100` by offset until `_metadata.count`; a `partialResult` answer is asked again by the
  request layer's retry driver (`partial_retries` times at most, within the connection's `max_attempts`);
  `isPartial` records are fetched again by id (up to 100 per request), asked again the same way while one
  comes back truncated; records are deduplicated by id
  within the query, the count is verified after paging and a query whose result set moved is paged again.
- Ranges wider than LivePerson's 3-month limit are split.

Integration options (`options:` in the integrations file), all optional, declared (with defaults and bounds) in
`cxsync.providers.liveperson.LivePersonOptions`: `incremental_overlap_minutes`, `open_conversation_days` (at most
88: the API's 3-month limit with room for its rounding), `partial_retries`, `repage_limit`, `content_to_retrieve`.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cxsync import canonical
from cxsync import options as declared
from cxsync.errors import AuthenticationError, FatalError, PermissionDenied, RetriableError, RetriesExhausted
from cxsync.providers import liveperson as provider  # MAX_SEARCH_PAGES read at each use (tests lower it)
from cxsync.providers.liveperson import CONTENT_TO_RETRIEVE as CONTENT_TO_RETRIEVE  # the default sections
from cxsync.providers.liveperson import MAX_RANGE_DAYS, LivePersonOptions
from cxsync.records import InteractionRecord, RejectedRecord
from cxsync.redaction.identity import CustomerIdentity
from cxsync.sources import liveperson_mapping as mapping
from cxsync.sources.base import Listed, Page, Roster
from cxsync.sources.helpers import (
    AGENTS_STREAM,
    GROUPS_STREAM,
    INTERACTIONS_STREAM,
    SKILLS_STREAM,
    MappingError,
    map_all,
)
from cxsync.sources.helpers import rejected as refused
from cxsync.sources.hook_source import HookSource

if TYPE_CHECKING:
    from cxsync.config import Integration
    from cxsync.hooks.liveperson import LivePersonHook
    from cxsync.warehouse.store import HeldInteraction

log = logging.getLogger(__name__)

PAGE_LIMIT = 100
BY_ID_BATCH = 100
# LivePerson accepts a `start` range of at most 3 months and rounds both ends outwards (providers.liveperson).
MAX_RANGE = timedelta(days=MAX_RANGE_DAYS)
# Reconciliation lists compare what `info` (always sent) holds, and need no section; but an empty
# `contentToRetrieve` is not documented to mean "none" (one reading is "the default sections", every message
# included), so they ask for the smallest documented section instead: `dialogs`, one or two short entries
# per conversation (MAIN, and POST_SURVEY when a survey ran).
LIST_CONTENT: tuple[str, ...] = ("dialogs",)
TEN_MINUTES_MS = 10 * 60 * 1000


def content_to_retrieve(sections: Sequence[str]) -> dict[str, list[str]]:
    """The body's `contentToRetrieve` for `sections`; none at all when empty, because an empty list is never
    sent (the docs leave open whether it means "no section" or "the default sections")."""
    return {"contentToRetrieve": list(sections)} if sections else {}


def split_range(start: datetime, end: datetime, span: timedelta = MAX_RANGE) -> list[tuple[datetime, datetime]]:
    """[start, end) in consecutive pieces of at most `span`, oldest first."""
    pieces = []
    cursor = start
    while cursor < end:
        nxt = min(cursor + span, end)
        pieces.append((cursor, nxt))
        cursor = nxt
    return pieces


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def record_key(record: Any) -> str:
    """The conversation id, or a digest of the record when it has none (it is rejected, but only once)."""
    key = mapping.conversation_key(record)
    return key if key else "digest:" + _digest(record)


def _digest(record: Any) -> str:
    """A fingerprint of a record's content (its canonical JSON), only ever compared within one run (dedupe)."""
    return canonical.digest(record)


class LivePersonSource(HookSource):
    provider = "liveperson"
    hook: LivePersonHook

    def __init__(self, integration: Integration, hook: LivePersonHook | None = None):
        if hook is None:
            from cxsync.hooks.liveperson import LivePersonHook

            hook = LivePersonHook(integration.conn_id)
        super().__init__(integration, hook)
        self.options = declared.parse(LivePersonOptions, integration.options, f"integration {integration.id!r}")
        self._bot_ids: set[str] | None = None

    # ---- roster -----------------------------------------------------------------------------------

    def customer_identity(self, raw: Any) -> CustomerIdentity | None:
        return mapping.customer_identity(raw)

    def roster(self) -> Roster:
        users = self.hook.users()  # a missing "Users" permission fails here, in plain words
        warnings: list[str] = []
        # Privileges are per API: a key made by the vendor's guide reads users but not groups, skills or
        # profiles. The agents are what the loads need; the rest is named as missing and left out.
        profiles = self._optional("profiles", self.hook.profiles, warnings)
        roles = mapping.profile_roles(profiles) if profiles is not None else None
        agents, refused_users = map_all(
            functools.partial(mapping.map_user, roles=roles), users, AGENTS_STREAM, _id_or_none
        )
        group_list = self._optional("agentGroups", self.hook.agent_groups, warnings) or []
        skill_list = self._optional("skills", self.hook.skills, warnings) or []
        groups, refused_groups = map_all(mapping.map_group, group_list, GROUPS_STREAM, _id_or_none)
        skills, refused_skills = map_all(mapping.map_skill, skill_list, SKILLS_STREAM, _id_or_none)
        self._bot_ids = mapping.bot_ids_of(users)
        return Roster(
            agents=agents,
            groups=groups,
            skills=skills,
            rejected=refused_users + refused_groups + refused_skills,
            warnings=warnings,
        )

    def _optional(
        self, resource: str, call: Callable[[], list[dict[str, Any]]], warnings: list[str]
    ) -> list[dict[str, Any]] | None:
        """One account API the roster can do without: None (and a warning) when its privilege is missing."""
        from cxsync.hooks.liveperson_diagnostics import TokenRefused, first_line, privilege_missing

        try:
            return call()
        except TokenRefused:
            raise
        except (AuthenticationError, PermissionDenied) as exc:
            warnings.append(privilege_missing(self.hook.conn_id, resource, first_line(exc)))  # the task logs them
            return None

    # ---- conversations ----------------------------------------------------------------------------

    def window(self, start: datetime, end: datetime) -> Iterator[Page]:
        pieces = split_range(start, end)
        for n, (lo, hi) in enumerate(pieces, 1):
            lo_ms, hi_ms = to_ms(lo), to_ms(hi)

            def inside(record: Any, lo_ms: int = lo_ms, hi_ms: int = hi_ms) -> bool:
                started = mapping.conversation_start_ms(record)
                # A record without a readable start is kept: the mapping rejects it with the reason.
                return started is None or lo_ms <= started < hi_ms

            body = {"start": {"from": lo_ms, "to": hi_ms - 1}}
            label = f"window {lo:%Y-%m-%d %H:%M}..{hi:%Y-%m-%d %H:%M}" + (
                f" (part {n} of {len(pieces)})" if len(pieces) > 1 else ""
            )
            yield from self._query(body, label, keep=inside)

    def changes(self, since: datetime | None, until: datetime) -> Iterator[Page]:
        if since is None:
            # First run without a watermark: everything that started within the look-back.
            start_from, updated_from = until - self.options.open_window, None
        else:
            updated_from = since - self.options.overlap
            start_from = min(until - self.options.open_window, updated_from)
        pieces = split_range(start_from, until)
        for n, (lo, hi) in enumerate(pieces, 1):
            body: dict[str, Any] = {"start": {"from": to_ms(lo), "to": to_ms(hi)}}
            if updated_from is not None:
                body["latestUpdateTime"] = {"from": to_ms(updated_from)}
            what = f"updated since {updated_from:%Y-%m-%d %H:%M}" if updated_from else "first run"
            label = f"changes ({what}, started {lo:%Y-%m-%d %H:%M}..{hi:%Y-%m-%d %H:%M})" + (
                f" part {n} of {len(pieces)}" if len(pieces) > 1 else ""
            )
            yield from self._query(body, label)

    # ---- reconciliation ---------------------------------------------------------------------------

    def listing(self, start: datetime, end: datetime) -> Iterator[Listed]:
        """Search pages that ask for `info` and the small `dialogs` section only (`LIST_CONTENT`: no transcripts,
        participants or surveys): conversations that started in [start, end), and those that started within
        the open-conversation look-back before `start` and were updated since `start`."""
        seen: set[str] = set()
        queries: list[tuple[dict[str, Any], str]] = [
            ({"start": {"from": to_ms(lo), "to": to_ms(hi) - 1}}, f"reconciliation list {lo:%Y-%m-%d %H:%M}..")
            for lo, hi in split_range(start, end)
        ]
        queries += [
            (
                {"start": {"from": to_ms(lo), "to": to_ms(hi) - 1}, "latestUpdateTime": {"from": to_ms(start)}},
                f"reconciliation list (started {lo:%Y-%m-%d}.., updated since {start:%Y-%m-%d %H:%M})",
            )
            for lo, hi in split_range(min(end - self.options.open_window, start), start)
        ]
        for filters, label in queries:
            for record in self._light_records(filters, label):
                key = mapping.conversation_key(record)
                if key and key not in seen:
                    seen.add(key)
                    yield _listed(key, record)

    def changed(
        self, held: Sequence[HeldInteraction], end: datetime, covered_since: datetime | None = None
    ) -> set[str]:
        """Open conversations (the list shows no update stamp for them): for each stored copy, whether LivePerson
        has an update at or after the next 10-minute boundary after the copy's last event, by `latestUpdateTime`
        searches (info only). An update within those first minutes is seen once the
        conversation changes again or closes (then its status differs). A copy whose last event is after the
        floor of the incremental run just before (`covered_since` minus the overlap, rounded down as LivePerson
        does) is as current as that run could see: only older copies are asked about."""
        if covered_since is not None:
            floor_ms = (to_ms(covered_since - self.options.overlap) // TEN_MINUTES_MS) * TEN_MINUTES_MS
            held = [i for i in held if i.updated_at is not None and to_ms(i.updated_at) < floor_ms]
        by_boundary: dict[int, list[HeldInteraction]] = {}
        for item in held:
            if item.updated_at is not None:
                boundary = (to_ms(item.updated_at) // TEN_MINUTES_MS + 1) * TEN_MINUTES_MS
                by_boundary.setdefault(boundary, []).append(item)
        changed: set[str] = set()
        for boundary, items in sorted(by_boundary.items()):
            # Only a search from a copy's own boundary tells "changed since" from "unchanged"; its start range
            # is that of the copies asked about, so the answer holds little more than them.
            filters = {
                "start": {
                    "from": to_ms(min(i.started_at for i in items)),
                    "to": to_ms(max(i.started_at for i in items)),
                },
                "status": ["OPEN"],
                "latestUpdateTime": {"from": boundary},
            }
            wanted = {i.interaction_id for i in items}
            for record in self._light_records(filters, "reconciliation: open conversations updated since"):
                key = mapping.conversation_key(record)
                if key in wanted:
                    changed.add(key)
        return changed

    def fetch(self, interaction_ids: Sequence[str]) -> Iterator[Page]:
        ids = list(dict.fromkeys(interaction_ids))
        for first in range(0, len(ids), BY_ID_BATCH):
            batch = ids[first : first + BY_ID_BATCH]
            label = f"reconciliation: conversations {first + 1}-{first + len(batch)} of {len(ids)}"
            with _labelled(label):
                answer = self.hook.conversations_by_id(
                    batch, self.options.content_to_retrieve, **self._partial_answers_asked_again()
                )
            records = [r for r in answer.get("conversationHistoryRecords") or [] if record_key(r) in batch]
            yield self._page(records, label)

    def _partial_answers_asked_again(self) -> dict[str, Any]:
        """An msgHist answer flagged `partialResult` is asked again by the request layer's retry driver, at most
        `partial_retries` times (and within the connection's `max_attempts`); an incomplete answer is never
        accepted."""
        return {"retry_partial": True, "partial_retries": self.options.partial_retries}

    def _light_records(self, filters: Mapping[str, Any], label: str) -> Iterator[Any]:
        """Every record of one info-only search, paged by offset to `_metadata.count`."""
        body = {"status": ["OPEN", "CLOSE"], **filters, **content_to_retrieve(LIST_CONTENT)}
        horizon = [PAGE_LIMIT]
        for offset, answer in self._answers(body, label, horizon):
            records = answer.get("conversationHistoryRecords") or []
            yield from records
            horizon[0] = _count(answer, offset, len(records))
            if offset + PAGE_LIMIT >= horizon[0] or not records:
                return

    # ---- paging -----------------------------------------------------------------------------------

    def _query(
        self, filters: Mapping[str, Any], label: str, keep: Callable[[Any], bool] | None = None
    ) -> Iterator[Page]:
        """Page one search to its end; page it again when its result set moved while paging."""
        body = {**filters, "status": ["OPEN", "CLOSE"], **content_to_retrieve(self.options.content_to_retrieve)}
        yielded: dict[str, str] = {}  # id -> digest of the copy already yielded (dedupe, newest copy wins)
        outside = 0
        stalled_at: int | None = None
        for attempt in range(1, self.options.repage_limit + 2):
            stalled_at = None  # offset of a full page that brought nothing new in this pass
            first_count: int | None = None
            last_count = 0
            seen: set[str] = set()
            page_no = 0
            horizon = [PAGE_LIMIT]  # offsets below the latest count are asked for, several at once
            for offset, answer in self._answers(body, label, horizon):
                records = [r for r in answer.get("conversationHistoryRecords") or []]
                count = _count(answer, offset, len(records))
                horizon[0] = count
                first_count = count if first_count is None else first_count
                last_count = count
                page_no += 1
                pages = max(1, math.ceil(count / PAGE_LIMIT))
                seen_before = len(seen)
                fresh: list[Any] = []
                for record in records:
                    key = record_key(record)
                    seen.add(key)
                    digest = _digest(mapping.stable_view(record))
                    if yielded.get(key) == digest:
                        continue  # moved across a page boundary, or seen in an earlier pass: already written
                    if keep is not None and not keep(record):
                        outside += 1 if key not in yielded else 0
                        yielded[key] = digest
                        continue
                    yielded[key] = digest
                    fresh.append(record)
                yield self._page(
                    fresh, f"{label}: page {page_no} of {pages}" + (f" (pass {attempt})" if attempt > 1 else "")
                )
                if len(records) >= PAGE_LIMIT and len(seen) == seen_before:
                    # A full page of conversations already seen in this pass: the offset is not moving through
                    # the result set. Page it again from the start (bounded), never on and on.
                    stalled_at = offset
                    break
                if offset + PAGE_LIMIT >= count or not records:
                    break
                if page_no >= provider.MAX_SEARCH_PAGES:
                    raise FatalError(
                        f"{label}: LivePerson still announced more conversations after "
                        f"{provider.MAX_SEARCH_PAGES:,} pages of {PAGE_LIMIT} (count {count:,}); "
                        "cxsync stops there rather than page without end. Load shorter windows (a smaller "
                        "backfill), or report the answer to LivePerson if the count is wrong"
                    )
            if stalled_at is None and last_count == first_count and len(seen) >= last_count:
                if outside:
                    log.info(
                        "%s: %d conversation(s) outside the window were left to the neighbouring window "
                        "(LivePerson rounds the range to 10 minutes)",
                        label,
                        outside,
                    )
                return
            log.warning(
                "%s: the result set moved while paging (count %s at the start, %s at the end, %d distinct "
                "conversations seen); paging it again (%d of %d)",
                label,
                first_count,
                last_count,
                len(seen),
                attempt,
                self.options.repage_limit,
            )
        if stalled_at is not None:
            raise RetriableError(
                f"{label}: LivePerson answered a full page at offset {stalled_at} holding only conversations "
                f"it had already sent in this pass, {self.options.repage_limit + 1} times: its offset paging does "
                "not advance, so cxsync stopped instead of asking forever. Try again later; if it persists, "
                "report it to LivePerson"
            )
        raise RetriableError(
            f"{label}: the result set kept changing while paging "
            f"({self.options.repage_limit + 1} passes); try again later"
        )

    def _answers(self, body: Mapping[str, Any], label: str, horizon: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        """(offset, answer) of one search, offset 0, 100, 200... in order, for as long as the caller reads on.

        The first page is asked alone: it gives the count. The offsets after it, up to `horizon[0]` (the count
        of the latest answer, kept up to date by the caller), are asked several at once (`InFlight`); a count
        that grows adds offsets, one that shrinks leaves the extra answers unread. The caller's checks run on
        every answer in order, exactly as if the pages had been asked one by one."""
        yield 0, self._search_page(body, 0, label)
        flight = self._in_flight()
        last = PAGE_LIMIT * provider.MAX_SEARCH_PAGES
        following = [PAGE_LIMIT]

        def offsets() -> Iterator[int]:
            while following[0] < min(horizon[0], last):
                yield following[0]
                following[0] += PAGE_LIMIT

        def ask(offset: int) -> dict[str, Any]:
            return self._search_page(body, offset, label)

        while following[0] < min(horizon[0], last):  # the count grew after the offsets below it were all asked
            yield from flight.ordered(ask, offsets(), hold=flight.cap)

    def _search_page(self, body: Mapping[str, Any], offset: int, label: str) -> dict[str, Any]:
        """One page; an answer flagged `partialResult` (shards missing) is asked again, bounded."""
        with _labelled(f"{label}, offset {offset}"):
            return self.hook.search_conversations(
                body, offset=offset, limit=PAGE_LIMIT, **self._partial_answers_asked_again()
            )

    def _complete(self, records: list[Any], label: str) -> list[Any]:
        """Records flagged `isPartial` fetched again by id, up to 100 per request; an answer that leaves one of
        them truncated (or out) is asked again like a partial one, bounded."""
        wanted = [mapping.conversation_key(r) for r in records if mapping.is_partial(r)]
        wanted = [w for w in dict.fromkeys(wanted) if w]
        if not wanted:
            return records
        fetched: dict[str, Any] = {}
        for start in range(0, len(wanted), BY_ID_BATCH):
            batch = wanted[start : start + BY_ID_BATCH]
            with _labelled(f"{label}: truncated conversations (isPartial) fetched again by id"):
                answer = self.hook.conversations_by_id(
                    batch,
                    self.options.content_to_retrieve,
                    incomplete=_still_truncated(batch),
                    **self._partial_answers_asked_again(),
                )
            for record in answer.get("conversationHistoryRecords") or []:
                key = mapping.conversation_key(record)
                if key in batch and not mapping.is_partial(record):
                    fetched[key] = record
        missing = [w for w in wanted if w not in fetched]
        if missing:
            raise RetriableError(
                f"{label}: {len(missing)} conversation(s) stayed truncated (isPartial) after "
                f"re-fetching by id, e.g. {missing[:3]}; a truncated transcript is never stored"
            )
        log.info("%s: %d truncated conversation(s) (isPartial) fetched again by id", label, len(wanted))
        return [fetched.get(mapping.conversation_key(r) or "", r) if mapping.is_partial(r) else r for r in records]

    def _page(self, records: list[Any], label: str) -> Page:
        records = self._complete(records, label)
        bots = self._bots_if_needed(records)
        mapped: list[InteractionRecord] = []
        rejected: list[RejectedRecord] = []
        for record in records:
            try:
                mapped.append(mapping.map_conversation(record, bot_ids=bots))
            except MappingError as exc:
                key = mapping.conversation_key(record)
                log.warning("%s: conversation %s rejected: %s", label, key or "(no id)", exc)
                rejected.append(refused(INTERACTIONS_STREAM, exc, record, key))
        return Page(records=mapped, rejected=rejected, label=label)

    def _bots_if_needed(self, records: Sequence[Any]) -> set[str]:
        """Bot ids from the Users API, asked once and only when a record leaves an agent's user type out."""
        if self._bot_ids is not None or not any(_untyped_agent_messages(r) for r in records):
            return self._bot_ids or set()
        try:
            self._bot_ids = mapping.bot_ids_of(self.hook.users())
        except FatalError as exc:
            log.warning(
                "could not read the Users API to tell bots from agents (%s); agents without a user type "
                "in the record count as human",
                str(exc).splitlines()[0],
            )
            self._bot_ids = set()
        return self._bot_ids


def _untyped_agent_messages(record: Any) -> bool:
    if not isinstance(record, Mapping):
        return False
    types = mapping.participant_types(record)
    for message in mapping.as_list(record.get("messageRecords")):
        if (
            isinstance(message, Mapping)
            and str(message.get("sentBy", "")).lower() == "agent"
            and mapping.as_text(message.get("participantId")) not in types
        ):
            return True
    return False


def _listed(key: str, record: Any) -> Listed:
    """What an info-only record says for comparing: status, start, agent; a closed one's end time is a lower
    bound of its last update (an open one carries no update stamp: `changed` asks for those)."""
    info = record.get("info") if isinstance(record, Mapping) else None
    info = info if isinstance(info, Mapping) else {}
    status = mapping.STATUS_MAP.get(str(info.get("status") or "").upper())
    started = mapping.conversation_start_ms(record)
    ended: datetime | None = None
    if status == "closed":
        try:
            ended = mapping.read_time(info, "endTimeL", "endTime", "`info.endTime`")
        except MappingError:
            ended = None
    agent = mapping.as_text(info.get("latestAgentId"))
    return Listed(
        interaction_id=key,
        started_at=None if started is None else mapping.from_ms(started),
        status=status,
        updated_at=ended,
        agent_id=None if agent in (None, "-1") else agent,
        agent_known=True,
    )


def _still_truncated(ids: Sequence[str]) -> Callable[[Mapping[str, Any]], str | None]:
    """A by-id answer's check: every conversation asked for came back, none flagged `isPartial`."""

    def check(answer: Mapping[str, Any]) -> str | None:
        whole = {
            mapping.conversation_key(r)
            for r in answer.get("conversationHistoryRecords") or []
            if not mapping.is_partial(r)
        }
        missing = [i for i in ids if i not in whole]
        if not missing:
            return None
        return (
            f"{len(missing)} of {len(ids)} conversation(s) asked for by id came back truncated (isPartial) or "
            f"not at all, e.g. {missing[:3]}; a truncated transcript is never stored"
        )

    return check


@contextmanager
def _labelled(label: str) -> Iterator[None]:
    """Requests whose retries ran out (answers that stayed partial among them) say which page they were for."""
    try:
        yield
    except RetriesExhausted as exc:
        raise RetriesExhausted(f"{label}: {exc}") from None


def _count(answer: Mapping[str, Any], offset: int, received: int) -> int:
    """`_metadata.count`; without it, assume another page while pages come back full."""
    count = (answer.get("_metadata") or {}).get("count")
    if isinstance(count, int | float) and not isinstance(count, bool):
        return int(count)
    if isinstance(count, str) and count.strip().isdigit():
        return int(count)
    return offset + received + (PAGE_LIMIT if received >= PAGE_LIMIT else 0)


def _id_or_none(item: Any) -> str | None:
    return mapping.as_text(item.get("id")) if isinstance(item, Mapping) else None
