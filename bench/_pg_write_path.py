"""The PostgreSQL write path alone (docs/benchmarks.md, "PostgreSQL loads with COPY"): LivePerson-shaped message
rows into cx_messages in 2,000-row batches, `execute_values` against COPY, interleaved rounds, in a scratch
database. `python -m bench._pg_write_path [rows] [rounds]`."""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench._support import pg_database
from cxsync.warehouse import Warehouse, bulk
from cxsync.warehouse import schema as t
from cxsync.warehouse.store import MESSAGE_COLUMNS

BATCH = 2000
BASE = datetime(2026, 3, 1, tzinfo=UTC)


def rows(tag: str, count: int) -> list[tuple]:
    out = []
    for n in range(count):
        text = f"Hello agent, my order {n} did not arrive ✓"
        raw = json.dumps(
            {"messageId": f"ms::{tag}::{n}", "seq": n % 20, "time": 1_700_000_000_000 + n, "type": "TEXT_PLAIN",
             "messageData": {"msg": {"text": text * 4}}, "participantId": str(uuid.UUID(int=n)),
             "source": "APP", "sentBy": "Consumer", "audience": "ALL"}
        )  # fmt: skip
        out.append(("bench", f"c{n // 20}", f"m{tag}{n}", n % 20, BASE + timedelta(seconds=n), "customer",
                    f"p{n % 50}", text, n % 7 == 0, "TEXT_PLAIN", raw, "main", None))  # fmt: skip
    return out


def main(count: int, rounds: int) -> None:
    with pg_database() as url:
        warehouse = Warehouse.from_url(url)
        warehouse.ensure_schema()
        keys = ["integration_id", "interaction_id", "message_id"]
        upsert = bulk.BulkUpsert(warehouse.engine.dialect, t.messages, MESSAGE_COLUMNS, keys)
        results: dict[str, list[tuple[float, float]]] = {"values": [], "copy": []}
        minimum = bulk.PG_COPY_MIN_ROWS
        try:
            for r in range(rounds):
                for mode in ("values", "copy") if r % 2 == 0 else ("copy", "values"):
                    data = upsert.bind_values(rows(f"{mode}{r}", count))
                    bulk.PG_COPY_MIN_ROWS = sys.maxsize if mode == "values" else minimum
                    started, cpu = time.perf_counter(), time.process_time()
                    for i in range(0, count, BATCH):
                        with warehouse.engine.begin() as conn:
                            upsert.execute(conn, data[i : i + BATCH], bound=True)
                    results[mode].append((time.perf_counter() - started, time.process_time() - cpu))
                    wall, used = results[mode][-1]
                    print(f"{mode} round {r}: wall {wall:.2f} s, client CPU {used:.2f} s")
        finally:
            bulk.PG_COPY_MIN_ROWS = minimum
        for mode, runs in results.items():
            print(
                f"{mode}: best wall {min(w for w, _ in runs):.2f} s, median wall "
                f"{statistics.median(w for w, _ in runs):.2f} s, median client CPU "
                f"{statistics.median(c for _, c in runs):.2f} s"
            )
        with warehouse.engine.connect() as conn:
            print("rows stored:", conn.execute(sa.select(sa.func.count()).select_from(t.messages)).scalar())
        warehouse.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
