"""The `cxsync_<id>_analytics` DAG (only with `conversation_analytics: true`), its task, and the threshold options."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from transcripts import conversation, metrics

from cxsync import settings
from cxsync.config import load_integrations

ROOT = Path(__file__).resolve().parents[2]
ON = {"id": "lp_on", "provider": "liveperson", "conn_id": "lp", "conversation_analytics": True}
OFF = {"id": "hd_off", "provider": "helpdesk", "conn_id": "hd"}


def write(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump({"integrations": list(entries)}, sort_keys=False), encoding="utf-8")
    return path


def test_bad_threshold_options_name_file_entry_and_field_and_never_hide_the_good_entries(tmp_path):
    path = write(
        tmp_path,
        ON,
        {**OFF, "options": {"long_wait_seconds": "10m", "many_agents": 1, "long_first_response_seconds": True}},
        {**OFF, "id": "hd_ok", "options": {"long_wait_seconds": 3600, "overlap_minutes": 5}},
    )
    config = load_integrations(path)
    assert [i.id for i in config.integrations] == ["lp_on", "hd_ok"]
    assert len(config.errors) == 3
    for error, field in zip(
        config.errors,
        ("options.long_first_response_seconds", "options.long_wait_seconds", "options.many_agents"),
        strict=True,
    ):
        assert str(path) in error and "integrations[1] (id 'hd_off')" in error and f"`{field}`" in error, error


def test_the_dag_exists_only_with_analytics_on_runs_on_the_interactions_asset_and_has_a_full_param(
    tmp_path, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(write(tmp_path, ON, OFF)))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert "cxsync_lp_on_analytics" in bag.dag_ids and "cxsync_hd_off_analytics" not in bag.dag_ids
    # four per integration and the analytics one; the QA layer's global DAGs come on top
    assert len([d for d in bag.dag_ids if d.startswith(("cxsync_lp_on_", "cxsync_hd_off_"))]) == 9
    dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["cxsync_lp_on_analytics"]))
    assert [a.uri for _, a in dag.timetable.asset_condition.iter_assets()] == [settings.interactions_asset_uri("lp_on")]
    # The loads that update that Asset: backfill and incremental.
    for kind in ("backfill", "incremental"):
        outlets = {o.uri for task in bag.dags[f"cxsync_lp_on_{kind}"].tasks for o in task.outlets}
        assert settings.interactions_asset_uri("lp_on") in outlets
    assert dag.params.validate() == {"full": False}
    assert dag.params.deep_merge({"full": True}).validate() == {"full": True}
    assert [task.task_id for task in dag.tasks] == ["compute_metrics"]


def test_the_task_computes_into_the_configured_warehouse_and_fails_fast_when_analytics_is_off(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from cxsync.analytics.task import compute_metrics
    from cxsync.warehouse import Warehouse

    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(write(tmp_path, ON, OFF)))
    monkeypatch.setenv("CXSYNC_WAREHOUSE_PATH", str(tmp_path / "wh.db"))
    warehouse = Warehouse.from_url(f"sqlite:///{tmp_path / 'wh.db'}")
    warehouse.ensure_schema()
    warehouse.write_interactions("lp_on", [conversation("x", [(0, "customer", "c", "hi"), (5, "agent", "a1", "yo")])])
    result = compute_metrics("lp_on", full=False)
    assert (result["interactions_computed"], result["agent_days_computed"]) == (1, 1)
    assert metrics(warehouse, "lp_on")["x"]["first_response_seconds"] == 5.0
    assert compute_metrics("lp_on", full=True)["interactions_computed"] == 1
    with pytest.raises(AirflowFailException, match="conversation_analytics: false"):
        compute_metrics("hd_off", full=False)
    warehouse.dispose()
