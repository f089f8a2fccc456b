"""One analytics run of an integration: which interactions need (re)computing, in bounded batches, and the agent
days they touch.

An interaction is computed when it has no cx_interaction_metrics row yet, when its `content_hash` differs from
the one its metrics were computed from (a new message, a status change, another agent...), or when its row
was computed with another `metrics_version`; with `full`, every interaction is. Interactions are read in
batches of `settings.ANALYTICS_BATCH_INTERACTIONS` in id order (keyset paging, so nothing holds the whole list),
each batch's messages with one query ordered by interaction and `seq`.

Each batch's metrics are written in one transaction together with the agent days they touch (the day and
agent they count towards now and the ones they counted towards before) in cx_analytics_pending_days. Then
each pending agent day is recomputed from all of its interactions' metrics rows and its pending row removed,
one transaction per day. A run that stops half-way leaves pending days that the next run finishes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cxsync import settings
from cxsync.analytics import compute
from cxsync.analytics.options import Thresholds
from cxsync.config import Integration
from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t
from cxsync.warehouse.bulk import BulkUpsert

log = logging.getLogger(__name__)

METRICS_COLUMNS = (
    "integration_id",
    "interaction_id",
    "metrics_version",
    "computed_at",
    "content_hash",
    "agent_id",
    "day",
    "status",
    *compute.SECONDS_COLUMNS,
    *compute.COUNT_COLUMNS,
    "flags",
    *compute.SCORE_COLUMNS,
)
DAILY_COLUMNS = (
    "integration_id",
    "agent_id",
    "day",
    "metrics_version",
    "computed_at",
    "conversations",
    "closed_conversations",
    "median_first_response_seconds",
    "p90_first_response_seconds",
    "avg_handle_seconds",
    "messages",
    "customer_messages",
    "unanswered_runs",
    "flagged_conversations",
    *compute.DAILY_SCORE_COLUMNS,
)


@dataclass
class AnalyticsResult:
    integration_id: str
    full: bool
    interactions_computed: int = 0
    messages_read: int = 0
    batches: int = 0
    agent_days_computed: int = 0
    agent_days_removed: int = 0
    seconds: float = 0.0

    def to_xcom(self) -> dict:
        return asdict(self)


def run_analytics(
    warehouse: Warehouse,
    integration: Integration,
    *,
    full: bool = False,
    batch_size: int = settings.ANALYTICS_BATCH_INTERACTIONS,
    now: datetime | None = None,
) -> AnalyticsResult:
    """Compute what changed since the last run (everything with `full`); see the module docstring."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    result = AnalyticsResult(integration.id, full)
    thresholds = Thresholds.for_integration(integration.provider, integration.options)
    metrics_upsert = BulkUpsert(
        warehouse.engine.dialect, t.interaction_metrics, METRICS_COLUMNS, ["integration_id", "interaction_id"]
    )
    after = ""
    while True:
        batch = _next_batch(warehouse, integration, after, batch_size, full)
        if batch.empty:
            break
        after = batch["interaction_id"].iloc[-1]
        messages = _messages(warehouse, integration.id, batch["interaction_id"].tolist(), contiguous=full)
        metrics = compute.interaction_metrics(batch, messages, thresholds)
        rows = _metrics_rows(integration.id, batch, metrics, now)
        pending = _touched_days(integration.id, batch)
        with warehouse.engine.begin() as conn:
            metrics_upsert.execute(conn, rows)
            _add_pending(warehouse, conn, pending)
        result.batches += 1
        result.interactions_computed += len(batch)
        result.messages_read += len(messages)
        log.info(
            "analytics %s: batch %d: %d interaction(s), %d message(s) computed (%d so far)",
            integration.id,
            result.batches,
            len(batch),
            len(messages),
            result.interactions_computed,
        )
    computed, removed = _recompute_pending_days(warehouse, integration.id, now)
    if not _totals_agree(warehouse, integration.id):
        # Interactions were deleted (retention deletes their metrics rows): find the agent days they left.
        _add_inconsistent_days(warehouse, integration.id)
        more_computed, more_removed = _recompute_pending_days(warehouse, integration.id, now)
        computed, removed = computed + more_computed, removed + more_removed
    result.agent_days_computed, result.agent_days_removed = computed, removed
    result.seconds = round(time.monotonic() - started, 3)
    log.info(
        "analytics %s: %d interaction(s) in %d batch(es), %d agent day(s) recomputed, %d removed, in %.1f s",
        integration.id,
        result.interactions_computed,
        result.batches,
        computed,
        removed,
        result.seconds,
    )
    return result


