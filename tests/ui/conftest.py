"""One real Airflow api-server with the cxsync plugin for the whole UI test package, and one headless Chromium.

`ui_server` (session): a fresh Airflow home (metadata DB migrated once, simple auth manager with the users
`admin`, `viewer` and `nobody` (no role)), the sandbox providers, an integrations file with a loaded HelpDesk
integration (`hd_main`: roster and one week of tickets through the DAG tasks' functions, run records
in Airflow's DB), an OAuth integration whose connection lives in the metadata DB (`hd_oauth`), and one whose
connection does not exist (`hd_nowhere`); the matching and QA-list tables filled through the QA layer's own
write functions (support.qa_state), and completeness records of `hd_main` as the reconciliation DAG writes them.
Then `airflow api-server` on a free loopback port.

`browser` (session): Debian's chromium + chromium-driver through selenium. Missing: skip, or fail under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import yaml

from cxsync.warehouse import schema as t
from cxsync.warehouse.store import Warehouse
from cxsync_dev.sandbox.app import provider_modules
from cxsync_dev.sandbox.core import Sandbox
from cxsync_dev.sandbox.server import SandboxServer
from e2e.conftest import FAST_EXTRAS
from support import qa_state

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path(os.environ.get("CXSYNC_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CXSYNC_CHROMEDRIVER", "/usr/bin/chromedriver"))
USERS = {"admin": "admin", "viewer": "viewer", "nobody": ""}  # name: simple auth manager role
LIST_RUN_ID = "weekly_random-2026w48"
DIFFERING_DAY_WARNING = "2 tickets missing in the warehouse"
FAILURE_MESSAGE = "HelpDesk refused the credentials of connection 'sandbox_helpdesk_main' (401)"
FAILURE_ACTION = "Check the credentials of connection 'sandbox_helpdesk_main' (Admin > Connections, Test)."
RECONCILIATION_COUNTS = ("provider_count", "warehouse_count", "missing", "stale", "deleted", "repaired")


def add_reconciliation(engine: sa.Engine, integration_id: str, now: datetime, days: int = 9) -> list[dict]:
    """`cx_reconciliation` as the reconciliation DAG creates and fills it: one record per day checked, the
    newest `days` days; the 6th newest day differs (2 missing), the 8th had a stale ticket, repaired."""
    table = t.reconciliation
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = [
        {"integration_id": integration_id, "day": now.date() - timedelta(days=n),
         "checked_from": midnight - timedelta(days=n), "checked_until": midnight - timedelta(days=n - 1),
         "provider_count": 10, "warehouse_count": 10, "missing": 0, "stale": 0, "deleted": 0,
         "repaired": 0, "status": "ok", "warning": None, "checked_at": now}
        for n in range(days)
    ]  # fmt: skip
    rows[5].update(warehouse_count=8, missing=2, status="differs", warning=DIFFERING_DAY_WARNING)
    rows[7].update(stale=1, repaired=1, status="repaired", warning="1 ticket stale, reloaded")
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    return rows


def add_agent_metrics(engine: sa.Engine, integration_id: str, now: datetime) -> None:
    """`cx_agent_daily_metrics` as the analytics DAG writes it: yesterday's figures of the first two agents."""
    with engine.begin() as conn:
        agents = (
            conn.execute(
                sa.select(t.agents.c.agent_id)
                .where(t.agents.c.integration_id == integration_id)
                .order_by(t.agents.c.agent_id)
                .limit(2)
            )
            .scalars()
            .all()
        )
        conn.execute(t.agent_daily_metrics.insert(), [
            {"integration_id": integration_id, "agent_id": agent, "day": (now - timedelta(days=1)).date(),
             "metrics_version": 1, "computed_at": now, "conversations": 6 - 2 * n, "closed_conversations": 4 - 2 * n,
             "median_first_response_seconds": 90.0, "p90_first_response_seconds": None, "avg_handle_seconds": None,
             "messages": 20, "customer_messages": 10, "unanswered_runs": 0, "flagged_conversations": n}
            for n, agent in enumerate(agents)
        ])  # fmt: skip


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@dataclass
class UiServer:
    url: str
    env: dict[str, str]
    warehouse_path: Path
    sandbox_url: str
    log_path: Path
    passwords: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def engine(self) -> sa.Engine:
        return sa.create_engine(f"sqlite:///{self.warehouse_path}")

    def token(self, user: str) -> str:
        """A JWT from Airflow's own token endpoint (what the login page gets)."""
        if user not in self.tokens:
            answer = requests.post(
                f"{self.url}/auth/token", json={"username": user, "password": self.passwords[user]}, timeout=30
            )
            assert answer.status_code == 201, answer.text
            self.tokens[user] = answer.json()["access_token"]
        return self.tokens[user]

    def python(self, script: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout


AIRFLOW_DB = """
import json, sys
from datetime import UTC, datetime, timedelta
from airflow.models.connection import Connection
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.db import initdb
from uuid6 import uuid7
from airflow.utils.session import create_session
initdb()
conn = json.loads(sys.argv[1])
now = datetime.now(UTC)
with create_session() as session:
    # The OAuth connection, not connected yet; and a copy with a wrong client secret.
    for conn_id, password in (("sandbox_helpdesk_oauth", conn["password"]), ("helpdesk_badsecret", "wrong-secret")):
        session.add(Connection(conn_id=conn_id, conn_type=conn["conn_type"], host=conn["host"],
                               schema=conn["schema"], port=conn["port"], login=conn["login"],
                               password=password, extra=json.dumps(conn["extra"])))
    # The run records Airflow keeps for the status page: a successful roster sync, and an incremental load
    # that failed after its last success.
    for dag_id, run_id, state, ago in (
        ("cxsync_hd_main_roster_sync", "manual__roster_ok", "success", 3),
        ("cxsync_hd_main_incremental", "scheduled__incr_ok", "success", 2),
        ("cxsync_hd_main_incremental", "scheduled__incr_failed", "failed", 1),
    ):
        run = DagRun(dag_id=dag_id, run_id=run_id, run_type=run_id.split("__")[0], state=state,
                     start_date=now - timedelta(hours=ago), run_after=now - timedelta(hours=ago))
        run.end_date = now - timedelta(hours=ago) + timedelta(minutes=1)
        session.add(run)
    # A backfill under way: 3 of its 4 day windows done. The failed incremental run's task kept its plain
    # failure line (cxsync.failure's XCom), as the failure callback does.
    running = DagRun(dag_id="cxsync_hd_main_backfill", run_id="manual__backfill_running", run_type="manual",
                     state="running", start_date=now - timedelta(minutes=6), run_after=now - timedelta(minutes=6))
    session.add(running)
    session.flush()
    failed = session.query(DagRun).filter_by(run_id="scheduled__incr_failed").one()
    tasks = [(running, "load_window", n, "success" if n < 3 else "running") for n in range(4)]
    tasks.append((failed, "load_changes", -1, "failed"))
    for run, task_id, map_index, state in tasks:
        session.execute(TaskInstance.__table__.insert().values(
            id=uuid7(), dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, map_index=map_index, state=state,
            pool="default_pool", try_number=1))
    session.execute(XComModel.__table__.insert().values(
        dag_run_id=failed.id, task_id="load_changes", map_index=-1, key="cxsync_failure", dag_id=failed.dag_id,
        run_id=failed.run_id, timestamp=now,
        value=json.dumps({"message": FAILURE_MESSAGE, "action": FAILURE_ACTION, "button": None, "conn_id": None})))
"""
# The warehouse as the roster sync and a one-week backfill leave it, through the tasks' own functions.
LOAD = """
from cxsync import tasks
tasks.roster_sync("hd_main")
windows = tasks.plan_backfill("hd_main", 1)
for window in windows:
    tasks.backfill_window("hd_main", window)
tasks.finish_backfill("hd_main", windows)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory) -> Iterator[UiServer]:
    base = tmp_path_factory.mktemp("ui")
    options: dict[str, Any] = {}
    for module in provider_modules().values():
        options.update(getattr(module, "TEST_OPTIONS", {}))
    with SandboxServer(Sandbox(seed=11, now=None, options=options)) as sandbox:
        passwords = {name: f"{name}-pw-{os.getpid()}" for name in USERS}
        (base / "passwords.json").write_text(json.dumps(passwords))
        integrations = [
            {"id": "hd_main", "provider": "helpdesk", "label": "HelpDesk support desk",
             "conn_id": "sandbox_helpdesk_main", "conversation_analytics": True,
             "description": "Tickets of the sandbox account, personal access token"},
            {"id": "hd_oauth", "provider": "helpdesk", "label": "HelpDesk via OAuth",
             "conn_id": "sandbox_helpdesk_oauth",
             "description": "The same account through the OAuth app"},
            {"id": "hd_nowhere", "provider": "helpdesk", "label": "HelpDesk not set up", "conn_id": "helpdesk_nowhere"},
        ]  # fmt: skip
        (base / "integrations.yaml").write_text(yaml.safe_dump({"integrations": integrations}))
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        env.update(
            AIRFLOW_HOME=str(base / "airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{n}:{r}" for n, r in USERS.items()),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(base / "passwords.json"),
            AIRFLOW__API_AUTH__JWT_SECRET=os.urandom(16).hex(),
            AIRFLOW__API__SECRET_KEY=os.urandom(16).hex(),
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
            CXSYNC_UI_REFRESH_SECONDS="900",  # the status page reloads itself while a run is under way: not mid-test
            CXSYNC_INTEGRATIONS_FILE=str(base / "integrations.yaml"),
            CXSYNC_WAREHOUSE_PATH=str(base / "warehouse.db"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "plugins"), env.get("PYTHONPATH")])),
        )
        oauth_conn: dict[str, Any] = {}
        for conn_id, text in sandbox.connection_uris().items():
            conn = json.loads(text)
            conn["extra"] = {**conn.get("extra", {}), **FAST_EXTRAS}
            if conn_id == "sandbox_helpdesk_oauth":
                conn["extra"].pop("refresh_token", None)  # not connected yet: the test connects it
                oauth_conn = conn
            else:
                env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        server = UiServer(f"http://127.0.0.1:{port}", env, base / "warehouse.db", sandbox.base_url, base / "api.log",
                          passwords)  # fmt: skip
        server.python(AIRFLOW_DB.replace("FAILURE_MESSAGE", repr(FAILURE_MESSAGE)).replace(
            "FAILURE_ACTION", repr(FAILURE_ACTION)), json.dumps(oauth_conn))  # fmt: skip
        log = server.log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            # The api-server takes a while to start: load the warehouse meanwhile.
            server.python(LOAD)
            engine = server.engine()
            warehouse = Warehouse(engine)
            qa_state.fill_matching(warehouse, "hd_main")
            add_reconciliation(engine, "hd_main", datetime.now(UTC))
            add_agent_metrics(engine, "hd_main", datetime.now(UTC))
            with engine.connect() as conn:
                picked = conn.execute(
                    sa.text(
                        "SELECT integration_id, interaction_id, agent_id FROM cx_interactions WHERE status = 'closed' "
                        "ORDER BY interaction_id LIMIT 4"
                    )
                ).all()
            qa_state.fill_qa_list(
                warehouse,
                LIST_RUN_ID,
                "weekly_random",
                [
                    {
                        **row._asdict(),
                        "staff_id": "s-101",
                        "evaluator_id": ("s-100" if n % 2 else "s-102"),
                        "rank": n + 1,
                    }
                    for n, row in enumerate(picked)
                ],
            )
            engine.dispose()
            _wait_until_up(server, process)
            yield server
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()


def _wait_until_up(server: UiServer, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"airflow api-server exited: {server.log_path.read_text()[-4000:]}")
        try:
            if requests.get(f"{server.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"airflow api-server not up in {timeout:g} s: {server.log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def browser(tmp_path_factory) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = f"no browser for the UI tests: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
        if _in_ci():
            pytest.fail(f"{reason}; CI=true: the browser tests must run")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def screenshot(driver: Any, name: str, folder: Path) -> Path:
    """A full-page PNG: the window grows to the page's height first."""
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 600)")
    driver.set_window_size(1400, min(int(height) + 40, 4000))
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


UPDATE_SCREENSHOTS = "CXSYNC_UPDATE_SCREENSHOTS"


def copy_to_docs(paths: list[Path]) -> None:
    """The README's screenshots, refreshed by the test that takes them, only when asked to
    (CXSYNC_UPDATE_SCREENSHOTS=1): a test run leaves the tracked files, and so the working tree, unchanged."""
    docs = ROOT / "docs" / "screenshots"
    if os.environ.get(UPDATE_SCREENSHOTS) == "1" and docs.parent.exists():
        docs.mkdir(exist_ok=True)
        for path in paths:
            shutil.copyfile(path, docs / path.name)
