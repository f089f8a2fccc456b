"""Retention on PostgreSQL: delete 1,000,000 messages (and their interactions) past the cutoff.

Synthetic rows are bulk-loaded with COPY into a scratch database: old interactions of the integration (to be
deleted), newer ones of the same integration and old ones of another integration (both to be kept). Then
`Warehouse.delete_older_than` runs as the retention task does. Every transaction on the warehouse engine is
timed through SQLAlchemy's begin/commit events: the longest one is the longest time a lock was held.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench._support import pg_available, pg_database, scaled, verdict

TITLE = "Retention: deleting 1,000,000 messages on PostgreSQL"

MESSAGES_PER_INTERACTION = 20
OLD_INTERACTIONS = scaled(50_000, 20)  # x 20 = 1,000,000 messages to delete
KEPT_INTERACTIONS = scaled(5_000, 5)  # newer than the cutoff
OTHER_INTERACTIONS = scaled(2_000, 5)  # another integration, as old: untouched
INTEGRATION = "lp_retention"
OTHER = "hd_other"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=90)
# The longest single transaction we accept: short enough that readers and the nightly loads never wait long.
TARGET_LONGEST_LOCK_SECONDS = 1.0


def _copy(raw_conn, table: str, columns: list[str], rows) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(r"\N" if v is None else str(v) for v in row))
        buffer.write("\n")
    buffer.seek(0)
    with raw_conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)


def load_rows(engine: sa.Engine) -> None:
    """COPY interactions and their messages: old ones of INTEGRATION, newer ones, and old ones of OTHER."""
    groups = [
        (INTEGRATION, "old", OLD_INTERACTIONS, CUTOFF - timedelta(days=200)),
        (INTEGRATION, "new", KEPT_INTERACTIONS, CUTOFF + timedelta(days=1)),
        (OTHER, "old", OTHER_INTERACTIONS, CUTOFF - timedelta(days=200)),
    ]
    raw = '{"messageId":"m","sentBy":"Consumer","messageData":{"msg":{"text":"' + "lorem ipsum " * 12 + '"}}}'
    icols = [
        "integration_id",
        "interaction_id",
        "provider",
        "channel",
        "status",
        "provider_status",
        "started_at",
        "ended_at",
        "updated_at",
        "agent_id",
        "customer_id",
        "message_count",
        "loaded_at",
        "content_hash",
        "raw",
    ]
    mcols = [
        "integration_id",
        "interaction_id",
        "message_id",
        "seq",
        "sent_at",
        "sender_type",
        "sender_id",
        "text",
        "is_private",
        "message_type",
        "raw",
    ]
    raw_conn = engine.raw_connection()
    try:
        for integration, tag, count, first in groups:
            span = (CUTOFF - first) if tag == "old" else (NOW - first)
            step = span / max(1, count)

            def interactions(integration=integration, tag=tag, count=count, first=first, step=step):
                for n in range(count):
                    start = first + step * n
                    yield (
                        integration,
                        f"{tag}-{n:07d}",
                        "liveperson",
                        "messaging",
                        "closed",
                        "CLOSE",
                        start.isoformat(),
                        (start + timedelta(minutes=30)).isoformat(),
                        (start + timedelta(minutes=30)).isoformat(),
                        f"agent-{n % 50}",
                        f"cust-{n}",
                        MESSAGES_PER_INTERACTION,
                        NOW.isoformat(),
                        "0" * 64,
                        '{"info":{"status":"CLOSE"}}',
                    )

            def messages(integration=integration, tag=tag, count=count, first=first, step=step):
                for n in range(count):
                    start = first + step * n
                    for seq in range(1, MESSAGES_PER_INTERACTION + 1):
                        yield (
                            integration,
                            f"{tag}-{n:07d}",
                            f"msg-{seq:03d}",
                            seq,
                            (start + timedelta(seconds=30 * seq)).isoformat(),
                            "customer" if seq % 2 else "agent",
                            f"p-{seq % 2}",
                            "lorem ipsum dolor sit amet",
                            "false",
                            "TEXT_PLAIN",
                            raw,
                        )

            _copy(raw_conn, "cx_interactions", icols, interactions())
            _copy(raw_conn, "cx_messages", mcols, messages())
            raw_conn.commit()
        raw_conn.set_isolation_level(0)  # VACUUM runs outside a transaction
        with raw_conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE cx_interactions")
            cur.execute("VACUUM ANALYZE cx_messages")
    finally:
        raw_conn.close()


class TransactionClock:
    """Durations of every transaction on an engine, from BEGIN to COMMIT/ROLLBACK."""

    def __init__(self, engine: sa.Engine):
        self.durations: list[float] = []
        self._open: dict[int, float] = {}
        sa.event.listen(engine, "begin", self._begin)
        sa.event.listen(engine, "commit", self._end)
        sa.event.listen(engine, "rollback", self._end)

    def _begin(self, conn) -> None:
        self._open[id(conn)] = time.perf_counter()

    def _end(self, conn) -> None:
        started = self._open.pop(id(conn), None)
        if started is not None:
            self.durations.append(time.perf_counter() - started)


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT integration_id, count(*) FROM cx_messages GROUP BY integration_id")).all()
        out = {f"messages:{k}": v for k, v in rows}
        rows = conn.execute(
            sa.text("SELECT integration_id, count(*) FROM cx_interactions GROUP BY integration_id")
        ).all()
        out.update({f"interactions:{k}": v for k, v in rows})
    return out


def run() -> str:
    from cxsync import settings
    from cxsync.warehouse import Warehouse

    if not pg_available():
        return "PostgreSQL was not reachable at 127.0.0.1:5432: retention was not measured."
    with pg_database() as url:
        warehouse = Warehouse.from_url(url)
        warehouse.ensure_schema()
        started = time.perf_counter()
        load_rows(warehouse.engine)
        load_seconds = time.perf_counter() - started
        before = counts(warehouse.engine)

        started = time.perf_counter()
        dry = warehouse.delete_older_than(INTEGRATION, CUTOFF, dry_run=True)
        dry_seconds = time.perf_counter() - started

        clock = TransactionClock(warehouse.engine)
        started = time.perf_counter()
        result = warehouse.delete_older_than(INTEGRATION, CUTOFF)
        seconds = time.perf_counter() - started
        after = counts(warehouse.engine)
        warehouse.dispose()

    deleted_messages = result.counts["cx_messages"]
    expected = OLD_INTERACTIONS * MESSAGES_PER_INTERACTION
    problems = []
    if deleted_messages != expected or dry.counts["cx_messages"] != expected:
        problems.append(f"deleted {deleted_messages} messages (dry run: {dry.counts['cx_messages']}), not {expected}")
    if after.get(f"messages:{INTEGRATION}") != KEPT_INTERACTIONS * MESSAGES_PER_INTERACTION:
        problems.append("messages newer than the cutoff were touched")
    if after.get(f"messages:{OTHER}") != before.get(f"messages:{OTHER}"):
        problems.append("another integration's messages were touched")
    if problems:
        raise RuntimeError("retention did not do what it should: " + "; ".join(problems))
    longest = max(clock.durations)
    batch_note = (
        f"batches of {settings.RETENTION_DELETE_BATCH:,} interactions with their messages, the last (empty) look "
        "for more, rejected records, the log row"
    )
    return f"""
