r"""Bulk upserts of many rows without SQLAlchemy's per-row work: the load path writes every message through here.

SQLAlchemy Core builds a parameter dict per row and runs each value through its type (about 10 us a row,
as much as SQLite needs to store it). `BulkUpsert` renders the `INSERT .. ON CONFLICT .. DO UPDATE` once per
table, converts only the columns whose type has a bind processor (the same processors SQLAlchemy would
apply, so the stored values are identical), and hands positional rows to the driver: `executemany` on
sqlite3; on psycopg2 a batch of at least `PG_COPY_MIN_ROWS` rows is streamed with `COPY ... FROM STDIN` into a
session-local temporary table and merged with one `INSERT ... SELECT ... ON CONFLICT DO UPDATE` (the same
conflict rule and skip-unchanged condition), smaller ones go as `execute_values` multi-row VALUES pages. Any
other driver gets the plain SQLAlchemy statement, unchanged.

COPY's text format carries every value as PostgreSQL's own text input of the bound value (what psycopg2 would
quote into the statement): `\N` for NULL, `t`/`f`, decimal numbers, ISO timestamps with their offset, text with
backslash, tab, newline and carriage return escaped; tests/warehouse/test_bulk.py holds both paths equal.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# Rows per multi-row VALUES statement on PostgreSQL.
PG_PAGE_ROWS = 1000
# From this many rows a PostgreSQL batch goes through COPY (below it, a temporary table's extra round trips cost
# more than they save).
PG_COPY_MIN_ROWS = 200


class BulkUpsert:
    """Upsert positional rows (values in `columns` order) into `table`, keyed on `keys`.

    `only_if_changed`: a conflicting row is updated only when this column's value differs (e.g. a content
    hash), so an unchanged row is not rewritten.
    """

    def __init__(
        self,
        dialect: sa.Dialect,
        table: sa.Table,
        columns: Sequence[str],
        keys: Sequence[str],
        only_if_changed: str | None = None,
    ):
        self.table = table
        self.columns = list(columns)
        self.keys = list(keys)
        self.only_if_changed = only_if_changed
        self.driver = dialect.driver if dialect.name in ("sqlite", "postgresql") else ""
        self._fast = self.driver in ("pysqlite", "psycopg2")
        quote = dialect.identifier_preparer.quote
        names = [quote(c) for c in self.columns]
        updates = [c for c in self.columns if c not in self.keys]
        marks = "%s" if self.driver == "psycopg2" else "(" + ", ".join("?" * len(names)) + ")"
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(names)}) VALUES {marks} "
            f"ON CONFLICT ({', '.join(quote(k) for k in self.keys)}) DO UPDATE SET "
            + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updates)
        )
        if only_if_changed:
            column = quote(only_if_changed)
            sql += f" WHERE {quote(table.name)}.{column} <> excluded.{column}"
        self.sql = sql
        if self.driver == "psycopg2":
            # A temporary table per session, emptied at every commit; each batch empties it again as it merges
            # (DELETE .. RETURNING feeds the INSERT), so batches of one transaction never see each other's rows.
            temp = quote(f"{table.name}_copy")
            self._copy_prepare = (
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {temp} (LIKE {quote(table.name)} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            self._copy_sql = f"COPY {temp} ({', '.join(names)}) FROM STDIN"
            merge = (
                f"WITH batch AS (DELETE FROM {temp} RETURNING {', '.join(names)}) "
                f"INSERT INTO {quote(table.name)} ({', '.join(names)}) SELECT {', '.join(names)} FROM batch "
                f"ON CONFLICT ({', '.join(quote(k) for k in self.keys)}) DO UPDATE SET "
                + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updates)
            )
            if only_if_changed:
                merge += f" WHERE {quote(table.name)}.{quote(only_if_changed)} <> excluded.{quote(only_if_changed)}"
            self._copy_merge = merge
        self._processors: list[tuple[int, Callable[[Any], Any]]] = []
        for index, name in enumerate(self.columns):
            processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors.append((index, _faster(table.c[name], dialect, processor)))
        self._updates = updates

    def bind_values(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """The rows as the driver is sent them (each column through its type's processor), without a connection:
        so the pipeline's read-ahead thread can do it. Raises what SQLAlchemy raises for a refused value."""
        if not self._fast:
            return [tuple(r) for r in rows]  # SQLAlchemy binds them itself on this path
        if not self._processors:
            return [r if isinstance(r, tuple) else tuple(r) for r in rows]
        try:
            return self._convert(rows)
        except Exception as exc:
            # What SQLAlchemy raises when a type refuses a value (e.g. a naive datetime).
            raise sa.exc.StatementError(
                f"({type(exc).__module__}.{type(exc).__name__}) {exc}", self.sql, None, exc
            ) from exc

    def execute(self, conn: Connection, rows: Sequence[Sequence[Any]], *, bound: bool = False) -> None:
        """Upsert `rows` (values in `columns` order; `bound`: already through `bind_values`)."""
        if not rows:
            return
        if not self._fast:
            self._execute_core(conn, rows)
            return
        if not bound:
            rows = self.bind_values(rows)
        if self.driver == "psycopg2":
            if len(rows) >= PG_COPY_MIN_ROWS:
                self._copy(conn, rows)
            else:
                self._execute_values(conn, rows)
        else:
            conn.exec_driver_sql(self.sql, rows if isinstance(rows, list) else list(rows))

    def _execute_values(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """psycopg2's multi-row VALUES pages, on the transaction's own connection; driver errors are raised as
        SQLAlchemy raises them (IntegrityError, OperationalError, ...)."""
        from psycopg2.extras import execute_values

        dbapi_error = conn.dialect.loaded_dbapi.Error
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            execute_values(cursor, self.sql, rows, page_size=PG_PAGE_ROWS)
        except dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(self.sql, None, exc, dbapi_error, dialect=conn.dialect) from exc
        finally:
            cursor.close()

    def _copy(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """COPY into the session's temporary table, then one merge into the table; errors as SQLAlchemy's."""
        dbapi_error = conn.dialect.loaded_dbapi.Error
        cursor = conn.connection.dbapi_connection.cursor()
        statement = self._copy_sql
        try:
            cursor.execute(self._copy_prepare)
            cursor.copy_expert(statement, io.StringIO(copy_text(rows)))
            statement = self._copy_merge
            cursor.execute(statement)
        except dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi_error, dialect=conn.dialect) from exc
        finally:
            cursor.close()

    def _convert(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        processors = self._processors
        converted = []
        for row in rows:
            values = list(row)
            for index, processor in processors:
                value = values[index]
                if value is not None:
                    values[index] = processor(value)
            converted.append(tuple(values))
        return converted

    def _execute_core(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Any other driver: the same upsert through SQLAlchemy, one parameter dict per row."""
        dialect = conn.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(self.table)
        where = None
        if self.only_if_changed:
            where = self.table.c[self.only_if_changed] != stmt.excluded[self.only_if_changed]
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=self.keys, set_={c: stmt.excluded[c] for c in self._updates}, where=where
            ),
            [dict(zip(self.columns, row, strict=True)) for row in rows],
        )


def _copy_escape(text: str) -> str:
    # Four C-level replaces beat one `str.translate` on the long JSON texts of `raw` (each returns its input
    # unchanged when the character is absent). The backslash goes first: the others add backslashes.
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_text(rows: Sequence[Sequence[Any]]) -> str:
    """Bound rows in COPY's text format: one line a row, tab-separated, `\\N` for NULL."""
    lines = []
    for row in rows:
        fields = []
        for value in row:
            if value is None:
                fields.append("\\N")
            elif isinstance(value, str):
                fields.append(_copy_escape(value))
            elif isinstance(value, bool):
                fields.append("t" if value else "f")
            elif isinstance(value, int | float):
                fields.append(repr(value))
            elif isinstance(value, datetime):
                if value.tzinfo is None:  # never from a UTCDateTime column (it refuses naive times)
                    raise ValueError(f"naive datetime {value!r} in a COPY row")
                fields.append(value.isoformat())
            else:
                fields.append(_copy_escape(str(value)))
        lines.append("\t".join(fields))
    lines.append("")
    return "\n".join(lines)


# SQLAlchemy's SQLite DATETIME storage format, which `_sqlite_utc_text` writes directly.
_SQLITE_DATETIME_FORMAT = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


def _faster(column: sa.Column, dialect: sa.Dialect, processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A cheaper processor with the same output where one is known, else SQLAlchemy's own.

    UTC datetimes on SQLite (every message's `sent_at`): SQLAlchemy runs `UTCDateTime` (convert to UTC, drop the
    zone), then formats through a dict; one f-string does both. tests/warehouse/test_bulk.py holds the two equal.
    """
    from cxsync.warehouse.schema import UTCDateTime

    impl = column.type.dialect_impl(dialect)
    storage = getattr(getattr(impl, "impl_instance", None), "_storage_format", None)
    if dialect.name == "sqlite" and isinstance(column.type, UTCDateTime) and storage == _SQLITE_DATETIME_FORMAT:
        return functools.partial(_sqlite_utc_text, slow=processor)
    return processor


def _sqlite_utc_text(value: Any, slow: Callable[[Any], Any]) -> Any:
    tz = getattr(value, "tzinfo", None)
    if tz is None or not isinstance(value, datetime):
        return slow(value)  # a naive datetime (refused with UTCDateTime's message), or not a datetime at all
    if tz is not UTC:
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )
