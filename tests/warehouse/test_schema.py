"""Warehouse schema: the contract's tables, the recorded schema version, and migrations that keep rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cxsync.records import AgentRecord, InteractionRecord, MessageRecord
from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t

# Columns the contract names, per table (more are welcome), and the primary keys it fixes.
CONTRACT = {
    "cx_agents": (
        ["integration_id", "agent_id"],
        [
            "login_name",
            "display_name",
            "email",
            "role",
            "is_enabled",
            "is_deleted",
            "first_seen_at",
            "last_synced_at",
            "raw",
        ],
    ),
    "cx_interactions": (
        ["integration_id", "interaction_id"],
        [
            "provider",
            "channel",
            "status",
            "provider_status",
            "subject",
            "started_at",
            "ended_at",
            "updated_at",
            "agent_id",
            "customer_id",
            "message_count",
            "loaded_at",
            "raw",
        ],
    ),
    "cx_messages": (
        ["integration_id", "interaction_id", "message_id"],
        ["seq", "sent_at", "sender_type", "sender_id", "text", "is_private"],
    ),
    "cx_sync_state": (["integration_id", "stream"], ["watermark", "updated_at"]),
    "cx_retention_log": (None, ["integration_id", "run_at", "cutoff", "dry_run"]),
    "cx_rejected_records": (None, ["integration_id", "stream", "record_key", "reason", "raw", "rejected_at"]),
}

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_ensure_schema_creates_the_contract_tables(warehouse):
    inspector = sa.inspect(warehouse.engine)
    for table, (pk, columns) in CONTRACT.items():
        assert inspector.has_table(table), table
        present = {c["name"] for c in inspector.get_columns(table)}
        assert set(columns) <= present, (table, set(columns) - present)
        if pk is not None:
            assert inspector.get_pk_constraint(table)["constrained_columns"] == pk


def _versions(wh: Warehouse) -> list[int]:
    with wh.engine.connect() as conn:
        return list(conn.execute(sa.select(t.schema_version.c.version).order_by(t.schema_version.c.version)).scalars())


def _seed(wh: Warehouse) -> None:
    wh.sync_agents("lp", [AgentRecord("a1", display_name="Ann")], synced_at=T0)
    wh.write_interactions(
        "lp",
        [
            InteractionRecord(
                "c1", "liveperson", "closed", T0, messages=[MessageRecord("m1", 1, T0, "customer", text="hi")]
            )
        ],
    )
    wh.set_watermark("lp", "interactions", "2026-03-01T00:00:00.000000Z")


def test_schema_version_is_recorded_and_ensure_schema_is_idempotent(warehouse):
    assert _versions(warehouse) == [t.SCHEMA_VERSION]
    _seed(warehouse)
    before = warehouse.table_counts()
    assert warehouse.ensure_schema() == t.SCHEMA_VERSION
    assert warehouse.ensure_schema() == t.SCHEMA_VERSION
    assert _versions(warehouse) == [t.SCHEMA_VERSION]
    assert warehouse.table_counts() == before
    assert warehouse.get_watermark("lp", "interactions") == "2026-03-01T00:00:00.000000Z"


@pytest.fixture
def next_version(monkeypatch):
    """Pretend the code moved to schema version N+1, which adds `cx_agents.nickname` and a new table.

    Returns (N+1, the migrations that ran, the metadata of version N).
    """
    target = t.SCHEMA_VERSION + 1
    current = t.metadata
    newer = sa.MetaData()
    for table in current.sorted_tables:
        table.to_metadata(newer)
    newer.tables["cx_agents"].append_column(sa.Column("nickname", sa.Text))
    sa.Table("cx_future", newer, sa.Column("id", sa.Integer, primary_key=True))
    ran: list[int] = []

    def add_nickname(conn) -> None:
        ran.append(target)
        conn.execute(sa.text("ALTER TABLE cx_agents ADD COLUMN nickname TEXT"))
        conn.execute(sa.text("UPDATE cx_agents SET nickname = display_name"))

    monkeypatch.setattr(t, "metadata", newer)
    monkeypatch.setattr(t, "SCHEMA_VERSION", target)
    monkeypatch.setattr(t, "MIGRATIONS", {**t.MIGRATIONS, target: add_nickname})
    return target, ran, current


def test_old_warehouse_is_migrated_without_losing_rows(warehouse_url, next_version):
    target, ran, old_metadata = next_version
    # An "old" warehouse, as the previous version of the code left it, with rows in it ...
    old = Warehouse.from_url(warehouse_url)
    with old.engine.begin() as conn:
        old_metadata.create_all(conn)
        conn.execute(t.schema_version.insert().values(version=target - 1, applied_at=T0))
    _seed(old)
    before = old.table_counts()
    old.dispose()

    # ... then the new code starts.
    wh = Warehouse.from_url(warehouse_url)
    try:
        assert wh.ensure_schema() == target
        assert ran == [target]
        assert _versions(wh) == [target - 1, target]
        assert wh.table_counts() == before
        with wh.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT agent_id, nickname FROM cx_agents")).all() == [("a1", "Ann")]
            assert conn.execute(sa.text("SELECT interaction_id FROM cx_interactions")).all() == [("c1",)]
        assert sa.inspect(wh.engine).has_table("cx_future")
        assert wh.get_watermark("lp", "interactions") == "2026-03-01T00:00:00.000000Z"
        # idempotent: nothing runs twice
        assert wh.ensure_schema() == target
        assert ran == [target]
        assert _versions(wh) == [target - 1, target]
        assert wh.table_counts() == before
    finally:
        wh.dispose()


def test_new_warehouse_gets_the_current_schema_without_running_migrations(warehouse_url, next_version):
    target, ran, _ = next_version
    wh = Warehouse.from_url(warehouse_url)
    try:
        assert wh.ensure_schema() == target
        assert ran == []  # create_all already built cx_agents with `nickname`
        assert _versions(wh) == [target]
        assert "nickname" in {c["name"] for c in sa.inspect(wh.engine).get_columns("cx_agents")}
    finally:
        wh.dispose()


def test_warehouse_newer_than_the_code_is_refused(warehouse):
    with warehouse.engine.begin() as conn:
        conn.execute(t.schema_version.insert().values(version=t.SCHEMA_VERSION + 5, applied_at=T0))
    with pytest.raises(RuntimeError, match="newer than this cxsync"):
        warehouse.ensure_schema()


def test_version_1_warehouse_with_repeated_rejected_records_keeps_one_of_each(warehouse_url):
    """Version 2 fingerprints rejected records; a version-1 warehouse holding the same bad record
    twice (two runs met it) keeps one row of it and every other row."""
    wh = Warehouse.from_url(warehouse_url)
    try:
        wh.ensure_schema()
        # Turn it back into version 1: no fingerprint column, no unique index, version row 1.
        with wh.engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ux_cx_rejected_record"))
            conn.execute(sa.text("ALTER TABLE cx_rejected_records DROP COLUMN record_hash"))
            conn.execute(t.schema_version.delete())
            conn.execute(t.schema_version.insert().values(version=1, applied_at=T0))
            rows = [
                {
                    "integration_id": "lp",
                    "stream": "interactions",
                    "record_key": "c1",
                    "reason": "no start",
                    "raw": '{"id":"c1"}',
                    "rejected_at": T0,
                },
                {
                    "integration_id": "lp",
                    "stream": "interactions",
                    "record_key": "c1",
                    "reason": "no start",
                    "raw": '{"id":"c1"}',
                    "rejected_at": T0,
                },
                {
                    "integration_id": "lp",
                    "stream": "interactions",
                    "record_key": "c2",
                    "reason": "no start",
                    "raw": '{"id":"c2"}',
                    "rejected_at": T0,
                },
                {
                    "integration_id": "hd",
                    "stream": "interactions",
                    "record_key": "c1",
                    "reason": "no start",
                    "raw": '{"id":"c1"}',
                    "rejected_at": T0,
                },
            ]
            conn.execute(
                sa.text(
                    "INSERT INTO cx_rejected_records (integration_id, stream, record_key, reason, raw, rejected_at) "
                    "VALUES (:integration_id, :stream, :record_key, :reason, :raw, :rejected_at)"
                ),
                [{**r, "rejected_at": r["rejected_at"].replace(tzinfo=None)} for r in rows],
            )
        _seed(wh)
        before = wh.table_counts()

        assert wh.ensure_schema() == t.SCHEMA_VERSION
        assert _versions(wh) == list(range(1, t.SCHEMA_VERSION + 1))
        after = wh.table_counts()
        assert after["cx_rejected_records"] == before["cx_rejected_records"] - 1
        assert {k: v for k, v in after.items() if k != "cx_rejected_records"} == {
            k: v for k, v in before.items() if k != "cx_rejected_records"
        }
        with wh.engine.connect() as conn:
            kept = conn.execute(
                sa.text(
                    "SELECT integration_id, record_key FROM cx_rejected_records "
                    "WHERE record_hash IS NOT NULL ORDER BY 1, 2"
                )
            ).all()
        assert kept == [("hd", "c1"), ("lp", "c1"), ("lp", "c2")]
    finally:
        wh.dispose()


def _create_schema_in_rounds(directory: str, rounds: int, barrier, errors) -> None:
    from cxsync.warehouse import Warehouse

    for n in range(rounds):
        barrier.wait()
        wh = Warehouse.from_url(f"sqlite:///{directory}/round{n}.db")
        try:
            wh.ensure_schema()
        except Exception as exc:
            errors.put(f"round {n}: {exc.__class__.__name__}: {exc}")
        finally:
            wh.dispose()


def test_four_processes_create_one_new_sqlite_warehouse_at_once(tmp_path):
    """Mapped tasks starting together on a new embedded warehouse: every one succeeds, 20 rounds in a row,
    and each warehouse records its schema version once."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    rounds, workers = 20, 4
    barrier, errors = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=_create_schema_in_rounds, args=(str(tmp_path), rounds, barrier, errors))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert [p.exitcode for p in processes] == [0] * workers
    assert failures == []
    for n in range(rounds):
        engine = sa.create_engine(f"sqlite:///{tmp_path}/round{n}.db")
        with engine.connect() as conn:
            versions = conn.execute(sa.select(t.schema_version.c.version)).scalars().all()
        engine.dispose()
        assert versions == [t.SCHEMA_VERSION]


