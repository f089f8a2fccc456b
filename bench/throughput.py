"""Backfill throughput: cxsync's load path against the thinnest loader that does the same work (the floor).

cxsync: per day window a fresh source (as each Airflow task builds one), `pipeline.load_window`, the
`Warehouse` upserts. Floor (`bench/_floor.py`): the same requests with a plain `requests` session and the same
auth, `json` parsing, a few lines of mapping and bulk INSERTs into tables with the same columns and keys,
one transaction per page. Both run side by side against one sandbox process, on SQLite and PostgreSQL, each
into a fresh database. Target: cxsync time / floor time <= 1.3.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from bench import _floor
from bench._support import ROOT, SandboxProcess, is_smoke, pg_available, pg_database, quiet_logs, scaled, verdict

TITLE = "Throughput: backfill through cxsync vs the thinnest loader (floor)"

TARGET_RATIO = 1.3
LP_PER_DAY = scaled(1000, 5)
HD_PER_DAY = scaled(1000, 5)
# CXSYNC_BENCH_DAYS and CXSYNC_BENCH_BACKENDS ("postgresql") narrow a run to what one change needs (a busy machine).
DAYS = int(os.environ.get("CXSYNC_BENCH_DAYS") or (20 if not is_smoke() else 2))
BACKENDS = {b.strip().lower() for b in (os.environ.get("CXSYNC_BENCH_BACKENDS") or "sqlite,postgresql").split(",")}
LP_MESSAGES = "20"
HD_MESSAGES_MEAN = 6
# Runs of each loader per provider and backend, which goes first alternating; the best of each counts (the work
# is the same every time: other load on the machine only ever adds time).
REPEATS = int(os.environ.get("CXSYNC_BENCH_REPEATS") or (2 if not is_smoke() else 1))

Window = tuple[datetime, datetime]


@dataclass
class Run:
    seconds: float
    cpu_seconds: float  # this process's CPU time (all threads); the sandbox and PostgreSQL are other processes
    conversations: int
    messages: int

    @property
    def per_second(self) -> float:
        return self.conversations / self.seconds

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds


def day_windows(end: datetime, days: int) -> list[Window]:
    return [(end - timedelta(days=d + 1), end - timedelta(days=d)) for d in reversed(range(days))]


def _integration(provider: str):
    from cxsync.config import Integration

    conn_id = {"liveperson": "sandbox_liveperson_main", "helpdesk": "sandbox_helpdesk_main"}[provider]
    return Integration(id=f"bench_{provider}", provider=provider, conn_id=conn_id, label="bench")


def warm_up(provider: str) -> None:
    """Import the source, its hook and Airflow's SDK and read the connection once: not part of a load."""
    from cxsync.registry import source_class

    source = source_class(provider)(_integration(provider))
    source.server_now()
    source.close()


def cxsync_backfill(provider: str, warehouse_url: str, windows: list[Window]) -> Run:
    from cxsync import pipeline
    from cxsync.registry import source_class
    from cxsync.warehouse import Warehouse

    integration = _integration(provider)
    warehouse = Warehouse.from_url(warehouse_url)
    warehouse.ensure_schema()
    warm_up(provider)
    source_type = source_class(provider)
    started, cpu = time.perf_counter(), time.process_time()
    for lo, hi in windows:
        source = source_type(integration)
        try:
            pipeline.load_window(integration, source, warehouse, pipeline.Window(lo, hi))
        finally:
            source.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    counts = warehouse.table_counts(integration.id)
    warehouse.dispose()
    return Run(seconds, cpu, counts["cx_interactions"], counts["cx_messages"])


def floor_backfill(provider: str, sandbox: SandboxProcess, warehouse_url: str, windows: list[Window]) -> Run:
    load: Callable = {"liveperson": _floor.load_liveperson, "helpdesk": _floor.load_helpdesk}[provider]
    with _floor.FloorDB.open(warehouse_url) as db:
        started, cpu = time.perf_counter(), time.process_time()
        conversations, messages = load(sandbox, db, windows)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Run(seconds, cpu, conversations, messages)


