"""One backfill in a fresh process, for bench/memory.py: prints its peak RSS as JSON.

`python -m bench._memory_child PROVIDER WEEKS WAREHOUSE_URL`, with the sandbox's connections in `AIRFLOW_CONN_*`.
"""

from __future__ import annotations

import json
import sys
import time

from bench._support import peak_rss_mb, quiet_logs


def main(provider: str, weeks: int, warehouse_url: str) -> dict:
    from cxsync import pipeline
    from cxsync.config import Integration
    from cxsync.registry import source_class
    from cxsync.warehouse import Warehouse

    quiet_logs()
    conn_id = {"liveperson": "liveperson_main", "helpdesk": "helpdesk_main"}[provider]
    integration = Integration(id=f"mem_{provider}", provider=provider, conn_id=conn_id, label="memory")
    warehouse = Warehouse.from_url(warehouse_url)
    warehouse.ensure_schema()
    source_type = source_class(provider)
    source = source_type(integration)
    end = source.server_now()  # imports, connection, first request: the process as a task starts its work
    source.close()
    baseline = peak_rss_mb()
    started = time.perf_counter()
    for window in pipeline.plan_windows(end, weeks):
        source = source_type(integration)
        try:
            pipeline.load_window(integration, source, warehouse, window)
        finally:
            source.close()
    seconds = time.perf_counter() - started
    counts = warehouse.table_counts(integration.id)
    warehouse.dispose()
    return {
        "baseline_mb": baseline,
        "peak_mb": peak_rss_mb(),
        "seconds": seconds,
        "interactions": counts["cx_interactions"],
        "messages": counts["cx_messages"],
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])), flush=True)
