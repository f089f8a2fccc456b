"""cxsync DAG factory: four DAGs per integration of the integrations file, one more with conversation analytics
and one more with PII redaction (docs/architecture.md, "DAG ids").

Parsing reads only the integrations file: no network, no database, no provider code. A bad entry
is reported in the Airflow UI (the `cxsync_config_errors` DAG and the parse log) and never hides
the good entries' DAGs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Asset, Param, task

from cxsync import settings, tasks
from cxsync.analytics.dag import build_analytics
from cxsync.config import Integration, IntegrationsConfig, load_integrations
from cxsync.error_dag import add_error_dag
from cxsync.qa.dags import build_qa_dags
from cxsync.registry import PROVIDERS

START_DATE = datetime(2026, 1, 1)  # fixed, so the schedule does not shift between parses


def _default_args(provider: str | None) -> dict:
    args = {
        "owner": "cxsync",
        "retries": settings.TASK_RETRIES,
        "retry_delay": timedelta(seconds=settings.RETRY_DELAY_SECONDS),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=settings.MAX_RETRY_DELAY_SECONDS),
        "execution_timeout": timedelta(seconds=settings.TASK_EXECUTION_TIMEOUT_SECONDS),
    }
    if provider:
        args["pool"] = PROVIDERS[provider].pool
    return args


def _doc(integration: Integration, what: str) -> str:
    spec = PROVIDERS[integration.provider]
    return (
        f"### {integration.label}\n\n{integration.description or ''}\n\n"
        f"**{what}**\n\n"
        f"| | |\n|---|---|\n"
        f"| integration | `{integration.id}` |\n| provider | {spec.display_name} |\n"
        f"| connection | `{integration.conn_id}` |\n| backfill default | {integration.backfill_weeks} week(s) |\n"
        f"| retention | {integration.retention} |\n| incremental schedule | `{integration.schedule}` |\n"
        f"| pool | `{spec.pool}`: created by the cxsync plugin when the api-server "
        "starts; a task whose pool is missing is never scheduled (Admin > Pools) |\n"
    )


def _dag(integration: Integration, kind: str, what: str, **kwargs) -> DAG:
    provider_name = PROVIDERS[integration.provider].display_name
    return DAG(
        dag_id=settings.dag_id(integration.id, kind),
        dag_display_name=f"{integration.label} · {kind.replace('_', ' ')}",
        description=f"{provider_name} · {integration.label}: {integration.description or what}"[:500],
        doc_md=_doc(integration, what),
        tags=[settings.DAG_TAG, integration.provider, integration.id],
        start_date=START_DATE,
        catchup=False,
        **kwargs,
    )


def build_roster_sync(integration: Integration) -> DAG:
    with _dag(
        integration,
        "roster_sync",
        "Fetches every agent (deleted ones too) and upserts cx_agents. Runs daily, and first.",
        schedule="@daily",
        max_active_runs=1,
        default_args=_default_args(integration.provider),
        is_paused_upon_creation=False,
    ) as dag:

        @task(outlets=[Asset(settings.roster_asset_uri(integration.id))])
        def sync_roster(integration_id: str = integration.id) -> dict:
            return tasks.roster_sync(integration_id)

        sync_roster()
    return dag


def build_backfill(integration: Integration) -> DAG:
    with _dag(
        integration,
        "backfill",
        "Loads every interaction that started in the last `weeks` weeks, one task per day window; trigger it by hand.",
        schedule=None,
        max_active_runs=1,
        default_args=_default_args(integration.provider),
        params={
            # A choice, not a number box: the form cannot clamp what it never lets anyone type.
            "weeks": Param(
                integration.backfill_weeks,
                type="integer",
                enum=list(range(settings.MIN_BACKFILL_WEEKS, settings.MAX_BACKFILL_WEEKS + 1)),
                values_display={
                    str(n): f"{n} week{'s' if n > 1 else ''}"
                    + (" (this integration's default)" if n == integration.backfill_weeks else "")
                    for n in range(settings.MIN_BACKFILL_WEEKS, settings.MAX_BACKFILL_WEEKS + 1)
                },
                minimum=settings.MIN_BACKFILL_WEEKS,
                maximum=settings.MAX_BACKFILL_WEEKS,
                title="Weeks of history",
                description="How many weeks back to load: 1 to 4.",
            ),
        },
    ) as dag:

        @task
        def plan_windows(params=None, integration_id: str = integration.id) -> list[dict]:
            return tasks.plan_backfill(integration_id, params["weeks"])

        @task(map_index_template="{{ task.op_kwargs['window']['start'][:10] }}")
        def load_window(window: dict, integration_id: str = integration.id) -> dict:
            return tasks.backfill_window(integration_id, window)

        @task(outlets=[Asset(settings.interactions_asset_uri(integration.id))], pool="default_pool")
        def finish(windows: list[dict], loaded: list[dict], integration_id: str = integration.id) -> dict:
            return tasks.finish_backfill(integration_id, windows, loaded)

        windows = plan_windows()
        finish(windows, load_window.expand(window=windows))
    return dag


def build_incremental(integration: Integration) -> DAG:
    with _dag(
        integration,
        "incremental",
        "Loads interactions created or changed since the last committed watermark, then reconciles the look-back "
        "(`reconcile_hours`) with the provider's lists.",
        schedule=integration.schedule,
        max_active_runs=1,
        default_args=_default_args(integration.provider),
    ) as dag:

        @task(outlets=[Asset(settings.interactions_asset_uri(integration.id))])
        def load_changes(integration_id: str = integration.id) -> dict:
            return tasks.incremental(integration_id)

        loaded = load_changes()
        if integration.reconcile_hours > 0:
            # After the load: lists the look-back, loads what the incremental read missed (late visibility).
            @task(outlets=[Asset(settings.interactions_asset_uri(integration.id))])
            def reconcile(incremental: dict, integration_id: str = integration.id) -> dict:
                return tasks.reconcile(integration_id, incremental)

            reconcile(loaded)
    return dag


def build_retention(integration: Integration) -> DAG:
    share = integration.retention.approval_share
    with _dag(
        integration,
        "retention",
        f"Deletes everything of this integration older than its retention ({integration.retention}). A scheduled "
        f"run that would delete for the first time, or more than {share:.0%} of the interactions, waits for "
        "approval (Browse > Required Actions); dry runs and runs triggered by hand never wait.",
        schedule="@daily",
        max_active_runs=1,
        default_args=_default_args(None),
        params={
            "dry_run": Param(
                False, type="boolean", title="Dry run", description="Count what would be deleted, delete nothing."
            )
        },
    ) as dag:

        @task
        def assess(params=None, dag_run=None, integration_id: str = integration.id) -> dict:
            run_type = getattr(dag_run.run_type, "value", dag_run.run_type) if dag_run else None
            return tasks.assess_retention(integration_id, bool(params["dry_run"]), run_type)

        @task.branch
        def approval_needed(assessment: dict) -> str:
            return "approve_deletion" if assessment["needs_approval"] else "no_approval_needed"

        approve = ApprovalOperator(
            task_id="approve_deletion",
            subject=f"cxsync: approve deleting old data of {integration.label} ({integration.id})?",
            body="{{ ti.xcom_pull(task_ids='assess')['summary'] }}\n\n"
            "Why this waits: {{ ti.xcom_pull(task_ids='assess')['reason'] }}.\n\n"
            "Approve to delete exactly this; reject to delete nothing today. "
            f"Unanswered after {settings.RETENTION_APPROVAL_DAYS} days counts as reject.",
            defaults=ApprovalOperator.REJECT,
            response_timeout=timedelta(days=settings.RETENTION_APPROVAL_DAYS),
        )
        no_approval = EmptyOperator(task_id="no_approval_needed")

        # Runs after whichever branch ran; a rejected approval skips it.
        @task(trigger_rule="none_failed_min_one_success")
        def delete_expired(assessment: dict, params=None, integration_id: str = integration.id) -> dict:
            return tasks.retention(integration_id, bool(params["dry_run"]), assessment["cutoff"])

        assessment = assess()
        approval_needed(assessment) >> [approve, no_approval]
        [approve, no_approval] >> delete_expired(assessment)
    return dag


def build_redact(integration: Integration) -> DAG:
    with _dag(
        integration,
        "redact",
        "Re-redacts the rows already stored under the integration's current pii_redaction rules, in place, in "
        "batches with a checkpoint (a stopped run resumes); trigger it after turning redaction on or changing its "
        "rules. No provider request; nothing else changes.",
        schedule=None,
        max_active_runs=1,
        default_args=_default_args(None),
        params={
            "batch_size": Param(
                200, type="integer", minimum=1, maximum=5000, title="Batch size", description="Interactions a batch."
            )
        },
    ) as dag:

        @task
        def redact_stored(params=None, integration_id: str = integration.id) -> dict:
            return tasks.reredact(integration_id, int(params["batch_size"]))

        redact_stored()
    return dag


BUILDERS = {
    "roster_sync": build_roster_sync,
    "backfill": build_backfill,
    "incremental": build_incremental,
    "retention": build_retention,
}


def build_all(config: IntegrationsConfig) -> dict[str, DAG]:
    dags: dict[str, DAG] = {}
    for integration in config.integrations:
        # All DAGs of an integration or none; one integration Airflow refuses never hides the others.
        try:
            built = [builder(integration) for builder in BUILDERS.values()]
            if integration.conversation_analytics:
                built.append(build_analytics(integration, _dag, _default_args(None)))
            if integration.pii_redaction is not None:
                built.append(build_redact(integration))
        except Exception as exc:
            config.errors.append(f"{config.path}: integration {integration.id!r}: Airflow refused its DAGs: {exc}")
            continue
        dags.update((dag.dag_id, dag) for dag in built)
    add_error_dag(
        dags,
        dag_id="cxsync_config_errors",
        what="integrations file",
        path=config.path,
        errors=config.errors,
        skipped="entries",
        task_id="report_config_errors",
    )
    return dags


_config = load_integrations()
globals().update(build_all(_config))
# The QA layer: agent matching and one DAG per QA list (its own errors DAG for the QA lists file).
globals().update(build_qa_dags(_config))
