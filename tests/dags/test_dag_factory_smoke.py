"""The DAG folder parses into four DAGs per integration, with no import errors."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dag_folder_builds_four_dags_per_integration():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    for integration_id in ("lp_main", "lp_oauth2", "hd_main", "hd_oauth"):
        for kind in ("roster_sync", "backfill", "incremental", "retention"):
            assert f"cxsync_{integration_id}_{kind}" in bag.dag_ids
