"""What each DAG task runs: resolve the integration, build its source and the warehouse, call the
pipeline, and turn errors no retry can fix into `AirflowFailException`.

Imported by the DAG factory at parse time, so imports here stay light; provider code is loaded
only inside the task.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from cxsync import pipeline, settings
from cxsync.config import ConfigError, Integration, load_integrations
from cxsync.errors import FatalError
from cxsync.registry import NotImplementedYet, source_class
from cxsync.task_deadline import task_deadline

log = logging.getLogger(__name__)


@contextlib.contextmanager
def fail_fast() -> Iterator[None]:
    """Errors that no retry can fix end the task at once, without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except (FatalError, ConfigError, NotImplementedYet) as exc:
        raise AirflowFailException(str(exc)) from exc


def _integration(integration_id: str) -> tuple[Integration, str]:
    config = load_integrations()
    return config.get(integration_id), config.warehouse_conn_id


@contextlib.contextmanager
def _context(integration_id: str, *, with_source: bool = True):
    from cxsync.warehouse import Warehouse

    with fail_fast(), task_deadline(_seconds_left()):
        integration, warehouse_conn_id = _integration(integration_id)
        source = source_class(integration.provider)(integration) if with_source else None
        warehouse = Warehouse.from_airflow(warehouse_conn_id)
        warehouse.ensure_schema()
        try:
            yield integration, source, warehouse
        finally:
            if source is not None:
                _record_requests(integration.id, source, warehouse)
                source.close()
            warehouse.dispose()


def _record_requests(integration_id: str, source, warehouse) -> None:
    """Keep what this task's requests cost (the status page shows the last day's); failed tasks too."""
    stats = source.request_stats()
    if stats is None or not stats.requests:
        return
    try:
        warehouse.record_request_stats(integration_id, stats, _task_identity())
    except Exception:  # the statistics never fail a task that loaded its data
        log.warning("could not record the request statistics of %s", integration_id, exc_info=True)


def _seconds_left() -> float | None:
    """Seconds until this task's `execution_timeout` ends it (None outside an Airflow task)."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
    except Exception:  # outside an Airflow task (tests, the demo's helpers)
        return None
    timeout = getattr(getattr(ti, "task", None), "execution_timeout", None)
    if timeout is None:
        timeout = timedelta(seconds=settings.TASK_EXECUTION_TIMEOUT_SECONDS)
    started = getattr(ti, "start_date", None)
    elapsed = (datetime.now(UTC) - started).total_seconds() if isinstance(started, datetime) else 0.0
    return max(0.0, timeout.total_seconds() - elapsed)


_task_identity = pipeline.task_identity


def roster_sync(integration_id: str) -> dict:
    with _context(integration_id) as (integration, source, warehouse):
        return pipeline.sync_roster(integration, source, warehouse)


def check_backfill_weeks(weeks: object) -> int:
    low, high = settings.MIN_BACKFILL_WEEKS, settings.MAX_BACKFILL_WEEKS
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not low <= weeks <= high:
        raise ConfigError(
            f"backfill: `weeks` must be a whole number from {low} to {high}, got {weeks!r}; "
            "trigger the backfill again with one of those"
        )
    return weeks


def plan_backfill(integration_id: str, weeks: object) -> list[dict]:
    with fail_fast():
        weeks = check_backfill_weeks(weeks)
        integration, _ = _integration(integration_id)
        source = source_class(integration.provider)(integration)
        try:
            end = source.server_now()
        finally:
            source.close()
    windows = pipeline.plan_windows(end, weeks)
    log.info("backfill %s: %d week(s) up to %s in %d day windows", integration_id, weeks, end.isoformat(), len(windows))
    return [w.to_xcom() for w in windows]


def backfill_window(integration_id: str, window: dict) -> dict:
    with _context(integration_id) as (integration, source, warehouse):
        return pipeline.load_window(integration, source, warehouse, pipeline.Window.from_xcom(window))


def finish_backfill(integration_id: str, windows: list[dict], results: Iterable[dict | None] = ()) -> dict:
    with _context(integration_id, with_source=False) as (integration, _, warehouse):
        end = max(datetime.fromisoformat(w["end"]) for w in windows) if windows else datetime.now(UTC)
        pipeline.finish_backfill(integration, warehouse, end)
        return pipeline.backfill_totals(integration, results)


def incremental(integration_id: str) -> dict:
    with _context(integration_id) as (integration, source, warehouse):
        return pipeline.load_changes(integration, source, warehouse)


def reconcile(integration_id: str, incremental: dict | None = None) -> dict:
    from cxsync.reconcile import reconcile as run

    with _context(integration_id) as (integration, source, warehouse):
        return run(integration, source, warehouse, incremental=incremental, only_if_due=True)


def retention_dry_run(requested: bool, run_type: str | None) -> bool:
    """Whether a retention run only counts. The trigger form's `dry_run` starts on, so a person's Trigger
    counts first; the scheduled run takes the Param's default too, but deletes: that is the retention the
    integrations file configured."""
    return False if run_type == "scheduled" else requested


def assess_retention(integration_id: str, dry_run: bool, run_type: str | None) -> dict:
    dry_run = retention_dry_run(dry_run, run_type)
    with _context(integration_id, with_source=False) as (integration, _, warehouse):
        return pipeline.assess_retention(integration, warehouse, dry_run=dry_run, scheduled=run_type == "scheduled")


def retention(integration_id: str, dry_run: bool, cutoff: str | None = None) -> dict:
    with _context(integration_id, with_source=False) as (integration, _, warehouse):
        return pipeline.apply_retention(
            integration, warehouse, dry_run=dry_run, cutoff=datetime.fromisoformat(cutoff) if cutoff else None
        )


def reredact(integration_id: str, batch_size: int | None = None) -> dict:
    """Re-redact the integration's stored rows under its current `pii_redaction` rules (cxsync.redaction.rerun)."""
    from cxsync.redaction import rerun, runtime

    with _context(integration_id) as (integration, source, warehouse):
        redactor = runtime.redactor_for(integration)
        if redactor is None:
            raise ConfigError(
                f"integration {integration_id!r} has no pii_redaction: turn it on in the integrations file first "
                "(re-redaction applies its rules to the rows already stored)"
            )
        done = rerun.reredact(
            integration.id,
            warehouse,
            redactor,
            runtime.identity_reader(source),
            batch_size=batch_size or rerun.DEFAULT_BATCH,
        )
        done["redaction"] = runtime.record_stats(integration, warehouse, redactor, _task_identity())
        log.info("re-redaction of %s finished: %s", integration_id, {k: v for k, v in done.items() if k != "redaction"})
        return done
