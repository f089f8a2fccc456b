"""BulkUpsert stores exactly what SQLAlchemy Core would, upserts, skips unchanged rows, and fails the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from cxsync.warehouse import schema as t
from cxsync.warehouse.bulk import BulkUpsert
from cxsync.warehouse.store import INTERACTION_COLUMNS, MESSAGE_COLUMNS

KEYS = ["integration_id", "interaction_id", "message_id"]
PARIS = timezone(timedelta(hours=2))


def message(integration: str, n: int, **changes) -> tuple:
    row = {
        "integration_id": integration,
        "interaction_id": f"c{n // 3}",
        "message_id": f"m{n}",
        "seq": n,
        "sent_at": datetime(2026, 3, 1, 14, 0, n, 123456, tzinfo=PARIS) if n % 4 else None,
        "sender_type": "agent" if n % 2 else "customer",
        "sender_id": None if n % 5 == 0 else f"p{n}",
        "text": f"héllo {n} ✓",
        "is_private": n % 3 == 0,
        "message_type": "TEXT_PLAIN",
        "raw": f'{{"n":{n}}}',
        "dialog_type": "post_survey" if n % 7 == 0 else "main",
        "attachments": '[{"name":"a.png","type":"image/png","size":12}]' if n % 6 == 0 else None,
        "pii_counts": '{"EMAIL":1}' if n % 4 == 0 else None,
    } | changes
    return tuple(row[c] for c in MESSAGE_COLUMNS)


def stored(engine: sa.Engine, integration: str) -> list[tuple]:
    """The values as the database holds them, read without SQLAlchemy's result processing."""
    cols = ", ".join(c for c in MESSAGE_COLUMNS if c != "integration_id")
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            f"SELECT {cols} FROM cx_messages WHERE integration_id = '{integration}' ORDER BY message_id"
        ).all()


def core_upsert(engine: sa.Engine, rows: list[tuple]) -> None:
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(t.messages)
    with engine.begin() as conn:
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=KEYS, set_={c: stmt.excluded[c] for c in MESSAGE_COLUMNS if c not in KEYS}
            ),
            [dict(zip(MESSAGE_COLUMNS, row, strict=True)) for row in rows],
        )


def test_values_are_stored_exactly_as_sqlalchemy_stores_them(warehouse):
    engine = warehouse.engine
    upsert = BulkUpsert(engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    assert upsert._fast  # sqlite3 and psycopg2 take the driver's path
    with engine.begin() as conn:
        upsert.execute(conn, [message("bulk", n) for n in range(12)])
    core_upsert(engine, [message("core", n) for n in range(12)])
    assert stored(engine, "bulk") == stored(engine, "core")
    assert len(stored(engine, "bulk")) == 12


def test_a_conflicting_row_is_updated(warehouse):
    engine = warehouse.engine
    upsert = BulkUpsert(engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    with engine.begin() as conn:
        upsert.execute(conn, [message("x", n) for n in range(3)])
    with engine.begin() as conn:
        upsert.execute(conn, [message("x", 1, text="edited", is_private=True)])
    rows = {r[1]: r for r in stored(engine, "x")}
    assert len(rows) == 3 and rows["m1"][6] == "edited" and bool(rows["m1"][7]) is True
    assert rows["m0"][6] == "héllo 0 ✓"


def test_only_if_changed_leaves_an_unchanged_row_alone(warehouse):
    engine = warehouse.engine
    upsert = BulkUpsert(
        engine.dialect,
        t.interactions,
        INTERACTION_COLUMNS,
        ["integration_id", "interaction_id"],
        only_if_changed="content_hash",
    )
    first = datetime(2026, 3, 1, tzinfo=UTC)

    def row(content_hash: str, loaded_at: datetime, subject: str) -> dict:
        values = dict.fromkeys(INTERACTION_COLUMNS)
        values.update(
            integration_id="x",
            interaction_id="c1",
            provider="liveperson",
            status="open",
            started_at=first,
            message_count=0,
            content_hash=content_hash,
            loaded_at=loaded_at,
            subject=subject,
        )
        return values

    def write(values: dict) -> None:
        with engine.begin() as conn:
            upsert.execute(conn, [[values[c] for c in INTERACTION_COLUMNS]])

    write(row("h1", first, "one"))
    write(row("h1", first + timedelta(days=1), "same hash, not rewritten"))
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.interactions.c.subject)).scalar_one() == "one"
    write(row("h2", first + timedelta(days=2), "new hash"))
    with engine.connect() as conn:
        subject, loaded = conn.execute(sa.select(t.interactions.c.subject, t.interactions.c.loaded_at)).one()
    assert subject == "new hash" and loaded == first + timedelta(days=2)


def test_a_naive_datetime_is_refused_like_sqlalchemy_refuses_it(warehouse):
    upsert = BulkUpsert(warehouse.engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), warehouse.engine.begin() as conn:
        upsert.execute(conn, [message("x", 1, sent_at=datetime(2026, 3, 1))])
    assert stored(warehouse.engine, "x") == []


def test_driver_errors_are_sqlalchemy_errors_and_roll_back(warehouse):
    upsert = BulkUpsert(warehouse.engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    with pytest.raises(sa.exc.IntegrityError), warehouse.engine.begin() as conn:
        upsert.execute(conn, [message("x", 1), message("x", 2, sender_type=None)])  # NOT NULL
    assert stored(warehouse.engine, "x") == []


def test_other_drivers_get_the_same_upsert_through_sqlalchemy(warehouse):
    engine = warehouse.engine
    upsert = BulkUpsert(engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    upsert._fast = False  # as for a driver without a fast path (e.g. psycopg 3, pg8000)
    with engine.begin() as conn:
        upsert.execute(conn, [message("slow", n) for n in range(6)])
        upsert.execute(conn, [message("slow", 2, text="again")])
    core_upsert(engine, [message("core", n) for n in range(6)] + [message("core", 2, text="again")])
    assert stored(engine, "slow") == stored(engine, "core")


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.one_of(st.none(), st.integers(min_value=-23 * 60, max_value=23 * 60)),
)
def test_the_fast_sqlite_datetime_processor_writes_what_sqlalchemy_writes(moment, offset_minutes):
    dialect = sa.create_engine("sqlite://").dialect
    column = t.messages.c.sent_at
    slow = column.type.dialect_impl(dialect).bind_processor(dialect)
    fast = BulkUpsert(dialect, t.messages, MESSAGE_COLUMNS, KEYS)._processors[0][1]
    assert fast is not slow
    if offset_minutes is None:
        with pytest.raises(ValueError, match="naive datetime"):
            fast(moment)
        return
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert fast(aware) == slow(aware)
    assert fast(aware.astimezone(UTC)) == slow(aware.astimezone(UTC))
