"""How fast the sandbox serves a msgHist page of 100 LivePerson conversations with 20 messages each.

Measured at the client over loopback with `requests` (one keep-alive session, OAuth 1.0 signed, whole body
read): the sandbox must never be the bottleneck of a pipeline benchmark. Target: well under 50 ms median.
"""

from __future__ import annotations

import json
import statistics
import time

import requests
from requests_oauthlib import OAuth1

from bench._support import is_smoke
from cxsync_dev.sandbox.core import Sandbox
from cxsync_dev.sandbox.liveperson_auth import MAIN_KEY
from cxsync_dev.sandbox.server import SandboxServer

TITLE = "Sandbox: a LivePerson page of 100 conversations x 20 messages"

SMOKE = is_smoke()  # tests/bench: a toy size, only to keep the code running
CONVERSATIONS_PER_DAY = 1000 if not SMOKE else 100
DAYS = 30 if not SMOKE else 10
COLD_PAGES = 250 if not SMOKE else 3
WARM_REPEATS = 250 if not SMOKE else 3
NOW = "2025-03-14T09:30:00+00:00"
NOW_MS = 1_741_944_600_000
DAY_MS = 86_400_000


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def _main_messages(record: dict) -> int:
    survey = f"{record['info']['conversationId']}-survey"
    return sum(1 for m in record["messageRecords"] if m.get("dialogId") != survey)


def run() -> str:
    sandbox = Sandbox(
        seed=1,
        now=NOW,
        options={"lp_conversations_per_day": CONVERSATIONS_PER_DAY, "lp_days": DAYS, "lp_messages": "20"},
    )
    with SandboxServer(sandbox) as server, requests.Session() as session:
        session.auth = OAuth1(
            MAIN_KEY.app_key, MAIN_KEY.app_secret, MAIN_KEY.access_token, MAIN_KEY.access_token_secret
        )
        url = f"{server.base_url}/messaging_history/api/account/12345678/conversations/search"
        body = {"start": {"from": NOW_MS - (DAYS + 1) * DAY_MS, "to": NOW_MS}}

        def page(offset: int) -> tuple[float, bytes]:
            started = time.perf_counter()
            r = session.post(url, params={"offset": offset, "limit": 100, "source": "bench", "v": 2}, json=body)
            raw = r.content
            elapsed = time.perf_counter() - started
            if r.status_code != 200:
                raise RuntimeError(f"page at offset {offset}: HTTP {r.status_code} {raw[:200]!r}")
            return elapsed, raw

        first, raw = page(0)
        count = json.loads(raw)["_metadata"]["count"]
        step = max(100, (count - 100) // COLD_PAGES // 100 * 100)
        offsets = [1 + i * step for i in range(COLD_PAGES) if 1 + i * step + 100 <= count]
        cold: list[float] = []
        sizes: list[int] = []
        for offset in offsets:
            elapsed, raw = page(offset)
            cold.append(elapsed)
            sizes.append(len(raw))
        check = json.loads(raw)["conversationHistoryRecords"]
        # 20 messages in the MAIN dialog; a post-conversation survey adds its own (dialogId `<id>-survey`)
        if len(check) != 100 or any(_main_messages(rec) != 20 for rec in check):
            raise RuntimeError("a page does not hold 100 conversations of 20 messages")
        warm = [page(offsets[0])[0] for _ in range(WARM_REPEATS)]

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f} ms"

    cold_row = f"{len(cold)} distinct pages | **{ms(statistics.median(cold))}** | {ms(_percentile(cold, 0.95))}"
    warm_row = f"{len(warm)} repeats | {ms(statistics.median(warm))} | {ms(_percentile(warm, 0.95))}"

    return f"""
World: seed 1, {CONVERSATIONS_PER_DAY} conversations a day over {DAYS} days ({count:,} conversations in the
search window), 20 messages each; pages of `limit=100`, about {statistics.median(sizes) / 1e6:.2f} MB of JSON each.

| page | requests | median | p95 |
|---|---|---|---|
| first served (generated from the seed on demand) | {cold_row} |
| served again (records cached as JSON bytes) | {warm_row} |

The first query of a search window also counts its matches: {ms(first)} for {count:,} conversations (later pages
of the same query and clock reuse that count). Times are measured at the client: request signing, the
sandbox's OAuth 1.0 check, search, record generation and reading the whole body over loopback.
"""
