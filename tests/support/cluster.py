"""The environment of the cluster test tier's Airflow components, built from the same pieces as
docker-compose.yaml, so tests/test_deploy.py can check the two agree without starting anything.

Every component gets: the shared settings of `docker/airflow.env` (exactly as compose reads them), the
deployment-specific settings under the names compose uses (`DEPLOYMENT_KEYS`, local values: 127.0.0.1, free
ports, this run's databases), the local-only settings compose needs no value for (`LOCAL_ONLY`), and the
test speed-ups (`TEST_SPEEDUPS`): intervals and timeouts shortened so the tier runs in minutes. Nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxsync.airflow_components import Components, shared_environment
from support.airflow_api import AirflowApi
from support.providers import SandboxAdmin

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 180.0

# One LivePerson and one HelpDesk integration on the main sandbox; one LivePerson integration on a sandbox of
# its own (connection `liveperson_kill`) for the worker-kill test, whose slow answers do not slow the others.
LP, HD, KILL = "lp_cluster", "hd_cluster", "lp_worker_kill"
INTEGRATIONS: list[dict[str, Any]] = [
    {"id": LP, "provider": "liveperson", "label": "LivePerson on the cluster", "conn_id": "sandbox_liveperson_main"},
    {"id": HD, "provider": "helpdesk", "label": "HelpDesk on the cluster", "conn_id": "sandbox_helpdesk_main"},
    {"id": KILL, "provider": "liveperson", "label": "LivePerson, worker killed", "conn_id": "liveperson_kill"},
]


# Set by every deployment, under these names: docker-compose.yaml's x-airflow-common environment.
DEPLOYMENT_KEYS = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW_CONFIG",
    "AIRFLOW_CONN_CXSYNC_WAREHOUSE",
    "CXSYNC_INTEGRATIONS_FILE",
)
# Local runs only: the image has its own home and DAG folder and a container of its own, where the fixed
# default ports are free; here several test runs share one machine, and one Redis (key prefix per run).
LOCAL_ONLY = (
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__API__HOST",
    "AIRFLOW__API__PORT",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX",
)
# Test speed-ups: production keeps Airflow's defaults. The heartbeat and queued timeouts let the scheduler
# notice a dead worker's tasks within a minute (defaults: 5 and 10 minutes); the retry delay of cxsync's
# DAGs (1 minute) becomes 2 seconds; the DAG file is parsed once (the integrations file never changes here).
TEST_SPEEDUPS: dict[str, str] = {
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "6",
    "CXSYNC_RETRY_DELAY_SECONDS": "2",
}


@dataclass(frozen=True)
class ClusterSetup:
    """Where this run's components live and what they talk to."""

    base: Path
    metadata_url: str  # SQLAlchemy URL of Airflow's metadata database (postgresql+psycopg2://...)
    warehouse_uri: str  # the cxsync_warehouse connection as an Airflow URI (postgresql://...)
    broker_url: str
    key_prefix: str
    api_port: int
    health_port: int
    worker_log_port: int
    trigger_log_port: int
    username: str = "cxsync"
    password: str = "cxsync-cluster-test"

    @property
    def home(self) -> Path:
        return self.base / "airflow"

    @property
    def integrations_file(self) -> Path:
        return self.base / "integrations.yaml"

    @property
    def passwords_file(self) -> Path:
        return self.base / "simple_auth_manager_passwords.json"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def logs(self) -> Path:
        return self.base / "component-logs"


def cluster_environment(setup: ClusterSetup, connections: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The environment of every component of the cluster tier (`connections`: the sandbox's, by conn_id)."""
    # Nothing of a developer's own Airflow or cxsync settings leaks in (a CXSYNC_WAREHOUSE_PATH, say).
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CXSYNC_"))}
    deployment = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": setup.metadata_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+"
        + setup.metadata_url.replace("postgresql+psycopg2://", "postgresql://"),
        "AIRFLOW__CELERY__BROKER_URL": setup.broker_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{setup.api_url}/execution/",
        # The address users open: the HelpDesk connect flow builds its OAuth redirect_uri from it.
        "AIRFLOW__API__BASE_URL": setup.api_url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{setup.username}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(setup.passwords_file),
        "AIRFLOW_CONFIG": str(setup.home / "airflow.cfg"),
        "AIRFLOW_CONN_CXSYNC_WAREHOUSE": setup.warehouse_uri,
        "CXSYNC_INTEGRATIONS_FILE": str(setup.integrations_file),
    }
    local = {
        "AIRFLOW_HOME": str(setup.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(setup.api_port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(setup.health_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(setup.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(setup.trigger_log_port),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": setup.key_prefix,
    }
    assert set(deployment) == set(DEPLOYMENT_KEYS) and set(local) == set(LOCAL_ONLY)
    sandbox = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(dict(conn)) for conn_id, conn in connections.items()}
    return {**inherited, **shared_environment(), **deployment, **local, **TEST_SPEEDUPS, **sandbox}


@dataclass
class Cluster:
    setup: ClusterSetup
    components: Components
    api: AirflowApi
    sandbox: SandboxAdmin  # the main sandbox (LP, HD)
    kill_sandbox: SandboxAdmin  # the worker-kill test's
    warehouse_url: str  # SQLAlchemy URL of the warehouse database

    def start_worker(self) -> None:
        self.components.start("airflow-worker")
        self.wait_worker_ready()

    def wait_worker_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        worker = self.components.current("airflow-worker")
        self.components.wait_for("the Celery worker", lambda: " ready." in worker.tail(200_000), timeout)
