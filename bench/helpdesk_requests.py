"""HelpDesk request count: requests per ticket of a 1-week backfill, for list rows that are whole and cut short.

Whether a ticket list row's `events` are ever cut short is not documented, so cxsync uses a row as the ticket only
when the row proves itself whole (its events run from `createdAt` to `updatedAt`, its newest message is at
`lastMessageAt`) and the run's first such rows matched their tickets; every other ticket is fetched by ID
(`cxsync.sources.helpdesk`). Three sandboxes, one backfill each (7 day windows, one source per window, as the
backfill DAG runs them): rows with every event (`--hd-list-events -1`), rows with the newest event only (`1`: every
ticket with more than one event is cut short) and the sandbox's default (the newest 3: short tickets whole, long
ones cut). Requests are counted by the sandbox, per endpoint.
"""

from __future__ import annotations

import tempfile
from datetime import datetime

from bench._support import SandboxProcess, quiet_logs, scaled, verdict
from bench.throughput import cxsync_backfill, day_windows

TITLE = "HelpDesk requests per ticket: list rows whole and cut short"

TICKETS_PER_DAY = scaled(370, 10)
DAYS = 7
PROVIDER = "helpdesk"
# Whole rows: list pages plus the run's check of its first rows, far below one request per ticket.
TARGET_WHOLE = 0.1
# Cut rows: one fetch per ticket plus the list pages; never fewer fetches than tickets (no event may be lost).
SCENARIOS = [
    ("whole: every row carries every event (`--hd-list-events -1`)", -1),
    ("cut short: every row carries only its newest event (`--hd-list-events 1`)", 1),
    ("mixed: the newest 3 events (the sandbox's default; short tickets whole)", 3),
]


def measure(list_events: int, tmp: str, name: str) -> dict:
    options = {"hd_tickets_per_day": TICKETS_PER_DAY, "hd_days": DAYS + 1, "hd_list_events": list_events}
    with SandboxProcess(options=options) as sandbox:
        sandbox.export()
        end = datetime.fromisoformat(sandbox.admin("GET", "/clock")["now"])
        sandbox.reset_counters()
        run = cxsync_backfill(PROVIDER, f"sqlite:///{tmp}/{name}.db", day_windows(end, DAYS))
        served = sandbox.counters()["requests"][PROVIDER]["by_endpoint"]
    count = {endpoint: sum(by_status.values()) for endpoint, by_status in served.items()}
    return {
        "tickets": run.conversations,
        "messages": run.messages,
        "lists": count.get("helpdesk_tickets", 0),
        "fetches": count.get("helpdesk_ticket", 0),
        "total": sum(count.values()),
        "seconds": run.seconds,
    }


def run() -> str:
    quiet_logs()
    rows = []
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (label, list_events) in enumerate(SCENARIOS):
            result = measure(list_events, tmp, f"s{n}")
            results[list_events] = result
            per_ticket = result["total"] / max(1, result["tickets"])
            rows.append(
                f"| {label} | {result['tickets']:,} | {result['lists']:,} | {result['fetches']:,} | "
                f"{result['total']:,} | **{per_ticket:.3f}** | {result['seconds']:.1f} s |"
            )
            print("  ", rows[-1], flush=True)
    whole, cut = results[-1], results[1]
    whole_ok = whole["total"] / max(1, whole["tickets"]) <= TARGET_WHOLE
    cut_ok = cut["fetches"] >= cut["tickets"]
    return f"""
Targets: with whole rows, at most {TARGET_WHOLE} requests per ticket: {verdict(whole_ok)}; with rows cut short,
every ticket fetched by ID (no event lost for a request saved): {verdict(cut_ok)}.

| list rows | tickets | list requests | ticket fetches | requests | per ticket | backfill |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Workload: a HelpDesk backfill of {DAYS} day windows, {TICKETS_PER_DAY} tickets a day (+-20 %), both silos, one
source per window (each window checks its own first rows against their tickets: a few fetches per window even
when every row is whole). Before this change every ticket was fetched by ID whatever its row carried (the
"cut short" row's count, about one request per ticket, e.g. 2,638 requests for 2,601 tickets). Every load is
checked event for event against the sandbox's ground truth by the tests (`tests/sources/test_helpdesk.py`), not
here.
"""
