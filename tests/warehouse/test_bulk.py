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


# ---- PostgreSQL's COPY path (batches of PG_COPY_MIN_ROWS and more); SQLite keeps executemany ----------------

HARD_TEXTS = [
    "tab\there",
    "new\nline and\r\ncrlf",
    "back\\slash \\N \\t literally",
    "\\",
    "",
    " leading and trailing ",
    "unicode: héllo ✓ 日本語 🙂 \u2028 \u00a0",
    '{"json": "with \\"quotes\\" and \\\\ and \\n escaped", "nested": {"a": [1, 2.5, null, true]}}',
    "\\.",  # COPY's end-of-data marker, on a line of its own
    "N",
]


def hard_message(integration: str, n: int, **changes) -> tuple:
    """Row `n` with the values COPY's text format must escape or spell: NULLs, tabs, newlines, backslashes, its
    end-of-data marker, unicode, JSON text, timestamps at several offsets, booleans."""
    offsets = [PARIS, UTC, timezone(timedelta(hours=-9, minutes=-30)), timezone(timedelta(hours=5, minutes=45))]
    row = dict(zip(MESSAGE_COLUMNS, message(integration, n % 60), strict=True))
    row.update(
        interaction_id=f"c{n // 3}",
        message_id=f"m{n:05d}",
        seq=n,
        text=HARD_TEXTS[n % len(HARD_TEXTS)] if n % 11 else None,
        raw=HARD_TEXTS[(n + 3) % len(HARD_TEXTS)],
        sender_id=None if n % 4 == 0 else f"p\t{n}\n",
        sent_at=datetime(2026, 3, 1, 23, 59, n % 60, n * 997 % 1_000_000, tzinfo=offsets[n % 4]) if n % 5 else None,
        is_private=n % 2 == 0,
    )
    row.update(changes)
    return tuple(row[c] for c in MESSAGE_COLUMNS)


@pytest.fixture
def copies(monkeypatch):
    """Counts the batches that went through COPY."""
    from cxsync.warehouse import bulk

    calls = []
    original = bulk.BulkUpsert._copy

    def spy(self, conn, rows):
        calls.append(len(rows))
        return original(self, conn, rows)

    monkeypatch.setattr(bulk.BulkUpsert, "_copy", spy)
    return calls


