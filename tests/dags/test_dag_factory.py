"""The DAG factory: four DAGs per integration with the contract's ids, settings and Params, parsed offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from cxsync import settings
from cxsync.config import load_integrations
from cxsync.qa.lists_config import load_qa_lists

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
SHIPPED = ROOT / "include" / "integrations.yaml"
KINDS = ("roster_sync", "backfill", "incremental", "retention")
# Global DAGs of the QA layer, whatever the integrations: agent matching and one per shipped QA list.
# The shipped file redacts PII on these two integrations: each has a re-redaction DAG.
REDACT_DAGS = {"cxsync_lp_main_redact", "cxsync_hd_main_redact"}
QA_DAGS = {"cxsync_agent_matching"} | {
    f"cxsync_qa_list_{q.id}" for q in load_qa_lists(ROOT / "include/qa_lists.yaml").lists
}
# Tasks that talk to the provider's API run in the provider's pool.
PROVIDER_TASKS = {
    "roster_sync": {"sync_roster"},
    "backfill": {"plan_windows", "load_window"},
    "incremental": {"load_changes", "reconcile"},
    "retention": set(),
}


def dag_bag(integrations_file: Path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(integrations_file))
    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def shipped_bag():
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CXSYNC_INTEGRATIONS_FILE", str(SHIPPED))
        return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def shipped():
    return load_integrations(SHIPPED)


def serialized(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def test_shipped_file_gives_exactly_four_dags_per_integration_and_no_import_errors(shipped_bag, shipped):
    assert shipped_bag.import_errors == {}
    expected = {f"cxsync_{i.id}_{kind}" for i in shipped.integrations for kind in KINDS}
    assert len(expected) == 4 * len(shipped.integrations) == 16
    # One more, the re-redaction DAG, for each integration with pii_redaction.
    redact = {f"cxsync_{i.id}_redact" for i in shipped.integrations if i.pii_redaction is not None}
    assert redact == REDACT_DAGS
    assert set(shipped_bag.dag_ids) == expected | redact | QA_DAGS
    assert "cxsync_config_errors" not in shipped_bag.dag_ids


def test_every_dag_serializes_as_the_dag_processor_needs(shipped_bag):
    for dag in shipped_bag.dags.values():
        assert serialized(dag).dag_id == dag.dag_id


def test_tags_names_and_docs_show_the_integration(shipped_bag, shipped):
    for integration in shipped.integrations:
        for kind in KINDS:
            dag = shipped_bag.dags[f"cxsync_{integration.id}_{kind}"]
            assert set(dag.tags) == {"cxsync", integration.provider, integration.id}
            assert integration.label in dag.dag_display_name
            assert dag.dag_id in dag.dag_display_name  # Airflow's DAG search finds the README's ids
            assert integration.label in dag.description and integration.description in dag.description
            assert integration.label in dag.doc_md and integration.description in dag.doc_md
            assert integration.conn_id in dag.doc_md


def test_retries_backoff_catchup_and_one_run_at_a_time(shipped_bag):
    for dag in shipped_bag.dags.values():
        assert dag.catchup is False
        assert dag.max_active_runs == 1
        for task in dag.tasks:
            assert task.retries >= 2, task
            assert task.retry_exponential_backoff and task.retry_exponential_backoff > 1, task
            assert task.retry_delay >= timedelta(seconds=10)
            assert task.max_retry_delay is not None and task.max_retry_delay >= task.retry_delay
            # a task stuck on a hostile store or an endless wait ends instead of holding its pool slot for ever
            assert task.execution_timeout == timedelta(seconds=settings.TASK_EXECUTION_TIMEOUT_SECONDS), task


def test_provider_tasks_run_in_the_providers_pool(shipped_bag, shipped):
    for integration in shipped.integrations:
        for kind in KINDS:
            dag = shipped_bag.dags[f"cxsync_{integration.id}_{kind}"]
            pooled = {t.task_id for t in dag.tasks if t.pool == f"cxsync_{integration.provider}"}
            assert pooled == PROVIDER_TASKS[kind], (dag.dag_id, pooled)
    pools = {t.pool for d in shipped_bag.dags.values() for t in d.tasks} - {"default_pool"}
    assert pools == {"cxsync_liveperson", "cxsync_helpdesk"}


def test_schedules(shipped_bag, shipped):
    for integration in shipped.integrations:

        def get(dag_id):
            return serialized(shipped_bag.dags[dag_id])

        assert get(f"cxsync_{integration.id}_backfill").timetable.can_be_scheduled is False  # manual only
        incremental = get(f"cxsync_{integration.id}_incremental").timetable
        assert incremental.summary == integration.schedule
        assert get(f"cxsync_{integration.id}_roster_sync").timetable.summary in {"@daily", "0 0 * * *"}
        assert get(f"cxsync_{integration.id}_retention").timetable.summary in {"@daily", "0 0 * * *"}


def test_the_shipped_file_runs_one_integration_in_freshness_mode(shipped_bag, shipped):
    from croniter import croniter

    fresh = [i for i in shipped.integrations if i.schedule == settings.SCHEDULE_PRESETS["@every_15_minutes"]]
    assert [i.id for i in fresh] == ["lp_oauth2"]
    timetable = serialized(shipped_bag.dags["cxsync_lp_oauth2_incremental"]).timetable
    assert timetable.summary == "*/15 * * * *"
    it = croniter(timetable.summary)
    assert it.get_next() + 15 * 60 == it.get_next()
    # Reconciliation stays in the DAG, after the load: its task decides whether a pass is due.
    dag = shipped_bag.dags["cxsync_lp_oauth2_incremental"]
    assert dag.get_task("reconcile").upstream_task_ids == {"load_changes"}


def test_backfill_weeks_param_is_validated(shipped_bag):
    from airflow.exceptions import ParamValidationError

    params = serialized(shipped_bag.dags["cxsync_lp_main_backfill"]).params
    assert params.validate() == {"weeks": 1}
    schema = params.get_param("weeks").schema
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 4)
    # the trigger form shows a choice of 1 to 4, so nothing out of range can be typed and clamped
    assert schema["enum"] == [1, 2, 3, 4]
    assert schema["values_display"]["1"] == "1 week (this integration's default)"
    assert schema["values_display"]["4"] == "4 weeks"
    for weeks in (1, 2, 3, 4):
        assert params.deep_merge({"weeks": weeks}).validate() == {"weeks": weeks}
    for bad in (0, 5, -1, "x", 2.5, None):
        with pytest.raises(ParamValidationError):
            params.deep_merge({"weeks": bad}).validate()


def test_backfill_default_weeks_come_from_the_integration(tmp_path, monkeypatch):
    path = tmp_path / "integrations.yaml"
    path.write_text("integrations:\n  - {id: hd_x, provider: helpdesk, conn_id: hd, backfill_weeks: 3}\n")
    bag = dag_bag(path, monkeypatch)
    assert serialized(bag.dags["cxsync_hd_x_backfill"]).params.validate() == {"weeks": 3}


def test_incremental_reconciles_after_the_load_unless_reconcile_hours_is_0(tmp_path, monkeypatch):
    path = tmp_path / "integrations.yaml"
    path.write_text(
        "integrations:\n  - {id: hd_x, provider: helpdesk, conn_id: hd}\n"
        "  - {id: hd_off, provider: helpdesk, conn_id: hd, options: {reconcile_hours: 0}}\n"
    )
    bag = dag_bag(path, monkeypatch)
    dag = serialized(bag.dags["cxsync_hd_x_incremental"])
    assert dag.task_dict["reconcile"].upstream_task_ids == {"load_changes"}
    assert set(serialized(bag.dags["cxsync_hd_off_incremental"]).task_dict) == {"load_changes"}


def test_retention_dry_run_param_is_boolean(shipped_bag):
    from airflow.exceptions import ParamValidationError

    params = serialized(shipped_bag.dags["cxsync_hd_main_retention"]).params
    # The trigger form starts on a dry run: pressing Trigger counts, deletes nothing.
    assert params.validate() == {"dry_run": True}
    assert params.deep_merge({"dry_run": False}).validate() == {"dry_run": False}
    for bad in ("x", "true", 1, None):
        with pytest.raises(ParamValidationError):
            params.deep_merge({"dry_run": bad}).validate()


def test_a_bad_entry_yields_the_config_errors_dag_and_the_good_dags_remain(tmp_path, monkeypatch):
    path = tmp_path / "integrations.yaml"
    path.write_text(
        textwrap.dedent("""
        integrations:
          - {id: lp_ok, provider: liveperson, conn_id: lp}
          - {id: hd_bad, provider: helpdesk, conn_id: hd, backfill_weeks: 9}
          - {id: hd_ok, provider: helpdesk, conn_id: hd}
    """)
    )
    with pytest.warns(UserWarning, match="backfill_weeks"):
        bag = dag_bag(path, monkeypatch)
    assert bag.import_errors == {}
    assert (
        set(bag.dag_ids)
        == {f"cxsync_{i}_{k}" for i in ("lp_ok", "hd_ok") for k in KINDS} | {"cxsync_config_errors"} | QA_DAGS
    )
    errors_dag = bag.dags["cxsync_config_errors"]
    for text in (errors_dag.description, errors_dag.doc_md):
        assert str(path) in text and "integrations[1]" in text and "hd_bad" in text and "`backfill_weeks`" in text
    assert "config-error" in errors_dag.tags
    assert errors_dag.timetable.can_be_scheduled is False
    assert all(
        t.execution_timeout == timedelta(seconds=settings.TASK_EXECUTION_TIMEOUT_SECONDS) for t in errors_dag.tasks
    )


def test_config_errors_dag_fails_when_run(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    path = tmp_path / "integrations.yaml"
    path.write_text("integrations:\n  - {id: Bad, provider: helpdesk, conn_id: hd}\n")
    bag = dag_bag(path, monkeypatch)
    task = bag.dags["cxsync_config_errors"].get_task("report_config_errors")
    with pytest.raises(AirflowFailException, match="`id`"):
        task.python_callable(*task.op_args, **task.op_kwargs)


def test_an_integration_airflow_refuses_does_not_hide_the_others(tmp_path, monkeypatch, factory):
    config = load_integrations(
        _write(
            tmp_path,
            "integrations:\n  - {id: lp_a, provider: liveperson, conn_id: a}\n"
            "  - {id: lp_b, provider: liveperson, conn_id: b}\n",
        )
    )
    original = factory.BUILDERS["retention"]

    def refuse_lp_a(integration):
        if integration.id == "lp_a":
            raise ValueError("tag cannot be longer than 100 characters")
        return original(integration)

    monkeypatch.setitem(factory.BUILDERS, "retention", refuse_lp_a)
    dags = factory.build_all(config)
    assert set(dags) == {f"cxsync_lp_b_{k}" for k in KINDS} | {"cxsync_config_errors"}
    assert "lp_a" in config.errors[0] and "tag cannot be longer" in config.errors[0]


@pytest.fixture
def factory(monkeypatch):
    """The DAG file as a module, for direct calls to its builders."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cxsync_dags_under_test", DAGS / "cxsync_dags.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(SHIPPED))
    spec.loader.exec_module(module)
    return module


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "integrations.yaml"
    path.write_text(text)
    return path