Target: delete 1,000,000 messages in short transactions (longest under {TARGET_LONGEST_LOCK_SECONDS:.0f} s) so that
nothing waits long behind retention.

| measure | value |
|---|---|
| messages / interactions deleted | {deleted_messages:,} / {result.counts["cx_interactions"]:,} |
| total time | **{seconds:.1f} s** ({deleted_messages / seconds:,.0f} messages/s) |
| transactions | {len(clock.durations)}: {batch_note} |
| longest transaction (longest lock held) | **{longest:.2f} s** {verdict(longest < TARGET_LONGEST_LOCK_SECONDS)} |
| median transaction | {sorted(clock.durations)[len(clock.durations) // 2]:.2f} s |
| dry run (counts only) | {dry_seconds:.1f} s |

Warehouse: {sum(v for k, v in before.items() if k.startswith("messages:")):,} messages in \
{sum(v for k, v in before.items() if k.startswith("interactions:")):,} interactions, bulk-loaded with COPY in \
{load_seconds:.0f} s and analysed. Kept and checked after the run: {KEPT_INTERACTIONS * MESSAGES_PER_INTERACTION:,} \
newer messages of the same integration and {before.get(f"messages:{OTHER}", 0):,} old messages of another integration.
`Warehouse.delete_older_than` deletes `settings.RETENTION_DELETE_BATCH` interactions (with their messages) per
transaction; each transaction is timed from BEGIN to COMMIT with SQLAlchemy's engine events.
"""
