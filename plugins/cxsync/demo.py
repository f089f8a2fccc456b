"""`make demo` (`python -m cxsync.demo`): the main job, end to end on this machine.

Today it creates the embedded warehouse, shows the DAGs built from the integrations file, says
plainly which provider pipelines are not built yet, and prints what the warehouse holds. It is a list
of steps (`STEPS`) over one shared `Demo` state, so the next steps (start the sandbox, run every DAG
with `airflow dags test`) slot in as functions without touching the others.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cxsync import registry, settings
from cxsync.config import ConfigError, IntegrationsConfig, load_integrations

if TYPE_CHECKING:
    from cxsync.warehouse import Warehouse

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KINDS = ("roster_sync", "backfill", "incremental", "retention")
# Which DAG kinds need the provider's source; retention only needs the warehouse.
NEEDS_SOURCE = {"roster_sync", "backfill", "incremental"}


@dataclass
class Demo:
    config: IntegrationsConfig
    dags_folder: Path
    out: Callable[[str], None] = print
    warehouse: Warehouse | None = None
    dag_ids: list[str] = field(default_factory=list)
    # provider -> the plain reason its pipeline cannot run (absent when it is built)
    not_built: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.out("")
        self.out(f"== {text}")


def dags_folder() -> Path:
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or PROJECT_ROOT / "dags")


def open_warehouse(demo: Demo) -> None:
    """The warehouse the DAGs write to: the `cxsync_warehouse` connection, else the embedded SQLite file."""
    from cxsync.warehouse import Warehouse

    demo.heading("Warehouse")
    warehouse = Warehouse.from_airflow(demo.config.warehouse_conn_id)
    version = warehouse.ensure_schema()
    demo.warehouse = warehouse
    where = warehouse.engine.url.render_as_string(hide_password=True)
    demo.out(f"{where} (schema version {version}, {warehouse.dialect})")


def show_dags(demo: Demo) -> None:
    """Parse the DAG folder as Airflow does and list the DAGs of every integration."""
    from airflow.dag_processing.dagbag import DagBag

    demo.heading(f"DAGs from {demo.config.path}")
    bag = DagBag(dag_folder=str(demo.dags_folder))
    demo.dag_ids = sorted(bag.dag_ids)
    for integration in demo.config.integrations:
        provider = registry.PROVIDERS[integration.provider].display_name
        demo.out(f"{integration.id}  ({provider}, connection {integration.conn_id!r}): {integration.label}")
        for kind in KINDS:
            dag_id = settings.dag_id(integration.id, kind)
            mark = "" if dag_id in bag.dag_ids else "   <- MISSING"
            demo.out(f"    {dag_id}{mark}")
            if mark:
                demo.problems.append(f"DAG {dag_id} is missing")
    for error in demo.config.errors:
        demo.out(f"integrations file problem: {error}")
        demo.problems.append(error)
    for path, error in bag.import_errors.items():
        demo.out(f"import error in {path}: {error}")
        demo.problems.append(f"import error in {path}")


def check_pipelines(demo: Demo) -> None:
    """Say plainly which provider pipelines exist: a provider whose source does not import is not built yet."""
    demo.heading("Provider pipelines")
    for provider in sorted({i.provider for i in demo.config.integrations}):
        spec = registry.PROVIDERS[provider]
        try:
            registry.source_class(provider)
        except registry.NotImplementedYet:
            demo.not_built[provider] = f"not built yet: {spec.source} does not exist"
        except Exception as exc:  # a source that exists but fails to import is broken, not missing
            demo.not_built[provider] = f"broken: importing {spec.source} fails: {exc.__class__.__name__}: {exc}"
            demo.problems.append(f"{spec.display_name} source does not import")
        if provider in demo.not_built:
            demo.out(f"{spec.display_name}: {demo.not_built[provider]}; "
                     f"its {', '.join(sorted(NEEDS_SOURCE))} DAGs fail with 'not implemented yet for {provider}'")
        else:
            demo.out(f"{spec.display_name}: built ({spec.source})")


def show_counts(demo: Demo) -> None:
    """Rows per warehouse table, in total and per integration."""
    demo.heading("What the warehouse holds")
    assert demo.warehouse is not None
    totals = demo.warehouse.table_counts()
    ids = [i.id for i in demo.config.integrations]
    per = {i: demo.warehouse.table_counts(i) for i in ids}
    width = max(len(name) for name in totals)
    demo.out(f"{'table':<{width}}  {'total':>7}" + "".join(f"  {i:>12}" for i in ids))
    for table, total in totals.items():
        demo.out(f"{table:<{width}}  {total:>7}" + "".join(f"  {per[i][table]:>12}" for i in ids))
    if not any(totals.values()):
        demo.out("(empty: no DAG has run against this warehouse yet)")


STEPS: list[Callable[[Demo], None]] = [open_warehouse, show_dags, check_pipelines, show_counts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxsync.demo", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    try:
        config = load_integrations()
    except ConfigError as exc:
        print(f"cxsync demo: {exc}", file=sys.stderr)
        return 2
    demo = Demo(config=config, dags_folder=dags_folder())
    print(f"cxsync demo (AIRFLOW_HOME={os.environ.get('AIRFLOW_HOME', '~/airflow')})")
    try:
        for step in STEPS:
            step(demo)
    finally:
        if demo.warehouse is not None:
            demo.warehouse.dispose()
    print("")
    if demo.problems:
        print(f"cxsync demo: {len(demo.problems)} problem(s): " + "; ".join(demo.problems), file=sys.stderr)
        return 1
    if demo.not_built:
        print("cxsync demo: done; pipelines not built yet: " + ", ".join(sorted(demo.not_built)))
    else:
        print("cxsync demo: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
