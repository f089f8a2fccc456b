"""Backfill throughput: cxsync's load path against the thinnest loader that does the same work (the floor).

cxsync: per day window a fresh source (as each Airflow task builds one), `pipeline.load_window`, the
`Warehouse` upserts. Floor (`bench/_floor.py`): the same requests with a plain `requests` session and the same
auth, `json` parsing, a few lines of mapping and bulk INSERTs into tables with the same columns and keys,
one transaction per page. Both run side by side against one sandbox process, on SQLite and PostgreSQL.
Target: cxsync time / floor time <= 1.3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bench import _floor
from bench._support import SandboxProcess, is_smoke, pg_available, pg_database, quiet_logs, scaled, verdict

TITLE = "Throughput: backfill through cxsync vs the thinnest loader (floor)"

TARGET_RATIO = 1.3
LP_PER_DAY = scaled(1000, 5)
HD_PER_DAY = scaled(1000, 5)
DAYS = 20 if not is_smoke() else 2
LP_MESSAGES = "20"
HD_MESSAGES_MEAN = 6
# Runs of each loader per provider and backend; the median counts (the first run also warms the sandbox).
REPEATS = 1


@dataclass
class Run:
    seconds: float
    conversations: int
    messages: int

    @property
    def per_second(self) -> float:
        return self.conversations / self.seconds

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds


def day_windows(end: datetime, days: int) -> list[tuple[datetime, datetime]]:
    return [(end - timedelta(days=d + 1), end - timedelta(days=d)) for d in reversed(range(days))]


def cxsync_backfill(provider: str, warehouse_url: str, windows: list[tuple[datetime, datetime]]) -> Run:
    from cxsync import pipeline
    from cxsync.config import Integration
    from cxsync.registry import source_class
    from cxsync.warehouse import Warehouse

    conn_id = {"liveperson": "liveperson_main", "helpdesk": "helpdesk_main"}[provider]
    integration = Integration(id=f"bench_{provider}", provider=provider, conn_id=conn_id, label="bench")
    warehouse = Warehouse.from_url(warehouse_url)
    warehouse.ensure_schema()
    # Import the source, its hook and Airflow's SDK and read the connection once: not part of a load.
    source_type = source_class(provider)
    warm = source_type(integration)
    warm.server_now()
    warm.close()
    started = time.perf_counter()
    for lo, hi in windows:
        source = source_type(integration)
        try:
            pipeline.load_window(integration, source, warehouse, pipeline.Window(lo, hi))
        finally:
            source.close()
    seconds = time.perf_counter() - started
    counts = warehouse.table_counts(integration.id)
    warehouse.dispose()
    return Run(seconds, counts["cx_interactions"], counts["cx_messages"])


def floor_backfill(
    provider: str, sandbox: SandboxProcess, warehouse_url: str, windows: list[tuple[datetime, datetime]]
) -> Run:
    load: Callable = {"liveperson": _floor.load_liveperson, "helpdesk": _floor.load_helpdesk}[provider]
    with _floor.FloorDB.open(warehouse_url) as db:
        started = time.perf_counter()
        conversations, messages = load(sandbox, db, windows)
        seconds = time.perf_counter() - started
    return Run(seconds, conversations, messages)


def measure(
    sandbox: SandboxProcess,
    provider: str,
    backend: str,
    url_for: Callable[[str], str],
    windows: list[tuple[datetime, datetime]],
) -> tuple[Run, Run]:
    floors, ours = [], []
    for n in range(REPEATS):
        floors.append(floor_backfill(provider, sandbox, url_for(f"floor_{provider}_{n}"), windows))
        ours.append(cxsync_backfill(provider, url_for(f"cxsync_{provider}_{n}"), windows))
        print(
            f"   {provider} on {backend}: floor {floors[-1].seconds:.1f} s, cxsync {ours[-1].seconds:.1f} s", flush=True
        )
    pick = lambda runs: sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]  # noqa: E731
    return pick(floors), pick(ours)


def run() -> str:
    import tempfile

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
    ratios: dict[tuple[str, str], float] = {}
    with SandboxProcess(options=options) as sandbox, tempfile.TemporaryDirectory() as tmp:
        sandbox.export()
        end = datetime.fromisoformat(sandbox.admin("GET", "/clock")["now"])
        windows = day_windows(end, DAYS)
        backends: list[tuple[str, Callable]] = [("SQLite", lambda name: f"sqlite:///{tmp}/{name}.db")]
        pg = pg_database() if pg_available() else None
        if pg is not None:
            pg_url = pg.__enter__()
            backends.append(("PostgreSQL", lambda name: pg_url))
        try:
            for backend, url_for in backends:
                for provider in ("liveperson", "helpdesk"):
                    floor, ours = measure(sandbox, provider, backend, url_for, windows)
                    if (floor.conversations, floor.messages) != (ours.conversations, ours.messages):
                        raise RuntimeError(
                            f"{provider} on {backend}: floor loaded {floor.conversations} conversations / "
                            f"{floor.messages} messages, cxsync {ours.conversations} / {ours.messages}"
                        )
                    ratio = ours.seconds / floor.seconds
                    ratios[(provider, backend)] = ratio
                    rows.append(
                        f"| {provider} | {backend} | {ours.conversations:,} / {ours.messages:,} | "
                        f"{floor.seconds:.1f} s ({floor.per_second:,.0f} conv/s, {floor.messages_per_second:,.0f} "
                        f"msg/s) | {ours.seconds:.1f} s (**{ours.per_second:,.0f} conv/s, "
                        f"{ours.messages_per_second:,.0f} msg/s**) | **{ratio:.2f}** {verdict(ratio <= TARGET_RATIO)} |"
                    )
        finally:
            if pg is not None:
                pg.__exit__(None, None, None)
    pg_note = "" if pg is not None else "\nPostgreSQL was not reachable at 127.0.0.1:5432: its rows are missing.\n"
    return f"""
Target: cxsync time / floor time <= {TARGET_RATIO} for every provider and backend.

| provider | warehouse | conversations / messages | floor | cxsync | ratio |
|---|---|---|---|---|---|
{chr(10).join(rows)}
{pg_note}
World: LivePerson {LP_PER_DAY:,} conversations a day with {LP_MESSAGES} messages each, HelpDesk {HD_PER_DAY:,}
tickets a day (+-20 %, {HD_MESSAGES_MEAN} messages each on average), both over {DAYS} day windows; the sandbox runs in
its own process on loopback. LivePerson pages hold 100 conversations (one `conversations/search` per page);
HelpDesk lists 100 tickets a page per silo and fetches each ticket whole (`GET /v1/tickets/{{ID}}`), as cxsync
does. Client-side rate limits are off for both (`requests_per_second: 0`): this measures the load path.

The floor (`bench/_floor.py`) does the same requests with a plain `requests.Session` and the same auth, parses
with `json`, maps with a few lines per record, stores each record's JSON in `raw` as cxsync does, and bulk-inserts
(`executemany` on SQLite, `psycopg2.extras.execute_values` on PostgreSQL) into tables with the same columns and
keys, one transaction per page. It does not dedupe, validate, hash or upsert: that is what cxsync adds.
"""
