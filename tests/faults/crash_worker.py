"""The load process the crash tests kill: one backfill (every day window, then the watermark) or one incremental
run against the sandbox, into a warehouse, telling its parent through a pipe when it starts and ends each page
write (`writing`, `committed`), so the parent can kill it with SIGKILL inside or between transactions.

It runs the pipeline functions the DAG tasks run, as one task try each. Children are forked from a forkserver
that imported `PRELOAD` once, so a run starts in milliseconds instead of seconds of imports; this module itself
imports only cxsync, which the forkserver holds already.
"""

from __future__ import annotations

import os
from multiprocessing.connection import Connection
from typing import Any

from cxsync import pipeline
from cxsync.config import Integration
from cxsync.registry import source_class
from cxsync.warehouse import Warehouse

# What a run would otherwise import lazily: the hooks and sources, Airflow's task runner (which `mask_secret`
# reaches for), the PostgreSQL driver.
PRELOAD = [
    "cxsync.pipeline",
    "cxsync.warehouse",
    "cxsync.hooks.liveperson",
    "cxsync.hooks.helpdesk",
    "cxsync.sources.liveperson",
    "cxsync.sources.helpdesk",
    "airflow.sdk.execution_time.task_runner",
    "psycopg2",
    "sqlalchemy.dialects.postgresql.psycopg2",
]

WRITING = b"writing"
COMMITTED = b"committed"
DONE = b"done"


def load(
    step: str,
    integration: Integration,
    warehouse_url: str,
    env: dict[str, str],
    progress: Connection,
) -> None:
    os.environ.update(env)  # the forkserver's environment predates the test's connections
    warehouse = Warehouse.from_url(warehouse_url)
    warehouse.ensure_schema()
    write = warehouse.write_interactions

    def reporting_write(*args: Any, **kwargs: Any) -> Any:
        progress.send_bytes(WRITING)
        stats = write(*args, **kwargs)
        progress.send_bytes(COMMITTED)
        return stats

    warehouse.write_interactions = reporting_write  # type: ignore[method-assign]
    source = source_class(integration.provider)(integration)
    try:
        if step == "backfill":
            end = source.server_now()
            for window in pipeline.plan_windows(end, weeks=1):
                pipeline.load_window(integration, source, warehouse, window)
            pipeline.finish_backfill(integration, warehouse, end)
        else:
            pipeline.load_changes(integration, source, warehouse)
    finally:
        source.close()
        warehouse.dispose()
    progress.send_bytes(DONE)
