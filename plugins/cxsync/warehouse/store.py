"""The warehouse: schema, batched upserts, watermarks in the same transaction, retention deletes.

Every write is an upsert keyed on the primary key (at-least-once delivery: re-running anything
never duplicates a row). Rows are written in primary-key order so that two writers on PostgreSQL
lock rows in the same order and never deadlock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cxsync import settings
from cxsync.canonical import NOT_ENCODED as _NOT_ENCODED
from cxsync.canonical import canonical_bytes as _canonical_bytes
from cxsync.canonical import encode_sorted as _encode_sorted
from cxsync.canonical import to_json as to_json
from cxsync.records import (
    AgentRecord,
    GroupRecord,
    InteractionRecord,
    MessageRecord,
    RejectedRecord,
    SkillRecord,
)
from cxsync.warehouse import schema as t
from cxsync.warehouse.bulk import BulkUpsert
from cxsync.warehouse.connect import make_engine, resolve_url

log = logging.getLogger(__name__)


# The cx_sync_state row that holds the last roster sync's warnings (a JSON list of text), not a watermark.
ROSTER_WARNINGS_STREAM = "roster_warnings"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """Text every warehouse can store: NUL (PostgreSQL refuses it in text) and lone surrogates (not UTF-8)
    become U+FFFD; the record's raw JSON keeps the original, escaped. Anything but text is returned as is."""
    if type(value) is str and value.isascii():  # the common case, cheap: only NUL to look for
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, str) and _UNSTORABLE.search(value):
        return _UNSTORABLE.sub("\ufffd", value)
    return value


