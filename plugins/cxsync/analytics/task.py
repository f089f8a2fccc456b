"""What the analytics DAG's task runs: resolve the integration and the warehouse, then `run_analytics`."""

from __future__ import annotations

from cxsync.config import load_integrations
from cxsync.errors import FatalError
from cxsync.tasks import fail_fast


def compute_metrics(integration_id: str, full: bool) -> dict:
    from cxsync.analytics.run import run_analytics
    from cxsync.warehouse import Warehouse

    with fail_fast():
        config = load_integrations()
        integration = config.get(integration_id)
        if not integration.conversation_analytics:
            raise FatalError(
                f"{config.path}: integration {integration_id!r} has `conversation_analytics: false`; "
                "set it to true to compute conversation analytics"
            )
        warehouse = Warehouse.from_airflow(config.warehouse_conn_id)
        try:
            warehouse.ensure_schema()
            return run_analytics(warehouse, integration, full=full).to_xcom()
        finally:
            warehouse.dispose()
