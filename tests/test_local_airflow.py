"""`make airflow` (`python -m cxsync_dev.local_airflow`): a real local Airflow on the demo's state, driven as a
person would: wait for the printed URL and login, log in through the REST API, find a demo DAG, press Ctrl-C
(SIGINT), and every process it started is gone."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support.airflow_api import AirflowApi

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
INTEGRATIONS = """
integrations:
  - {id: lp_local, provider: liveperson, conn_id: sandbox_liveperson_main, label: LivePerson (sandbox)}
"""
STARTUP_TIMEOUT = 420.0


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_airflow_serves_the_demo_dags_with_a_login_and_ctrl_c_stops_every_process(tmp_path):
    home = tmp_path / "airflow"
    integrations = tmp_path / "integrations.yaml"
    integrations.write_text(INTEGRATIONS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CXSYNC_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        CXSYNC_INTEGRATIONS_FILE=str(integrations),
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "cxsync_dev.local_airflow", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    pids: list[int] = []
    try:
        url = password = None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while password is None:
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            assert line is not None, "make airflow ended before it was up:\n" + "".join(output)
            if started := re.match(r"started (\S+) \(pid (\d+)\)", line):
                pids.append(int(started.group(2)))
            if up := re.match(r"Airflow is up at (http://\S+)", line):
                url = up.group(1)
            if login := re.match(r"login: admin / (\S+)", line):
                password = login.group(1)
        assert url is not None and len(pids) == 4

        api = AirflowApi(url, "admin", password)
        api.login()
        deadline = time.monotonic() + 180
        while "cxsync_lp_local_backfill" not in api.dag_ids("cxsync"):
            assert time.monotonic() < deadline, "the demo DAGs never showed up in the REST API"
            assert process.poll() is None, "".join(output)
            time.sleep(2)
        assert set(api.pools()) >= {"cxsync_liveperson", "cxsync_helpdesk"}  # the plugin made them
        # the demo's integrations, analytics on, and its connections where Admin > Connections sees them, masked
        assert "cxsync_lp_local_analytics" in api.dag_ids("cxsync")
        listed = {c["connection_id"]: c for c in api.call("GET", "/connections", limit=100)["connections"]}
        assert {"sandbox_liveperson_main", "cxsync_warehouse"} <= set(listed), sorted(listed)
        assert listed["sandbox_liveperson_main"].get("password") in (None, "***")
        # the components started in order, each healthy before the next
        started = [m.group(1) for m in re.finditer(r"started (\S+) \(pid", "".join(output))]
        assert started == ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]

        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(90) == 0, "".join(output)
        assert "stopped" in "".join(output)
        assert not [pid for pid in pids if _group_alive(pid)], "a component outlived make airflow"
    finally:
        for pid in [process.pid, *pids]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        process.wait(30)
