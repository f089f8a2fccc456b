"""A third provider, ToyDesk, lives entirely in the tests (tests/support/toydesk: a hook, a source, its
declarations, a stub of its API) and joins with one `registry.register` call. It gets its connection type in
Airflow's provider info, its DAGs from the DAG factory, the check of its options when the integrations file is
loaded, and a backfill into the warehouse."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import airflow
import jsonschema
import pytest
import sqlalchemy as sa
import yaml

from cxsync import registry, tasks
from cxsync.config import load_integrations
from cxsync.provider_info import get_provider_info
from support import toydesk
from support.toydesk.server import NOW, TICKETS, ToyDeskServer

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "toy-token"
GOOD = {"id": "toy_main", "provider": "toydesk", "conn_id": "toy_main", "options": {"page_size": 2}}


@pytest.fixture
def toy():
    registry.register(toydesk.SPEC)
    yield toydesk.SPEC
    registry.unregister(toydesk.NAME)


def write(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump({"integrations": list(entries)}, sort_keys=False), encoding="utf-8")
    return path


def dag_factory(path: Path, monkeypatch):
    """The DAG file run as Airflow's DAG processor runs it, on this integrations file."""
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(path))
    spec = importlib.util.spec_from_file_location("cxsync_dags_third_provider", ROOT / "dags" / "cxsync_dags.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_its_connection_type_is_in_the_provider_info(toy, monkeypatch):
    for module in ("support.toydesk.hook", "support.toydesk.source"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    info = get_provider_info()
    assert "support.toydesk.hook" not in sys.modules  # the api-server reads it without importing the hook
    (conn,) = [c for c in info["connection-types"] if c["connection-type"] == "toydesk"]
    assert conn["hook-class-name"] == "support.toydesk.hook.ToyDeskHook"
    assert conn["hook-name"] == "ToyDesk"
    assert set(conn["conn-fields"]) >= {"team", "requests_per_second"}
    assert {"integration-name": "ToyDesk", "python-modules": ["support.toydesk.hook"]} in info["hooks"]
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)


def test_without_registration_it_is_an_unknown_provider(tmp_path):
    config = load_integrations(write(tmp_path, GOOD))
    (error,) = config.errors
    assert "integrations[0] (id 'toy_main')" in error and "field `provider`" in error


def test_its_options_are_checked_when_the_file_is_loaded(toy, tmp_path):
    path = write(
        tmp_path,
        GOOD,
        {**GOOD, "id": "toy_bad", "options": {"page_size": 0}},
        {**GOOD, "id": "toy_typo", "options": {"page_sise": 10}},
    )
    config = load_integrations(path)
    assert [i.id for i in config.integrations] == ["toy_main"]
    bad, typo = config.errors
    assert str(path) in bad and "integrations[1] (id 'toy_bad')" in bad and "`options.page_size`" in bad, bad
    assert "from 1 to 200" in bad
    assert "integrations[2] (id 'toy_typo')" in typo and "'page_sise'" in typo and "page_size" in typo, typo


def test_the_dag_factory_builds_its_dags_and_reports_its_bad_entries(toy, tmp_path, monkeypatch):
    path = write(tmp_path, GOOD, {**GOOD, "id": "toy_bad", "options": {"channel": 7}})
    dags = dag_factory(path, monkeypatch)
    for kind in ("roster_sync", "backfill", "incremental", "retention"):
        dag = getattr(dags, f"cxsync_toy_main_{kind}")
        assert "toydesk" in dag.tags
    backfill = dags.cxsync_toy_main_backfill
    assert backfill.task_dict["load_window"].pool == "cxsync_toydesk"
    assert "ToyDesk" in backfill.description
    assert not hasattr(dags, "cxsync_toy_bad_backfill")
    errors = dags.cxsync_config_errors
    assert "integrations[1] (id 'toy_bad')" in errors.doc_md and "`options.channel`" in errors.doc_md


def test_its_pool_is_created_with_its_default_size(toy):
    from cxsync.pools import wanted_pools

    assert {p.name: p.slots for p in wanted_pools()}["cxsync_toydesk"] == 3


def test_a_backfill_loads_its_tickets_into_the_warehouse(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(write(tmp_path, GOOD)))
    monkeypatch.setenv("CXSYNC_WAREHOUSE_PATH", str(tmp_path / "warehouse.db"))
    monkeypatch.delenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", raising=False)
    with ToyDeskServer(TOKEN) as server:
        connection = {"conn_type": "toydesk", "host": "127.0.0.1", "port": server.port, "password": TOKEN}
        monkeypatch.setenv("AIRFLOW_CONN_TOY_MAIN", json.dumps(connection))
        assert tasks.roster_sync("toy_main")["agents"] == 2
        windows = tasks.plan_backfill("toy_main", 1)
        loaded = [tasks.backfill_window("toy_main", window) for window in windows]
        tasks.finish_backfill("toy_main", windows, loaded)
    assert windows[-1]["end"] == NOW.isoformat()
    week = {t["id"] for t in TICKETS if NOW - timedelta(weeks=1) <= datetime.fromisoformat(t["created"]) < NOW}
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT interaction_id, agent_id, channel FROM cx_interactions WHERE integration_id = 'toy_main'"
                )
            ).all()
            messages = conn.execute(
                sa.text("SELECT count(*) FROM cx_messages WHERE integration_id = 'toy_main'")
            ).scalar()
    finally:
        engine.dispose()
    assert {r.interaction_id for r in rows} == week and len(week) == 7
    assert {r.channel for r in rows} == {"email"}
    assert messages == 2 * len(week)