def test_version_2_warehouse_gets_the_status_page_index(warehouse):
    """v3: an existing cx_interactions gets the covering index of the UI status page; its rows stay."""
    _seed(warehouse)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_cx_interactions_loaded"))
        conn.execute(t.schema_version.delete())
        conn.execute(t.schema_version.insert().values(version=2, applied_at=T0))
    before = warehouse.table_counts()
    assert "ix_cx_interactions_loaded" not in _index_names(warehouse)

    assert warehouse.ensure_schema() == t.SCHEMA_VERSION
    assert "ix_cx_interactions_loaded" in _index_names(warehouse)
    assert warehouse.table_counts() == before


def _index_names(warehouse) -> set[str]:
    return {ix["name"] for ix in sa.inspect(warehouse.engine).get_indexes("cx_interactions")}


def test_version_2_warehouse_gets_the_interaction_deleted_at_column_and_keeps_its_rows(warehouse_url):
    """Version 4 adds `cx_interactions.deleted_at` (deleted at the provider, kept until retention)."""
    wh = Warehouse.from_url(warehouse_url)
    try:
        wh.ensure_schema()
        _seed(wh)
        with wh.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE cx_interactions DROP COLUMN deleted_at"))
            conn.execute(t.schema_version.delete())
            conn.execute(t.schema_version.insert().values(version=2, applied_at=T0))
        before = wh.table_counts()

        assert wh.ensure_schema() == t.SCHEMA_VERSION
        assert _versions(wh) == list(range(2, t.SCHEMA_VERSION + 1))
        assert wh.table_counts() == before
        with wh.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("cx_interactions")}
            deleted = conn.execute(sa.select(t.interactions.c.deleted_at)).scalars().all()
        assert "deleted_at" in columns and deleted and all(d is None for d in deleted)
    finally:
        wh.dispose()


