"""The `cxsync_<id>_analytics` DAG of an integration with `conversation_analytics: true`.

Scheduled on the integration's interactions Asset, which the backfill and incremental DAGs update: every load
is followed by the metrics of what it changed. By hand, Param `full` recomputes every interaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from cxsync import settings
from cxsync.config import Integration

KIND = "analytics"


def build_analytics(integration: Integration, make_dag: Callable[..., DAG], default_args: dict[str, Any]) -> DAG:
    """`make_dag(integration, kind, what, **dag_kwargs)`: the factory's common DAG settings (tags, docs, start)."""
    with make_dag(
        integration,
        KIND,
        "Conversation metrics and flags per interaction (cx_interaction_metrics) and per agent day "
        "(cx_agent_daily_metrics), for the interactions changed since the last run; docs/metrics.md.",
        schedule=[Asset(settings.interactions_asset_uri(integration.id))],
        max_active_runs=1,
        default_args=default_args,
        params={
            "full": Param(
                False,
                type="boolean",
                title="Recompute everything",
                description="Recompute the metrics of every interaction, not only the changed ones.",
            )
        },
    ) as dag:

        @task
        def compute_metrics(params=None, integration_id: str = integration.id) -> dict:
            from cxsync.analytics.task import compute_metrics

            return compute_metrics(integration_id, bool(params["full"]))

        compute_metrics()
    return dag
