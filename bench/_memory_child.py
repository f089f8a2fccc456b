"""One backfill in a fresh process, for bench/memory.py: prints its peak RSS as JSON.

`python -m bench._memory_child PROVIDER WEEKS WAREHOUSE_URL`, with the sandbox's connections in `AIRFLOW_CONN_*`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from bench._support import peak_rss_mb, quiet_logs


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 1024 / 1024


class RssSampler:
    """The highest current RSS seen every 10 ms while running: the load's own peak, whatever came before it."""

    def __init__(self) -> None:
        self.highest = current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.highest = max(self.highest, current_rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.highest = max(self.highest, current_rss_mb())


def main(provider: str, weeks: int, warehouse_url: str) -> dict:
    from cxsync import pipeline
    from cxsync.config import Integration
    from cxsync.registry import source_class
    from cxsync.warehouse import Warehouse

    quiet_logs()
    conn_id = {"liveperson": "sandbox_liveperson_main", "helpdesk": "sandbox_helpdesk_main"}[provider]
    integration = Integration(id=f"mem_{provider}", provider=provider, conn_id=conn_id, label="memory")
    warehouse = Warehouse.from_url(warehouse_url)
    warehouse.ensure_schema()
    source_type = source_class(provider)
    source = source_type(integration)
    end = source.server_now()  # imports, connection, first request: the process as a task starts its work
    source.close()
    baseline = peak_rss_mb()
    before_load = current_rss_mb()
    started = time.perf_counter()
    with RssSampler() as sampler:
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
        "rss_before_load_mb": before_load,
        "rss_highest_in_load_mb": sampler.highest,
        "seconds": seconds,
        "interactions": counts["cx_interactions"],
        "messages": counts["cx_messages"],
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])), flush=True)