def test_version_4_warehouse_gets_the_qa_signal_columns_and_its_messages_are_of_the_main_dialog(warehouse_url):
    """Version 5 adds the QA-signal columns; messages stored before it read as the main dialog."""
    wh = Warehouse.from_url(warehouse_url)
    try:
        wh.ensure_schema()
        _seed(wh)
        added = [
            "csat_score",
            "sentiment_score",
            "close_reason",
            "skill",
            "agent_group",
            "tags",
            "priority",
            "display_id",
        ]
        with wh.engine.begin() as conn:
            for name in added:
                conn.execute(sa.text(f"ALTER TABLE cx_interactions DROP COLUMN {name}"))
            for name in ("dialog_type", "attachments"):
                conn.execute(sa.text(f"ALTER TABLE cx_messages DROP COLUMN {name}"))
            conn.execute(t.schema_version.delete())
            conn.execute(t.schema_version.insert().values(version=4, applied_at=T0))
        before = wh.table_counts()

        assert wh.ensure_schema() == t.SCHEMA_VERSION
        assert wh.table_counts() == before
        with wh.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("cx_interactions")}
            dialogs = conn.execute(sa.select(t.messages.c.dialog_type)).scalars().all()
        assert set(added) <= columns
        assert dialogs and set(dialogs) == {"main"}
    finally:
        wh.dispose()


