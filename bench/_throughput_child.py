"""One timed backfill in a fresh process, for bench/throughput.py: prints `RESULT {json}`.

`python -m bench._throughput_child CONFIG_JSON`. The floor's process imports only what the floor uses
(requests, json, sqlite3 or psycopg2), as a hand-written loader would; cxsync's imports what an Airflow task
does (the source, its hook, Airflow's SDK, SQLAlchemy), outside the timed part.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from types import SimpleNamespace


def run_floor(config: dict, windows: list) -> dict:
    from bench import _floor

    sandbox = SimpleNamespace(base_url=config["base_url"], connections=config["connections"])
    load = {"liveperson": _floor.load_liveperson, "helpdesk": _floor.load_helpdesk}[config["provider"]]
    with _floor.FloorDB.open(config["url"]) as db:
        started, cpu = time.perf_counter(), time.process_time()
        conversations, messages = load(sandbox, db, windows, config["sections"])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "conversations": conversations, "messages": messages}


def run_cxsync(config: dict, windows: list) -> dict:
    from bench._support import quiet_logs
    from bench.throughput import cxsync_backfill

    quiet_logs()
    run = cxsync_backfill(config["provider"], config["url"], windows)
    return {
        "seconds": run.seconds,
        "cpu": run.cpu_seconds,
        "conversations": run.conversations,
        "messages": run.messages,
    }


def main(config: dict) -> dict:
    windows = [(datetime.fromisoformat(lo), datetime.fromisoformat(hi)) for lo, hi in config["windows"]]
    if config["loader"] == "floor":
        return run_floor(config, windows)
    return run_cxsync(config, windows)


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
