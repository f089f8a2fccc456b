"""Reconciliation: compare what the provider lists over a look-back with the warehouse, load only the difference.

Incremental runs read back to their watermark minus a fixed overlap, so a record that becomes visible at the
provider later than the time it carries (index or replica lag, imports, an incident's backlog) would be missed
for good. After each incremental load this pass lists the look-back (`reconcile_hours`, default 48) with list
requests only, and compares each listed interaction with the stored copy:

- missing: listed, started in the look-back, not stored (one that started earlier and was never stored lies
  outside what the backfill loads, by start time, and is left alone);
- stale: the provider's update stamp is newer than ours, or its status or agent differs (a conversation moved
  back from closed to open is stale too), or the source says it changed (`Source.changed`, for lists without
  stamps);
- deleted: listed among the provider's deleted records while ours is not marked: `deleted_at` is set, the row
  stays until our own retention removes it (and a record listed again is unmarked).

Missing and stale interactions are fetched whole and written as authoritative copies; nothing unchanged is
fetched. Per UTC day of the start time, `cx_reconciliation` records how many interactions the provider lists
and the warehouse holds within the look-back, and what was repaired; a day that still differs afterwards is a
warning in the log and in that table.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cxsync.config import Integration
from cxsync.pipeline import Progress, read_ahead, spared_heap, task_identity
from cxsync.redaction import runtime as redaction
from cxsync.sources.base import Listed, Source
from cxsync.warehouse import Warehouse, parse_watermark
from cxsync.warehouse.store import HeldInteraction

log = logging.getLogger(__name__)

OK, REPAIRED, DIFFERS = "ok", "repaired", "differs"


def reconcile(
    integration: Integration,
    source: Source,
    warehouse: Warehouse,
    *,
    hours: float | None = None,
    incremental: dict[str, Any] | None = None,
    only_if_due: bool = False,
) -> dict[str, Any]:
    """`incremental`: the result of the incremental load just before (its `since` watermark), if any.
    `only_if_due` (the incremental DAG's task): skip the pass when the last one ended less than the option
    `reconcile_every_hours` ago by the provider's clock, so a load every 15 minutes does not list the whole
    look-back every time; the look-back itself stays `reconcile_hours`."""
    covered_since = _since(incremental)
    hours = integration.reconcile_hours if hours is None else hours
    if hours <= 0:
        log.info("reconciliation of %s is off (option reconcile_hours: 0)", integration.id)
        return {"hours": 0, "skipped": True}
    end = source.server_now()
    every = float(integration.common_options.reconcile_every_hours)
    last = warehouse.last_reconciled_until(integration.id) if only_if_due and every > 0 else None
    if last is not None and end - last < timedelta(hours=every):
        log.info(
            "reconciliation of %s: not due, the last pass checked up to %s (option reconcile_every_hours: %s)",
            integration.id,
            last.isoformat(),
            f"{every:g}",
        )
        return {"hours": hours, "skipped": True, "last_until": last.isoformat(), "every_hours": every}
    start = end - timedelta(hours=hours)
    log.info(
        "reconciliation %s: listing %s h (%s..%s) at the provider",
        integration.id,
        f"{hours:g}",
        start.isoformat(),
        end.isoformat(),
    )

    listed: dict[str, Listed] = {item.interaction_id: item for item in source.listing(start, end)}
    outside = [i for i, item in listed.items() if not _inside(item.started_at, start, end)]
    held = warehouse.held_interactions(integration.id, start, end, outside)

    # Missing: listed, started in the look-back, not stored. A record that started earlier is compared when stored;
    # one never stored lies outside what the backfill loaded (it loads by start time), so it is left alone.
    missing = sorted(
        i for i, item in listed.items() if not item.deleted and i not in held and _inside(item.started_at, start, end)
    )
    stale: set[str] = set()
    deleted: list[str] = []
    restored: list[str] = []
    unstamped: list[HeldInteraction] = []
    for iid, item in listed.items():
        copy = held.get(iid)
        if copy is None:
            continue
        if item.deleted:
            if copy.deleted_at is None:
                deleted.append(iid)
            continue
        if copy.deleted_at is not None:
            restored.append(iid)
            stale.add(iid)
        elif _differs(item, copy):
            stale.add(iid)
        elif item.updated_at is None:
            unstamped.append(copy)
    stale |= source.changed(unstamped, end, covered_since) if unstamped else set()

    wanted = missing + sorted(stale)
    progress = Progress(f"reconciliation {integration.id}")
    redactor = redaction.redactor_for(integration) if wanted else None
    if wanted:
        with spared_heap():
            for page in read_ahead(redaction.redacted(source.fetch(wanted), redactor, source)):
                stats = warehouse.write_interactions(
                    integration.id, page.records, rejected=page.rejected, authoritative=True
                )
                progress.page_done(page, stats)
    if deleted:
        warehouse.set_deleted(integration.id, deleted, end)
    if restored:
        warehouse.set_deleted(integration.id, restored, None)

    after = warehouse.held_interactions(integration.id, start, end, outside)
    unresolved = sorted(i for i in wanted if i not in after or _differs(listed[i], after[i]))
    days = _days(integration.id, start, end, listed, after, missing, stale, deleted, unresolved)
    warehouse.record_reconciliation(days)

    summary = progress.summary()
    loaded = summary["inserted"] + summary["updated"]
    result = {
        "hours": hours,
        "from": start.isoformat(),
        "until": end.isoformat(),
        "listed": sum(1 for item in listed.values() if not item.deleted),
        "missing": len(missing),
        "stale": len(stale),
        "loaded": loaded,
        "deleted": len(deleted),
        "unresolved": len(unresolved),
        "days_differing": [str(d["day"]) for d in days if d["status"] == DIFFERS],
        "pages": summary["pages"],
    }
    if redactor is not None:
        result["redaction"] = redaction.record_stats(integration, warehouse, redactor, task_identity())
    log.info(
        "%s h checked: %s listed, %s missing, %s stale, %s loaded, %s marked deleted at the provider",
        f"{hours:g}",
        f"{result['listed']:,}",
        f"{len(missing):,}",
        f"{len(stale):,}",
        f"{loaded:,}",
        f"{len(deleted):,}",
    )
    for day in days:
        if day["status"] == DIFFERS:
            log.warning("reconciliation %s, %s: %s", integration.id, day["day"], day["warning"])
    return result


def _since(incremental: dict[str, Any] | None) -> datetime | None:
    since = (incremental or {}).get("since")
    return parse_watermark(since) if isinstance(since, str) and since else None


def _differs(item: Listed, copy: HeldInteraction) -> bool:
    if item.updated_at is not None and (copy.updated_at is None or copy.updated_at < item.updated_at):
        return True
    if item.status is not None and item.status != copy.status:
        return True
    return item.agent_known and item.agent_id != copy.agent_id


def _inside(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def _days(
    integration_id: str,
    start: datetime,
    end: datetime,
    listed: dict[str, Listed],
    held: dict[str, HeldInteraction],
    missing: Iterable[str],
    stale: Iterable[str],
    deleted: Iterable[str],
    unresolved: Iterable[str],
) -> list[dict[str, Any]]:
    """One cx_reconciliation row per UTC day the look-back touches; counts within the part of it checked."""

    def day_of(iid: str) -> date | None:
        item = listed.get(iid)
        moment = item.started_at if item is not None else None
        return moment.date() if _inside(moment, start, end) else None

    provider = Counter(
        item.started_at.date()
        for item in listed.values()
        if not item.deleted and item.started_at is not None and _inside(item.started_at, start, end)
    )
    stored = Counter(
        copy.started_at.date()
        for copy in held.values()
        if copy.deleted_at is None and _inside(copy.started_at, start, end)
    )
    named = (("missing", missing), ("stale", stale), ("deleted", deleted), ("unresolved", unresolved))
    counts = {name: Counter(filter(None, map(day_of, ids))) for name, ids in named}
    repaired = counts["missing"] + counts["stale"] - counts["unresolved"]
    now = datetime.now(UTC)
    rows = []
    day = start.date()
    while datetime.combine(day, time(), UTC) < end:
        day_start = datetime.combine(day, time(), UTC)
        problems = []
        if provider[day] != stored[day]:
            problems.append(f"the provider lists {provider[day]:,}, the warehouse holds {stored[day]:,}")
        if counts["unresolved"][day]:
            problems.append(f"{counts['unresolved'][day]:,} still missing or stale after the repair")
        fixed = repaired[day] + counts["deleted"][day]
        rows.append(
            {
                "integration_id": integration_id,
                "day": day,
                "checked_from": max(start, day_start),
                "checked_until": min(end, day_start + timedelta(days=1)),
                "provider_count": provider[day],
                "warehouse_count": stored[day],
                "missing": counts["missing"][day],
                "stale": counts["stale"][day],
                "deleted": counts["deleted"][day],
                "repaired": repaired[day],
                "status": DIFFERS if problems else (REPAIRED if fixed else OK),
                "warning": "; ".join(problems) or None,
                "checked_at": now,
            }
        )
        day += timedelta(days=1)
    return rows


def last_check(warehouse: Warehouse, integration_id: str) -> dict[str, Any] | None:
    """The latest reconciliation's days of an integration, summed: for status pages and the demo."""
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    table = t.reconciliation
    latest = sa.select(sa.func.max(table.c.checked_at)).where(table.c.integration_id == integration_id)
    query = sa.select(table).where(
        table.c.integration_id == integration_id, table.c.checked_at == latest.scalar_subquery()
    )
    with warehouse.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    if not rows:
        return None
    total = {k: sum(r[k] for r in rows) for k in ("provider_count", "warehouse_count", "missing", "stale", "repaired")}
    return total | {"days": len(rows), "differing": [str(r["day"]) for r in rows if r["status"] == DIFFERS]}