def format_watermark(moment: datetime) -> str:
    """Watermarks are fixed-width ISO 8601 UTC strings, so they compare correctly as text too."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_watermark(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass
class WriteStats:
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    messages_written: int = 0
    messages_removed: int = 0
    rejected: int = 0
    stale: int = 0  # not written: the warehouse holds a copy the provider updated later

    def add(self, other: WriteStats) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class PreparedInteractions:
    """A page made ready for `Warehouse.write_interactions`: what `prepare_interactions` computed, no database yet."""

    integration_id: str
    now: datetime
    rows: dict[str, dict[str, Any]]  # interaction id -> cx_interactions row, in id order
    messages: dict[str, list[tuple]]  # interaction id -> its cx_messages rows (bind values), in message id order
    rejected: list[RejectedRecord]
    received: int
    agents_seen: list[dict[str, Any]] = field(default_factory=list)  # cx_agents rows, added only when unknown


@dataclass
class AgentSyncStats:
    seen: int = 0
    inserted: int = 0
    updated: int = 0
    marked_deleted: int = 0


@dataclass
class RetentionResult:
    integration_id: str
    cutoff: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)


class Warehouse:
    """One warehouse database; the same code on SQLite and PostgreSQL."""

    SUPPORTED_DIALECTS = ("postgresql", "sqlite")

    def __init__(self, engine: sa.Engine):
        if engine.dialect.name not in self.SUPPORTED_DIALECTS:
            # Upserts use each dialect's ON CONFLICT; anything else would fail later, less clearly.
            raise ValueError(
                f"the cxsync warehouse runs on PostgreSQL or SQLite, not {engine.dialect.name}: "
                "point the warehouse connection at a postgres or sqlite database"
            )
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._bulk_upserts: dict[str, BulkUpsert] = {}

    @classmethod
    def from_url(cls, url: str | sa.URL) -> Warehouse:
        return cls(make_engine(url))

    @classmethod
    def from_airflow(cls, conn_id: str | None = None) -> Warehouse:
        """The `cxsync_warehouse` connection (or `conn_id`), else the embedded SQLite file."""
        return cls(make_engine(resolve_url(conn_id)))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ensure_schema(self) -> int:
        if self.dialect == "sqlite":
            return self._ensure_sqlite_schema()
        with self.engine.begin() as conn:
            return t.migrate(conn)

    def _ensure_sqlite_schema(self) -> int:
        # pysqlite opens its transaction only at the first write, so several processes meeting a new file
        # would all read "no schema" and all create it. BEGIN IMMEDIATE takes the write lock before the
        # version is read: the others wait (busy timeout) and then find the schema in place.
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                version = t.migrate(conn)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
            return version

    def dispose(self) -> None:
        self.engine.dispose()

    # ---- agents -------------------------------------------------------------------------------

    def sync_agents(
        self,
        integration_id: str,
        agents: Iterable[AgentRecord],
        *,
        complete: bool = True,
        synced_at: datetime | None = None,
    ) -> AgentSyncStats:
        """Upsert the roster. With `complete`, agents not in it are marked deleted, never removed."""
        now = synced_at or datetime.now(UTC)
        by_id = {a.agent_id: a for a in agents}
        stats = AgentSyncStats(seen=len(by_id))
        rows = [
            {
                "integration_id": integration_id,
                "agent_id": a.agent_id,
                "login_name": a.login_name,
                "display_name": a.display_name,
                "email": a.email,
                "role": a.role,
                "is_enabled": a.is_enabled,
                "is_deleted": bool(a.is_deleted),
                "group_ids": to_json(sorted(a.group_ids)),
                "skill_ids": to_json(sorted(a.skill_ids)),
                "first_seen_at": now,
                "last_synced_at": now,
                "deleted_at": now if a.is_deleted else None,
                "raw": to_json(a.raw),
            }
            for _, a in sorted(by_id.items())
        ]
        table = t.agents
        with self.engine.begin() as conn:
            existing = set(
                conn.execute(sa.select(table.c.agent_id).where(table.c.integration_id == integration_id)).scalars()
            )
            if rows:
                stmt = self._insert(table)
                keep = {"integration_id", "agent_id", "first_seen_at", "deleted_at"}
                update = {c: stmt.excluded[c] for c in rows[0] if c not in keep}
                # A deleted agent keeps the time it was first seen deleted; an agent back again has none.
                update["deleted_at"] = sa.case(
                    (stmt.excluded.is_deleted.is_(False), None),
                    else_=sa.func.coalesce(table.c.deleted_at, stmt.excluded.deleted_at),
                )
                conn.execute(
                    stmt.on_conflict_do_update(index_elements=["integration_id", "agent_id"], set_=update), rows
                )
            stats.inserted = len(set(by_id) - existing)
            stats.updated = len(set(by_id) & existing)
            if complete:
                vanished = sorted(existing - set(by_id))
                for chunk in _chunks(vanished, settings.UPSERT_BATCH_ROWS):
                    result = conn.execute(
                        table.update()
                        .where(
                            table.c.integration_id == integration_id,
                            table.c.agent_id.in_(chunk),
                            table.c.is_deleted.is_(False),
                        )
                        .values(is_deleted=True, deleted_at=now, last_synced_at=now)
                    )
                    stats.marked_deleted += result.rowcount
        return stats

    def upsert_groups(self, integration_id: str, groups: Iterable[GroupRecord]) -> int:
        return self._upsert_named(
            t.agent_groups, "group_id", integration_id, [(g.group_id, g.name, g.raw) for g in groups]
        )

    def upsert_skills(self, integration_id: str, skills: Iterable[SkillRecord]) -> int:
        return self._upsert_named(t.skills, "skill_id", integration_id, [(s.skill_id, s.name, s.raw) for s in skills])

    def _upsert_named(self, table: sa.Table, key: str, integration_id: str, items: list[tuple]) -> int:
        now = datetime.now(UTC)
        rows = sorted(
            (
                {"integration_id": integration_id, key: k, "name": n, "last_synced_at": now, "raw": to_json(r)}
                for k, n, r in items
            ),
            key=lambda r: r[key],
        )
        if not rows:
            return 0
        stmt = self._insert(table)
        with self.engine.begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["integration_id", key],
                    set_={c: stmt.excluded[c] for c in ("name", "last_synced_at", "raw")},
                ),
                rows,
            )
        return len(rows)

    # ---- interactions and messages --------------------------------------------------------------

    def write_interactions(
        self,
        integration_id: str,
        records: Sequence[InteractionRecord],
        *,
        rejected: Sequence[RejectedRecord] = (),
        stream: str | None = None,
        watermark: str | None = None,
        prepared: PreparedInteractions | None = None,
        authoritative: bool = False,
    ) -> WriteStats:
        """Upsert interactions with their messages, rejected records and (optionally) the stream's
        watermark, all in one transaction: the watermark never runs ahead of committed rows.

        Unchanged interactions (same content hash) are skipped, so a re-run writes nothing. `prepared`: what
        `prepare_interactions` made of these same records and rejected records beforehand (the pipeline does
        that in its read-ahead thread); without it they are prepared here. `authoritative`: the records were read
        after a listing showed them current (reconciliation), so they are written even when their `updated_at` is
        before the stored one (a conversation reopened without a newer event).
        """
        if prepared is None:
            prepared = self.prepare_interactions(integration_id, records, rejected=rejected)
        return self._write_prepared(prepared, stream=stream, watermark=watermark, authoritative=authoritative)

    def prepare_interactions(
        self, integration_id: str, records: Sequence[InteractionRecord], *, rejected: Sequence[RejectedRecord] = ()
    ) -> PreparedInteractions:
        """Everything `write_interactions` computes before it needs the database: rows, content hashes, raw
        JSON, message rows with their bind values. Touches no connection, so the pipeline runs it in its
        read-ahead thread while the previous page is written."""
        records, unkeyable = _split_unkeyable(records)
        rejected = [*rejected, *unkeyable]
        latest: dict[str, InteractionRecord] = {}
        for record in records:
            latest[storable(record.interaction_id)] = record  # the last copy in a batch wins
        now = datetime.now(UTC)
        rows: dict[str, dict[str, Any]] = {}
        messages: dict[str, list[tuple]] = {}
        upsert_messages = self._bulk("messages")
        for iid, rec in sorted(latest.items()):
            raws = [to_json(m.raw) for m in rec.messages]  # each message's raw JSON, encoded once for hash and row
            rows[iid] = _interaction_row(integration_id, rec, now, raws)
            message_rows = [
                _message_row(integration_id, iid, m, raw) for m, raw in zip(rec.messages, raws, strict=True)
            ]
            message_rows.sort(key=_message_key)  # primary-key order: two writers lock rows alike, never deadlock
            messages[iid] = upsert_messages.bind_values(message_rows)
        seen: dict[str, AgentRecord] = {}
        for rec in latest.values():
            for agent in rec.agents_seen:
                seen.setdefault(storable(agent.agent_id), agent)
        agents_seen = [_seen_agent_row(integration_id, key, agent, now) for key, agent in sorted(seen.items())]
        return PreparedInteractions(
            integration_id, now, rows, messages, rejected, len(records) + len(rejected), agents_seen
        )

    def _write_prepared(
        self,
        prepared: PreparedInteractions,
        *,
        stream: str | None = None,
        watermark: str | None = None,
        authoritative: bool = False,
    ) -> WriteStats:
        """The database half of `write_interactions`: one transaction."""
        integration_id, now, rejected = prepared.integration_id, prepared.now, prepared.rejected
        stats = WriteStats(received=prepared.received, rejected=len(rejected))
        rows = prepared.rows
        with self.engine.begin() as conn:
            ids = list(rows)
            self._lock_interactions(conn, integration_id, ids)
            existing: dict[str, tuple[str, datetime | None]] = {}  # id -> (content hash, updated_at) as stored
            for chunk in _chunks(ids, settings.UPSERT_BATCH_ROWS):
                query = sa.select(
                    t.interactions.c.interaction_id, t.interactions.c.content_hash, t.interactions.c.updated_at
                ).where(t.interactions.c.integration_id == integration_id, t.interactions.c.interaction_id.in_(chunk))
                existing.update((iid, (digest, updated)) for iid, digest, updated in conn.execute(query))
            to_write = []
            for iid in ids:
                stored = existing.get(iid)
                if stored is not None and stored[0] == rows[iid]["content_hash"]:
                    continue
                if not authoritative and stored is not None and _older(rows[iid]["updated_at"], stored[1]):
                    # A copy read before the stored one (a backfill window that fetched before an
                    # incremental run committed): writing it would put an older state back, for good.
                    stats.stale += 1
                    continue
                to_write.append(iid)
            if stats.stale:
                log.info("%s: %d interaction(s) skipped: the warehouse holds a newer copy", integration_id, stats.stale)
            stats.unchanged = len(ids) - len(to_write)
            stats.inserted = sum(1 for iid in to_write if iid not in existing)
            stats.updated = len(to_write) - stats.inserted

            if to_write:
                interaction_rows = [[rows[iid][c] for c in INTERACTION_COLUMNS] for iid in to_write]
                self._bulk("interactions").execute(conn, interaction_rows)
                # Interactions in id order, each one's messages in id order: the whole page in primary-key order.
                message_rows = [row for iid in to_write for row in prepared.messages[iid]]
                upsert_messages = self._bulk("messages")
                for chunk in _chunks(message_rows, settings.UPSERT_BATCH_ROWS * 4):
                    upsert_messages.execute(conn, chunk, bound=True)
                stats.messages_written = len(message_rows)
                # A changed interaction's messages are exactly the new set: drop the ones it no longer has.
                for iid in to_write:
                    if iid in existing:
                        keep = [row[2] for row in prepared.messages[iid]]
                        cond = [t.messages.c.integration_id == integration_id, t.messages.c.interaction_id == iid]
                        if keep:
                            cond.append(t.messages.c.message_id.not_in(keep))
                        stats.messages_removed += conn.execute(t.messages.delete().where(*cond)).rowcount

            if rejected:
                self._insert_rejected(conn, integration_id, rejected, now)
            if prepared.agents_seen:
                self._write_seen_agents(conn, prepared.agents_seen)
            if stream is not None and watermark is not None:
                self._set_watermark(conn, integration_id, stream, watermark, now)
        return stats

    def _write_seen_agents(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        """On PostgreSQL one multi-row statement per chunk: psycopg2 runs an `executemany` of an upsert as one
        round trip per row (the profile of a HelpDesk page: about a quarter of its write time). SQLite's
        `executemany` stays in process."""
        if self.dialect != "postgresql":
            conn.execute(self._seen_agents_upsert(), rows)
            return
        for chunk in _chunks(rows, settings.UPSERT_BATCH_ROWS):
            conn.execute(self._seen_agents_upsert(list(chunk)))

    def _seen_agents_upsert(self, rows: list[dict[str, Any]] | None = None):
        """Agents only the records name (deleted before our first roster sync): a row each. A row a roster sync
        wrote is never touched; a row made from records only gains what it lacked (one ticket names an agent's
        e-mail, another only the name), so the row is the same whichever ticket was written first."""
        a = t.agents
        insert = self._insert(a) if rows is None else self._insert(a).values(rows)
        new = insert.excluded
        gains_email = sa.and_(a.c.email.is_(None), new.email.is_not(None))
        return insert.on_conflict_do_update(
            index_elements=["integration_id", "agent_id"],
            set_={
                "email": sa.func.coalesce(a.c.email, new.email),
                "login_name": sa.func.coalesce(a.c.login_name, new.login_name),
                "display_name": sa.func.coalesce(a.c.display_name, new.display_name),
                "raw": sa.case((gains_email, new.raw), else_=a.c.raw),
            },
            where=sa.and_(a.c.role.is_(None), a.c.is_deleted, a.c.raw.like('%"seen_in":"ticket events"%')),
        )

    def _bulk(self, which: str) -> BulkUpsert:
        """The compiled upsert of interactions or messages, columns in the order `_interaction_row` and
        `_message_row` build them."""
        upsert = self._bulk_upserts.get(which)
        if upsert is None:
            if which == "interactions":
                upsert = BulkUpsert(
                    self.engine.dialect,
                    t.interactions,
                    INTERACTION_COLUMNS,
                    t.key_names(t.interactions),
                    only_if_changed="content_hash",
                )
            else:
                upsert = BulkUpsert(self.engine.dialect, t.messages, MESSAGE_COLUMNS, t.key_names(t.messages))
            self._bulk_upserts[which] = upsert
        return upsert

    def _lock_interactions(self, conn: sa.Connection, integration_id: str, ids: Sequence[str]) -> None:
        """On PostgreSQL, transaction-scoped advisory locks on these interactions, taken in one sorted order (so
        two writers never deadlock): writers of the same interaction take turns, and each decides what to write
        on the other's committed copy. SQLite has no such locks: there the newer-copy check holds for writes that
        follow each other (a window written after an incremental run committed), not for two racing writes."""
        if self.dialect != "postgresql" or not ids:
            return
        conn.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(hashtext(:integration_id), k) "
                "FROM (SELECT DISTINCT hashtext(i) AS k FROM unnest(CAST(:ids AS text[])) AS i ORDER BY k) AS keys"
            ),
            {"integration_id": integration_id, "ids": list(ids)},
        )

    # ---- rejected records -----------------------------------------------------------------------

    def record_request_stats(
        self, integration_id: str, stats: Any, task: Mapping[str, Any] | None = None, *, at: datetime | None = None
    ) -> None:
        """One `cx_request_stats` row: what one task try's requests cost (`stats` is a `RequestStats`)."""
        task = task or {}
        with self.engine.begin() as conn:
            conn.execute(
                t.request_stats.insert().values(
                    integration_id=integration_id,
                    dag_id=task.get("dag_id"),
                    run_id=task.get("run_id"),
                    task_id=task.get("task_id"),
                    map_index=task.get("map_index"),
                    try_number=task.get("try_number"),
                    requests=stats.requests,
                    retries=stats.retries,
                    rate_limited=stats.rate_limited,
                    waited_seconds=round(float(stats.waited_seconds), 3),
                    by_status=json.dumps({str(k): v for k, v in sorted(stats.by_status.items())}),
                    recorded_at=at or datetime.now(UTC),
                )
            )

    def record_redaction_stats(
        self,
        integration_id: str,
        tally: Mapping[str, Any],
        *,
        version: str,
        mode: str,
        task: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """One `cx_redaction_stats` row: what one task try's redaction scanned and replaced (`tally` is
        `RedactionTally.as_dict()`): counts by entity type, never values."""
        task = task or {}
        with self.engine.begin() as conn:
            conn.execute(
                t.redaction_stats.insert().values(
                    integration_id=integration_id,
                    dag_id=task.get("dag_id"),
                    run_id=task.get("run_id"),
                    task_id=task.get("task_id"),
                    map_index=task.get("map_index"),
                    try_number=task.get("try_number"),
                    redaction_version=version,
                    mode=mode,
                    interactions=int(tally.get("interactions", 0)),
                    messages_scanned=int(tally.get("messages_scanned", 0)),
                    messages_redacted=int(tally.get("messages_redacted", 0)),
                    rejected_scanned=int(tally.get("rejected_scanned", 0)),
                    by_entity=to_json(dict(sorted(tally.get("by_entity", {}).items()))),
                    recorded_at=at or datetime.now(UTC),
                )
            )

    def reject(self, integration_id: str, rejected: Sequence[RejectedRecord]) -> int:
        if rejected:
            with self.engine.begin() as conn:
                self._insert_rejected(conn, integration_id, rejected, datetime.now(UTC))
        return len(rejected)

    def _insert_rejected(self, conn, integration_id: str, rejected: Sequence[RejectedRecord], now: datetime) -> None:
        rows: dict[str, dict[str, Any]] = {}
        for r in rejected:
            record_key, reason = storable(r.record_key), storable(r.reason)
            raw = storable(r.raw) if isinstance(r.raw, str) or r.raw is None else to_json(r.raw)
            record_hash = t.rejected_record_hash(r.stream, record_key, reason, raw)
            rows.setdefault(
                record_hash,
                {
                    "integration_id": integration_id,
                    "stream": r.stream,
                    "record_key": record_key,
                    "reason": reason,
                    "raw": raw,
                    "rejected_at": now,
                    "record_hash": record_hash,
                },
            )
        # The same bad record met again (a re-run, an overlap) stays one row: at-least-once delivery.
        stmt = self._insert(t.rejected_records).on_conflict_do_nothing(
            index_elements=["integration_id", "stream", "record_hash"]
        )
        conn.execute(stmt, list(rows.values()))

    # ---- watermarks -----------------------------------------------------------------------------

    def get_watermark(self, integration_id: str, stream: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(t.sync_state.c.watermark).where(
                    t.sync_state.c.integration_id == integration_id, t.sync_state.c.stream == stream
                )
            ).scalar()

    def set_watermark(self, integration_id: str, stream: str, watermark: str) -> None:
        with self.engine.begin() as conn:
            self._set_watermark(conn, integration_id, stream, watermark, datetime.now(UTC))

    def _set_watermark(self, conn, integration_id: str, stream: str, watermark: str, now: datetime) -> None:
        stmt = self._insert(t.sync_state).values(
            integration_id=integration_id, stream=stream, watermark=watermark, updated_at=now
        )
        # Watermarks only move forward: a slow backfill finishing after an incremental run must not
        # pull the incremental stream's watermark back (fixed-width ISO text compares in time order).
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["integration_id", "stream"],
                set_={"watermark": stmt.excluded.watermark, "updated_at": stmt.excluded.updated_at},
                where=sa.or_(t.sync_state.c.watermark.is_(None), t.sync_state.c.watermark < stmt.excluded.watermark),
            )
        )

    # ---- roster warnings (a cx_sync_state row of their own: no schema change) ------------------------

    def set_roster_warnings(self, integration_id: str, warnings: Sequence[str]) -> None:
        """Replace the last roster sync's warnings (an empty list clears them); the status page shows them."""
        now = datetime.now(UTC)
        stmt = self._insert(t.sync_state).values(
            integration_id=integration_id,
            stream=ROSTER_WARNINGS_STREAM,
            watermark=to_json(list(warnings)),
            updated_at=now,
        )
        with self.engine.begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["integration_id", "stream"],
                    set_={"watermark": stmt.excluded.watermark, "updated_at": stmt.excluded.updated_at},
                    # an unchanged list keeps its row as it was: re-runs write nothing new
                    where=t.sync_state.c.watermark.is_distinct_from(stmt.excluded.watermark),
                )
            )

    # ---- retention ------------------------------------------------------------------------------

    def count_older_than(self, integration_id: str, cutoff: datetime) -> dict[str, int]:
        """What `delete_older_than` would delete, per table; changes nothing."""
        it, rj = t.interactions, t.rejected_records
        old = sa.and_(it.c.integration_id == integration_id, it.c.started_at < cutoff)
        with self.engine.connect() as conn:
            old_ids = sa.select(it.c.interaction_id).where(old)
            counts = {it.name: conn.execute(sa.select(sa.func.count()).where(old)).scalar_one()}
            for child in t.INTERACTION_CHILD_TABLES:
                counts[child.name] = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(child)
                    .where(child.c.integration_id == integration_id, child.c.interaction_id.in_(old_ids))
                ).scalar_one()
            counts[rj.name] = conn.execute(
                sa.select(sa.func.count()).where(rj.c.integration_id == integration_id, rj.c.rejected_at < cutoff)
            ).scalar_one()
        return counts

    def interaction_count(self, integration_id: str) -> int:
        it = t.interactions
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).where(it.c.integration_id == integration_id)).scalar_one()

    def has_deleted_before(self, integration_id: str) -> bool:
        """Whether a real (not dry) retention run of this integration has ever deleted an interaction."""
        log = t.retention_log
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(log.c.id)
                    .where(log.c.integration_id == integration_id, ~log.c.dry_run, log.c.interactions_deleted > 0)
                    .limit(1)
                ).first()
                is not None
            )

    def delete_older_than(
        self,
        integration_id: str,
        cutoff: datetime,
        *,
        dry_run: bool = False,
        batch_size: int = settings.RETENTION_DELETE_BATCH,
    ) -> RetentionResult:
        """Delete this integration's interactions that started before `cutoff`, with every row that
        hangs off them, and its rejected records older than `cutoff`; log one cx_retention_log row.

        Deletes run in batches of `batch_size` interactions, one short transaction each, so no lock
        is held for long on a big warehouse.
        """
        it = t.interactions
        old = sa.and_(it.c.integration_id == integration_id, it.c.started_at < cutoff)
        rj = t.rejected_records
        old_rejected = sa.and_(rj.c.integration_id == integration_id, rj.c.rejected_at < cutoff)
        counts = {it.name: 0, **{child.name: 0 for child in t.INTERACTION_CHILD_TABLES}, rj.name: 0}

        if dry_run:
            counts = self.count_older_than(integration_id, cutoff)
        else:
            while True:
                with self.engine.begin() as conn:
                    batch = list(
                        conn.execute(
                            sa.select(it.c.interaction_id).where(old).order_by(it.c.interaction_id).limit(batch_size)
                        ).scalars()
                    )
                    if not batch:
                        break
                    for child in t.INTERACTION_CHILD_TABLES:
                        counts[child.name] += conn.execute(
                            child.delete().where(
                                child.c.integration_id == integration_id, child.c.interaction_id.in_(batch)
                            )
                        ).rowcount
                    counts[it.name] += conn.execute(
                        it.delete().where(it.c.integration_id == integration_id, it.c.interaction_id.in_(batch))
                    ).rowcount
            while True:
                with self.engine.begin() as conn:
                    batch = list(conn.execute(sa.select(rj.c.id).where(old_rejected).limit(batch_size)).scalars())
                    if not batch:
                        break
                    counts[rj.name] += conn.execute(rj.delete().where(rj.c.id.in_(batch))).rowcount

        with self.engine.begin() as conn:
            conn.execute(
                t.retention_log.insert().values(
                    integration_id=integration_id,
                    run_at=datetime.now(UTC),
                    cutoff=cutoff,
                    dry_run=dry_run,
                    interactions_deleted=counts[it.name],
                    messages_deleted=counts[t.messages.name],
                    rejected_deleted=counts[rj.name],
                    details=to_json(counts),
                )
            )
        return RetentionResult(integration_id, cutoff, dry_run, counts)

    # ---- reconciliation -------------------------------------------------------------------------

    def held_interactions(
        self, integration_id: str, start: datetime, end: datetime, ids: Iterable[str] = ()
    ) -> dict[str, HeldInteraction]:
        """What the warehouse holds of the interactions that started in [start, end), plus those of `ids`."""
        it = t.interactions
        columns = (it.c.interaction_id, it.c.started_at, it.c.updated_at, it.c.status, it.c.agent_id, it.c.deleted_at)
        out: dict[str, HeldInteraction] = {}
        with self.engine.connect() as conn:
            query = sa.select(*columns).where(
                it.c.integration_id == integration_id, it.c.started_at >= start, it.c.started_at < end
            )
            rows = list(conn.execute(query))
            extra = sorted(set(ids))
            for chunk in _chunks(extra, settings.UPSERT_BATCH_ROWS):
                rows += conn.execute(
                    sa.select(*columns).where(it.c.integration_id == integration_id, it.c.interaction_id.in_(chunk))
                )
        for row in rows:
            out[row.interaction_id] = HeldInteraction(*row)
        return out

    def set_deleted(self, integration_id: str, ids: Sequence[str], deleted_at: datetime | None) -> int:
        """Mark interactions deleted at the provider (`deleted_at`), or not deleted any more (None)."""
        it = t.interactions
        changed = 0
        with self.engine.begin() as conn:
            for chunk in _chunks(sorted(ids), settings.UPSERT_BATCH_ROWS):
                where = [it.c.integration_id == integration_id, it.c.interaction_id.in_(chunk)]
                where.append(it.c.deleted_at.is_(None) if deleted_at is not None else it.c.deleted_at.is_not(None))
                changed += conn.execute(it.update().where(*where).values(deleted_at=deleted_at)).rowcount
        return changed

    def record_reconciliation(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert cx_reconciliation rows (one per integration and day)."""
        if not rows:
            return
        table = t.reconciliation
        stmt = self._insert(table)
        keys = {"integration_id", "day"}
        with self.engine.begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["integration_id", "day"],
                    set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys},
                ),
                sorted(rows, key=lambda r: (r["integration_id"], r["day"])),
            )

    def updated_since(self, integration_id: str, moment: datetime) -> dict[str, datetime | None]:
        """The stored `updated_at` of this integration's interactions updated at or after `moment` (what an
        incremental run's overlap lists again)."""
        it = t.interactions
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(it.c.interaction_id, it.c.updated_at).where(
                    it.c.integration_id == integration_id, it.c.updated_at >= moment
                )
            )
            return dict(rows.tuples().all())

    def last_reconciled_until(self, integration_id: str) -> datetime | None:
        """The provider time the newest reconciliation pass of this integration checked up to (None: never)."""
        table = t.reconciliation
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.max(table.c.checked_until)).where(table.c.integration_id == integration_id)
            ).scalar()

    # ---- reading --------------------------------------------------------------------------------

    def table_counts(self, integration_id: str | None = None) -> dict[str, int]:
        tables = [
            t.agents,
            t.agent_groups,
            t.skills,
            t.interactions,
            t.messages,
            t.rejected_records,
            t.retention_log,
            t.sync_state,
        ]
        out = {}
        with self.engine.connect() as conn:
            for table in tables:
                query = sa.select(sa.func.count()).select_from(table)
                if integration_id is not None:
                    query = query.where(table.c.integration_id == integration_id)
                out[table.name] = conn.execute(query).scalar_one()
        return out


