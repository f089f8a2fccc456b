"""`make airflow` starts Airflow's components one after the other, each healthy before the next: a scheduler
started before the api-server listens fails each DAG's first task with "Connection refused"."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cxsync.airflow_components import Components
from cxsync_dev import local_airflow

SLEEPER = (sys.executable, "-c", "import time; time.sleep(120)")


def _report(up: set[str], beat: datetime) -> dict:
    def entry(name: str, key: str) -> dict:
        return {"status": "healthy" if name in up else "unhealthy", f"latest_{key}_heartbeat": beat.isoformat()}

    return {
        "metadatabase": {"status": "healthy"},
        "scheduler": entry("airflow-scheduler", "scheduler"),
        "dag_processor": entry("airflow-dag-processor", "dag_processor"),
        "triggerer": entry("airflow-triggerer", "triggerer"),
    }


def test_each_component_starts_only_after_the_one_before_is_healthy(tmp_path):
    components = Components({}, tmp_path / "logs", prefix=SLEEPER)
    seen_at_start: dict[str, list[str]] = {}
    healthy: list[str] = []
    original_start = components.start

    def start(name, args=None):
        seen_at_start[name] = list(healthy)
        return original_start(name, args)

    components.start = start  # type: ignore[method-assign]
    polls = {"n": 0}

    def report(url: str) -> dict | None:
        # A component turns healthy on the second poll after it started; the api-server answers nothing at first.
        polls["n"] += 1
        current = components.started[-1].name
        if polls["n"] % 2 == 0 and current not in healthy:
            healthy.append(current)
        if "airflow-apiserver" not in healthy:
            return None
        return _report(set(healthy), datetime.now(UTC))

    try:
        local_airflow.start_in_order(components, "http://127.0.0.1:1", report=report, timeout=30)
    finally:
        components.stop_all(grace=2)
    order = list(local_airflow.LOCAL_COMPONENTS)
    assert order[0] == "airflow-apiserver" and order[1] == "airflow-scheduler"
    assert seen_at_start == {name: order[:n] for n, name in enumerate(order)}


def test_a_heartbeat_from_before_this_start_is_not_healthy():
    since = datetime.now(UTC)
    old = _report({"airflow-scheduler"}, since - timedelta(seconds=20))
    assert not local_airflow.healthy(old, "airflow-scheduler", since)
    assert local_airflow.healthy(_report({"airflow-scheduler"}, since), "airflow-scheduler", since)
    assert not local_airflow.healthy(None, "airflow-apiserver", since)
    assert local_airflow.healthy(_report(set(), since), "airflow-apiserver", since)


def test_a_component_that_never_gets_healthy_is_named(tmp_path):
    components = Components({}, tmp_path / "logs", prefix=SLEEPER)
    try:
        with pytest.raises(TimeoutError, match="airflow-apiserver healthy"):
            local_airflow.start_in_order(components, "http://127.0.0.1:1", report=lambda url: None, timeout=2)
        assert [c.name for c in components.started] == ["airflow-apiserver"]  # the scheduler never started
    finally:
        components.stop_all(grace=2)


def test_the_demos_connections_go_to_the_metadata_database_not_the_environment(tmp_path):
    from types import SimpleNamespace

    imported: dict = {}

    def runner(args, log, env):
        path = args[-1]
        imported["args"] = list(args[:-1])
        imported["mode"] = oct(os.stat(path).st_mode & 0o777)
        imported["connections"] = json.loads(Path(path).read_text())
        return 0

    lp = {"conn_type": "liveperson", "host": "127.0.0.1", "password": "pw-xyz", "extra": {"account_id": "1"}}
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW_CONN_SANDBOX_LP": json.dumps(lp),
           "AIRFLOW_CONN_CXSYNC_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": "/w.db"})}  # fmt: skip
    said: list[str] = []
    state = SimpleNamespace(env=env, logs=tmp_path, runner=runner, out=said.append, show=str)
    local_airflow.connections_to_metadata_db(state)
    assert imported["args"] == ["connections", "import", "--overwrite"] and imported["mode"] == "0o600"
    assert imported["connections"] == {"sandbox_lp": lp, "cxsync_warehouse": {"conn_type": "sqlite", "host": "/w.db"}}
    assert not [k for k in state.env if k.startswith("AIRFLOW_CONN_")]  # nothing shadows the database's copies
    assert state.env["AIRFLOW_HOME"] == str(tmp_path)
    assert "pw-xyz" not in " ".join(said) and "Admin > Connections" in said[-1]
    assert not list(tmp_path.glob("*.json"))


def test_make_airflow_runs_the_integrations_the_demo_ran_analytics_on_included(tmp_path, monkeypatch):
    from cxsync.config import load_integrations

    source = tmp_path / "integrations.yaml"
    source.write_text("integrations:\n  - {id: lp_local, provider: liveperson, conn_id: sandbox_liveperson_main}\n")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    state = local_airflow.demo_state(load_integrations(source))
    assert [i.conversation_analytics for i in state.config.integrations] == [True]
    assert state.config.path.parent == tmp_path / "home"  # the demo's copy; the user's file is untouched
    assert "conversation_analytics" not in source.read_text()
