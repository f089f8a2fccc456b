"""Provider-agnostic task bodies: roster sync, backfill windows, incremental loads, retention.

Knows nothing about a provider: it drives a `Source`, writes `Page`s to the `Warehouse`, keeps the
watermark behind committed rows and logs progress (pages, conversations, messages, rate).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from dateutil.relativedelta import relativedelta

from cxsync import settings
from cxsync.config import Integration, Retention
from cxsync.redaction import runtime as redaction
from cxsync.sources.base import Page, Source
from cxsync.warehouse import Warehouse, WriteStats, format_watermark, parse_watermark
from cxsync.warehouse.store import PreparedInteractions

log = logging.getLogger(__name__)
T = TypeVar("T")

INTERACTIONS_STREAM = "interactions"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def to_xcom(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_xcom(cls, value: dict[str, str]) -> Window:
        return cls(datetime.fromisoformat(value["start"]), datetime.fromisoformat(value["end"]))

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M} UTC"


def plan_windows(end: datetime, weeks: int, window: timedelta = timedelta(days=1)) -> list[Window]:
    """Day windows covering [end - weeks, end), oldest first."""
    start = end - timedelta(weeks=weeks)
    windows = []
    cursor = start
    while cursor < end:
        nxt = min(cursor + window, end)
        windows.append(Window(cursor, nxt))
        cursor = nxt
    return windows


class Progress:
    """Running totals for the task log: pages, conversations, messages, rate."""

    def __init__(self, what: str):
        self.what = what
        self.started = time.monotonic()
        self.total = WriteStats()
        self.pages = 0

    def page_done(self, page: Page, stats: WriteStats) -> None:
        self.pages += 1
        self.total.add(stats)
        elapsed = max(time.monotonic() - self.started, 1e-6)
        received = self.total.received - self.total.rejected
        label = page.label or f"page {self.pages}"
        # A page label that already names its scope ("window 2026-03-01 ...: page 2 of 5") is not prefixed again.
        scope = "" if label.split(" ", 1)[0] == self.what.split(" ", 1)[0] else f"{self.what}: "
        log.info(
            "%s%s done: %d conversations (%d new, %d changed, %d unchanged), %d messages written, "
            "%d rejected; %.1f conversations/s",
            scope,
            label,
            received,
            self.total.inserted,
            self.total.updated,
            self.total.unchanged,
            self.total.messages_written,
            self.total.rejected,
            received / elapsed,
        )

    def summary(self) -> dict:
        elapsed = time.monotonic() - self.started
        return {
            "pages": self.pages,
            "conversations": self.total.received - self.total.rejected,
            "inserted": self.total.inserted,
            "updated": self.total.updated,
            "unchanged": self.total.unchanged,
            "messages_written": self.total.messages_written,
            "rejected": self.total.rejected,
            "seconds": round(elapsed, 3),
        }


def sync_roster(integration: Integration, source: Source, warehouse: Warehouse) -> dict:
    roster = source.roster()
    stats = warehouse.sync_agents(integration.id, roster.agents, complete=roster.complete)
    groups = warehouse.upsert_groups(integration.id, roster.groups)
    skills = warehouse.upsert_skills(integration.id, roster.skills)
    warehouse.reject(integration.id, roster.rejected)
    for warning in roster.warnings:
        log.warning("roster of %s: %s", integration.id, warning)
    warehouse.set_roster_warnings(integration.id, roster.warnings)
    result = {
        "agents": stats.seen,
        "new": stats.inserted,
        "updated": stats.updated,
        "marked_deleted": stats.marked_deleted,
        "groups": groups,
        "skills": skills,
        "rejected": len(roster.rejected),
        "warnings": list(roster.warnings),
    }
    log.info("roster of %s: %s", integration.id, result)
    return result


def task_identity() -> dict:
    """The Airflow task try running this (dag, run, task, map index, try), for per-run statistics; {} outside one."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
    except Exception:  # outside an Airflow task (tests, the demo's helpers)
        return {}
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None),
    }


def load_window(integration: Integration, source: Source, warehouse: Warehouse, window: Window) -> dict:
    progress = Progress(f"window {window}")
    redactor = redaction.redactor_for(integration)
    pages = redaction.redacted(source.window(window.start, window.end), redactor, source)
    with spared_heap():
        for page, ready in read_ahead(_prepared(integration, warehouse, pages)):
            stats = warehouse.write_interactions(integration.id, page.records, rejected=page.rejected, prepared=ready)
            progress.page_done(page, stats)
    result = progress.summary() | {"day": window.start.date().isoformat()}
    if not result["conversations"]:
        log.warning("window %s: the provider has no conversation that started in it", window)
    if redactor is not None:
        result["redaction"] = redaction.record_stats(integration, warehouse, redactor, task_identity())
    log.info("window %s finished: %s", window, result)
    return result


