"""Child of bench/status_page.py, run with its Airflow home: migrate Airflow's metadata DB, record DAG runs, then
time the status page's handler and the status API's collection. Prints one JSON line."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta


def record_runs(runs_per_dag: int) -> int:
    from airflow.models.dagrun import DagRun
    from airflow.utils.db import initdb
    from airflow.utils.session import create_session

    from cxsync import settings
    from cxsync.config import load_integrations
    from cxsync.ui.status import dag_kinds

    initdb()
    now = datetime.now(UTC)
    count = 0
    with create_session() as session:
        for integration in load_integrations().integrations:
            for kind in dag_kinds(integration):
                for n in range(runs_per_dag):
                    at = now - timedelta(days=n)
                    run = DagRun(
                        dag_id=settings.dag_id(integration.id, kind),
                        run_id=f"scheduled__{n}",
                        run_type="scheduled",
                        state="failed" if n % 4 == 3 else "success",
                        start_date=at,
                        run_after=at,
                    )
                    run.end_date = at + timedelta(minutes=5)
                    session.add(run)
                    count += 1
    return count


def main() -> None:
    runs_per_dag, calls = int(sys.argv[1]), int(sys.argv[2])
    dag_runs = record_runs(runs_per_dag)
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from starlette.requests import Request

    from cxsync.ui import app as ui
    from cxsync.ui import status
    from cxsync.ui.warehouse_reads import warehouse_engine

    def request() -> Request:
        scope = {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "server": ("127.0.0.1", 8080),
            "path": "/cxsync/",
            "root_path": "/cxsync",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8080"), (b"accept", b"text/html")],
            "app": ui.app,
        }
        return Request(scope)

    # A viewer: the page a QA lead opens (an admin only adds which warehouse options are set).
    viewer = SimpleAuthManagerUser(username="bench", role="viewer")
    started = time.perf_counter()
    page = ui.status_page(request(), viewer)
    first = time.perf_counter() - started
    page_seconds, page_cpu, api_seconds = [], [], []
    for _ in range(calls):
        started, cpu = time.perf_counter(), time.process_time()
        page = ui.status_page(request(), viewer)
        page_seconds.append(time.perf_counter() - started)
        page_cpu.append(time.process_time() - cpu)
        started = time.perf_counter()
        data = status.collect()
        api_seconds.append(time.perf_counter() - started)
    warnings = sum(len(i["warnings"]) for i in data["integrations"]) + len(data["warnings"])
    engine = warehouse_engine(None)
    with engine.begin() as conn:  # a load changes one interaction of one integration: it alone is recounted
        conn.exec_driver_sql(
            "UPDATE cx_interactions SET status = 'closed', loaded_at = now() "
            "WHERE integration_id = 'int_000' AND interaction_id = 'c-10'"
        )
    started = time.perf_counter()
    ui.status_page(request(), viewer)
    after_load = time.perf_counter() - started
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN SELECT max(loaded_at) FROM cx_interactions WHERE integration_id = 'int_000'"
        ).all()
    scan = next((row[0].strip(" ->") for row in plan if "Scan" in row[0]), "?")
    print(
        json.dumps(
            {
                "dag_runs": dag_runs,
                "first_seconds": first,
                "page_seconds": page_seconds,
                "page_cpu_seconds": page_cpu,
                "api_seconds": api_seconds,
                "after_load_seconds": after_load,
                "page_bytes": len(page.body),
                "warnings": warnings,
                "plan": scan.split("  ")[0],
            }
        )
    )


if __name__ == "__main__":
    main()
