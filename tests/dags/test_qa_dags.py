"""The QA DAGs: agent matching on every roster Asset or daily, one DAG per QA list, errors shown in the UI
without hiding the good lists, and the task glue that fails at once on what no retry fixes."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from cxsync import settings

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
SHIPPED_INTEGRATIONS = ROOT / "include" / "integrations.yaml"
INTEGRATIONS = "integrations:\n  - {id: hd_main, provider: helpdesk, conn_id: hd}\n"


def bag(monkeypatch, qa_lists: Path | None = None, integrations: Path = SHIPPED_INTEGRATIONS):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(integrations))
    if qa_lists is not None:
        monkeypatch.setenv("CXSYNC_QA_LISTS_FILE", str(qa_lists))
    return DagBag(dag_folder=str(DAGS))


def serialized(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def test_agent_matching_runs_on_every_roster_asset_or_daily_and_publishes_an_asset(monkeypatch):
    from airflow.sdk import AssetOrTimeSchedule

    from cxsync.config import load_integrations

    dags = bag(monkeypatch)
    assert dags.import_errors == {}
    dag = dags.dags["cxsync_agent_matching"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    rosters = {a.uri for a in dag.timetable.asset_condition.objects}
    assert rosters == {f"cxsync://{i.id}/roster" for i in load_integrations(SHIPPED_INTEGRATIONS).integrations}
    assert serialized(dag).timetable.summary == "Asset or 0 0 * * *"
    (task,) = dag.tasks
    assert [o.uri for o in task.outlets] == ["cxsync://staff/agent_matches"]
    assert dag.max_active_runs == 1 and task.retries >= 2
    assert task.execution_timeout == timedelta(seconds=settings.TASK_EXECUTION_TIMEOUT_SECONDS)


def test_one_dag_per_list_with_its_schedule_and_asset(monkeypatch):
    from cxsync.qa.lists_config import load_qa_lists

    dags = bag(monkeypatch)
    for qa_list in load_qa_lists(ROOT / "include" / "qa_lists.yaml").lists:
        dag = dags.dags[f"cxsync_qa_list_{qa_list.id}"]
        assert serialized(dag).timetable.summary == qa_list.schedule
        assert qa_list.label in dag.dag_display_name and "qa" in dag.tags
        (task,) = dag.tasks
        assert [o.uri for o in task.outlets] == [f"cxsync://qa_lists/{qa_list.id}"]


def test_a_bad_list_shows_in_the_ui_and_the_good_lists_and_integrations_keep_their_dags(tmp_path, monkeypatch):
    path = tmp_path / "qa_lists.yaml"
    path.write_text(
        textwrap.dedent("""
        lists:
          - {id: good, type: random, per_agent: 2, period: {last: 7, unit: days}}
          - {id: bad, type: random, per_agent: 2, period: {last: 7, unit: fortnights}}
    """)
    )
    with pytest.warns(UserWarning, match="period.unit"):
        dags = bag(monkeypatch, path)
    assert dags.import_errors == {}
    assert {"cxsync_qa_list_good", "cxsync_qa_lists_errors", "cxsync_agent_matching", "cxsync_lp_main_backfill"} <= set(
        dags.dag_ids
    )
    assert "cxsync_qa_list_bad" not in dags.dag_ids
    errors = dags.dags["cxsync_qa_lists_errors"]
    for text in (errors.description, errors.doc_md):
        assert str(path) in text and "lists[1] (id 'bad')" in text and "`period.unit`" in text
    task = errors.get_task("report_qa_list_errors")
    with pytest.raises(AirflowFailException, match="fortnights"):
        task.python_callable(*task.op_args, **task.op_kwargs)


def test_a_broken_lists_file_hides_no_integration_dag(tmp_path, monkeypatch):
    path = tmp_path / "qa_lists.yaml"
    path.write_text("lists: [\n")
    with pytest.warns(UserWarning, match="not valid YAML"):
        dags = bag(monkeypatch, path)
    assert dags.import_errors == {}
    assert {"cxsync_qa_lists_errors", "cxsync_agent_matching", "cxsync_hd_main_incremental"} <= set(dags.dag_ids)


@pytest.fixture
def task_env(tmp_path, monkeypatch):
    (tmp_path / "integrations.yaml").write_text(INTEGRATIONS)
    (tmp_path / "staff.csv").write_text("staff_id,name,email\ns-1,Ann,ann@x.example\n")
    (tmp_path / "qa_lists.yaml").write_text(
        "lists:\n  - {id: ok, type: all, integrations: [hd_main], period: {last: 7, unit: days}}\n"
        "  - {id: elsewhere, type: all, integrations: [lp_gone], period: {last: 7, unit: days}}\n"
    )
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(tmp_path / "integrations.yaml"))
    monkeypatch.setenv("CXSYNC_STAFF_FILE", str(tmp_path / "staff.csv"))
    monkeypatch.setenv("CXSYNC_QA_LISTS_FILE", str(tmp_path / "qa_lists.yaml"))
    monkeypatch.setenv("CXSYNC_WAREHOUSE_PATH", str(tmp_path / "warehouse.db"))
    monkeypatch.delenv("CXSYNC_QA_EXPORT_DIR", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", raising=False)
    return tmp_path


def test_tasks_run_against_the_warehouse_and_fail_at_once_on_config_errors(task_env):
    from datetime import UTC, datetime

    from cxsync.qa import tasks

    assert tasks.agent_matching()["agents"] == 0
    done = tasks.qa_list("ok", datetime(2026, 3, 2, tzinfo=UTC))
    assert done["list_run_id"] == "ok-20260302T000000Z" and done["items"] == 0
    assert Path(done["export_path"]).parent == task_env / "qa_lists"  # next to the warehouse file
    assert Path(done["export_path"]).exists()
    with pytest.raises(AirflowFailException, match=r"field `integrations`: 'lp_gone' not in"):
        tasks.qa_list("elsewhere", datetime(2026, 3, 2, tzinfo=UTC))
    with pytest.raises(AirflowFailException, match="no valid QA list with id 'nope'"):
        tasks.qa_list("nope", datetime(2026, 3, 2, tzinfo=UTC))
    (task_env / "staff.csv").unlink()
    with pytest.raises(AirflowFailException, match="staff file not found"):
        tasks.agent_matching()
