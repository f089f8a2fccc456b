"""One analytics run in a fresh process, for bench/analytics.py: prints its time and peak RSS as JSON.

`python -m bench._analytics_child WAREHOUSE_URL INTEGRATION_ID full|incremental`
"""

from __future__ import annotations

import json
import resource
import sys
import time

from bench._support import peak_rss_mb, quiet_logs


def main(url: str, integration_id: str, mode: str) -> dict:
    from cxsync.analytics.run import run_analytics
    from cxsync.config import Integration
    from cxsync.warehouse import Warehouse

    quiet_logs()
    integration = Integration(
        id=integration_id, provider="liveperson", conn_id="none", label="bench", conversation_analytics=True
    )
    warehouse = Warehouse.from_url(url)
    warehouse.ensure_schema()
    baseline = peak_rss_mb()
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    result = run_analytics(warehouse, integration, full=mode == "full")
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    warehouse.dispose()
    return {
        **result.to_xcom(),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mb": peak_rss_mb(),
        "baseline_mb": baseline,
    }


def _cpu_seconds() -> float:
    """CPU time of this process (user + system): what the run cost, whatever else the machine was doing."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:4])), flush=True)