@dataclass(frozen=True)
class HeldInteraction:
    """What reconciliation compares of a stored interaction."""

    interaction_id: str
    started_at: datetime
    updated_at: datetime | None
    status: str
    agent_id: str | None
    deleted_at: datetime | None


def _seen_agent_row(integration_id: str, agent_id: str, agent: AgentRecord, now: datetime) -> dict[str, Any]:
    """A cx_agents row for an agent known only from records: not in the roster we synced (or will sync), so it
    counts as deleted until a roster sync lists it (which then overwrites this row)."""
    return {
        "integration_id": integration_id,
        "agent_id": agent_id,
        "login_name": storable(agent.login_name),
        "display_name": storable(agent.display_name),
        "email": storable(agent.email),
        "role": None,
        "is_enabled": None,
        "is_deleted": True,
        "group_ids": to_json([]),
        "skill_ids": to_json([]),
        "first_seen_at": now,
        "last_synced_at": now,
        "deleted_at": None,
        "raw": to_json(agent.raw),
    }


def _split_unkeyable(records: Sequence[InteractionRecord]) -> tuple[list[InteractionRecord], list[RejectedRecord]]:
    """Records whose interaction id or a message id is longer than a key column holds become rejected records:
    PostgreSQL would refuse the whole page for one of them (and SQLite store what PostgreSQL cannot)."""
    keyable: list[InteractionRecord] = []
    unkeyable: list[RejectedRecord] = []
    for record in records:
        ids = [record.interaction_id, *(m.message_id for m in record.messages)]
        if all(len(storable(i)) <= t.KEY_LENGTH for i in ids):
            keyable.append(record)
            continue
        reason = f"an id longer than {t.KEY_LENGTH} characters (the interaction's or a message's): no key holds it"
        unkeyable.append(RejectedRecord("interactions", record.interaction_id, reason, record.raw))
    return keyable, unkeyable


