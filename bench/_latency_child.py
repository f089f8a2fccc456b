"""One task's backfill for bench/latency.py, in its own process as an Airflow task runs: prints `READY` once its
imports and a first request are done, waits for a line on stdin (so that concurrent tasks start together, not
one import time apart), loads its windows, prints `RESULT {json}` with its wall-clock start and end.

`python -m bench._latency_child CONFIG_JSON`; the shared rate limit store, if any, is in the environment
(`CXSYNC_RATE_LIMIT_STORE`), as a worker's would be.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime


def main(config: dict) -> dict:
    from bench._support import quiet_logs
    from bench.throughput import _integration, warm_up
    from cxsync import pipeline
    from cxsync.registry import source_class
    from cxsync.warehouse import Warehouse

    quiet_logs()
    provider = config["provider"]
    windows = [(datetime.fromisoformat(lo), datetime.fromisoformat(hi)) for lo, hi in config["windows"]]
    integration = _integration(provider)
    warehouse = Warehouse.from_url(config["url"])
    warehouse.ensure_schema()
    warm_up(provider)
    print("READY", flush=True)
    sys.stdin.readline()
    started = time.time()
    for lo, hi in windows:
        source = source_class(provider)(integration)
        try:
            pipeline.load_window(integration, source, warehouse, pipeline.Window(lo, hi))
        finally:
            source.close()
    ended = time.time()
    loaded = warehouse.table_counts(integration.id)["cx_interactions"]
    warehouse.dispose()
    return {"started": started, "ended": ended, "loaded": loaded}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
