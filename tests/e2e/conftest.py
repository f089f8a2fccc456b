"""End-to-end fixtures, provider-neutral: a real Airflow deployment in miniature.

`airflow_env` (session): one Airflow home whose metadata DB is migrated once (`airflow db migrate`), one
sandbox serving every provider (its clock starts at the real current minute, so retention's real-time
cutoffs make sense), the sandbox's connections exported as `AIRFLOW_CONN_*` JSON with fast retries, a
temporary integrations file (`CXSYNC_INTEGRATIONS_FILE`, empty until a test adds entries) and SQLite
warehouse (`CXSYNC_WAREHOUSE_PATH`). `airflow_env.run_dag(dag_id, conf)` runs `airflow dags test` in a
subprocess with that environment and returns a `DagRunResult`.

The sandbox and warehouse are shared by the session: tests work relative to the sandbox's current time,
reset the faults they set, and use their own integration ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from cxsync.warehouse import Warehouse
from cxsync_dev.sandbox.app import provider_modules
from cxsync_dev.sandbox.core import Sandbox
from cxsync_dev.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parents[2]
SEED = 11
# The request layer's tunables (cxsync.http.tunables), shared by every provider: a fault costs milliseconds
# inside the task, never an Airflow retry delay.
FAST_EXTRAS: dict[str, Any] = {
    "requests_per_second": 0,
    "retry_base_seconds": 0.005,
    "retry_max_seconds": 0.02,
    "rate_limit_min_wait": 0.01,
    "max_attempts": 8,
    "timeout": 10,
}


@dataclass
class DagRunResult:
    dag_id: str
    returncode: int
    output: str

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and "state=success" in self.output and "state=failed" not in self.output

    @property
    def retried(self) -> bool:
        """Whether any task was put up for retry (a fatal error must fail at once instead)."""
        return "up_for_retry" in self.output.lower()

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]


class AirflowEnv:
    def __init__(self, base: Path, server: SandboxServer):
        self.base = base
        self.server = server
        self.home = base / "airflow"
        self.integrations_file = base / "integrations.yaml"
        self.warehouse_path = base / "warehouse.db"
        self.integrations: dict[str, dict[str, Any]] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        self.env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            CXSYNC_INTEGRATIONS_FILE=str(self.integrations_file),
            CXSYNC_WAREHOUSE_PATH=str(self.warehouse_path),
        )
        for conn_id, text in server.connection_uris().items():
            conn = json.loads(text)
            conn["extra"] = {**conn.get("extra", {}), **FAST_EXTRAS}
            self.set_connection(conn_id, conn)
        self._write_integrations()
        self.airflow("db", "migrate")

    # ---- configuration --------------------------------------------------------------------------------

    def set_connection(self, conn_id: str, conn: Mapping[str, Any]) -> None:
        self.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(conn))

    def connection(self, conn_id: str) -> dict[str, Any]:
        return json.loads(self.env[f"AIRFLOW_CONN_{conn_id.upper()}"])

    def add_integrations(self, *entries: Mapping[str, Any]) -> None:
        """Add (or replace, by id) integration entries in the integrations file."""
        for entry in entries:
            self.integrations[entry["id"]] = dict(entry)
        self._write_integrations()

    def _write_integrations(self) -> None:
        self.integrations_file.write_text(yaml.safe_dump({"integrations": list(self.integrations.values())}))

    # ---- running --------------------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
        return done

    def run_dag(self, dag_id: str, conf: Mapping[str, Any] | None = None, timeout: float = 600) -> DagRunResult:
        args = ["dags", "test", dag_id]
        if conf:
            args += ["-c", json.dumps(dict(conf))]
        done = self.airflow(*args, timeout=timeout, check=False)
        return DagRunResult(dag_id, done.returncode, done.stdout + done.stderr)

    # ---- looking -------------------------------------------------------------------------------------

    def warehouse(self) -> Warehouse:
        return Warehouse.from_url(f"sqlite:///{self.warehouse_path}")

    def sandbox(self, method: str, path: str, body: Any = None) -> Any:
        """The sandbox admin API, e.g. `sandbox("POST", "/clock", {"advance": "1d"})`."""
        response = requests.request(method, f"{self.server.base_url}/_sandbox{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()


def _small_options() -> dict[str, Any]:
    options: dict[str, Any] = {}
    for module in provider_modules().values():
        options.update(getattr(module, "TEST_OPTIONS", {}))
    return options


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> Iterator[AirflowEnv]:
    sandbox = Sandbox(seed=SEED, now=None, options=_small_options())
    with SandboxServer(sandbox) as server:
        yield AirflowEnv(tmp_path_factory.mktemp("e2e"), server)
