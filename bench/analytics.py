"""Conversation analytics: a full run over 100,000 interactions with 2,000,000 messages, the incremental run after
1 % of them changed, and the peak RSS of a full run over 1 week against 4 weeks of data.

Synthetic conversations (customer, agent, bot, system messages and private notes, 10 to 30 messages each, about
20 on average) are bulk-loaded straight into a SQLite warehouse (the embedded default) with `executemany` in
the stored formats. Each analytics run happens in a fresh process (`bench/_analytics_child.py`) so that its
peak RSS (`ru_maxrss`) is its own. 1 % of the interactions then get a new message text and content hash (what
a load of changed conversations does) and the incremental run recomputes them and their agent days.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from bench._support import ROOT, is_smoke, scaled, verdict

TITLE = "Conversation analytics: 100,000 interactions with 2,000,000 messages"

INTEGRATION = "lp_bench"
PER_WEEK = scaled(25_000, 50)  # interactions; 4 weeks = 100,000 with about 2,000,000 messages
WEEKS = (1, 4) if not is_smoke() else (1, 2)
AGENTS = 200
CHANGED_SHARE = 0.01
TARGET_FULL_SECONDS = 60.0
TARGET_INCREMENTAL_SHARE = 0.05
TARGET_RSS_RATIO = 1.10
START = datetime(2026, 2, 1, tzinfo=UTC)
WORDS = [
    "order",
    "parcel",
    "refund",
    "delivery",
    "account",
    "password",
    "invoice",
    "please",
    "thanks",
    "hello",
    "when",
    "where",
    "why",
    "help",
    "broken",
    "late",
    "again",
    "still",
    "waiting",
    "manager",
    "today",
    "tomorrow",
    "address",
    "card",
    "payment",
    "app",
]
CHUNK = 5_000  # interactions generated and inserted at once
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def synthetic(conn: sqlite3.Connection, interactions: int, seed: int = 7) -> int:
    """Insert `interactions` conversations spread over the weeks they cover, generated with numpy a chunk at a
    time in the stored formats; returns the number of messages."""
    rng = np.random.default_rng(seed)
    pool = [" ".join(rng.choice(WORDS, size=rng.integers(2, 15))) for _ in range(2000)]
    span_ns = int(timedelta(weeks=interactions / PER_WEEK).total_seconds() * 1e9)
    base = np.datetime64(START.replace(tzinfo=None), "ns")
    loaded = START.strftime(SQLITE_TIME)
    total = 0
    for first in range(0, interactions, CHUNK):
        numbers = np.arange(first, min(first + CHUNK, interactions))
        counts = rng.integers(10, 31, len(numbers))
        owner = np.repeat(np.arange(len(numbers)), counts)
        begins = np.concatenate(([0], np.cumsum(counts)[:-1]))
        seq = np.arange(len(owner)) - begins[owner] + 1
        deltas = rng.choice(np.array([0, 5, 20, 45, 90, 200]) * 10**9, len(owner))
        elapsed = np.cumsum(deltas)
        elapsed -= (elapsed - deltas)[begins][owner]  # restart the clock for every conversation
        starts = base + (numbers / interactions * span_ns).astype(np.int64).astype("timedelta64[ns]")
        sent = starts[owner] + elapsed.astype("timedelta64[ns]")
        roll = rng.random(len(owner))
        roll[seq == 1] = 0  # every conversation starts with the customer
        kind = np.select(
            [roll < 0.45, roll < 0.85, roll < 0.92, roll < 0.96], ["customer", "agent", "bot", "agent"], "system"
        )
        private = ((roll >= 0.92) & (roll < 0.96)).astype(int)
        agents = np.array([f"agent-{a:03d}" for a in range(AGENTS)], dtype=object)
        agent, second = agents[rng.integers(0, AGENTS, len(numbers))], agents[rng.integers(0, AGENTS, len(numbers))]
        sender = np.where(roll < 0.45, "cust", np.where(roll < 0.8, agent[owner], second[owner]))
        sender = np.where(kind == "bot", "bot-1", np.where(kind == "system", None, sender))
        text = np.array(pool, dtype=object)[rng.integers(0, len(pool), len(owner))]
        ids = np.array([f"conv-{n:08d}" for n in numbers], dtype=object)
        last = sent[begins + counts - 1]
        closed = rng.random(len(numbers)) < 0.9
        ended = np.where(closed, _text(last + np.timedelta64(120, "s")), None)
        conn.executemany(
            "INSERT INTO cx_interactions (integration_id, interaction_id, provider, status, started_at, ended_at, "
            "updated_at, agent_id, message_count, loaded_at, content_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            zip(
                [INTEGRATION] * len(numbers),
                ids.tolist(),
                ["liveperson"] * len(numbers),
                np.where(closed, "closed", "open").tolist(),
                _text(starts).tolist(),
                ended.tolist(),
                _text(last).tolist(),
                agent.tolist(),
                counts.tolist(),
                [loaded] * len(numbers),
                [f"{n:064x}" for n in numbers],
                strict=True,
            ),
        )
        conn.executemany(
            "INSERT INTO cx_messages (integration_id, interaction_id, message_id, seq, sent_at, sender_type, "
            "sender_id, text, is_private, message_type) VALUES (?,?,?,?,?,?,?,?,?,?)",
            zip(
                [INTEGRATION] * len(owner),
                ids[owner].tolist(),
                [f"m{q:03d}" for q in seq.tolist()],
                seq.tolist(),
                _text(sent).tolist(),
                kind.tolist(),
                sender.tolist(),
                text.tolist(),
                private.tolist(),
                ["TEXT_PLAIN"] * len(owner),
                strict=True,
            ),
        )
        total += len(owner)
    conn.commit()
    return total


def _text(times: np.ndarray) -> np.ndarray:
    """datetime64 values in SQLAlchemy's SQLite format (`YYYY-MM-DD HH:MM:SS.ffffff`)."""
    return np.char.replace(np.datetime_as_string(times, unit="us"), "T", " ").astype(object)


