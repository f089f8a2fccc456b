"""The DAG that shows a configuration file's errors in the Airflow UI (integrations file, QA lists file).

Its description and documentation list the problems, and its one task fails with them, so a bad entry is
seen where the DAGs are, while the good entries keep their DAGs.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowFailException

from cxsync import settings

START_DATE = datetime(2026, 1, 1)


def build_error_dag(*, dag_id: str, what: str, path: Path, errors: list[str], skipped: str, task_id: str) -> DAG:
    """`what`: the file's name in words ("integrations file"); `skipped`: what has no DAGs ("entries")."""
    listing = "\n".join(f"- {error}" for error in errors)
    with DAG(
        dag_id=dag_id,
        dag_display_name=f"cxsync: {what} has errors ({dag_id})",
        description=f"{len(errors)} problem(s) in {path}; those {skipped} have no DAGs. " + errors[0][:300],
        doc_md=f"### Problems in `{path}`\n\nThe {skipped} below were skipped; fix them and their DAGs appear "
        f"on the next parse.\n\n{listing}\n",
        tags=[settings.DAG_TAG, "config-error"],
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        default_args={"execution_timeout": timedelta(seconds=settings.TASK_EXECUTION_TIMEOUT_SECONDS)},
    ) as dag:

        @task(task_id=task_id)
        def report(problems: tuple[str, ...] = tuple(errors)) -> None:
            raise AirflowFailException(f"{what} has errors:\n" + "\n".join(problems))

        report()
    return dag


def add_error_dag(dags: dict[str, DAG], *, errors: list[str], **kwargs) -> None:
    """When a file has errors: each one in the parse log, and the DAG that shows them all, added to `dags`."""
    if not errors:
        return
    for error in errors:
        warnings.warn(f"cxsync: {error}", UserWarning, stacklevel=2)
    dag = build_error_dag(errors=errors, **kwargs)
    dags[dag.dag_id] = dag