def test_version_6_warehouse_gets_the_redaction_columns_and_stats_table_its_rows_unredacted(warehouse_url):
    """Version 7 adds `cx_interactions.redaction_version`, `cx_messages.pii_counts` and `cx_redaction_stats`; rows
    stored before it read as not redacted (null), and keep their content hash (a reload writes nothing)."""
    wh = Warehouse.from_url(warehouse_url)
    try:
        wh.ensure_schema()
        _seed(wh)
        with wh.engine.begin() as conn:
            hashes = conn.execute(sa.select(t.interactions.c.content_hash)).scalars().all()
            conn.execute(sa.text("ALTER TABLE cx_interactions DROP COLUMN redaction_version"))
            conn.execute(sa.text("ALTER TABLE cx_messages DROP COLUMN pii_counts"))
            conn.execute(sa.text("DROP TABLE cx_redaction_stats"))
            conn.execute(t.schema_version.delete())
            conn.execute(t.schema_version.insert().values(version=6, applied_at=T0))
        before = wh.table_counts()

        assert wh.ensure_schema() == t.SCHEMA_VERSION == 7
        assert _versions(wh) == [6, 7]
        assert wh.table_counts() == before
        with wh.engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert "redaction_version" in {c["name"] for c in inspector.get_columns("cx_interactions")}
            assert "pii_counts" in {c["name"] for c in inspector.get_columns("cx_messages")}
            assert inspector.has_table("cx_redaction_stats")
            assert conn.execute(sa.select(t.interactions.c.redaction_version)).scalars().all() == [None]
            assert conn.execute(sa.select(t.messages.c.pii_counts)).scalars().all() == [None]
            assert conn.execute(sa.select(t.interactions.c.content_hash)).scalars().all() == hashes
        wh.record_redaction_stats(
            "lp",
            {"interactions": 1, "messages_scanned": 1, "messages_redacted": 0, "by_entity": {}},
            version="r1-x",
            mode="redact",
        )
        assert wh.ensure_schema() == 7  # idempotent
    finally:
        wh.dispose()


def test_the_loads_write_every_column_the_schema_has_but_reconciliations():
    from cxsync.warehouse import schema as t
    from cxsync.warehouse.store import INTERACTION_COLUMNS, MESSAGE_COLUMNS

    assert set(MESSAGE_COLUMNS) == set(t.messages.columns.keys())
    assert set(INTERACTION_COLUMNS) == set(t.interactions.columns.keys()) - {"deleted_at"}
    assert t.key_names(t.messages) == ["integration_id", "interaction_id", "message_id"]


def test_the_analytics_signal_migration_adds_its_columns_and_keeps_the_agent_days(warehouse_url):
    """Version 6: CSAT and MCS columns of the analytics tables on a warehouse
    that has agent days already; they read 0 rated conversations until the next analytics run."""
    wh = Warehouse.from_url(warehouse_url)
    try:
        wh.ensure_schema()
        with wh.engine.begin() as conn:
            for table, names in t.ANALYTICS_SIGNAL_COLUMNS.items():
                for name in names:
                    conn.execute(sa.text(f"ALTER TABLE {table.name} DROP COLUMN {name}"))
            conn.execute(
                sa.text(
                    "INSERT INTO cx_agent_daily_metrics (integration_id, agent_id, day, metrics_version, computed_at, "
                    "conversations, closed_conversations, messages, customer_messages, unanswered_runs, "
                    "flagged_conversations) "
                    "VALUES ('lp', 'a1', '2026-03-01', 1, '2026-03-01 12:00:00', 1, 1, 2, 2, 0, 0)"
                )
            )
            conn.execute(t.schema_version.delete())
            conn.execute(t.schema_version.insert().values(version=5, applied_at=T0))
        assert wh.ensure_schema() == t.SCHEMA_VERSION
        with wh.engine.begin() as conn:  # idempotent
            t._v6_analytics_signals(conn)
        with wh.engine.connect() as conn:
            for table, names in t.ANALYTICS_SIGNAL_COLUMNS.items():
                assert set(names) <= {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
            row = conn.execute(sa.select(t.agent_daily_metrics)).mappings().one()
        assert (row["conversations"], row["rated_conversations"], row["sentiment_conversations"]) == (1, 0, 0)
        assert row["mean_csat_score"] is None and row["mean_sentiment_score"] is None
    finally:
        wh.dispose()