def test_unusable_integrations_file_is_an_import_error_that_names_it(tmp_path, monkeypatch):
    path = tmp_path / "integrations.yaml"
    path.write_text("integrations: [\n")
    bag = dag_bag(path, monkeypatch)
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert str(path) in error and "not valid YAML" in error


PARSE_OFFLINE = r"""
import json, socket, sys
import sqlalchemy
from airflow.dag_processing.dagbag import DagBag

touched = []

def refuse(what):
    def _refuse(*args, **kwargs):
        touched.append(what)
        raise RuntimeError(f"DAG parsing must not use {what}")
    return _refuse

socket.socket.connect = refuse("socket.connect")
socket.socket.connect_ex = refuse("socket.connect_ex")
socket.create_connection = refuse("socket.create_connection")
socket.getaddrinfo = refuse("socket.getaddrinfo")
sqlalchemy.create_engine = refuse("sqlalchemy.create_engine")
import sqlite3
sqlite3.connect = refuse("sqlite3.connect")
try:
    import psycopg2
    psycopg2.connect = refuse("psycopg2.connect")
except ImportError:
    pass

# Airflow reads our provider info at import; nothing else of cxsync may be loaded before the patches but the
# plain data it reads: the registry and the providers' declarations.
early = sorted(m for m in sys.modules if m.startswith("cxsync"))
light = {"cxsync", "cxsync.provider_info", "cxsync.registry", "cxsync.settings", "cxsync.options", "cxsync.providers"}
assert set(early) <= light | {m for m in early if m.startswith("cxsync.providers.")}, early
bag = DagBag(dag_folder=sys.argv[1])
provider_code = sorted(m for m in sys.modules if m.startswith(("cxsync.sources.", "cxsync.hooks.", "cxsync.http")))
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": bag.import_errors, "touched": touched,
                  "provider_code": provider_code}))
"""