def change_some(conn: sqlite3.Connection, share: float) -> int:
    """What a load of changed conversations leaves: a message's text and the interaction's content hash."""
    step = round(1 / share)
    ids = [row[0] for row in conn.execute("SELECT interaction_id FROM cx_interactions ORDER BY interaction_id")][::step]
    conn.executemany(
        "UPDATE cx_messages SET text = text || ' escalate to a manager now' "
        "WHERE integration_id = ? AND interaction_id = ? AND seq = 1",
        [(INTEGRATION, i) for i in ids],
    )
    conn.executemany(
        "UPDATE cx_interactions SET content_hash = 'changed' || interaction_id WHERE integration_id = ? "
        "AND interaction_id = ?",
        [(INTEGRATION, i) for i in ids],
    )
    conn.commit()
    return len(ids)


def child(url: str, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench._analytics_child", url, INTEGRATION, mode],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {mode} analytics run failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def prepare(path: str, weeks: int) -> tuple[int, int, float]:
    """A warehouse file with `weeks` weeks of conversations: (interactions, messages, seconds to load)."""
    from cxsync.warehouse import Warehouse

    warehouse = Warehouse.from_url(f"sqlite:///{path}")
    warehouse.ensure_schema()
    warehouse.dispose()
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    interactions = PER_WEEK * weeks
    messages = synthetic(conn, interactions)
    conn.execute("ANALYZE")
    conn.close()
    return interactions, messages, time.perf_counter() - started


def run() -> str:
    rows = []
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for weeks in WEEKS:
            path = f"{tmp}/analytics_{weeks}w.db"
            interactions, messages, load_seconds = prepare(path, weeks)
            url = f"sqlite:///{path}"
            full = child(url, "full")
            rerun = child(url, "incremental")
            conn = sqlite3.connect(path)
            changed = change_some(conn, CHANGED_SHARE)
            conn.close()
            incremental = child(url, "incremental")
            results[weeks] = full
            share = incremental["seconds"] / full["seconds"]
            if full["interactions_computed"] != interactions or incremental["interactions_computed"] != changed:
                raise RuntimeError(f"computed {full} / {incremental}, expected {interactions} / {changed} interactions")
            if rerun["interactions_computed"] != 0:
                raise RuntimeError(f"a re-run with nothing changed computed {rerun['interactions_computed']}")
            print(
                f"   {weeks} week(s): full {full['seconds']:.1f} s, incremental {incremental['seconds']:.2f} s",
                flush=True,
            )
            incremental_cell = (
                f"{changed:,} interactions, {incremental['agent_days_computed']:,} agent days: "
                f"**{incremental['seconds']:.2f} s** (CPU {incremental['cpu_seconds']:.2f} s; {share:.1%} of full) "
                f"{verdict(share < TARGET_INCREMENTAL_SHARE)}"
            )
            rows.append(
                f"| {weeks} | {interactions:,} / {messages:,} | {load_seconds:.0f} s | **{full['seconds']:.1f} s** "
                f"(CPU {full['cpu_seconds']:.1f} s; {messages / full['seconds']:,.0f} messages/s) | "
                f"{full['peak_mb']:.0f} MB | "
                f"{rerun['seconds']:.2f} s | {incremental_cell} |"
            )
    big, small = results[WEEKS[-1]], results[WEEKS[0]]
    ratio = big["peak_mb"] / small["peak_mb"]
    return f"""
Targets: the full run over {PER_WEEK * WEEKS[-1]:,} interactions under {TARGET_FULL_SECONDS:.0f} s; the incremental
run after a {CHANGED_SHARE:.0%} change under {TARGET_INCREMENTAL_SHARE:.0%} of the full run; peak RSS of a full
run over {WEEKS[-1]} weeks / over {WEEKS[0]} week <= {TARGET_RSS_RATIO}.

| weeks | interactions / messages | bulk load | full run | peak RSS (full) | re-run, nothing changed | \
incremental after {CHANGED_SHARE:.0%} changed |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

- Full run over {WEEKS[-1]} weeks: **{big["seconds"]:.1f} s** {verdict(big["seconds"] < TARGET_FULL_SECONDS)}
- Peak RSS, {WEEKS[-1]} weeks / {WEEKS[0]} week: {big["peak_mb"]:.0f} MB / {small["peak_mb"]:.0f} MB = **{ratio:.2f}**
  {verdict(ratio <= TARGET_RSS_RATIO)}

Warehouse: SQLite (the embedded default), {AGENTS} agents, batches of
{_batch_size():,} interactions (`settings.ANALYTICS_BATCH_INTERACTIONS`). Each run is `run_analytics` in a fresh
process; its time includes reading the messages, computing, writing the metrics and recomputing the agent days.
Times are wall-clock (the targets' measure); the CPU time beside each is the run's own user + system time, which
says what the run costs when other work shares the machine (see the load average above).
"""


def _batch_size() -> int:
    from cxsync import settings

    return settings.ANALYTICS_BATCH_INTERACTIONS