# ---- interactions and messages of a batch -----------------------------------------------------------------------


def _next_batch(
    warehouse: Warehouse, integration: Integration, after: str, batch_size: int, full: bool
) -> pd.DataFrame:
    it, mt = t.interactions, t.interaction_metrics
    columns = [
        it.c.interaction_id,
        it.c.status,
        # As the driver returns them (text on SQLite): pandas converts the whole batch at once.
        sa.type_coerce(it.c.started_at, sa.Text).label("started_at"),
        sa.type_coerce(it.c.ended_at, sa.Text).label("ended_at"),
        it.c.agent_id,
        it.c.content_hash,
        *(it.c[name] for name in compute.SCORE_COLUMNS),
        mt.c.agent_id.label("previous_agent_id"),
        mt.c.day.label("previous_day"),
    ]
    # Only providers whose records keep a status history are read raw (`reopened`, ProviderSpec.reopened).
    wants_raw = compute.reopened_reader(integration.provider) is not None
    if wants_raw:
        columns.append(it.c.raw)
    query = (
        sa.select(*columns)
        .select_from(
            it.outerjoin(
                mt, sa.and_(mt.c.integration_id == it.c.integration_id, mt.c.interaction_id == it.c.interaction_id)
            )
        )
        .where(it.c.integration_id == integration.id, it.c.interaction_id > after)
        .order_by(it.c.interaction_id)
        .limit(batch_size)
    )
    if not full:
        query = query.where(
            sa.or_(
                mt.c.interaction_id.is_(None),
                mt.c.content_hash != it.c.content_hash,
                mt.c.metrics_version != settings.ANALYTICS_METRICS_VERSION,
            )
        )
    with warehouse.engine.connect() as conn:
        frame = _frame(conn.execute(query).all(), [c.name for c in columns])
    if frame.empty:
        return frame
    frame["reopened"] = (
        [compute.reopened_from_raw(integration.provider, raw) for raw in frame.pop("raw")] if wants_raw else False
    )
    for column in ("started_at", "ended_at"):
        frame[column] = _utc_times(frame[column])
    return frame


def _messages(warehouse: Warehouse, integration_id: str, ids: list[str], contiguous: bool) -> pd.DataFrame:
    """The scored messages of these interactions (their main dialog: a post-conversation survey is not the
    agent's conversation), ordered by interaction and `seq`, through the driver's own cursor (SQLAlchemy's
    result rows cost more than the query). `contiguous`: `ids` are every interaction from the first to the last
    (a full run), so one key range replaces the list."""
    columns = ", ".join(compute.MESSAGE_FRAME_COLUMNS)
    postgres = warehouse.dialect == "postgresql"
    mark = "%s" if postgres else "?"
    if contiguous:
        where, params = f"interaction_id >= {mark} AND interaction_id <= {mark}", [ids[0], ids[-1]]
    elif postgres:
        where, params = "interaction_id = ANY(%s)", [list(ids)]
    else:
        where, params = f"interaction_id IN ({', '.join('?' * len(ids))})", list(ids)
    sql = (
        f"SELECT {columns} FROM {t.messages.name} WHERE integration_id = {mark} AND {where} "
        f"AND dialog_type = {mark} ORDER BY interaction_id, seq"
    )
    with warehouse.engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(sql, [integration_id, *params, settings.SCORED_DIALOG_TYPE])
            rows = cursor.fetchall()
        finally:
            cursor.close()
    frame = pd.DataFrame.from_records(rows, columns=list(compute.MESSAGE_FRAME_COLUMNS), coerce_float=False)
    if contiguous:
        frame = frame[frame["interaction_id"].isin(ids)].reset_index(drop=True)
    frame["sent_at"] = _utc_times(frame["sent_at"])
    frame["is_private"] = frame["is_private"].astype(bool)
    return frame


def _utc_times(values: pd.Series) -> pd.Series:
    """Times as the driver returns them: aware datetimes (PostgreSQL) or SQLAlchemy's UTC text (SQLite)."""
    try:
        return pd.to_datetime(values, utc=True, format="%Y-%m-%d %H:%M:%S.%f")
    except (ValueError, TypeError):
        return pd.to_datetime(values, utc=True, format="ISO8601")


def _frame(rows: list, columns: list[str]) -> pd.DataFrame:
    """A frame of result rows built column by column: pandas inspects SQLAlchemy `Row`s one by one otherwise."""
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return pd.DataFrame({name: pd.Series(list(col)) for name, col in zip(columns, values, strict=True)})