def in_child(loader: str, provider: str, sandbox: SandboxProcess, url: str, windows: list[Window]) -> Run:
    """One loader's backfill in a fresh process (bench/_throughput_child.py), timed inside it after its imports."""
    from cxsync.sources.liveperson import CONTENT_TO_RETRIEVE

    config = {
        "loader": loader,
        "provider": provider,
        "url": url,
        "windows": [(lo.isoformat(), hi.isoformat()) for lo, hi in windows],
        "base_url": sandbox.base_url,
        "connections": sandbox.connections,
        "sections": list(CONTENT_TO_RETRIEVE),
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench._throughput_child", json.dumps(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"the {loader} backfill of {provider} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    result = json.loads(line.removeprefix("RESULT "))
    return Run(result["seconds"], result["cpu"], result["conversations"], result["messages"])


def measure(
    sandbox: SandboxProcess,
    provider: str,
    backend: str,
    fresh_db: Callable[[], contextlib.AbstractContextManager[str]],
    windows: list[Window],
) -> tuple[Run, Run]:
    floors, ours = [], []
    for n in range(REPEATS):
        order = ("floor", "cxsync") if n % 2 == 0 else ("cxsync", "floor")
        for loader in order:
            with fresh_db() as url:
                (floors if loader == "floor" else ours).append(in_child(loader, provider, sandbox, url, windows))
        print(
            f"   {provider} on {backend}: floor {floors[-1].seconds:.1f} s (CPU {floors[-1].cpu_seconds:.1f} s), "
            f"cxsync {ours[-1].seconds:.1f} s (CPU {ours[-1].cpu_seconds:.1f} s)",
            flush=True,
        )

    def best(runs: list[Run]) -> Run:
        return min(runs, key=lambda r: r.seconds)

    return best(floors), best(ours)


def run() -> str:
    quiet_logs()
    options = {
        "lp_conversations_per_day": LP_PER_DAY,
        "lp_days": DAYS + 1,
        "lp_messages": LP_MESSAGES,
        "hd_tickets_per_day": HD_PER_DAY,
        "hd_days": DAYS + 1,
        "hd_messages_mean": HD_MESSAGES_MEAN,
    }
    rows: list[str] = []
    with SandboxProcess(options=options) as sandbox, tempfile.TemporaryDirectory() as tmp:
        sandbox.export()
        end = datetime.fromisoformat(sandbox.admin("GET", "/clock")["now"])
        windows = day_windows(end, DAYS)
        serial = iter(range(1_000_000))

        @contextlib.contextmanager
        def sqlite_db() -> Iterator[str]:
            yield f"sqlite:///{tmp}/run{next(serial)}.db"

        backends: list[tuple[str, Callable]] = [("SQLite", sqlite_db)] if "sqlite" in BACKENDS else []
        if "postgresql" in BACKENDS and pg_available():
            backends.append(("PostgreSQL", pg_database))
        for provider in ("liveperson", "helpdesk"):
            _floor.warm_up(sandbox, provider, windows)
        for backend, fresh_db in backends:
            for provider in ("liveperson", "helpdesk"):
                floor, ours = measure(sandbox, provider, backend, fresh_db, windows)
                if (floor.conversations, floor.messages) != (ours.conversations, ours.messages):
                    raise RuntimeError(
                        f"{provider} on {backend}: floor loaded {floor.conversations} conversations / "
                        f"{floor.messages} messages, cxsync {ours.conversations} / {ours.messages}"
                    )
                ratio = ours.seconds / floor.seconds
                rows.append(
                    f"| {provider} | {backend} | {ours.conversations:,} / {ours.messages:,} | "
                    f"{floor.seconds:.1f} s ({floor.per_second:,.0f} conv/s, {floor.messages_per_second:,.0f} msg/s)"
                    f" | {ours.seconds:.1f} s (**{ours.per_second:,.0f} conv/s, "
                    f"{ours.messages_per_second:,.0f} msg/s**) | **{ratio:.2f}** {verdict(ratio <= TARGET_RATIO)} | "
                    f"{floor.cpu_seconds:.1f} s / {ours.cpu_seconds:.1f} s |"
                )
    pg_missing = "postgresql" in BACKENDS and not any(name == "PostgreSQL" for name, _ in backends)
    pg_note = "\nPostgreSQL was not reachable at 127.0.0.1:5432: its rows are missing.\n" if pg_missing else ""
    return f"""
Target: cxsync time / floor time <= {TARGET_RATIO} for every provider and backend (wall-clock time of the whole
backfill; the two loaders run one after the other against the same sandbox, each into a fresh database, best of
{REPEATS} runs each, which one goes first alternating).

| provider | warehouse | conversations / messages | floor | cxsync | ratio | client CPU floor / cxsync |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
{pg_note}
World: LivePerson {LP_PER_DAY:,} conversations a day with {LP_MESSAGES} messages each, HelpDesk {HD_PER_DAY:,}
tickets a day (+-20 %, {HD_MESSAGES_MEAN} messages each on average), both over {DAYS} day windows; the sandbox runs in
its own process on loopback. LivePerson pages hold 100 conversations (one `conversations/search` per page);
HelpDesk lists 100 tickets a page per silo and fetches each ticket whole (`GET /v1/tickets/{{ID}}`), as cxsync
does. Client-side rate limits are off for both (`requests_per_second: 0`): this measures the load path. Before
the timed runs one request per day window warms the sandbox's search and snapshot caches, so neither loader
pays for the sandbox's first generation of the data.

The floor (`bench/_floor.py`) does the same requests with a plain `requests.Session` and the same auth, parses
with `json`, maps with a few lines per record, stores each record's JSON in `raw` as cxsync does, and bulk-inserts
(`executemany` on SQLite, `psycopg2.extras.execute_values` on PostgreSQL) into tables with the same columns and
keys, one transaction per page. It does not dedupe, validate, hash or upsert, and it does not overlap fetching
with writing: cxsync does all of that. Each loader runs in a fresh process of its own (`bench/_throughput_child.py`):
the floor's imports nothing of cxsync, Airflow or SQLAlchemy, cxsync's imports what an Airflow task does; each is
timed inside its process after its imports and, for cxsync, after one request (connection lookup, CSDS). Client
CPU is that process's CPU time (all its threads); the sandbox and PostgreSQL are other processes.
"""
