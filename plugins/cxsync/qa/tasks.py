"""What the QA DAGs' tasks run: read the files, open the warehouse, call matching or list building.

Imported by the DAG factory at parse time: the heavy modules (pandas, the warehouse) load inside the tasks.
"""

from __future__ import annotations

import logging
from datetime import datetime

from cxsync.config import ConfigError, load_integrations
from cxsync.tasks import fail_fast

log = logging.getLogger(__name__)


def _warehouse():
    from cxsync.warehouse import Warehouse

    config = load_integrations()
    warehouse = Warehouse.from_airflow(config.warehouse_conn_id)
    warehouse.ensure_schema()
    return config, warehouse


def agent_matching() -> dict:
    from cxsync.qa.matching import run_matching
    from cxsync.qa.staff import load_staff

    with fail_fast():
        staff_file = load_staff()
        _, warehouse = _warehouse()
        try:
            return run_matching(warehouse, staff_file)
        finally:
            warehouse.dispose()


def qa_list(list_id: str, run_at: datetime) -> dict:
    from cxsync.qa.lists import build_list_run
    from cxsync.qa.lists_config import load_qa_lists

    with fail_fast():
        lists = load_qa_lists()
        try:
            definition = lists.get(list_id)
        except KeyError as exc:
            raise ConfigError(
                f"{exc.args[0]} (fix the file; its errors: {'; '.join(lists.errors) or 'none'})"
            ) from None
        config, warehouse = _warehouse()
        try:
            known = {i.id for i in config.integrations}
            unknown = sorted(set(definition.integrations) - known)
            if unknown:
                raise ConfigError(
                    f"{lists.path}: list {list_id!r}: field `integrations`: {', '.join(map(repr, unknown))} "
                    f"not in {config.path} (valid ids: {', '.join(sorted(known)) or 'none'})"
                )
            run = build_list_run(warehouse, definition, run_at)
        finally:
            warehouse.dispose()
    return {
        "list_run_id": run.list_run_id,
        "population_size": run.population_size,
        "items": len(run.items),
        "short": sum(run.shortfall.values()),
        "export_path": str(run.export_path) if run.export_path else None,
    }
