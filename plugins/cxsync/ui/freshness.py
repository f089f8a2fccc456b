"""Freshness of each integration on the status page: how old the data in the warehouse is, and when that is a
warning.

Two ages are shown. *Loaded through* is the incremental watermark: the provider time up to which every change is
in the warehouse (a run commits it with its last page), so it stays young through a quiet night as long as the
loads run. *Newest change* is the newest `updated_at` loaded, the age a reader of the data meets. The warning
follows the first: a quiet hour at the provider is no fault of the loads.

The threshold is the option `freshness_warn_hours` when set; otherwise two schedule intervals, but never more
than the interval plus two hours (every 15 minutes: 30 minutes; hourly: 2 hours; nightly: 26 hours).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cxsync import settings
from cxsync.config import Integration
from cxsync.warehouse import schema as t


def newest_changes(conn: sa.Connection, ids: list[str], present: set[str]) -> dict[str, datetime | None]:
    """The newest `updated_at` loaded per integration, for all of them in one grouped query."""
    out: dict[str, datetime | None] = dict.fromkeys(ids)
    if not ids or t.interactions.name not in present:
        return out
    it = t.interactions
    rows = conn.execute(
        sa.select(it.c.integration_id, sa.func.max(it.c.updated_at))
        .where(it.c.integration_id.in_(ids))
        .group_by(it.c.integration_id)
    )
    out.update({integration_id: newest for integration_id, newest in rows})
    return out


def threshold(integration: Integration, interval: timedelta | None) -> timedelta | None:
    """The age past which the status page warns (None: the schedule gives no interval and no option is set)."""
    hours = float(integration.common_options.freshness_warn_hours)
    if hours > 0:
        return timedelta(hours=hours)
    if interval is None:
        return None
    grace = timedelta(seconds=settings.UI_FRESHNESS_GRACE_SECONDS)
    return min(settings.UI_FRESHNESS_INTERVALS * interval, interval + grace)


def freshness(
    integration: Integration,
    now: datetime,
    *,
    loaded_through: datetime | None,
    newest_change: datetime | None,
    interval: timedelta | None,
) -> dict[str, Any]:
    """What the status page shows of one integration's freshness, with the warning when it is too old."""
    limit = threshold(integration, interval)
    age = (now - loaded_through).total_seconds() if loaded_through else None
    stale = age is not None and limit is not None and age > limit.total_seconds()
    warning = None
    if stale:
        warning = (
            f"The data is {duration(age)} old (loaded through {loaded_through:%Y-%m-%d %H:%M} UTC), more than the "
            f"{duration(limit.total_seconds())} allowed for the schedule {integration.schedule}: the incremental "
            "loads are not keeping up or not running (option freshness_warn_hours sets the limit)."
        )
    return {
        "loaded_through": loaded_through,
        "age_seconds": age,
        "newest_change": newest_change,
        "newest_change_age_seconds": (now - newest_change).total_seconds() if newest_change else None,
        "threshold_seconds": limit.total_seconds() if limit else None,
        "stale": stale,
        "warning": warning,
    }


def duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours".replace(".0 ", " ")
    return f"{seconds / 60:.0f} minutes"
