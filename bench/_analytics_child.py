"""One analytics run in a fresh process, for bench/analytics.py: prints its time and peak RSS as JSON.

`python -m bench._analytics_child WAREHOUSE_URL INTEGRATION_ID full|incremental`
"""

from __future__ import annotations

import json
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
    started = time.perf_counter()
    result = run_analytics(warehouse, integration, full=mode == "full")
    seconds = time.perf_counter() - started
    warehouse.dispose()
    return {**result.to_xcom(), "seconds": seconds, "peak_mb": peak_rss_mb(), "baseline_mb": baseline}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:4])), flush=True)
