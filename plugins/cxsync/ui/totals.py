"""Per-integration totals of interactions (open / closed) and messages for the status page, kept in
`cx_status_totals` (and interactions per day of the charted weeks in `cx_status_days`) so that a request never
counts a million rows.

A row is recomputed (one integration's rows counted once) when its integration's newest `loaded_at` moved
(every upsert that changes an interaction sets it; one index lookup each, `ix_cx_interactions_loaded`), when a
retention run for it was logged since, or when it is older than `UI_TOTALS_MAX_AGE_SECONDS`. Otherwise the
page reads the few stored rows.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from cxsync import settings
from cxsync.warehouse import schema as t

log = logging.getLogger(__name__)


def _newest_loads(conn: sa.Connection, ids: list[str]) -> dict[str, datetime | None]:
    """max(loaded_at) per integration, each a lookup at the end of the (integration_id, loaded_at) index."""
    i = t.interactions
    columns = [
        sa.select(sa.func.max(i.c.loaded_at)).where(i.c.integration_id == integration_id).scalar_subquery()
        for integration_id in ids
    ]
    row = conn.execute(sa.select(*columns)).one()
    return {integration_id: _aware(value) for integration_id, value in zip(ids, row, strict=True)}


def _newest_retention(conn: sa.Connection, ids: list[str]) -> dict[str, int | None]:
    r = t.retention_log
    rows = conn.execute(
        sa.select(r.c.integration_id, sa.func.max(r.c.id))
        .where(r.c.integration_id.in_(ids))
        .group_by(r.c.integration_id)
    )
    return dict(rows.all())


def _count(conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, tuple[int, int]]]:
    i = t.interactions
    out: dict[str, dict[str, tuple[int, int]]] = {integration_id: {} for integration_id in ids}
    for integration_id, status, count, messages in conn.execute(
        sa.select(i.c.integration_id, i.c.status, sa.func.count(), sa.func.sum(i.c.message_count))
        .where(i.c.integration_id.in_(ids))
        .group_by(i.c.integration_id, i.c.status)
    ):
        out[integration_id][status] = (count, int(messages or 0))
    return out


def _count_days(conn: sa.Connection, ids: list[str], now: datetime) -> dict[str, dict[str, int]]:
    """Interactions per start day of the charted weeks (and one more, for the hours until the next recount)."""
    from cxsync.ui.warehouse_reads import day_of, day_text

    i = t.interactions
    day = day_of(i.c.started_at, conn.dialect.name).label("day")
    since = (now - timedelta(days=settings.UI_CHART_DAYS + 7)).replace(hour=0, minute=0, second=0, microsecond=0)
    out: dict[str, dict[str, int]] = {integration_id: {} for integration_id in ids}
    for integration_id, day_value, count in conn.execute(
        sa.select(i.c.integration_id, day, sa.func.count())
        .where(i.c.integration_id.in_(ids), i.c.started_at >= since)
        .group_by(i.c.integration_id, day)
    ):
        out[integration_id][day_text(day_value)] = count
    return out


def totals(engine: sa.Engine, ids: list[str], now: datetime | None = None) -> dict[str, dict[str, tuple[int, int]]]:
    """`{integration: {status: (interactions, messages)}}`, from cx_status_totals, recomputing stale rows."""
    return totals_and_days(engine, ids, now)[0]


def totals_and_days(
    engine: sa.Engine, ids: list[str], now: datetime | None = None
) -> tuple[dict[str, dict[str, tuple[int, int]]], dict[str, dict[str, int]]]:
    """The totals, and `{integration: {day: interactions}}` of the charted weeks (cx_status_days)."""
    now = now or datetime.now(UTC)
    if not ids:
        return {}, {}
    with engine.connect() as conn:
        newest = _newest_loads(conn, ids)
        retention = _newest_retention(conn, ids)
        stored: dict[str, dict[str, tuple[int, int]]] = {integration_id: {} for integration_id in ids}
        fresh: set[str] = set(ids)
        present = sa.inspect(conn).has_table(t.status_totals.name)
        seen: dict[str, list] = {}
        days: dict[str, dict[str, int]] = {integration_id: {} for integration_id in ids}
        if present and sa.inspect(conn).has_table(t.status_days.name):
            st, sd = t.status_totals, t.status_days
            for row in conn.execute(sa.select(st).where(st.c.integration_id.in_(ids))).mappings():
                stored[row["integration_id"]][row["status"]] = (row["interactions"], row["messages"])
                seen.setdefault(row["integration_id"], []).append(row)
            for integration_id, day, count in conn.execute(
                sa.select(sd.c.integration_id, sd.c.day, sd.c.interactions).where(sd.c.integration_id.in_(ids))
            ):
                days[integration_id][day] = count
        for integration_id in ids:
            rows = seen.get(integration_id, [])
            marker = rows[0] if rows else None
            if (
                marker is None
                or _aware(marker["newest_loaded_at"]) != newest[integration_id]
                or marker["newest_retention_id"] != retention.get(integration_id)
                or _aware(marker["computed_at"]) < now - timedelta(seconds=settings.UI_TOTALS_MAX_AGE_SECONDS)
            ):
                fresh.discard(integration_id)
        # An integration without interactions has no rows to mark it: counting it is one empty index range.
        stale = [i for i in ids if i not in fresh]
        if not stale:
            return stored, days
        counted = _count(conn, stale)
        counted_days = _count_days(conn, stale, now)
    stored.update(counted)
    days.update(counted_days)
    try:
        _store(engine, counted, counted_days, newest, retention, now)
    except SQLAlchemyError as exc:  # a read-only warehouse user: the page still shows the counts
        log.warning("cxsync UI: cannot store the status totals (%s); they are counted on every request", exc)
    return stored, days


def _store(
    engine: sa.Engine,
    counted: dict[str, dict[str, tuple[int, int]]],
    counted_days: dict[str, dict[str, int]],
    newest: dict[str, datetime | None],
    retention: dict[str, int | None],
    now: datetime,
) -> None:
    st, sd = t.status_totals, t.status_days
    with engine.begin() as conn:
        st.create(conn, checkfirst=True)
        sd.create(conn, checkfirst=True)
        conn.execute(st.delete().where(st.c.integration_id.in_(list(counted))))
        conn.execute(sd.delete().where(sd.c.integration_id.in_(list(counted))))
        day_rows = [
            {"integration_id": integration_id, "day": day, "interactions": count}
            for integration_id, by_day in counted_days.items()
            for day, count in by_day.items()
        ]
        if day_rows:
            conn.execute(sd.insert(), day_rows)
        rows = []
        for integration_id, by_status in counted.items():
            # An integration with no interactions still gets a row, so its emptiness is remembered too.
            for status, (count, messages) in (by_status or {"open": (0, 0)}).items():
                rows.append(
                    {
                        "integration_id": integration_id,
                        "status": status,
                        "interactions": count,
                        "messages": messages,
                        "newest_loaded_at": newest[integration_id],
                        "newest_retention_id": retention.get(integration_id),
                        "computed_at": now,
                    }
                )
        conn.execute(st.insert(), rows)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or not isinstance(value, datetime):
        return value
    return value if value.tzinfo else value.replace(tzinfo=UTC)