def _older(incoming: datetime | None, stored: datetime | None) -> bool:
    """Whether an incoming copy is older than the stored one, by the provider's `updated_at` (unknown: not older)."""
    return incoming is not None and stored is not None and incoming < stored


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _interaction_row(
    integration_id: str, rec: InteractionRecord, now: datetime, message_raws: Sequence[str | None]
) -> dict[str, Any]:
    row = {
        "integration_id": integration_id,
        "interaction_id": storable(rec.interaction_id),
        "provider": rec.provider,
        "channel": storable(rec.channel),
        "status": rec.status,
        "provider_status": storable(rec.provider_status),
        "subject": storable(rec.subject),
        "started_at": rec.started_at,
        "ended_at": rec.ended_at,
        "updated_at": rec.updated_at,
        "agent_id": storable(rec.agent_id),
        "customer_id": storable(rec.customer_id),
        "message_count": rec.message_count,
        "raw": to_json(rec.raw),
        "csat_score": rec.csat_score,
        "sentiment_score": rec.sentiment_score,
        "close_reason": storable(rec.close_reason),
        "skill": storable(rec.skill),
        "agent_group": storable(rec.agent_group),
        "tags": to_json(rec.tags) if rec.tags else None,
        "priority": storable(rec.priority),
        "display_id": storable(rec.display_id),
        "redaction_version": rec.redaction_version,
    }
    row["content_hash"] = content_hash(row, rec.messages, message_raws)
    row["loaded_at"] = now
    return row


