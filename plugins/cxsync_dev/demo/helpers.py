"""Small helpers of the demo: the subprocess environment, `airflow` and sandbox admin calls, run outcomes, texts."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cxsync.config import Integration
from cxsync_dev.demo.state import CONNECTION_TUNABLES, OAUTH_CONN_ID, Demo, StepFailed

if TYPE_CHECKING:
    pass


def dag_run_succeeded(text: str, dag_id: str) -> bool:
    finished = [line for line in text.splitlines() if f"DagRun Finished: dag_id={dag_id}," in line]
    return bool(finished) and "state=success" in finished[-1]


_ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?(\w*(?:Error|Exception|Exit)): (.+)$")


def failure_reason(text: str) -> str | None:
    """The last exception message in a run's log, e.g. the plain words of an AirflowFailException."""
    for line in reversed(text.splitlines()):
        match = _ERROR_LINE.match(line.strip())
        if match:
            kind, message = match.groups()
            message = message if kind == "AirflowFailException" else f"{kind}: {message}"
            return message if len(message) <= 400 else message[:397] + "..."
    return None


def uses_oauth(demo: Demo) -> bool:
    return any(i.conn_id == OAUTH_CONN_ID for i in demo.integrations)


def child_environment(demo: Demo) -> dict[str, str]:
    """The environment of every Airflow subprocess: this Airflow home and DAG folder, the integrations file,
    the sandbox's connections (none inherited from the shell, so a real one never shadows a sandbox one),
    and the warehouse connection pointed at the embedded SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(demo.home),
        AIRFLOW__CORE__DAGS_FOLDER=str(demo.dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        CXSYNC_INTEGRATIONS_FILE=str(demo.config.path.resolve()),
        CXSYNC_WAREHOUSE_PATH=str(demo.warehouse_file),
    )
    warehouse_conn = {"conn_type": "sqlite", "host": str(demo.warehouse_file)}
    env[f"AIRFLOW_CONN_{demo.config.warehouse_conn_id.upper()}"] = json.dumps(warehouse_conn)
    for conn_id, conn in demo.connections.items():
        if conn_id == OAUTH_CONN_ID:
            continue  # lives in the metadata database, where the connect command stores its refresh token
        conn = {**conn, "extra": {**conn.get("extra", {}), **CONNECTION_TUNABLES}}
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def airflow(demo: Demo, args: list[str], log_name: str, doing: str) -> None:
    log = demo.logs / f"{log_name}.log"
    code = demo.runner(args, log, demo.env)
    if code != 0:
        text = log.read_text(errors="replace") if log.exists() else ""
        reason = failure_reason(text) or f"exit status {code}"
        raise StepFailed(f"{doing} failed (airflow {' '.join(args[:2])}): {reason}; log: {demo.show(log)}")


def sandbox_admin(demo: Demo, method: str, path: str, body: Any = None) -> Any:
    import requests

    assert demo.server is not None
    answer = requests.request(method, f"{demo.server.base_url}/_sandbox{path}", json=body, timeout=30)
    answer.raise_for_status()
    return answer.json()


def retention_text(integration: Integration) -> str:
    return str(integration.retention)


def clock_text(value: datetime | str | None) -> str:
    if value is None:
        return "(none)"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _read_lines(process: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)
