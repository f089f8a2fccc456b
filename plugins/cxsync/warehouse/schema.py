"""The warehouse tables (README, "Where the data lands"), the same on SQLite and PostgreSQL, and migrations."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SCHEMA_VERSION = 7

metadata = sa.MetaData()


class UTCDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes in and out: timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: cxsync stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Characters a key column holds (ids of integrations, interactions, messages, agents).
KEY_LENGTH = 255


def column_names(table: sa.Table, *, leave_out: Collection[str] = ()) -> tuple[str, ...]:
    """A table's column names in schema order: the one list writers build their rows from."""
    return tuple(column.name for column in table.columns if column.name not in leave_out)


def key_names(table: sa.Table) -> list[str]:
    """A table's primary-key column names, in schema order (what an upsert conflicts on)."""
    return [column.name for column in table.primary_key.columns]


def _key(name: str) -> sa.Column:
    return sa.Column(name, sa.String(KEY_LENGTH), primary_key=True)


schema_version = sa.Table(
    "cx_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

agents = sa.Table(
    "cx_agents",
    metadata,
    _key("integration_id"),
    _key("agent_id"),
    sa.Column("login_name", sa.Text),
    sa.Column("display_name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("role", sa.Text),
    sa.Column("is_enabled", sa.Boolean),
    sa.Column("is_deleted", sa.Boolean, nullable=False),
    sa.Column("group_ids", sa.Text),
    sa.Column("skill_ids", sa.Text),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_synced_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime),
    sa.Column("raw", sa.Text),
)

agent_groups = sa.Table(
    "cx_agent_groups",
    metadata,
    _key("integration_id"),
    _key("group_id"),
    sa.Column("name", sa.Text),
    sa.Column("last_synced_at", UTCDateTime, nullable=False),
    sa.Column("raw", sa.Text),
)

skills = sa.Table(
    "cx_skills",
    metadata,
    _key("integration_id"),
    _key("skill_id"),
    sa.Column("name", sa.Text),
    sa.Column("last_synced_at", UTCDateTime, nullable=False),
    sa.Column("raw", sa.Text),
)

# What a QA team filters and scores by (docs/metrics.md gives each provider's source and scale); `tags` is a JSON
# list of names, `display_id` the number people quote (HelpDesk `shortID`).
_QA_SIGNAL_COLUMNS: tuple[tuple[str, type[sa.types.TypeEngine]], ...] = (
    ("csat_score", sa.Float),
    ("sentiment_score", sa.Float),
    ("close_reason", sa.Text),
    ("skill", sa.Text),
    ("agent_group", sa.Text),
    ("tags", sa.Text),
    ("priority", sa.Text),
    ("display_id", sa.Text),
)

interactions = sa.Table(
    "cx_interactions",
    metadata,
    _key("integration_id"),
    _key("interaction_id"),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("channel", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider_status", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime),
    sa.Column("agent_id", sa.Text),
    sa.Column("customer_id", sa.Text),
    sa.Column("message_count", sa.Integer, nullable=False),
    sa.Column("loaded_at", UTCDateTime, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("raw", sa.Text),
    # When reconciliation found the interaction deleted at the provider (a HelpDesk ticket in trash): the row
    # stays until our own retention removes it (version 3).
    sa.Column("deleted_at", UTCDateTime),
    # QA signals (version 5).
    *(sa.Column(name, column_type) for name, column_type in _QA_SIGNAL_COLUMNS),
    # The PII redaction rules the row was redacted with (cxsync.redaction `RedactionPolicy.version`); null: stored
    # as the provider sent it (version 7).
    sa.Column("redaction_version", sa.String(32)),
    sa.Index("ix_cx_interactions_started", "integration_id", "started_at"),
    # The newest load of an integration in one index lookup: the UI status page's totals are recomputed
    # only when it moved (cx_status_totals).
    sa.Index("ix_cx_interactions_loaded", "integration_id", "loaded_at"),
)

messages = sa.Table(
    "cx_messages",
    metadata,
    _key("integration_id"),
    _key("interaction_id"),
    _key("message_id"),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("sender_type", sa.String(16), nullable=False),
    sa.Column("sender_id", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("is_private", sa.Boolean, nullable=False),
    sa.Column("message_type", sa.Text),
    sa.Column("raw", sa.Text),
    # Version 5: `main`, `post_survey` or another provider dialog type, lowercased; attachments' metadata as a JSON
    # list of {name, type, size} (null when none).
    sa.Column("dialog_type", sa.String(32), nullable=False, server_default="main"),
    sa.Column("attachments", sa.Text),
    # Version 7: values PII redaction replaced in this message, by entity type, as JSON ({"EMAIL": 1}); `{}`:
    # scanned, none found; null: not redacted. Counts only, never values.
    sa.Column("pii_counts", sa.Text),
)

sync_state = sa.Table(
    "cx_sync_state",
    metadata,
    _key("integration_id"),
    _key("stream"),
    sa.Column("watermark", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

retention_log = sa.Table(
    "cx_retention_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration_id", sa.String(255), nullable=False),
    sa.Column("run_at", UTCDateTime, nullable=False),
    sa.Column("cutoff", UTCDateTime, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("interactions_deleted", sa.Integer, nullable=False),
    sa.Column("messages_deleted", sa.Integer, nullable=False),
    sa.Column("rejected_deleted", sa.Integer, nullable=False),
    sa.Column("details", sa.Text),
)

rejected_records = sa.Table(
    "cx_rejected_records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration_id", sa.String(255), nullable=False),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("record_key", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text),
    sa.Column("rejected_at", UTCDateTime, nullable=False),
    # Fingerprint of (stream, record_key, reason, raw): the same bad record rejected again by a re-run
    # is one row, not two (version 2).
    sa.Column("record_hash", sa.String(64)),
    sa.Index("ix_cx_rejected_integration", "integration_id", "rejected_at"),
    sa.Index("ux_cx_rejected_record", "integration_id", "stream", "record_hash", unique=True),
)

# ---- QA layer: staff, agent matching, QA lists (new tables: create_all adds them, no migration) ----------
staff = sa.Table(
    "cx_staff",
    metadata,
    _key("staff_id"),
    sa.Column("name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("team", sa.Text),
    sa.Column("role", sa.Text),
    sa.Column("is_active", sa.Boolean, nullable=False),
    # JSON list of "<integration id>:<agent id>" from the staff file; `in_file` false: no longer in the file.
    sa.Column("external_ids", sa.Text),
    sa.Column("in_file", sa.Boolean, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

agent_matches = sa.Table(
    "cx_agent_matches",
    metadata,
    _key("integration_id"),
    _key("agent_id"),
    sa.Column("staff_id", sa.String(KEY_LENGTH)),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("candidates", sa.Text),
    sa.Column("matched_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_cx_agent_matches_staff", "staff_id"),
)

agent_match_overrides = sa.Table(
    "cx_agent_match_overrides",
    metadata,
    _key("integration_id"),
    _key("agent_id"),
    sa.Column("staff_id", sa.String(KEY_LENGTH)),
    sa.Column("note", sa.Text),
    sa.Column("set_by", sa.Text),
    sa.Column("set_at", UTCDateTime, nullable=False),
)

qa_lists = sa.Table(
    "cx_qa_lists",
    metadata,
    _key("list_run_id"),
    sa.Column("list_id", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("run_at", UTCDateTime, nullable=False),
    sa.Column("period_start", UTCDateTime, nullable=False),
    sa.Column("period_end", UTCDateTime, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("population_size", sa.Integer, nullable=False),
    sa.Column("population_hash", sa.String(64), nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("shortfall", sa.Text, nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("export_path", sa.Text),
    sa.Index("ix_cx_qa_lists_list", "list_id", "run_at"),
)

qa_list_items = sa.Table(
    "cx_qa_list_items",
    metadata,
    _key("list_run_id"),
    _key("integration_id"),
    _key("interaction_id"),
    sa.Column("staff_id", sa.String(KEY_LENGTH)),
    sa.Column("agent_id", sa.Text),
    sa.Column("evaluator_id", sa.String(KEY_LENGTH)),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Index("ix_cx_qa_list_items_interaction", "integration_id", "interaction_id"),
)


# ---- Airflow UI (cxsync.ui) ---------------------------------------------------------------------------------
# Per integration and status: interactions and messages, as of the newest load (`loaded_at`) and retention run
# it saw. The status page recomputes a row only when its integration was loaded or trimmed since (or the row is
# older than settings.UI_TOTALS_MAX_AGE_SECONDS), so a request never counts a million rows.
status_totals = sa.Table(
    "cx_status_totals",
    metadata,
    _key("integration_id"),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("interactions", sa.BigInteger, nullable=False),
    sa.Column("messages", sa.BigInteger, nullable=False),
    sa.Column("newest_loaded_at", UTCDateTime),
    sa.Column("newest_retention_id", sa.Integer),
    sa.Column("computed_at", UTCDateTime, nullable=False),
)
# Interactions per start day (UTC, `YYYY-MM-DD`) of the weeks the status page charts, counted with the totals.
status_days = sa.Table(
    "cx_status_days",
    metadata,
    _key("integration_id"),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("interactions", sa.BigInteger, nullable=False),
)

# ---- request statistics ---------------------------------------------------------------------------------------
# One row per task try that called a provider: what the request layer counted (requests, retries, 429s, time
# waited for the rate limit and backoff). The status page sums the last day's rows per integration.
request_stats = sa.Table(
    "cx_request_stats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration_id", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("dag_id", sa.String(KEY_LENGTH)),
    sa.Column("run_id", sa.String(KEY_LENGTH)),
    sa.Column("task_id", sa.String(KEY_LENGTH)),
    sa.Column("map_index", sa.Integer),
    sa.Column("try_number", sa.Integer),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("rate_limited", sa.Integer, nullable=False),
    sa.Column("waited_seconds", sa.Float, nullable=False),
    sa.Column("by_status", sa.Text),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Index("ix_cx_request_stats_recorded", "integration_id", "recorded_at"),
)

# ---- reconciliation (completeness records) -----------------------------------------------------------------
# One row per integration and UTC day of `started_at`: what the provider lists for that day (within the look-back
# that was checked), what the warehouse holds, and what the last reconciliation repaired. `status` is `ok`,
# `repaired` or `differs` (still different after the repair: `warning` says how).
reconciliation = sa.Table(
    "cx_reconciliation",
    metadata,
    _key("integration_id"),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("checked_from", UTCDateTime, nullable=False),
    sa.Column("checked_until", UTCDateTime, nullable=False),
    sa.Column("provider_count", sa.Integer, nullable=False),
    sa.Column("warehouse_count", sa.Integer, nullable=False),
    sa.Column("missing", sa.Integer, nullable=False),
    sa.Column("stale", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Integer, nullable=False),
    sa.Column("repaired", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("warning", sa.Text),
    sa.Column("checked_at", UTCDateTime, nullable=False),
)

# ---- PII redaction (cxsync.redaction) -----------------------------------------------------------------------
# One row per task try that redacted (a load, a reconciliation, a re-redaction batch run): what it scanned and
# replaced, by entity type (`by_entity`, JSON of counts). Evidence without values.
redaction_stats = sa.Table(
    "cx_redaction_stats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration_id", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("dag_id", sa.String(KEY_LENGTH)),
    sa.Column("run_id", sa.String(KEY_LENGTH)),
    sa.Column("task_id", sa.String(KEY_LENGTH)),
    sa.Column("map_index", sa.Integer),
    sa.Column("try_number", sa.Integer),
    sa.Column("redaction_version", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("interactions", sa.Integer, nullable=False),
    sa.Column("messages_scanned", sa.Integer, nullable=False),
    sa.Column("messages_redacted", sa.Integer, nullable=False),
    sa.Column("rejected_scanned", sa.Integer, nullable=False),
    sa.Column("by_entity", sa.Text, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Index("ix_cx_redaction_stats_recorded", "integration_id", "recorded_at"),
)

# ---- conversation analytics (cxsync.analytics) ----------------------------------------------------------
# One row per interaction, computed from the interaction and its messages as `content_hash` says they were;
# `agent_id` and `day` (UTC day of `started_at`) say which agent day the row counts towards.
interaction_metrics = sa.Table(
    "cx_interaction_metrics",
    metadata,
    _key("integration_id"),
    _key("interaction_id"),
    sa.Column("metrics_version", sa.Integer, nullable=False),
    sa.Column("computed_at", UTCDateTime, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(KEY_LENGTH)),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("first_response_seconds", sa.Float),
    sa.Column("avg_response_seconds", sa.Float),
    sa.Column("max_response_seconds", sa.Float),
    sa.Column("customer_runs", sa.Integer, nullable=False),
    sa.Column("unanswered_runs", sa.Integer, nullable=False),
    sa.Column("handle_seconds", sa.Float),
    sa.Column("agent_messages", sa.Integer, nullable=False),
    sa.Column("customer_messages", sa.Integer, nullable=False),
    sa.Column("bot_messages", sa.Integer, nullable=False),
    sa.Column("system_messages", sa.Integer, nullable=False),
    sa.Column("private_notes", sa.Integer, nullable=False),
    sa.Column("agent_words", sa.Integer, nullable=False),
    sa.Column("customer_words", sa.Integer, nullable=False),
    sa.Column("turns", sa.Integer, nullable=False),
    sa.Column("agents_involved", sa.Integer, nullable=False),
    sa.Column("flags", sa.Text, nullable=False),
    # The interaction's QA scores as computed (version 8 adds them): what its agent day's means are taken over.
    sa.Column("csat_score", sa.Float),
    sa.Column("sentiment_score", sa.Float),
    sa.Index("ix_cx_interaction_metrics_agent_day", "integration_id", "day", "agent_id"),
)

agent_daily_metrics = sa.Table(
    "cx_agent_daily_metrics",
    metadata,
    _key("integration_id"),
    _key("agent_id"),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("metrics_version", sa.Integer, nullable=False),
    sa.Column("computed_at", UTCDateTime, nullable=False),
    sa.Column("conversations", sa.Integer, nullable=False),
    sa.Column("closed_conversations", sa.Integer, nullable=False),
    sa.Column("median_first_response_seconds", sa.Float),
    sa.Column("p90_first_response_seconds", sa.Float),
    sa.Column("avg_handle_seconds", sa.Float),
    sa.Column("messages", sa.Integer, nullable=False),
    sa.Column("customer_messages", sa.Integer, nullable=False),
    sa.Column("unanswered_runs", sa.Integer, nullable=False),
    sa.Column("flagged_conversations", sa.Integer, nullable=False),
    # CSAT and MCS of the agent day (version 8): how many interactions carry each score and its mean over them.
    sa.Column("rated_conversations", sa.Integer, nullable=False, server_default="0"),
    sa.Column("mean_csat_score", sa.Float),
    sa.Column("sentiment_conversations", sa.Integer, nullable=False, server_default="0"),
    sa.Column("mean_sentiment_score", sa.Float),
)

# Agent days whose interactions changed and whose cx_agent_daily_metrics row is not recomputed yet: written
# in the same transaction as the interaction metrics, so a run that stops half-way leaves nothing stale.
analytics_pending_days = sa.Table(
    "cx_analytics_pending_days",
    metadata,
    _key("integration_id"),
    _key("agent_id"),
    sa.Column("day", sa.Date, primary_key=True),
)

# Tables whose rows hang off an interaction: retention deletes them with it. Later tables
# (analytics, QA lists) register here too.
INTERACTION_CHILD_TABLES: list[sa.Table] = [messages, qa_list_items, interaction_metrics]


# Migrations from version N-1 to N: a function run inside one transaction, on a warehouse that has
# rows. A new warehouse skips them (create_all builds the current tables). Later versions add
# columns/tables without losing rows.
def rejected_record_hash(stream: str, record_key: str | None, reason: str, raw: str | None) -> str:
    digest = hashlib.sha256()
    for part in (stream, record_key, reason, raw):
        digest.update(b"\x00" if part is None else b"\x01" + part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def _v2_dedupe_rejected_records(conn: Connection) -> None:
    """Version 1 inserted a rejected record once per run that met it: fingerprint every row, keep the
    first of each fingerprint, then make the fingerprint unique."""
    table = rejected_records
    conn.execute(sa.text("ALTER TABLE cx_rejected_records ADD COLUMN record_hash VARCHAR(64)"))
    rows = conn.execute(
        sa.select(
            table.c.id, table.c.integration_id, table.c.stream, table.c.record_key, table.c.reason, table.c.raw
        ).order_by(table.c.id)
    ).all()
    first: set[tuple[str, str, str]] = set()
    duplicates: list[int] = []
    for row in rows:
        fingerprint = rejected_record_hash(row.stream, row.record_key, row.reason, row.raw)
        key = (row.integration_id, row.stream, fingerprint)
        if key in first:
            duplicates.append(row.id)
            continue
        first.add(key)
        conn.execute(table.update().where(table.c.id == row.id).values(record_hash=fingerprint))
    for start in range(0, len(duplicates), 1000):
        conn.execute(table.delete().where(table.c.id.in_(duplicates[start : start + 1000])))
    next(ix for ix in table.indexes if ix.name == "ux_cx_rejected_record").create(conn)


def _v3_loaded_index(conn: Connection) -> None:
    """The status page's index on an existing cx_interactions (new warehouses get it from create_all)."""
    next(ix for ix in interactions.indexes if ix.name == "ix_cx_interactions_loaded").create(conn, checkfirst=True)


def _v4_interaction_deleted_at(conn: Connection) -> None:
    """Version 4: `cx_interactions.deleted_at` (deleted at the provider, kept until retention)."""
    if "deleted_at" in {c["name"] for c in sa.inspect(conn).get_columns("cx_interactions")}:
        return
    column_type = interactions.c.deleted_at.type.compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE cx_interactions ADD COLUMN deleted_at {column_type}"))


def _add_missing_columns(conn: Connection, table: sa.Table, names: Collection[str]) -> None:
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for name in names:
        if name in present:
            continue
        column = table.c[name]
        ddl = f"ALTER TABLE {table.name} ADD COLUMN {name} {column.type.compile(dialect=conn.dialect)}"
        if column.server_default is not None:
            ddl += f" NOT NULL DEFAULT '{column.server_default.arg}'"
        conn.execute(sa.text(ddl))


def _v5_qa_signals(conn: Connection) -> None:
    """Version 5: the QA-signal columns of `cx_interactions`; `dialog_type` and `attachments` of `cx_messages`
    (stored messages are of the main dialog until their interaction is loaded again)."""
    _add_missing_columns(conn, interactions, [name for name, _ in _QA_SIGNAL_COLUMNS])
    _add_missing_columns(conn, messages, ["dialog_type", "attachments"])


# What version 6 added to the analytics tables.
ANALYTICS_SIGNAL_COLUMNS = {
    interaction_metrics: ("csat_score", "sentiment_score"),
    agent_daily_metrics: ("rated_conversations", "mean_csat_score", "sentiment_conversations", "mean_sentiment_score"),
}


def _v6_analytics_signals(conn: Connection) -> None:
    """CSAT and MCS in the analytics tables. Existing rows read 0 rated conversations and null means until the
    next analytics run recomputes them (their `metrics_version` is older than the one that brought the columns)."""
    for table, names in ANALYTICS_SIGNAL_COLUMNS.items():
        _add_missing_columns(conn, table, names)


def _v7_pii_redaction(conn: Connection) -> None:
    """Version 7: `cx_interactions.redaction_version` and `cx_messages.pii_counts` (null on stored rows: not
    redacted until the re-redaction DAG or a reload redacts them); `cx_redaction_stats`."""
    _add_missing_columns(conn, interactions, ["redaction_version"])
    _add_missing_columns(conn, messages, ["pii_counts"])
    redaction_stats.create(conn, checkfirst=True)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _v2_dedupe_rejected_records,
    3: _v3_loaded_index,
    4: _v4_interaction_deleted_at,
    5: _v5_qa_signals,
    6: _v6_analytics_signals,
    7: _v7_pii_redaction,
}
_MIGRATION_LOCK_KEY = 0x6378_7379_6E63  # "cxsync"


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def migrate(conn: Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; idempotent. Returns the version now in place."""
    if conn.dialect.name == "postgresql":
        # Two workers starting at once must not both create tables: serialise on a lock.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    version = current_version(conn)
    if version == 0:
        # A new warehouse gets today's tables as they are: migrations are for existing rows only.
        metadata.create_all(conn, checkfirst=True)
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=datetime.now(UTC)))
        return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the warehouse has schema version {version}, newer than this cxsync ({SCHEMA_VERSION}): upgrade cxsync"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[target](conn)
        conn.execute(schema_version.insert().values(version=target, applied_at=datetime.now(UTC)))
        version = target
    # Tables that a later version added without a migration step (new, empty tables).
    metadata.create_all(conn, checkfirst=True)
    return version
