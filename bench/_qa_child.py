"""One QA task body in a fresh process, for bench/qa.py: prints its time and peak RSS as JSON.

`python -m bench._qa_child matching WAREHOUSE_URL STAFF_CSV` or `python -m bench._qa_child list WAREHOUSE_URL
RUN_AT`: the same calls the DAG tasks make (`run_matching`, `build_list_run`), so the peak is the task's own.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

from bench._support import peak_rss_mb, quiet_logs


def main(argv: list[str]) -> None:
    quiet_logs()
    from cxsync.warehouse import Warehouse

    what, url, arg = argv
    warehouse = Warehouse.from_url(url)
    baseline = peak_rss_mb()
    if what == "matching":
        from cxsync.qa.matching import run_matching
        from cxsync.qa.staff import load_staff

        started = time.perf_counter()
        summary = run_matching(warehouse, load_staff(arg))
        seconds = time.perf_counter() - started
        out = {"agents": summary["agents"], "by_method": summary["by_method"]}
    else:
        from bench.qa import bench_list
        from cxsync.qa.lists import build_list_run

        started = time.perf_counter()
        run = build_list_run(warehouse, bench_list(), datetime.fromisoformat(arg))
        seconds = time.perf_counter() - started
        out = {
            "population": run.population_size,
            "items": len(run.items),
            "short": sum(run.shortfall.values()),
            "export": str(run.export_path),
            "phases": run.timings,
        }
    warehouse.dispose()
    print(json.dumps({**out, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline}))


if __name__ == "__main__":
    main(sys.argv[1:])
