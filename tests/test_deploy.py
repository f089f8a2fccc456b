"""Cluster deployment: docker-compose.yaml, Dockerfile, .dockerignore and the warehouse init script.

Docker does not run here, so the files are parsed and checked against what Airflow and cxsync need;
the PostgreSQL init script runs against the local server.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from cxsync import settings
from cxsync.airflow_components import COMPONENTS, SHARED_ENV_FILE, read_env_file, shared_environment
from cxsync.registry import PROVIDERS
from support.cluster import DEPLOYMENT_KEYS, LOCAL_ONLY, TEST_SPEEDUPS, ClusterSetup, cluster_environment

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
LONG_RUNNING = (
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
)
INIT_SCRIPT_DIR = ROOT / "docker" / "postgres"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # join continued lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def env_files(service: str) -> list[str]:
    return [entry["path"] if isinstance(entry, dict) else entry for entry in SERVICES[service].get("env_file", [])]


def env(service: str) -> dict[str, str]:
    """What compose gives the service: its env files that ship with the repository, then `environment`."""
    out: dict[str, str] = {}
    for path in env_files(service):
        if (ROOT / path).is_file() and path != "cxsync.env":  # cxsync.env: the user's own, optional
            out.update(read_env_file(ROOT / path))
    out.update({k: str(v) for k, v in SERVICES[service].get("environment", {}).items()})
    return out


def interpolate(value: str, variables: dict[str, str] | None = None) -> str:
    """Compose's ${VAR:-default} with no variables set: the defaults."""
    variables = variables or {}
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: variables.get(m.group(1), m.group(2) or ""), value)