def content_hash(row: dict[str, Any], messages: Sequence[MessageRecord], message_raws: Sequence[str | None]) -> str:
    """SHA-256 over the interaction's columns and every message with its raw JSON: equal iff nothing changed.

    The digest input is the canonical JSON (`to_json`) of the row without `integration_id` (times as their
    `str()`), then of the list of messages, each `[id, seq, sent_at, sender_type, sender_id, text, is_private,
    message_type, dialog_type, attachments, raw]` with `sent_at` in RFC 3339. All messages are encoded in one call,
    each raw JSON spliced in as already encoded for its row (`msgspec.Raw`), never encoded twice.
    """
    digest = hashlib.sha256()
    head = {k: (str(v) if isinstance(v, datetime) else v) for k, v in row.items() if k not in _NOT_HASHED}
    if head.get("redaction_version") is None:
        # Unredacted rows hash as before redaction existed: turning it on changes hashes, an upgrade does not.
        head.pop("redaction_version", None)
    digest.update(_canonical_bytes(head))
    try:
        digest.update(
            _encode_sorted(
                [
                    _hashed_message_fields(m, None if raw is None else msgspec.Raw(raw))
                    for m, raw in zip(messages, message_raws, strict=True)
                ]
            )
        )
    except _NOT_ENCODED:  # text msgspec refuses (a lone surrogate): the same fields through `json`, one by one
        for m, raw in zip(messages, message_raws, strict=True):
            digest.update(_canonical_bytes(_hashed_message_fields(m, raw)))
    return digest.hexdigest()


