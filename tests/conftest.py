"""Shared fixtures: an isolated Airflow home, a warehouse on SQLite and on PostgreSQL, and Redis.

PostgreSQL tests create their own database. Without a server (PostgreSQL, Redis) they skip with the reason;
under CI=true a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

# Provider test support (sandbox fixtures and helpers) usable from every test package.
pytest_plugins = ["support.helpdesk", "support.hostile"]

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("CXSYNC_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_configure(config):
    # Tests never touch a developer's real Airflow home or warehouse.
    home = Path(os.environ.get("CXSYNC_TEST_AIRFLOW_HOME", "/tmp/cxsync-test-airflow-home")) / str(os.getpid())
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    # The suite's stubs and hostile servers listen on plain http on 127.0.0.1: opt in, as a user would
    # (tests of the default refusal take it away).
    os.environ.setdefault("CXSYNC_ALLOW_PLAIN_HTTP_LOOPBACK", "1")
    os.environ.setdefault("CXSYNC_INTEGRATIONS_FILE", str(ROOT / "include" / "integrations.yaml"))


@pytest.fixture(scope="session")
def pg_admin_engine():
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run, not skip)")
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url():
    """A Redis server for the shared rate limit's tests (`CXSYNC_TEST_REDIS_URL`); skipped without one, a failure
    under CI=true."""
    import redis

    url = os.environ.get("CXSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        reason = f"Redis not reachable at {url}: {exc.__class__.__name__}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: Redis tests must run, not skip)")
        pytest.skip(reason)
    finally:
        client.close()
    return url


@pytest.fixture
def pg_url(pg_admin_engine):
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"cxsync_test_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_ADMIN_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path):
    """Every warehouse test runs on both SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def warehouse(warehouse_url):
    from cxsync.warehouse import Warehouse

    wh = Warehouse.from_url(warehouse_url)
    wh.ensure_schema()
    yield wh
    wh.dispose()
