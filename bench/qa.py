"""The QA layer on PostgreSQL: matching 5,000 provider agents against 5,000 staff, and building a per-agent QA
list from 1,000,000 interactions.

Synthetic rows are bulk-loaded with COPY into a scratch database (not timed). Each measured step runs in a
fresh process (`bench/_qa_child.py`) doing exactly what its DAG task does, so its time and peak RSS are the
task's own: matching loads the staff file into `cx_staff`, matches and upserts `cx_agent_matches`; the list
queries its population in SQL (period, status, message counts per side, exclusion of earlier lists), samples
3 per staff member with pandas, writes `cx_qa_lists` / `cx_qa_list_items` and exports both CSV files.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench._support import ROOT, pg_available, pg_database, scaled, verdict

TITLE = "QA layer: agent matching and QA list building on PostgreSQL"

AGENTS = scaled(5_000, 50)
STAFF = scaled(5_000, 50)
INTERACTIONS = scaled(1_000_000, 2_000)
LIST_AGENTS = scaled(2_000, 20)  # agents (each matched to one staff member) the interactions are spread over
DAYS = 90  # the interactions end over this many days before the run
PRIOR_ITEMS = scaled(20_000, 20)  # listed by an earlier run within the exclusion window
RUN_AT = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
TARGET_MATCHING_SECONDS = 5.0
TARGET_LIST_SECONDS = 30.0
TARGET_PEAK_RSS_MB = 1024.0
COPY_CHUNK_ROWS = 200_000


def bench_list():
    from cxsync.qa.lists_config import Filters, Period, QaList

    return QaList(
        id="bench_weekly",
        type="random",
        period=Period(7, "days"),
        per_agent=3,
        filters=Filters(status=("closed",), min_agent_messages=1, min_customer_messages=1),
        exclude_listed_within_days=30,
        evaluators=("s-0000001", "s-0000002", "s-0000003"),
    )


def _copy(raw_conn, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
    """COPY in chunks: the loader's own memory stays small whatever the volume."""

    def chunks() -> Iterator[io.StringIO]:
        buffer, n = io.StringIO(), 0
        for row in rows:
            buffer.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")
            n += 1
            if n == COPY_CHUNK_ROWS:
                buffer.seek(0)
                yield buffer
                buffer, n = io.StringIO(), 0
        buffer.seek(0)
        yield buffer

    with raw_conn.cursor() as cur:
        for chunk in chunks():
            cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", chunk)


def matching_data(engine: sa.Engine, staff_csv: Path) -> None:
    """5,000 agents of two integrations; staff found by external id, e-mail (upper-case), accented name, or not
    at all; a few bots, deleted agents and names two staff members share."""
    now = RUN_AT.isoformat()
    lines = ["staff_id,name,email,team,role,active,external_ids"]
    agents = []
    for n in range(max(AGENTS, STAFF)):
        integration = "lp_main" if n % 2 else "hd_main"
        kind = n % 10
        if n < STAFF:
            external = f"{integration}:a{n}" if kind == 0 else ""
            name = f"Agent Núñez {n}" if kind in (3, 4) else f"Person {n}"
            if kind == 5 and n + 1 < STAFF:
                name = f"Shared Name {n // 10}"  # and n+1 below: two staff, one name
            if kind == 6:
                name = f"Shared Name {n // 10}"
            lines.append(f"s-{n:07d},{name},person{n}@acme.example,Team {n % 25},agent,true,{external}")
        if n < AGENTS:
            email = f"PERSON{n}@ACME.EXAMPLE" if kind in (1, 2) else f"x{n}@provider.example"
            display = f"agent nunez {n}" if kind in (3, 4) else f"Shared Name {n // 10}" if kind == 5 else f"A {n}"
            role = "bot" if kind == 7 and n % 100 == 7 else "agent"
            agents.append((integration, f"a{n}", display, email, role, "true", "true" if n % 50 == 9 else "false"))
    staff_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw = engine.raw_connection()
    try:
        rows = ((i, a, d, e, r, en, de, now, now, "{}") for i, a, d, e, r, en, de in agents)
        cols = ["integration_id", "agent_id", "display_name", "email", "role", "is_enabled", "is_deleted"]
        _copy(raw, "cx_agents", [*cols, "first_seen_at", "last_synced_at", "raw"], rows)
        raw.commit()
    finally:
        raw.close()


