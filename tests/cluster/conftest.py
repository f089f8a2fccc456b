"""The cluster tier: cxsync on a real Airflow 3.3 cluster, started on this machine as production runs it.

`cluster` (session): two PostgreSQL databases of its own (Airflow's metadata, the cxsync warehouse behind the
`cxsync_warehouse` connection), Redis as the Celery broker under a key prefix of its own, an Airflow home under
tmp, `airflow db migrate`, then the real `api-server`, `scheduler`, `dag-processor`, `triggerer` and
`celery worker` (CeleryExecutor) as subprocesses, each in its own process group. The environment is the
deployment's (tests/support/cluster.py, `docker/airflow.env`); the sandbox serves the provider APIs. Tests
drive Airflow only through the REST API. Afterwards every process group is stopped, the databases dropped and
the Redis keys deleted; the components' logs are printed when a test failed.

Pools are NOT created here: the cxsync plugin creates them when the api-server starts, and the tests check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import yaml

from cxsync.airflow_components import COMPONENTS, Components, free_port
from cxsync_dev.sandbox.server import SandboxServer
from support.airflow_api import AirflowApi
from support.cluster import INTEGRATIONS, Cluster, ClusterSetup, cluster_environment
from support.providers import SandboxAdmin, sandbox_connections, start_sandbox

REDIS_URL = os.environ.get("CXSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis not reachable at {REDIS_URL}: {exc.__class__.__name__}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: the cluster tier must run, not skip; .ci/run starts Redis)")
        pytest.skip(reason)
    yield client
    client.close()


def _celery_executor_import(env: dict[str, str], home: Path) -> subprocess.Popen:
    """The worker and the scheduler import the CeleryExecutor first thing. Checked aside (while the database
    migrates), so a celery release the provider does not fit (celery 5.7.0 with the celery provider 3.26.0:
    `cannot import name 'retry'`) fails with what to do rather than as a dead worker."""
    return subprocess.Popen(
        [sys.executable, "-c", "import airflow.providers.celery.executors.celery_executor_utils"],
        env={**env, "AIRFLOW_HOME": str(home), "AIRFLOW_CONFIG": str(home / "airflow.cfg")},  # not the cluster's
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_import(check: subprocess.Popen) -> None:
    _, errors = check.communicate(timeout=300)
    if check.returncode != 0:
        pytest.fail(
            "the CeleryExecutor does not import with the installed celery; reinstall the pinned versions "
            f"(`make venv`, constraints.txt):\n{errors[-2000:]}"
        )


def _create_database(admin: sa.Engine, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return name


def _drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def _airflow(env: dict[str, str], *args: str, timeout: float = 300) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"


@pytest.fixture(scope="session")
def cluster(request, tmp_path_factory, pg_admin_engine, redis_client) -> Iterator[Cluster]:
    started = time.monotonic()
    base = tmp_path_factory.mktemp("cluster")
    admin_url = pg_admin_engine.url
    metadata_db = _create_database(pg_admin_engine, "cxsync_airflow")
    warehouse_db = _create_database(pg_admin_engine, "cxsync_wh")
    key_prefix = f"cxsync-test-{uuid.uuid4().hex[:12]}:"
    main_server: SandboxServer | None = None
    kill_server: SandboxServer | None = None
    components: Components | None = None
    try:
        # The sandboxes' clocks start at the real current minute: retention cutoffs are real time.
        main_server = start_sandbox(now=None)
        kill_server = start_sandbox(seed=29, now=None)
        connections = sandbox_connections(main_server)
        connections["liveperson_kill"] = sandbox_connections(kill_server)["sandbox_liveperson_main"]
        warehouse = admin_url.set(drivername="postgresql", database=warehouse_db)
        setup = ClusterSetup(
            base=base,
            metadata_url=admin_url.set(database=metadata_db).render_as_string(hide_password=False),
            warehouse_uri=warehouse.render_as_string(hide_password=False),
            broker_url=REDIS_URL,
            key_prefix=key_prefix,
            api_port=free_port(),
            health_port=free_port(),
            worker_log_port=free_port(),
            trigger_log_port=free_port(),
        )
        setup.home.mkdir(parents=True)
        setup.integrations_file.write_text(
            yaml.safe_dump({"warehouse_conn_id": "cxsync_warehouse", "integrations": INTEGRATIONS})
        )
        setup.passwords_file.write_text(json.dumps({setup.username: setup.password}))
        env = cluster_environment(setup, connections)

        check = _celery_executor_import(env, base / "import-check")
        _airflow(env, "db", "migrate")  # also writes airflow.cfg with the secrets every component shares
        _check_import(check)
        components = Components(env, setup.logs)
        for name in COMPONENTS:  # the services of docker-compose.yaml; the worker last, once the others are up
            if name != "airflow-worker":
                components.start(name)
        api = AirflowApi(setup.api_url, setup.username, setup.password, check=components.check_running)
        cluster = Cluster(
            setup,
            components,
            api,
            SandboxAdmin(main_server),
            SandboxAdmin(kill_server),
            warehouse.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False),
        )
        cluster.start_worker()
        components.wait_for("the api-server", lambda: _http_ok(f"{setup.api_url}/api/v2/monitor/health"), 120)
        components.wait_for("the scheduler", lambda: _http_ok(f"http://127.0.0.1:{setup.health_port}/health"), 120)
        api.login()
        print(f"\ncluster tier: Airflow cluster up in {time.monotonic() - started:.0f} s ({setup.base})")
        yield cluster
    finally:
        failed = request.session.testsfailed
        if components is not None:
            if failed:
                print("\n" + components.logs_text(8000))
            components.stop_all(grace=5.0)  # nothing runs by now: no need to wait for a warm shutdown
            assert components.all_gone(), "a component's process group outlived the cluster tier"
        for server in (main_server, kill_server):
            if server is not None:
                server.stop()
        for key in redis_client.scan_iter(match=f"{key_prefix}*"):
            redis_client.delete(key)
        _drop_database(pg_admin_engine, metadata_db)
        _drop_database(pg_admin_engine, warehouse_db)
        print(f"\ncluster tier: {time.monotonic() - started:.0f} s in all")