_NOT_HASHED = frozenset({"integration_id"})


def _hashed_message_fields(m: MessageRecord, raw: Any) -> list[Any]:
    return [
        m.message_id,
        m.seq,
        m.sent_at,
        m.sender_type,
        m.sender_id,
        m.text,
        m.is_private,
        m.message_type,
        m.dialog_type,
        m.attachments,
        raw,
    ]


# The columns a load writes, from the schema (never listed again here). `deleted_at` is reconciliation's: a
# load of an interaction never clears what reconciliation found.
MESSAGE_COLUMNS = t.column_names(t.messages)
INTERACTION_COLUMNS = t.column_names(t.interactions, leave_out={"deleted_at"})


def _message_row(integration_id: str, interaction_id: str, m: MessageRecord, raw: str | None) -> tuple:
    """A cx_messages row, values in MESSAGE_COLUMNS order."""
    return (
        integration_id,
        interaction_id,
        storable(m.message_id),
        m.seq,
        m.sent_at,
        m.sender_type,
        storable(m.sender_id),
        storable(m.text),
        bool(m.is_private),
        storable(m.message_type),
        raw,
        m.dialog_type,
        to_json(m.attachments) if m.attachments else None,
        None if m.pii_counts is None else to_json(m.pii_counts),
    )


# Messages are written in primary-key order (interaction_id, message_id); itemgetter keeps the sort in C.
_message_key = operator.itemgetter(1, 2)