def _metrics_rows(integration_id: str, batch: pd.DataFrame, metrics: pd.DataFrame, now: datetime) -> list[tuple]:
    info = batch.set_index("interaction_id")
    frame = metrics.join(info[["content_hash", "agent_id", "status", *compute.SCORE_COLUMNS]])
    frame["day"] = _days(info["started_at"])
    out = []
    floats = (*compute.SECONDS_COLUMNS, *compute.SCORE_COLUMNS)
    values = {c: frame[c].tolist() for c in (*floats, *compute.COUNT_COLUMNS)}
    for column in floats:
        values[column] = [None if v is None or v != v else float(v) for v in values[column]]  # NaN -> NULL
    for column in compute.COUNT_COLUMNS:
        values[column] = [int(v) for v in values[column]]
    fixed = (integration_id,)
    for n, (iid, digest, agent, day, status, flags) in enumerate(
        zip(
            frame.index,
            frame["content_hash"],
            frame["agent_id"],
            frame["day"],
            frame["status"],
            frame["flags"],
            strict=True,
        )
    ):
        out.append(
            (
                *fixed,
                iid,
                settings.ANALYTICS_METRICS_VERSION,
                now,
                digest,
                None if agent is None or agent != agent else agent,
                day,
                status,
                *(values[c][n] for c in compute.SECONDS_COLUMNS),
                *(values[c][n] for c in compute.COUNT_COLUMNS),
                flags,
                *(values[c][n] for c in compute.SCORE_COLUMNS),
            )
        )
    return out


def _days(times: pd.Series) -> list[date]:
    return [d.date() for d in times.dt.floor("D")]


# ---- agent days ---------------------------------------------------------------------------------------------


def _touched_days(integration_id: str, batch: pd.DataFrame) -> set[tuple[str, str, date]]:
    """The agent days this batch counts towards now, and those its interactions counted towards before."""
    now_days = zip(batch["agent_id"], _days(batch["started_at"]), strict=True)
    before = zip(batch["previous_agent_id"], batch["previous_day"], strict=True)
    pairs = set()
    for agent, day in (*now_days, *before):
        if isinstance(agent, str) and day is not None and day == day:
            pairs.add((integration_id, agent, day if isinstance(day, date) else pd.Timestamp(day).date()))
    return pairs


def _add_pending(warehouse: Warehouse, conn: sa.Connection, pending: set[tuple[str, str, date]]) -> None:
    if not pending:
        return
    insert = postgresql.insert if warehouse.dialect == "postgresql" else sqlite.insert
    stmt = insert(t.analytics_pending_days).on_conflict_do_nothing(index_elements=["integration_id", "agent_id", "day"])
    conn.execute(stmt, [{"integration_id": i, "agent_id": a, "day": d} for i, a, d in sorted(pending)])


def _totals_agree(warehouse: Warehouse, integration_id: str) -> bool:
    """Whether the agent days count as many interactions as have metrics and an agent: two cheap aggregates
    that every run checks; only a difference calls for the agent day by agent day comparison."""
    mt, dt = t.interaction_metrics, t.agent_daily_metrics
    with warehouse.engine.connect() as conn:
        held = conn.execute(
            sa.select(sa.func.count()).where(mt.c.integration_id == integration_id, mt.c.agent_id.is_not(None))
        ).scalar_one()
        counted = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(dt.c.conversations), 0)).where(dt.c.integration_id == integration_id)
        ).scalar_one()
    return held == counted


def _add_inconsistent_days(warehouse: Warehouse, integration_id: str) -> None:
    """Agent days whose row counts other interactions than cx_interaction_metrics holds for it now: their
    interactions were deleted (retention deletes metrics rows with their interaction) or a row is missing."""
    mt, dt = t.interaction_metrics, t.agent_daily_metrics
    held = (
        sa.select(mt.c.agent_id, mt.c.day, sa.func.count().label("n"))
        .where(mt.c.integration_id == integration_id, mt.c.agent_id.is_not(None))
        .group_by(mt.c.agent_id, mt.c.day)
        .subquery()
    )
    rows_without = (
        sa.select(dt.c.agent_id, dt.c.day)
        .select_from(dt.outerjoin(held, sa.and_(held.c.agent_id == dt.c.agent_id, held.c.day == dt.c.day)))
        .where(dt.c.integration_id == integration_id, sa.or_(held.c.n.is_(None), held.c.n != dt.c.conversations))
    )
    days_without = (
        sa.select(held.c.agent_id, held.c.day)
        .select_from(
            held.outerjoin(
                dt,
                sa.and_(
                    dt.c.integration_id == integration_id, dt.c.agent_id == held.c.agent_id, dt.c.day == held.c.day
                ),
            )
        )
        .where(dt.c.agent_id.is_(None))
    )
    with warehouse.engine.begin() as conn:
        stale = {(integration_id, a, d) for a, d in conn.execute(rows_without)}
        stale |= {(integration_id, a, d) for a, d in conn.execute(days_without)}
        if stale:
            log.info("analytics %s: %d agent day(s) out of step with their interactions", integration_id, len(stale))
            _add_pending(warehouse, conn, stale)