def load_changes(integration: Integration, source: Source, warehouse: Warehouse) -> dict:
    """Everything created or changed since the committed watermark; the new watermark is committed
    in the same transaction as the last page, so it is never ahead of the rows it covers."""
    committed = warehouse.get_watermark(integration.id, INTERACTIONS_STREAM)
    since = parse_watermark(committed) if committed else None
    until = source.server_now()
    log.info(
        "incremental %s: changes since %s (watermark), provider time now %s",
        integration.id,
        committed or "the beginning (no watermark yet)",
        until.isoformat(),
    )
    progress = Progress(f"incremental {integration.id}")
    new_watermark = format_watermark(until)
    wrote_any = False
    redactor = redaction.redactor_for(integration)
    with spared_heap():
        # The source may skip what its list shows unchanged since we stored it (its overlap, listed every run).
        source.stored_since = functools.partial(warehouse.updated_since, integration.id)
        changed = redaction.redacted(source.changes(since, until), redactor, source)
        pages = read_ahead(_prepared(integration, warehouse, changed))
        for (page, ready), is_last in _with_last(pages):
            stats = warehouse.write_interactions(
                integration.id,
                page.records,
                rejected=page.rejected,
                prepared=ready,
                stream=INTERACTIONS_STREAM if is_last else None,
                watermark=new_watermark if is_last else None,
            )
            progress.page_done(page, stats)
            wrote_any = True
    if not wrote_any:
        warehouse.set_watermark(integration.id, INTERACTIONS_STREAM, new_watermark)
    # `since`: the watermark this run read from (reconciliation skips what this run's read already covered).
    result = progress.summary() | {"watermark": new_watermark, "since": committed}
    if redactor is not None:
        result["redaction"] = redaction.record_stats(integration, warehouse, redactor, task_identity())
    log.info("incremental %s finished: %s", integration.id, result)
    return result


def backfill_totals(integration: Integration, results: Iterable[Mapping[str, Any] | None]) -> dict:
    """The whole backfill's figures from its windows' results, logged in one line."""
    results = [r for r in results if r]
    keys = ("conversations", "inserted", "updated", "unchanged", "messages_written", "rejected", "pages")
    totals = {key: sum(int(r.get(key) or 0) for r in results) for key in keys}
    totals["windows"] = len(results)
    totals["task_seconds"] = round(sum(float(r.get("seconds") or 0) for r in results), 1)
    log.info(
        "backfill of %s finished: %d day windows, %d conversations (%d new, %d changed, %d unchanged), "
        "%d messages written, %d rejected, %d pages, %.1f s of task time",
        integration.id,
        totals["windows"],
        totals["conversations"],
        totals["inserted"],
        totals["updated"],
        totals["unchanged"],
        totals["messages_written"],
        totals["rejected"],
        totals["pages"],
        totals["task_seconds"],
    )
    # A day without a single conversation is worth a line of its own: a provider whose history is shorter than
    # the weeks asked for "succeeds" with empty days otherwise.
    empty = sorted(str(r["day"]) for r in results if r.get("day") and not int(r.get("conversations") or 0))
    totals["empty_days"] = empty
    if empty:
        log.warning(
            "backfill of %s: %d of %d day windows found no conversation (%s): the provider holds nothing that "
            "started on those days (a history shorter than the weeks asked for, or quiet days)",
            integration.id,
            len(empty),
            totals["windows"],
            _days_text(empty),
        )
    return totals


def _days_text(days: list[str]) -> str:
    return ", ".join(days) if len(days) <= 4 else f"{days[0]} … {days[-1]}"


def finish_backfill(integration: Integration, warehouse: Warehouse, end: datetime) -> None:
    """After a complete backfill, an integration without an incremental watermark gets the backfill's
    end: the first nightly run then starts where the backfill stopped, not from scratch."""
    if warehouse.get_watermark(integration.id, INTERACTIONS_STREAM) is None:
        warehouse.set_watermark(integration.id, INTERACTIONS_STREAM, format_watermark(end))
        log.info("incremental watermark of %s set to the backfill's end %s", integration.id, end.isoformat())


def retention_cutoff(now: datetime, retention: Retention) -> datetime:
    unit, value = retention.unit, retention.value
    delta = {
        "days": relativedelta(days=value),
        "weeks": relativedelta(weeks=value),
        "months": relativedelta(months=value),
        "quarters": relativedelta(months=3 * value),
        "years": relativedelta(years=value),
    }[unit]
    return now - delta


