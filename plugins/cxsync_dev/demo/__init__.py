"""`make demo` (`python -m cxsync_dev.demo`): the main job, end to end on this machine, against the sandbox.

The demo is a list of steps (`steps.STEPS`) over one shared `Demo` state (`state.py`):

1. the warehouse: the embedded SQLite file (`$AIRFLOW_HOME/cxsync.db`), created or reused;
2. the DAGs: the DAG folder parsed as Airflow does, four DAGs per integration;
3. the sandbox: the LivePerson and HelpDesk stand-ins on a free loopback port (fixed seed, modest volumes);
4. Airflow: `airflow db migrate`, the two pools, and the connections of the demo integrations;
5. HelpDesk OAuth: the real connect command (`python -m cxsync.helpdesk_oauth`), with the demo playing the
   browser on the sandbox's authorize page, so the refresh token lands in the connection;
6. the first loads: roster sync and a one-week backfill per integration (`airflow dags test`);
7. a day later on the sandbox clock: incremental loads, retention as a dry run, then retention for real;
   then the analytics DAG of the integration the demo turns `conversation_analytics` on for (the first
   LivePerson one, in a copy of the integrations file under the Airflow home), and a few figures per agent;
8. what landed, per table and integration, and how to query it;
9. QA: the agents matched to the sample staff file, and one QA list built, per evaluator.

Every DAG run is a subprocess (`runs.py`) whose output goes to `$AIRFLOW_HOME/demo-logs/`; the terminal gets one
line per run. The sandbox stops at the end, on failure and on Ctrl-C alike.

Re-runs reuse the warehouse and replace the connections. The sandbox clock of a re-run starts where the
last demo left the warehouse's watermarks (or one day before now, whichever is later), so a backfill never
writes an older state of a conversation over the newer one a previous incremental run loaded.

Modules: `state` (the `Demo` state, constants, the subprocess runner), `steps` (the steps, in order), `runs`
(one DAG run and its summary), `reads` (what is read back from the warehouse), `helpers` (environment, `airflow`
and sandbox admin calls, texts), `browser` (the authorize page, played), `qa_step` (the QA step).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from cxsync.config import ConfigError, load_integrations
from cxsync_dev.demo.helpers import (
    airflow,
    child_environment,
    dag_run_succeeded,
    failure_reason,
    sandbox_admin,
)
from cxsync_dev.demo.reads import agent_figures, count_rows, last_watermark, latest_retention, snapshot
from cxsync_dev.demo.runs import run_dag, summarize
from cxsync_dev.demo.state import (
    BACKFILL_CONF,
    CLOCK_STEP,
    KINDS,
    LOG_DIR_NAME,
    OAUTH_CONN_ID,
    PROJECT_ROOT,
    SANDBOX_OPTIONS,
    SEED,
    Demo,
    Interrupted,
    RunResult,
    StepFailed,
    SubprocessRunner,
    airflow_home,
    dags_folder,
    warehouse_path,
)
from cxsync_dev.demo.steps import (
    STEPS,
    advance_clock,
    analytics,
    connect_helpdesk_oauth,
    first_loads,
    later_loads,
    open_warehouse,
    prepare_airflow,
    show_counts,
    show_dags,
    show_where,
    start_sandbox,
    with_analytics_on,
)

__all__ = [
    "BACKFILL_CONF",
    "CLOCK_STEP",
    "KINDS",
    "LOG_DIR_NAME",
    "OAUTH_CONN_ID",
    "PROJECT_ROOT",
    "SANDBOX_OPTIONS",
    "SEED",
    "STEPS",
    "Demo",
    "Interrupted",
    "RunResult",
    "StepFailed",
    "SubprocessRunner",
    "advance_clock",
    "agent_figures",
    "airflow",
    "airflow_home",
    "analytics",
    "child_environment",
    "connect_helpdesk_oauth",
    "count_rows",
    "dag_run_succeeded",
    "dags_folder",
    "failure_reason",
    "first_loads",
    "last_watermark",
    "later_loads",
    "latest_retention",
    "main",
    "open_warehouse",
    "prepare_airflow",
    "run",
    "run_dag",
    "sandbox_admin",
    "show_counts",
    "show_dags",
    "show_where",
    "snapshot",
    "start_sandbox",
    "summarize",
    "warehouse_path",
    "with_analytics_on",
]


# ---- main ----------------------------------------------------------------------------------------------------


def run(demo: Demo, steps: Sequence[Callable[[Demo], None]] | None = None) -> int:
    """Run the steps; stop the sandbox whatever happens. 0: every step succeeded; 1: a problem; 130: stopped."""
    started = time.monotonic()
    status = 0
    step: Callable[[Demo], None] | None = None
    try:
        for step in steps if steps is not None else STEPS:
            step(demo)
    except StepFailed as exc:
        demo.problems.append(str(exc))
    except (KeyboardInterrupt, Interrupted):
        demo.out("")
        demo.out("cxsync demo: interrupted; stopping the sandbox")
        status = 130
    except Exception as exc:  # a bug or an environment problem: say where, keep the traceback for the curious
        traceback.print_exc()
        name = step.__name__ if step is not None else "?"
        demo.problems.append(f"step {name} stopped with {exc.__class__.__name__}: {exc}")
    finally:
        if demo.server is not None:
            demo.server.stop()
            demo.server = None
            demo.out("")
            demo.out("sandbox stopped")
        if demo.warehouse is not None:
            demo.warehouse.dispose()
    if status:
        return status
    minutes, seconds = divmod(int(time.monotonic() - started), 60)
    if demo.problems:
        demo.out("")
        print(f"cxsync demo FAILED ({len(demo.problems)} problem(s)):", file=sys.stderr)
        for problem in demo.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    runs, integrations = sum(1 for r in demo.runs if r.ok), len(demo.integrations)
    demo.out(
        f"cxsync demo: done in {minutes}m{seconds:02d}s; {runs} DAG run(s) of {integrations} integration(s), "
        "all succeeded"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxsync_dev.demo", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".airflow"))  # never ~/airflow
    try:
        config = load_integrations()
    except ConfigError as exc:
        print(f"cxsync demo: {exc}", file=sys.stderr)
        return 2
    demo = Demo(config=with_analytics_on(config, airflow_home()))
    print(f"cxsync demo (AIRFLOW_HOME={demo.show(demo.home)})")

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(demo)
    finally:
        signal.signal(signal.SIGTERM, previous)