DAILY_INPUT_COLUMNS = (
    "agent_id",
    "day",
    "status",
    "first_response_seconds",
    "handle_seconds",
    "agent_messages",
    "customer_messages",
    "unanswered_runs",
    "flags",
    *compute.SCORE_COLUMNS,
)


def _recompute_pending_days(warehouse: Warehouse, integration_id: str, now: datetime) -> tuple[int, int]:
    """Every pending agent day from its interactions' metrics, `settings.ANALYTICS_DAYS_PER_TRANSACTION` days
    at a time: one query of those days' metrics rows, one group-by, one transaction."""
    pt, mt, dt = t.analytics_pending_days, t.interaction_metrics, t.agent_daily_metrics
    with warehouse.engine.connect() as conn:
        days = list(
            conn.execute(
                sa.select(pt.c.day).where(pt.c.integration_id == integration_id).distinct().order_by(pt.c.day)
            ).scalars()
        )
    daily_upsert = BulkUpsert(warehouse.engine.dialect, dt, DAILY_COLUMNS, ["integration_id", "agent_id", "day"])
    computed = removed = 0
    step = settings.ANALYTICS_DAYS_PER_TRANSACTION
    for chunk in (days[i : i + step] for i in range(0, len(days), step)):
        with warehouse.engine.begin() as conn:
            pending = set(
                conn.execute(
                    sa.select(pt.c.agent_id, pt.c.day).where(pt.c.integration_id == integration_id, pt.c.day.in_(chunk))
                ).tuples()
            )
            # Exactly the pending agent days' rows: each pending row looks its day's rows up in the metrics index.
            rows = conn.execute(
                sa.select(*(mt.c[c] for c in DAILY_INPUT_COLUMNS))
                .select_from(
                    pt.join(
                        mt,
                        sa.and_(
                            mt.c.integration_id == pt.c.integration_id,
                            mt.c.day == pt.c.day,
                            mt.c.agent_id == pt.c.agent_id,
                        ),
                    )
                )
                .where(pt.c.integration_id == integration_id, pt.c.day.in_(chunk))
            ).all()
            frame = _frame(rows, list(DAILY_INPUT_COLUMNS))
            daily = compute.agent_daily_metrics(frame) if len(frame) else None
            kept: set[tuple[str, date]] = set()
            if daily is not None:
                daily_upsert.execute(conn, _daily_rows(integration_id, daily, now))
                kept = set(zip(daily["agent_id"], daily["day"], strict=True))
            for agent, day in sorted(pending - kept):  # agent days left without any interaction
                removed += conn.execute(
                    dt.delete().where(dt.c.integration_id == integration_id, dt.c.agent_id == agent, dt.c.day == day)
                ).rowcount
            conn.execute(pt.delete().where(pt.c.integration_id == integration_id, pt.c.day.in_(chunk)))
            computed += len(kept)
    return computed, removed


def _daily_rows(integration_id: str, daily: pd.DataFrame, now: datetime) -> list[tuple]:
    rows = []
    for record in daily.to_dict("records"):
        values = {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}
        rows.append(
            (
                integration_id,
                values["agent_id"],
                values["day"],
                settings.ANALYTICS_METRICS_VERSION,
                now,
                int(values["conversations"]),
                int(values["closed_conversations"]),
                values["median_first_response_seconds"],
                values["p90_first_response_seconds"],
                values["avg_handle_seconds"],
                int(values["messages"]),
                int(values["customer_messages"]),
                int(values["unanswered_runs"]),
                int(values["flagged_conversations"]),
                int(values["rated_conversations"]),
                values["mean_csat_score"],
                int(values["sentiment_conversations"]),
                values["mean_sentiment_score"],
            )
        )
    return rows
