"""Whole-warehouse comparisons: every row of every cxsync table, minus the columns that only say when we
loaded something, so two warehouses loaded the same way compare equal row for row."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from cxsync.warehouse import schema as t

# Per table: columns holding our own load times or surrogate keys, never provider data.
LOAD_COLUMNS: dict[str, frozenset[str]] = {
    t.agents.name: frozenset({"first_seen_at", "last_synced_at", "deleted_at"}),
    t.agent_groups.name: frozenset({"last_synced_at"}),
    t.skills.name: frozenset({"last_synced_at"}),
    t.interactions.name: frozenset({"loaded_at"}),
    t.sync_state.name: frozenset({"updated_at"}),
    t.rejected_records.name: frozenset({"id", "rejected_at"}),
    t.retention_log.name: frozenset({"id", "run_at"}),
}


def integration_tables() -> list[sa.Table]:
    """Every warehouse table that holds rows of an integration (all but the schema version)."""
    return [table for table in t.metadata.sorted_tables if "integration_id" in table.c]


def snapshot(engine: sa.Engine, integration_id: str | None = None) -> dict[str, list[tuple]]:
    """`{table: sorted rows}` of every integration table (of one integration, or all), load times left out."""
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for table in integration_tables():
            skip = LOAD_COLUMNS.get(table.name, frozenset())
            columns = [c for c in table.c if c.name not in skip]
            query = sa.select(*columns)
            if integration_id is not None:
                query = query.where(table.c.integration_id == integration_id)
            out[table.name] = sorted((tuple(row) for row in conn.execute(query)), key=repr)
    return out


def snapshot_difference(actual: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> str:
    """Which tables differ, with a few rows only one side has, for assertion messages."""
    lines = []
    for name in sorted(set(actual) | set(expected)):
        got, want = actual.get(name, []), expected.get(name, [])
        if got == want:
            continue
        only_got = [r for r in got if r not in want]
        only_want = [r for r in want if r not in got]
        lines.append(
            f"{name}: {len(got)} rows vs {len(want)} expected; only here: {[_short(r) for r in only_got[:2]]}; "
            f"only expected: {[_short(r) for r in only_want[:2]]}"
        )
    return "\n".join(lines) or "no difference"


def _short(row: tuple) -> str:
    text = repr(row)
    return text if len(text) <= 300 else text[:300] + "..."


def text_values(engine: sa.Engine) -> Iterator[tuple[str, str, Any]]:
    """(table, column, value) for every non-null value of every table of the database, as text."""
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for name in inspector.get_table_names():
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if value is not None:
                        yield name, column, as_text(value)


def as_text(value: Any) -> str:
    """Text as is; bytes decoded (and inflated when compressed, as Airflow stores serialized DAGs); else repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        with contextlib.suppress(zlib.error):
            raw = zlib.decompress(raw)
        return raw.decode("utf-8", "replace")
    return repr(value)
