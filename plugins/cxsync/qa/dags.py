"""The QA DAGs: `cxsync_agent_matching`, one `cxsync_qa_list_<id>` per list of the QA lists file, and
`cxsync_qa_lists_errors` when that file has problems (the good lists keep their DAGs).

Parsing reads only the files: no database, no pandas.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, task

from cxsync import settings
from cxsync.config import IntegrationsConfig
from cxsync.error_dag import add_error_dag
from cxsync.qa import tasks
from cxsync.qa.lists_config import QaList, QaListsConfig, load_qa_lists

START_DATE = datetime(2026, 1, 1)
QA_TAG = "qa"


def _default_args() -> dict:
    return {
        "owner": "cxsync",
        "retries": settings.TASK_RETRIES,
        "retry_delay": timedelta(seconds=settings.RETRY_DELAY_SECONDS),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=settings.MAX_RETRY_DELAY_SECONDS),
        "execution_timeout": timedelta(seconds=settings.TASK_EXECUTION_TIMEOUT_SECONDS),
    }


def matching_schedule(config: IntegrationsConfig):
    """Daily, and whenever any integration's roster sync publishes its Asset."""
    assets = [Asset(settings.roster_asset_uri(i.id)) for i in config.integrations]
    if not assets:
        return settings.AGENT_MATCHING_SCHEDULE
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(settings.AGENT_MATCHING_SCHEDULE, timezone="UTC"), assets=AssetAny(*assets)
    )


def build_agent_matching(config: IntegrationsConfig) -> DAG:
    rosters = ", ".join(f"`{i.id}`" for i in config.integrations) or "none"
    with DAG(
        dag_id=settings.AGENT_MATCHING_DAG_ID,
        dag_display_name=f"cxsync: agent matching ({settings.AGENT_MATCHING_DAG_ID})",
        description="Loads the staff file into cx_staff and matches every provider agent to staff "
        "(override > external id > e-mail > name).",
        doc_md="### Agent matching\n\nLoads the staff file (`CXSYNC_STAFF_FILE`, default `include/staff.csv`) and "
        "writes one `cx_agent_matches` row per provider agent, deleted ones and bots included. Overrides in "
        "`cx_agent_match_overrides` always win. Runs daily, after every roster sync (integrations: "
        f"{rosters}), and by hand.\n",
        tags=[settings.DAG_TAG, QA_TAG],
        schedule=matching_schedule(config),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(),
    ) as dag:

        @task(outlets=[Asset(settings.AGENT_MATCHES_ASSET_URI)])
        def match_agents() -> dict:
            return tasks.agent_matching()

        match_agents()
    return dag


def _describe(qa_list: QaList) -> str:
    quota = (
        "every eligible interaction"
        if qa_list.type == "all"
        else f"{qa_list.per_agent} per staff member"
        if qa_list.per_agent is not None
        else f"{qa_list.total} in total"
    )
    return (
        f"{qa_list.type} list, {quota}, interactions that ended in the last {qa_list.period.last} {qa_list.period.unit}"
    )


def build_qa_list(qa_list: QaList) -> DAG:
    rows = {
        "type": qa_list.type,
        "integrations": ", ".join(qa_list.integrations) or "all",
        "period": f"last {qa_list.period.last} {qa_list.period.unit}",
        "quota": f"per_agent {qa_list.per_agent}" if qa_list.per_agent else f"total {qa_list.total}",
        "exclude listed within": f"{qa_list.exclude_listed_within_days} day(s)",
        "evaluators": ", ".join(qa_list.evaluators) or "none",
        "seed": qa_list.seed if qa_list.seed is not None else "from the list id and the period",
        "schedule": qa_list.schedule,
    }
    table = "\n".join(f"| {k} | `{v}` |" for k, v in rows.items())
    with DAG(
        dag_id=settings.qa_list_dag_id(qa_list.id),
        dag_display_name=f"QA list · {qa_list.label} ({settings.qa_list_dag_id(qa_list.id)})",
        description=(qa_list.description or _describe(qa_list))[:500],
        doc_md=f"### {qa_list.label}\n\n{qa_list.description}\n\n{_describe(qa_list)}\n\n| | |\n|---|---|\n{table}\n",
        tags=[settings.DAG_TAG, QA_TAG, "qa-list"],
        schedule=CronTriggerTimetable(qa_list.schedule, timezone="UTC") if qa_list.schedule else None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(),
    ) as dag:

        @task(outlets=[Asset(settings.qa_list_asset_uri(qa_list.id))])
        def build_list(list_id: str = qa_list.id, dag_run=None) -> dict:
            # run_after: the tick a scheduled run stands for, or when a manual run was asked for; the same
            # run retried keeps it, so its list run id and seed stay the same.
            return tasks.qa_list(list_id, dag_run.run_after)

        build_list()
    return dag


def build_qa_dags(config: IntegrationsConfig, qa_config: QaListsConfig | None = None) -> dict[str, DAG]:
    qa_config = qa_config if qa_config is not None else load_qa_lists()
    dags: dict[str, DAG] = {}
    matching = build_agent_matching(config)
    dags[matching.dag_id] = matching
    for qa_list in qa_config.lists:
        try:
            dag = build_qa_list(qa_list)
        except Exception as exc:  # one list Airflow refuses never hides the others
            qa_config.errors.append(f"{qa_config.path}: list {qa_list.id!r}: Airflow refused its DAG: {exc}")
            continue
        dags[dag.dag_id] = dag
    add_error_dag(
        dags,
        dag_id=settings.QA_LISTS_ERRORS_DAG_ID,
        what="QA lists file",
        path=qa_config.path,
        errors=qa_config.errors,
        skipped="lists",
        task_id="report_qa_list_errors",
    )
    return dags