def test_parsing_touches_no_network_and_no_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["CXSYNC_INTEGRATIONS_FILE"] = str(SHIPPED)
    env["AIRFLOW_HOME"] = str(tmp_path / "home")
    env["CXSYNC_WAREHOUSE_PATH"] = str(tmp_path / "warehouse.db")
    done = subprocess.run(
        [sys.executable, "-c", PARSE_OFFLINE, str(DAGS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["touched"] == []
    assert len(result["dags"]) == 16 + len(REDACT_DAGS) + len(QA_DAGS)
    # provider code loads only when a task runs (sources.base is the contract, not provider code)
    assert [m for m in result["provider_code"] if m != "cxsync.sources.base"] == []
    assert not (tmp_path / "warehouse.db").exists()


def test_airflow_dags_list_shows_exactly_four_dags_per_integration(tmp_path, shipped):
    """What an operator sees: `airflow dags list` with the shipped integrations file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        CXSYNC_INTEGRATIONS_FILE=str(SHIPPED),
    )
    airflow_cli = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run(
        [airflow_cli, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    listed = subprocess.run(
        [airflow_cli, "dags", "list", "--local", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    dag_ids = sorted(d["dag_id"] for d in json.loads(listed.stdout.strip().splitlines()[-1]))
    assert dag_ids == sorted(
        {f"cxsync_{i.id}_{kind}" for i in shipped.integrations for kind in KINDS} | REDACT_DAGS | QA_DAGS
    )
    assert "Failed to load" not in listed.stdout + listed.stderr  # how the command reports import errors


def test_the_retention_dag_asks_for_approval_only_on_its_branch(shipped_bag):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = shipped_bag.dags["cxsync_lp_main_retention"]
    approve = dag.task_dict["approve_deletion"]
    assert isinstance(approve, ApprovalOperator)
    assert approve.defaults == [ApprovalOperator.REJECT]  # unanswered: nothing deleted
    assert dag.task_dict["approval_needed"].downstream_task_ids == {"approve_deletion", "no_approval_needed"}
    delete = dag.task_dict["delete_expired"]
    assert delete.upstream_task_ids == {"assess", "approve_deletion", "no_approval_needed"}
    assert delete.trigger_rule == "none_failed_min_one_success"


def test_the_redact_dag_runs_by_hand_with_a_batch_size(shipped_bag):
    from airflow.exceptions import ParamValidationError

    dag = shipped_bag.dags["cxsync_hd_main_redact"]
    assert dag.schedule is None  # by hand only
    assert [task.task_id for task in dag.tasks] == ["redact_stored"]
    params = serialized(dag).params
    assert params.validate() == {"batch_size": 200}
    with pytest.raises(ParamValidationError):
        params.deep_merge({"batch_size": 0}).validate()


def test_every_dag_id_is_in_its_display_name(shipped_bag):
    """Airflow searches display names: every cxsync DAG (QA and analytics ones too) is found by its id."""
    for dag in shipped_bag.dags.values():
        assert dag.dag_id in dag.dag_display_name, dag.dag_display_name


def test_the_backfill_weeks_param_says_its_range_in_one_sentence(shipped_bag):
    param = serialized(shipped_bag.dags["cxsync_hd_main_backfill"]).params.get_param("weeks")
    assert param.description == "How many weeks back to load: a whole number from 1 to 4; any other value is refused."


def test_every_task_ends_its_failed_log_with_the_plain_line(shipped_bag):
    from cxsync import failure

    for integration_dags in (d for d in shipped_bag.dags.values() if d.dag_id.endswith(KINDS)):
        for task in integration_dags.tasks:
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert failure.on_failure in callbacks, (integration_dags.dag_id, task.task_id)
