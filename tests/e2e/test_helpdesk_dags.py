"""The four DAGs of a HelpDesk integration, run with `airflow dags test` against the sandbox.

One Airflow home, one sandbox and one SQLite warehouse for the module; the runs build on each other like a
first deployment: roster, backfill, a day later the nightly incremental, retention as a dry run, and the
backfill once more, which must change nothing. Field-by-field exactness over many scenarios is proven
faster one level down (tests/sources/test_helpdesk.py drives the same pipeline functions); here the DAGs
themselves must run and land exactly the sandbox's ground truth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from cxsync.sandbox.core import Sandbox
from cxsync.sandbox.server import SandboxServer
from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t
from support.helpdesk import (
    FAST_EXTRAS,
    HD_OPTIONS,
    SANDBOX_NOW,
    SEED,
    expected_from_truth,
    warehouse_snapshot,
    warehouse_view,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = "hd_e2e"
INTEGRATIONS_YAML = f"""
integrations:
  - id: {INTEGRATION}
    provider: helpdesk
    label: HelpDesk e2e (sandbox, token)
    conn_id: helpdesk_main
    backfill_weeks: 1
    retention: {{value: 4, unit: days}}
"""


class Deployment:
    """An Airflow home with a migrated metadata DB, the sandbox, and the env that points one at the other."""

    def __init__(self, base: Path, server: SandboxServer):
        self.server = server
        self.warehouse_path = base / "warehouse.db"
        (base / "integrations.yaml").write_text(INTEGRATIONS_YAML)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        self.env.update(
            AIRFLOW_HOME=str(base / "airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            CXSYNC_INTEGRATIONS_FILE=str(base / "integrations.yaml"),
            CXSYNC_WAREHOUSE_PATH=str(self.warehouse_path),
        )
        for conn_id, text in server.connection_uris().items():
            conn = json.loads(text)
            conn["extra"] = {**conn.get("extra", {}), **FAST_EXTRAS}
            self.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        self.airflow("db", "migrate")

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done

    def run_dag(self, kind: str, conf: dict[str, Any] | None = None) -> str:
        args = ["dags", "test", f"cxsync_{INTEGRATION}_{kind}"]
        if conf:
            args += ["-c", json.dumps(conf)]
        done = self.airflow(*args)
        output = done.stdout + done.stderr
        assert "state=success" in output and "state=failed" not in output, output[-4000:]
        return output

    def advance(self, duration: str) -> None:
        answer = requests.post(f"{self.server.base_url}/_sandbox/clock", json={"advance": duration}, timeout=10)
        answer.raise_for_status()

    def truth(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.server.base_url}/_sandbox/truth/helpdesk", timeout=30)
        answer.raise_for_status()
        return answer.json()["interactions"]

    def warehouse(self) -> Warehouse:
        return Warehouse.from_url(f"sqlite:///{self.warehouse_path}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    sandbox = Sandbox(seed=SEED, now=SANDBOX_NOW, options=dict(HD_OPTIONS))
    with SandboxServer(sandbox) as server:
        yield Deployment(tmp_path_factory.mktemp("hd_e2e"), server)


def test_the_four_dags_load_exactly_the_ground_truth(deployment):
    deployment.run_dag("roster_sync")
    wh = deployment.warehouse()
    with wh.engine.connect() as conn:
        agents = conn.execute(sa.select(t.agents.c.agent_id, t.agents.c.is_deleted)
                              .where(t.agents.c.integration_id == INTEGRATION)).all()
    assert len(agents) == 8 and not any(deleted for _, deleted in agents)

    deployment.run_dag("backfill", {"weeks": 1})
    truth = deployment.truth()
    assert {x["silo"] for x in truth} >= {"tickets", "archive", "spam"}
    assert warehouse_view(wh, INTEGRATION) == expected_from_truth(truth)
    assert wh.get_watermark(INTEGRATION, "interactions") == "2025-03-14T09:30:00.000000Z"

    deployment.advance("1d")
    before = expected_from_truth(truth)
    deployment.run_dag("incremental")
    after = expected_from_truth(deployment.truth())
    assert warehouse_view(wh, INTEGRATION) == after
    assert set(after) - set(before), "the day brought new tickets"
    assert any(after[i]["provider_status"] != before[i]["provider_status"] for i in before)
    assert wh.get_watermark(INTEGRATION, "interactions") == "2025-03-15T09:30:00.000000Z"

    # Retention (4 days) as a dry run: logged, counted, nothing deleted.
    snapshot = warehouse_snapshot(wh, INTEGRATION)
    deployment.run_dag("retention", {"dry_run": True})
    with wh.engine.connect() as conn:
        [log] = conn.execute(sa.select(t.retention_log).where(t.retention_log.c.integration_id == INTEGRATION)).all()
    assert log.dry_run and log.interactions_deleted > 0 and log.messages_deleted > 0
    assert log.cutoff < datetime.now(UTC)
    assert warehouse_snapshot(wh, INTEGRATION) == snapshot

    # Running the backfill again changes nothing.
    deployment.run_dag("backfill", {"weeks": 1})
    assert warehouse_snapshot(wh, INTEGRATION) == snapshot
    wh.dispose()
