"""Incremental cost: after a 4-week backfill, a nightly run with about 1 % of conversations changed takes <= 5 %
of the backfill's time, and its requests grow with the change, not with the history.

Two sandboxes with the same daily volumes and seed but 1 and 4 weeks of history: each provider's is
backfilled completely (`pipeline.load_window` per day window, then `finish_backfill` sets the watermark), its
clock is moved on by a few hours (new conversations arrive, open ones get messages and close), and
`pipeline.load_changes` runs as the incremental DAG does. Requests are counted by the sandbox. On the 4-week
sandbox a second, larger change (a further day) shows the request count following the change.
"""

from __future__ import annotations

import tempfile
import time

from bench._support import SandboxProcess, is_smoke, quiet_logs, scaled, verdict

TITLE = "Incremental cost: a nightly run after a 4-week backfill"

TARGET_TIME_SHARE = 0.05
LP_PER_DAY = scaled(500, 10)
HD_PER_DAY = scaled(200, 10)
HISTORY_WEEKS = (1, 4) if not is_smoke() else (1, 2)
# How far the clock moves for "about 1 % changed" after 4 weeks: LivePerson's changes are mostly new
# conversations (and open ones closing), HelpDesk's tickets keep getting events for days.
CHANGE = {"liveperson": "4h", "helpdesk": "90m"}
BIGGER_CHANGE = "1d"
CONN_IDS = {"liveperson": "sandbox_liveperson_main", "helpdesk": "sandbox_helpdesk_main"}
PROVIDERS = ("liveperson", "helpdesk")


def backfill(provider: str, warehouse, weeks: int) -> float:
    from cxsync import pipeline
    from cxsync.registry import source_class

    integration = _integration(provider)
    source_type = source_class(provider)
    source = source_type(integration)
    end = source.server_now()
    source.close()
    started = time.perf_counter()
    for window in pipeline.plan_windows(end, weeks):
        source = source_type(integration)
        try:
            pipeline.load_window(integration, source, warehouse, window)
        finally:
            source.close()
    seconds = time.perf_counter() - started
    pipeline.finish_backfill(integration, warehouse, end)
    return seconds


def incremental(provider: str, warehouse) -> tuple[float, dict]:
    from cxsync import pipeline
    from cxsync.registry import source_class

    integration = _integration(provider)
    started = time.perf_counter()
    source = source_class(provider)(integration)
    try:
        result = pipeline.load_changes(integration, source, warehouse)
    finally:
        source.close()
    return time.perf_counter() - started, result


def _integration(provider: str):
    from cxsync.config import Integration

    return Integration(id=f"inc_{provider}", provider=provider, conn_id=CONN_IDS[provider], label="incremental")


def measure(weeks: int, tmp: str) -> list[dict]:
    """Both providers on one sandbox with `weeks` of history. Each incremental run covers the time since its
    own watermark, so the clock moves to each provider's change in turn (shortest first)."""
    from cxsync.warehouse import Warehouse
    from cxsync_dev.sandbox.core import parse_duration

    options = {
        "lp_conversations_per_day": LP_PER_DAY,
        "lp_days": 7 * weeks + 1,
        "lp_messages": "20",
        "hd_tickets_per_day": HD_PER_DAY,
        "hd_days": 7 * weeks + 1,
    }
    runs = []
    with SandboxProcess(options=options) as sandbox:
        sandbox.export()
        warehouses, backfills, histories = {}, {}, {}
        for provider in PROVIDERS:
            warehouses[provider] = Warehouse.from_url(f"sqlite:///{tmp}/{provider}_{weeks}.db")
            warehouses[provider].ensure_schema()
            _warm(provider)
            backfills[provider] = backfill(provider, warehouses[provider], weeks)
            histories[provider] = warehouses[provider].table_counts(_integration(provider).id)["cx_interactions"]
        steps = sorted(((parse_duration(CHANGE[p]), CHANGE[p], p) for p in PROVIDERS), key=lambda x: x[0])
        if weeks == max(HISTORY_WEEKS):
            steps += [(parse_duration(BIGGER_CHANGE), BIGGER_CHANGE, p) for p in PROVIDERS]
        moved = {p: parse_duration("0s") for p in PROVIDERS}  # clock moved since each provider's last run
        for delta, change, provider in steps:
            # Move the clock until this provider's change has passed since its last run.
            if delta > moved[provider]:
                step = delta - moved[provider]
                sandbox.advance(f"{step.total_seconds():.0f}s")
                for p in PROVIDERS:
                    moved[p] += step
            sandbox.reset_counters()
            seconds, result = incremental(provider, warehouses[provider])
            moved[provider] = parse_duration("0s")
            runs.append(
                {
                    "provider": provider,
                    "weeks": weeks,
                    "change": change,
                    "history": histories[provider],
                    "backfill_seconds": backfills[provider],
                    "seconds": seconds,
                    "requests": sandbox.requests_served(provider),
                    "changed": result["inserted"] + result["updated"],
                }
            )
        for warehouse in warehouses.values():
            warehouse.dispose()
    return runs


def _warm(provider: str) -> None:
    """Imports and the first connection lookup, outside every timed part."""
    from cxsync.registry import source_class

    source = source_class(provider)(_integration(provider))
    source.server_now()
    source.close()


def run() -> str:
    quiet_logs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        every = [r for weeks in HISTORY_WEEKS for r in measure(weeks, tmp)]
        for provider in PROVIDERS:
            runs = [r for r in every if r["provider"] == provider]
            by = {(r["weeks"], r["change"]): r for r in runs}
            long = by[(max(HISTORY_WEEKS), CHANGE[provider])]
            short = by[(min(HISTORY_WEEKS), CHANGE[provider])]
            share = long["seconds"] / long["backfill_seconds"]
            for r in runs:
                rows.append(
                    f"| {provider} | {r['weeks']} weeks: {r['history']:,} | +{r['change']}: {r['changed']:,} "
                    f"({r['changed'] / r['history']:.1%}) | {r['requests']} | {r['seconds']:.2f} s | "
                    f"{r['backfill_seconds']:.1f} s | {r['seconds'] / r['backfill_seconds']:.1%} |"
                )
            growth = long["requests"] / max(1, short["requests"])
            time_ok = share <= TARGET_TIME_SHARE
            requests_ok = growth <= 1.5  # 4x the history, about the same change: about the same requests
            rows.append(
                f"| **{provider}** | | | **{growth:.2f}x** for {max(HISTORY_WEEKS) // min(HISTORY_WEEKS)}x the "
                f"history {verdict(requests_ok)} | | | **{share:.1%}** {verdict(time_ok)} |"
            )
            print("  ", rows[-1], flush=True)
    return f"""
Targets: after a {max(HISTORY_WEEKS)}-week backfill, an incremental run with about 1 % of conversations changed takes
<= {TARGET_TIME_SHARE:.0%} of the backfill's time; its request count follows the change, not the history.

| provider | history | clock moved: changed | requests | incremental | backfill | incremental / backfill |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

"Changed" is what the run inserted or updated (new conversations, and open ones that got messages or closed).
Requests are every request the sandbox served during the run: LivePerson's CSDS lookup, the provider time, and
the search pages, which hold only conversations updated since the watermark (minus a 30-minute overlap);
HelpDesk's ticket list by `updatedAt`, newest first, read down to the watermark (minus 10 minutes), and one
`GET` per listed ticket. Volumes: LivePerson {LP_PER_DAY} conversations a day, HelpDesk {HD_PER_DAY} tickets a day.
"""