def test_all_services_of_the_celery_cluster():
    assert set(LONG_RUNNING) | {"airflow-init"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    commands = {name: SERVICES[name].get("command") for name in AIRFLOW_SERVICES}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-worker"] == "celery worker"
    assert commands["airflow-triggerer"] == "triggerer"


def test_every_airflow_service_runs_our_image_built_from_the_dockerfile():
    images = {SERVICES[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1
    for name in AIRFLOW_SERVICES:
        assert SERVICES[name]["build"] in (".", {"context": "."}), name


def test_dockerfile_extends_the_official_image_and_installs_the_pinned_tree_and_the_package():
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", "apache/airflow:3.3.2-python3.11")
    runs = [rest for keyword, rest in steps if keyword == "RUN"]
    requirement_installs = [r for r in runs if "-r /opt/cxsync/requirements.txt" in r]
    assert requirement_installs and "-c /opt/cxsync/constraints.txt" in requirement_installs[0]
    assert '"apache-airflow==3.3.2"' in requirement_installs[0]  # pip never moves Airflow itself
    assert any(re.search(r"pip install .*\s/opt/cxsync(\s|$)", r) for r in runs)
    assert all(keyword != "USER" or rest == "airflow" for keyword, rest in steps)  # pip runs as `airflow`
    env_lines = " ".join(rest for keyword, rest in steps if keyword == "ENV")
    assert "CXSYNC_INTEGRATIONS_FILE=/opt/airflow/include/integrations.yaml" in env_lines


def test_dockerfile_copies_only_files_that_exist_and_that_dockerignore_keeps():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [shlex.split(rest) for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    assert copies
    for parts in copies:
        sources = [p for p in parts[:-1] if not p.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            name = source.rstrip("/")
            for pattern in ignored:
                assert not fnmatch.fnmatch(name, pattern.rstrip("/")), (source, pattern)
    for must_ignore in (".venv/", ".git/", ".airflow/", "*.db", "logs/"):
        assert must_ignore in ignored


def test_airflow_settings_shared_by_every_component():
    for name in AIRFLOW_SERVICES:
        e = env(name)
        assert e["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert (
            e["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
            and "@redis:6379" in e["AIRFLOW__CELERY__BROKER_URL"]
        )
        metadata = sa.make_url(e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert (metadata.host, metadata.database) == ("postgres", "airflow")
        assert e["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
        assert e["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert e["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
        assert e["AIRFLOW_CONFIG"].startswith("/opt/airflow/config/")


def test_warehouse_connection_points_at_the_separate_cxsync_database():
    pg = env("postgres")
    for name in AIRFLOW_SERVICES:
        uri = interpolate(env(name)["AIRFLOW_CONN_CXSYNC_WAREHOUSE"])
        url = sa.make_url(uri)
        assert url.drivername == "postgresql"  # Airflow reads this scheme as conn_type postgres
        assert (url.host, url.port) == ("postgres", 5432)
        assert url.database == pg["CXSYNC_WAREHOUSE_DB"] == "cxsync"
        assert url.database != pg["POSTGRES_DB"]
        assert url.username == pg["CXSYNC_WAREHOUSE_USER"]
        assert url.password == interpolate(pg["CXSYNC_WAREHOUSE_PASSWORD"])


def test_mounts_dags_include_and_logs_and_points_cxsync_at_the_mounted_file():
    for name in AIRFLOW_SERVICES:
        mounts = {}
        for volume in SERVICES[name]["volumes"]:
            source, target = interpolate(volume).split(":")[:2]
            mounts[target] = source
        assert mounts["/opt/airflow/dags"] == "./dags"
        assert mounts["/opt/airflow/include"] == "./include"
        assert mounts["/opt/airflow/logs"] == "./logs"
        assert env(name)["CXSYNC_INTEGRATIONS_FILE"] == "/opt/airflow/include/integrations.yaml"
    assert (ROOT / "dags" / "cxsync_dags.py").is_file() and (ROOT / "include" / "integrations.yaml").is_file()


def test_health_checks_on_every_long_running_service():
    for name in LONG_RUNNING:
        check = SERVICES[name].get("healthcheck")
        assert check and check.get("test"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert SERVICES[name].get("restart") == "always", name
    assert "8974/health" in " ".join(SERVICES["airflow-scheduler"]["healthcheck"]["test"])
    assert "/api/v2/version" in " ".join(SERVICES["airflow-apiserver"]["healthcheck"]["test"])
    assert "DagProcessorJob" in " ".join(SERVICES["airflow-dag-processor"]["healthcheck"]["test"])
    assert "TriggererJob" in " ".join(SERVICES["airflow-triggerer"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(SERVICES["airflow-worker"]["healthcheck"]["test"])
    assert env("airflow-scheduler")["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


def test_start_order():
    for name in AIRFLOW_SERVICES:
        deps = SERVICES[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
    assert SERVICES["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_init_migrates_and_creates_the_admin_and_leaves_the_pools_to_the_plugin():
    script = "\n".join(SERVICES["airflow-init"]["command"])
    assert "airflow db migrate" in script
    assert "airflow config list" in script
    assert env("airflow-init")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].endswith(":admin")
    assert "simple_auth_manager_passwords" in script
    # As in the cluster tier, which proves the plugin creates them when the api-server starts.
    assert "pools" not in re.sub(r"#.*", "", script)
    for provider in PROVIDERS:
        assert settings.pool_name(provider) not in script


# ---- the cluster test tier runs what compose runs ------------------------------------------------------------


def _cluster_tier_environment() -> dict[str, str]:
    setup = ClusterSetup(
        base=Path("/tmp/cluster"),
        metadata_url="postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_x",
        warehouse_uri="postgresql://postgres@127.0.0.1:5432/wh_x",
        broker_url="redis://127.0.0.1:6379/0",
        key_prefix="cxsync-test-x:",
        api_port=18080,
        health_port=18974,
        worker_log_port=18793,
        trigger_log_port=18794,
    )
    return cluster_environment(setup, {})


def test_compose_runs_the_commands_the_cluster_tier_runs():
    for service, args in COMPONENTS.items():
        assert SERVICES[service]["command"] == " ".join(args), service


def test_compose_and_the_cluster_tier_read_one_file_of_shared_settings():
    shared = shared_environment()
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor" and shared["AIRFLOW__CORE__TEST_CONNECTION"]
    relative = str(SHARED_ENV_FILE.relative_to(ROOT))
    common = COMPOSE["x-airflow-common"]
    assert {"path": relative, "required": True} in common["env_file"]
    for name in AIRFLOW_SERVICES:
        assert relative in env_files(name), name
        assert not set(shared) & set(SERVICES[name].get("environment", {})), f"{name} overrides the shared file"
    tier = _cluster_tier_environment()
    assert {k: tier[k] for k in shared} == shared  # verbatim, nothing overridden
    assert not set(shared) & (set(DEPLOYMENT_KEYS) | set(LOCAL_ONLY) | set(TEST_SPEEDUPS))


def test_compose_sets_per_deployment_exactly_what_the_cluster_tier_sets_per_run():
    common = set(COMPOSE["x-airflow-common"]["environment"])
    assert common == set(DEPLOYMENT_KEYS)
    tier = _cluster_tier_environment()
    assert set(DEPLOYMENT_KEYS) <= set(tier)
    settings_keys = {k for k in tier if k.startswith(("AIRFLOW", "CXSYNC_"))}
    assert settings_keys == set(shared_environment()) | set(DEPLOYMENT_KEYS) | set(LOCAL_ONLY) | set(TEST_SPEEDUPS)
    # Both point the warehouse connection at PostgreSQL and the broker at Redis.
    for uri in (
        interpolate(str(COMPOSE["x-airflow-common"]["environment"]["AIRFLOW_CONN_CXSYNC_WAREHOUSE"])),
        tier["AIRFLOW_CONN_CXSYNC_WAREHOUSE"],
    ):
        assert sa.make_url(uri).drivername == "postgresql"
    assert tier["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")


def test_compose_interpolation_is_escaped_in_shell_commands():
    # A lone `$` in a command would be eaten by compose's interpolation; shell variables need `$$`.
    for name, service in SERVICES.items():
        for field in ("command", "healthcheck"):
            text = yaml.safe_dump(service.get(field, ""))
            stripped = re.sub(r"\$\$|\$\{\w+(:?-[^}]*)?\}", "", text)
            assert "$" not in stripped, (name, field)


def test_postgres_runs_the_warehouse_init_script():
    mounts = SERVICES["postgres"]["volumes"]
    assert "./docker/postgres:/docker-entrypoint-initdb.d:ro" in mounts
    scripts = sorted(INIT_SCRIPT_DIR.glob("*.sh"))
    assert scripts and all(os.access(s, os.X_OK) for s in scripts)


@pytest.mark.postgres
@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_warehouse_init_script_creates_the_database_and_owner_idempotently(pg_admin_engine):
    suffix = uuid.uuid4().hex[:8]
    db, owner = f"cxsync_init_{suffix}", f"cxsync_owner_{suffix}"
    admin = pg_admin_engine.url
    environment = {
        **os.environ,
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "POSTGRES_USER": admin.username or "postgres",
        "POSTGRES_DB": admin.database or "postgres",
        "CXSYNC_WAREHOUSE_DB": db,
        "CXSYNC_WAREHOUSE_USER": owner,
        "CXSYNC_WAREHOUSE_PASSWORD": "pw'x",
    }
    if admin.password:
        environment["PGPASSWORD"] = admin.password
    script = next(iter(sorted(INIT_SCRIPT_DIR.glob("*.sh"))))
    try:
        for _ in range(2):  # a second run changes nothing and does not fail
            done = subprocess.run(
                ["bash", str(script)], env=environment, capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 0, done.stderr
        with pg_admin_engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :d"), {"d": db}
            ).scalar()
        assert found == owner
    finally:
        with pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{owner}"'))


def test_compose_gives_the_api_server_the_base_url_the_connect_flow_redirects_to():
    """The HelpDesk connect flow builds its OAuth redirect_uri from `[api] base_url`, never from the Host header."""
    base_url = interpolate(str(COMPOSE["x-airflow-common"]["environment"]["AIRFLOW__API__BASE_URL"]))
    assert base_url == "http://localhost:8080"
