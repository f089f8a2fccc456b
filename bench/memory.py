"""Memory: the peak RSS of a 4-week backfill over that of a 1-week backfill is <= 1.15.

Each backfill runs in a fresh process (`bench/_memory_child.py`) that loads every day window of the period
through `pipeline.load_window`, as the backfill DAG's tasks do, one after the other in the same process (so a
leak across windows would show too). Peak RSS is the process's `ru_maxrss`; its baseline is the RSS once
imports are done and the first request answered. Pages are streamed: one page is written while the next
is fetched (read-ahead of one page), and nothing holds a whole window.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from bench._support import ROOT, SandboxProcess, is_smoke, scaled, verdict

TITLE = "Memory: peak RSS of a 4-week backfill vs a 1-week backfill"

TARGET_RATIO = 1.15
LP_PER_DAY = scaled(500, 5)
HD_PER_DAY = scaled(200, 5)
WEEKS = (1, 4) if not is_smoke() else (1, 2)


def child(provider: str, weeks: int, url: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench._memory_child", provider, str(weeks), url],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {weeks}-week {provider} backfill failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def run() -> str:
    days = 7 * max(WEEKS) + 1
    options = {
        "lp_conversations_per_day": LP_PER_DAY,
        "lp_days": days,
        "lp_messages": "20",
        "hd_tickets_per_day": HD_PER_DAY,
        "hd_days": days,
    }
    rows = []
    with SandboxProcess(options=options) as sandbox, tempfile.TemporaryDirectory() as tmp:
        sandbox.export()  # children inherit the AIRFLOW_CONN_* variables
        for provider in ("liveperson", "helpdesk"):
            results = {w: child(provider, w, f"sqlite:///{tmp}/{provider}_{w}.db") for w in WEEKS}
            short, long = results[WEEKS[0]], results[WEEKS[-1]]
            ratio = long["peak_mb"] / short["peak_mb"]
            growth_short = short["rss_highest_in_load_mb"] - short["rss_before_load_mb"]
            growth_long = long["rss_highest_in_load_mb"] - long["rss_before_load_mb"]
            for w in WEEKS:
                r = results[w]
                rows.append(
                    f"| {provider} | {w} | {r['interactions']:,} / {r['messages']:,} | {r['seconds']:.0f} s | "
                    f"{r['peak_mb']:.0f} MB | {r['rss_before_load_mb']:.0f} MB | {r['rss_highest_in_load_mb']:.0f} MB "
                    f"(+{r['rss_highest_in_load_mb'] - r['rss_before_load_mb']:.0f} MB) |"
                )
            rows.append(
                f"| **{provider}: {WEEKS[-1]} weeks / {WEEKS[0]} week** | | "
                f"{long['interactions'] / max(1, short['interactions']):.1f}x the data | | "
                f"**{ratio:.2f}** {verdict(ratio <= TARGET_RATIO)} | | "
                f"+{growth_long:.0f} MB vs +{growth_short:.0f} MB |"
            )
            print("  ", rows[-1], flush=True)
    return f"""
Target: peak RSS of a {WEEKS[-1]}-week backfill / peak RSS of a {WEEKS[0]}-week backfill <= {TARGET_RATIO}.

| provider | weeks | interactions / messages | load time | peak RSS (ru_maxrss) | RSS before load | highest in load |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Volumes: LivePerson {LP_PER_DAY} conversations a day with 20 messages each (pages of 100 conversations, about
1.1 MB of JSON each); HelpDesk {HD_PER_DAY} tickets a day, each fetched whole. Peak RSS is the process's lifetime
peak, start-up included (Airflow's SDK, SQLAlchemy, the source, one answered request): the target's measure. The
last column samples the RSS every 10 ms during the load itself: what the load holds at its peak (a few pages:
one being written, one waiting, one being fetched and prepared), which does not grow with the period.
"""