def list_data(engine: sa.Engine) -> None:
    """INTERACTIONS interactions over DAYS days of LIST_AGENTS matched agents, two messages each (a seventh with no
    agent reply, an eleventh still open); PRIOR_ITEMS of last week listed by an earlier run."""
    span = timedelta(days=DAYS)
    step = span / INTERACTIONS
    first = RUN_AT - span

    def interactions():
        for n in range(INTERACTIONS):
            ended = first + step * n
            status = "open" if n % 11 == 0 else "closed"
            started, ended_text = (ended - timedelta(minutes=12)).isoformat(), ended.isoformat()
            yield (
                "lp_main", f"c{n:08d}", "liveperson", "messaging", status, started, ended_text, ended_text,
                f"a{n % LIST_AGENTS}", f"cust{n}", 2, RUN_AT.isoformat(), "0" * 64,
            )  # fmt: skip

    def messages():
        for n in range(INTERACTIONS):
            yield ("lp_main", f"c{n:08d}", "m1", 1, "customer", "false")
            yield ("lp_main", f"c{n:08d}", "m2", 2, "customer" if n % 7 == 0 else "agent", "false")

    icols = [
        "integration_id", "interaction_id", "provider", "channel", "status", "started_at", "ended_at", "updated_at",
        "agent_id", "customer_id", "message_count", "loaded_at", "content_hash",
    ]  # fmt: skip
    mcols = ["integration_id", "interaction_id", "message_id", "seq", "sender_type", "is_private"]
    now = RUN_AT.isoformat()
    raw = engine.raw_connection()
    try:
        _copy(raw, "cx_interactions", icols, interactions())
        _copy(raw, "cx_messages", mcols, messages())
        _copy(
            raw,
            "cx_agent_matches",
            ["integration_id", "agent_id", "staff_id", "method", "confidence", "matched_at", "updated_at"],
            (("lp_main", f"a{n}", f"s-{n:07d}", "email", 0.95, now, now) for n in range(LIST_AGENTS)),
        )
        _copy(
            raw,
            "cx_staff",
            ["staff_id", "name", "is_active", "in_file", "updated_at"],
            ((f"s-{n:07d}", f"Person {n}", "true", "true", now) for n in range(LIST_AGENTS)),
        )
        earlier = RUN_AT - timedelta(days=3)
        _copy(
            raw,
            "cx_qa_lists",
            ["list_run_id", "list_id", "run_at", "period_start", "period_end", "seed", "population_size",
             "population_hash", "item_count", "shortfall", "definition"],
            [("earlier-run", "earlier", earlier.isoformat(), (earlier - timedelta(days=7)).isoformat(),
              earlier.isoformat(), 1, PRIOR_ITEMS, "0" * 64, PRIOR_ITEMS, "{}", "{}")],
        )  # fmt: skip
        last_week = INTERACTIONS - INTERACTIONS * 7 // DAYS
        _copy(
            raw,
            "cx_qa_list_items",
            ["list_run_id", "integration_id", "interaction_id", "staff_id", "agent_id", "rank"],
            (
                ("earlier-run", "lp_main", f"c{n:08d}", f"s-{n % LIST_AGENTS:07d}", f"a{n % LIST_AGENTS}", i + 1)
                for i, n in enumerate(range(last_week, last_week + PRIOR_ITEMS))
            ),
        )
        raw.commit()
        raw.set_isolation_level(0)  # VACUUM runs outside a transaction
        with raw.cursor() as cur:
            for table in ("cx_interactions", "cx_messages", "cx_agent_matches", "cx_qa_list_items"):
                cur.execute(f"VACUUM ANALYZE {table}")
    finally:
        raw.close()


def child(*args: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench._qa_child", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench._qa_child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> str:
    from cxsync.warehouse import Warehouse

    if not pg_available():
        return "PostgreSQL was not reachable at 127.0.0.1:5432: the QA layer was not measured."
    with tempfile.TemporaryDirectory() as tmp, pg_database("cxsync_bench_qa") as url:
        os.environ["CXSYNC_QA_EXPORT_DIR"] = str(Path(tmp) / "exports")
        warehouse = Warehouse.from_url(url)
        warehouse.ensure_schema()
        staff_csv = Path(tmp) / "staff.csv"
        matching_data(warehouse.engine, staff_csv)
        matching = child("matching", url, str(staff_csv))
        with warehouse.engine.begin() as conn:  # the list's world: its own agents, staff and matches
            for table in ("cx_agent_matches", "cx_staff", "cx_agents"):
                conn.execute(sa.text(f"DELETE FROM {table}"))
        list_data(warehouse.engine)
        warehouse.dispose()
        qa_list = child("list", url, RUN_AT.isoformat())
        os.environ.pop("CXSYNC_QA_EXPORT_DIR", None)

    by_method = ", ".join(f"{k} {v}" for k, v in matching["by_method"].items() if v)
    rss_ok = max(matching["peak_rss_mb"], qa_list["peak_rss_mb"]) < TARGET_PEAK_RSS_MB
    rows = [
        (
            "agent matching (staff file + match + upsert)",
            f"{AGENTS:,} agents x {STAFF:,} staff",
            matching,
            TARGET_MATCHING_SECONDS,
        ),
        (
            "per-agent QA list (SQL population, pandas sample, write, CSV export)",
            f"{INTERACTIONS:,} interactions, {2 * INTERACTIONS:,} messages",
            qa_list,
            TARGET_LIST_SECONDS,
        ),
    ]
    table = "\n".join(
        f"| {step} | {volume} | {r['seconds']:.2f} s | {r['peak_rss_mb']:.0f} MB | "
        f"< {target:.0f} s: {verdict(r['seconds'] < target)} |"
        for step, volume, r, target in rows
    )
    return f"""
| step | volume | time | peak RSS (process) | Target |
|---|---|---|---|---|
{table}

- Peak RSS of both processes (imports included): target < {TARGET_PEAK_RSS_MB:.0f} MB: {verdict(rss_ok)}.
- Matching outcome: {by_method}.
- The list: {LIST_AGENTS:,} staff members, 3 each from the last 7 days of {DAYS} (closed, at least one agent and one
  customer message, nothing an earlier run listed within 30 days: {PRIOR_ITEMS:,} excluded rows):
  population {qa_list["population"]:,}, {qa_list["items"]:,} items, {qa_list["short"]} short of the quota.
- The list's phases: {", ".join(f"{k} {v:.2f} s" for k, v in qa_list["phases"].items())}.
"""