def assess_retention(
    integration: Integration, warehouse: Warehouse, *, dry_run: bool, scheduled: bool, now: datetime | None = None
) -> dict:
    """What a retention run would delete, and whether a person must approve it first.

    Only a scheduled real run ever waits: a dry run deletes nothing, and a person who triggers a real run by hand
    has chosen it. A scheduled run waits when it would be the integration's first deletion (the run that starts
    as soon as someone unpauses the DAG) or would delete more than `retention.approval_share` of its
    interactions.
    """
    cutoff = retention_cutoff(now or datetime.now(UTC), integration.retention)
    counts = warehouse.count_older_than(integration.id, cutoff)
    expired = counts["cx_interactions"]
    total = warehouse.interaction_count(integration.id)
    share = expired / total if total else 0.0
    reason = ""
    if scheduled and not dry_run and expired:
        if not warehouse.has_deleted_before(integration.id):
            reason = "it would be this integration's first deletion"
        elif share > integration.retention.approval_share:
            reason = (
                f"it would delete {share:.0%} of this integration's interactions, more than the "
                f"{integration.retention.approval_share:.0%} allowed without approval (retention.approval_share)"
            )
    summary = (
        f"Retention of {integration.label} ({integration.id}, keep {integration.retention}): "
        f"{'would delete' if reason or dry_run else 'deletes'} everything that started before "
        f"{cutoff:%Y-%m-%d %H:%M} UTC: {expired:,} of {total:,} interactions ({share:.1%}), "
        + ", ".join(f"{n:,} {table}" for table, n in counts.items() if table != "cx_interactions")
        + "."
    )
    log.info("%s%s", summary, f" Waiting for approval: {reason}." if reason else "")
    return {
        "cutoff": cutoff.isoformat(),
        "dry_run": dry_run,
        "counts": counts,
        "total": total,
        "needs_approval": bool(reason),
        "reason": reason,
        "summary": summary,
    }


def apply_retention(
    integration: Integration,
    warehouse: Warehouse,
    *,
    dry_run: bool,
    now: datetime | None = None,
    cutoff: datetime | None = None,
) -> dict:
    """Delete (or count, on a dry run) what is older than the retention; `cutoff` (for example the one a person
    approved) wins over one computed from `now`."""
    if cutoff is None:
        cutoff = retention_cutoff(now or datetime.now(UTC), integration.retention)
    result = warehouse.delete_older_than(integration.id, cutoff, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    log.info(
        "retention %s (%s): %s everything started before %s: %s",
        integration.id,
        integration.retention,
        verb,
        cutoff.isoformat(),
        result.counts,
    )
    return {"cutoff": cutoff.isoformat(), "dry_run": dry_run, **result.counts}


def _prepared(
    integration: Integration, warehouse: Warehouse, pages: Iterable[Page]
) -> Iterator[tuple[Page, PreparedInteractions]]:
    """Each page with its rows made ready for the warehouse (no database yet): run by `read_ahead`'s thread,
    so mapping, redaction, hashing and encoding overlap with writing the page before."""
    for page in pages:
        yield page, warehouse.prepare_interactions(integration.id, page.records, rejected=page.rejected)


def _with_last(pages: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Yield (page, is_last): one page of look-ahead, so the last page can carry the watermark."""
    iterator = iter(pages)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for nxt in iterator:
        yield current, False
        current = nxt
    yield current, True


@contextlib.contextmanager
def spared_heap() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off everything that exists before a load starts, while it runs.

    A task process holds Airflow, SQLAlchemy and the providers' modules: a few hundred thousand objects that live
    as long as the process. Pages allocate hundreds of thousands of short-lived objects, which triggers full
    collections, and each full collection walks all of the old ones again: about a quarter of a LivePerson load's
    time went there. `gc.freeze()` moves what exists now out of the collector's generations (reference counting
    still frees all of it); afterwards `gc.unfreeze()` gives it back, so cyclic garbage made before the load is
    collected later as usual. A process that froze objects itself keeps its own policy (nothing is unfrozen).
    settings.GC_FREEZE_BEFORE_LOAD turns this off.
    """
    if not settings.GC_FREEZE_BEFORE_LOAD:
        yield
        return
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def read_ahead(pages: Iterable[T], depth: int | None = None) -> Iterator[T]:
    """The same pages in the same order, fetched, mapped and prepared for the warehouse (`_prepared`) in a
    background thread while the caller writes the previous ones: the provider's answer time, the CPU work and
    the warehouse's commit time overlap instead of adding up. At most `depth` finished pages wait
    (settings.READ_AHEAD_PAGES; 0 reads in the caller's thread).

    The source is used by that one thread only. Its errors are raised here, at the page where they
    happened; when the caller stops early (or fails), the thread stops before its next page.
    """
    depth = settings.READ_AHEAD_PAGES if depth is None else depth
    if depth <= 0:
        yield from pages
        return
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(pages)
        try:
            for page in iterator:
                if not put(page):
                    break
            else:
                put(_DONE)
        except BaseException as exc:  # handed to the caller's thread, raised there
            put(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="cxsync-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = handoff.get(timeout=1.0)
            except queue.Empty:
                # A reader that died without handing over a page, the end or its error would leave the task
                # waiting for ever: fail it instead.
                if not worker.is_alive() and handoff.empty():
                    raise RuntimeError("the page reader thread stopped without a page, an end or an error") from None
                continue
            if item is _DONE:
                break
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        # A finished producer is joined at once; one still inside a request is left to end on its own
        # (it stops before its next page) rather than holding the task's failure back.
        worker.join(timeout=None if not worker.is_alive() else 5.0)