def test_the_copy_path_stores_exactly_what_sqlalchemy_stores(warehouse, copies):
    from cxsync.warehouse.bulk import PG_COPY_MIN_ROWS

    engine = warehouse.engine
    upsert = BulkUpsert(engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    count = PG_COPY_MIN_ROWS + 37
    with engine.begin() as conn:
        upsert.execute(conn, [hard_message("bulk", n) for n in range(count)])
    core_upsert(engine, [hard_message("core", n) for n in range(count)])
    assert stored(engine, "bulk") == stored(engine, "core")
    assert len(stored(engine, "bulk")) == count
    # PostgreSQL took COPY; SQLite (no COPY) its executemany, with the same result.
    assert copies == ([count] if engine.dialect.name == "postgresql" else [])


def test_copy_batches_in_one_transaction_upsert_each_other(warehouse, copies):
    """Two batches of one transaction: the temporary table is empty again for the second, which updates rows
    of the first; the next transaction (same pooled session) starts empty too."""
    from cxsync.warehouse.bulk import PG_COPY_MIN_ROWS

    engine = warehouse.engine
    upsert = BulkUpsert(engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    first = [hard_message("x", n) for n in range(PG_COPY_MIN_ROWS)]
    second = [hard_message("x", n, text="edited") for n in range(PG_COPY_MIN_ROWS // 2, PG_COPY_MIN_ROWS * 3 // 2)]
    with engine.begin() as conn:
        upsert.execute(conn, first)
        upsert.execute(conn, second)
    with engine.begin() as conn:
        upsert.execute(conn, first[:PG_COPY_MIN_ROWS])  # back to the first texts
    core_upsert(engine, [("core", *r[1:]) for r in first + second + first[:PG_COPY_MIN_ROWS]])
    assert stored(engine, "x") == stored(engine, "core")
    assert len(stored(engine, "x")) == PG_COPY_MIN_ROWS * 3 // 2
    assert len(copies) == (3 if engine.dialect.name == "postgresql" else 0)


def test_the_copy_path_skips_unchanged_rows(warehouse, copies):
    from cxsync.warehouse.bulk import PG_COPY_MIN_ROWS

    engine = warehouse.engine
    keys = ["integration_id", "interaction_id"]
    upsert = BulkUpsert(engine.dialect, t.interactions, INTERACTION_COLUMNS, keys, only_if_changed="content_hash")
    first = datetime(2026, 3, 1, tzinfo=UTC)

    def rows(loaded_at: datetime, changed: set[int]) -> list[list]:
        out = []
        for n in range(PG_COPY_MIN_ROWS):
            values = dict.fromkeys(INTERACTION_COLUMNS)
            digest = f"h{n}-{'b' if n in changed else 'a'}"
            values.update(integration_id="x", interaction_id=f"c{n}", provider="liveperson", status="closed",
                          started_at=first, message_count=n, loaded_at=loaded_at, content_hash=digest,
                          subject=f"s{n}\t{loaded_at:%d}")  # fmt: skip
            out.append([values[c] for c in INTERACTION_COLUMNS])
        return out

    with engine.begin() as conn:
        upsert.execute(conn, rows(first, set()))
    later = first + timedelta(days=1)
    with engine.begin() as conn:
        upsert.execute(conn, rows(later, {3, 7}))
    with engine.connect() as conn:
        found = dict(conn.execute(sa.select(t.interactions.c.interaction_id, t.interactions.c.loaded_at)).all())
    assert {i for i, loaded in found.items() if loaded == later} == {"c3", "c7"}
    assert len(found) == PG_COPY_MIN_ROWS and len(copies) == (2 if engine.dialect.name == "postgresql" else 0)


def test_a_refused_copy_batch_is_an_sqlalchemy_error_and_rolls_back(warehouse):
    from cxsync.warehouse.bulk import PG_COPY_MIN_ROWS

    upsert = BulkUpsert(warehouse.engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    rows = [hard_message("x", n) for n in range(PG_COPY_MIN_ROWS)] + [hard_message("x", 999, sender_type=None)]
    with pytest.raises(sa.exc.IntegrityError), warehouse.engine.begin() as conn:
        upsert.execute(conn, rows)
    assert stored(warehouse.engine, "x") == []
    with warehouse.engine.begin() as conn:  # the session is usable again, its temporary table empty
        upsert.execute(conn, rows[:-1])
    assert len(stored(warehouse.engine, "x")) == PG_COPY_MIN_ROWS


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
        min_size=1,
        max_size=8,
    )
)
def test_any_text_survives_copy_as_sqlalchemy_stores_it(pg_engine_for_copy, texts):
    from cxsync.warehouse.bulk import PG_COPY_MIN_ROWS

    engine = pg_engine_for_copy
    with engine.begin() as conn:
        conn.execute(t.messages.delete())
    upsert = BulkUpsert(engine.dialect, t.messages, MESSAGE_COLUMNS, KEYS)
    rows = [
        hard_message("bulk", n, text=texts[n % len(texts)], raw=texts[-1 - n % len(texts)])
        for n in range(PG_COPY_MIN_ROWS)
    ]
    with engine.begin() as conn:
        upsert.execute(conn, rows)
    core_upsert(engine, [("core", *r[1:]) for r in rows])
    assert stored(engine, "bulk") == stored(engine, "core")


@pytest.fixture(scope="module")
def pg_engine_for_copy(pg_admin_engine):
    """One PostgreSQL database for the property test's many examples (a fixture per example would be one per
    test, not per example, anyway)."""
    import uuid

    from tests.conftest import PG_ADMIN_URL

    from cxsync.warehouse import Warehouse

    name = f"cxsync_test_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    wh = Warehouse.from_url(sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    wh.ensure_schema()
    yield wh.engine
    wh.dispose()
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
