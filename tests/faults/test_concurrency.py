"""Backfill and incremental runs of one integration at once, on PostgreSQL: no duplicate, no deadlock, and the
same final rows as the same runs one after the other.

Airflow runs a backfill's day windows as mapped tasks side by side (the provider pool has several slots), and the
nightly incremental run does not wait for a backfill started by hand. Here threads do the same: every window of a
one-week backfill and an incremental run start together, each task with its own source and connection, over
three "nights" of the sandbox clock. Any failure (a deadlock is one) fails the test: no task is retried.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from cxsync import pipeline
from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t
from support.providers import PROVIDERS, ProviderCase, first_difference
from support.runs import TaskRunner
from support.warehouse import snapshot, snapshot_difference

pytestmark = pytest.mark.postgres

INTEGRATION = "it_concurrent"
NIGHTS = ("0h", "6h", "1d")


@pytest.fixture
def pg_warehouse(pg_url) -> Warehouse:
    wh = Warehouse.from_url(pg_url)
    wh.ensure_schema()
    yield wh
    wh.dispose()


@pytest.fixture
def sequential_warehouse(tmp_path) -> Warehouse:
    wh = Warehouse.from_url(f"sqlite:///{tmp_path / 'sequential.db'}")
    wh.ensure_schema()
    yield wh
    wh.dispose()


def backfill_and_incremental_at_once(runner: TaskRunner, workers: int = 6) -> None:
    end, windows = runner.plan(weeks=1)
    start = threading.Barrier(len(windows) + 1)

    def together(step, *args):
        start.wait(timeout=30)
        return step(*args)

    with ThreadPoolExecutor(max_workers=max(workers, len(windows) + 1)) as pool:
        futures = [pool.submit(together, runner.window, w) for w in windows]
        futures.append(pool.submit(together, runner.incremental))
        for future in futures:
            future.result(timeout=120)  # re-raises a task's failure, a deadlock included
    pipeline.finish_backfill(runner.integration, runner.warehouse, end)


def duplicates(warehouse: Warehouse) -> dict[str, list]:
    """Keys that occur twice: interactions by id, messages by id and by position within their interaction."""
    it, ms = t.interactions, t.messages
    with warehouse.engine.connect() as conn:

        def twice(*columns: sa.Column) -> list:
            query = sa.select(*columns).group_by(*columns).having(sa.func.count() > 1)
            return [tuple(row) for row in conn.execute(query)]

        return {
            "interactions": twice(it.c.integration_id, it.c.interaction_id),
            "messages": twice(ms.c.integration_id, ms.c.interaction_id, ms.c.message_id),
            "message positions": twice(ms.c.integration_id, ms.c.interaction_id, ms.c.seq),
        }


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_backfill_and_incremental_at_once_end_with_the_rows_of_sequential_runs(
    provider, sandbox, admin, connect, pg_warehouse, sequential_warehouse
):
    case = PROVIDERS[provider]
    connect(sandbox)
    integration = case.integration(INTEGRATION)
    concurrent = TaskRunner(case, integration, pg_warehouse, tries=1)
    sequential = TaskRunner(case, integration, sequential_warehouse, tries=1)
    for night in NIGHTS:
        if night != "0h":
            admin.advance(night)
        backfill_and_incremental_at_once(concurrent)
        sequential.backfill(weeks=1)
        sequential.incremental()
        assert duplicates(pg_warehouse) == {"interactions": [], "messages": [], "message positions": []}

    got, want = snapshot(pg_warehouse.engine, INTEGRATION), snapshot(sequential_warehouse.engine, INTEGRATION)
    assert got == want, snapshot_difference(got, want)
    loaded, expected = case.loaded(pg_warehouse, INTEGRATION), case.expected(admin.truth(provider))
    assert loaded == expected, first_difference(loaded, expected)


class HeldWarehouse(Warehouse):
    """Holds its first page write until released: a backfill window whose answer was read, but not yet written,
    when the incremental run went by (a slow disk, a long page, a busy worker)."""

    def __init__(self, engine: sa.Engine):
        super().__init__(engine)
        self.holding = threading.Event()
        self.release = threading.Event()

    def write_interactions(self, *args: Any, **kwargs: Any) -> Any:
        if not self.holding.is_set():
            self.holding.set()
            assert self.release.wait(timeout=60)
        return super().write_interactions(*args, **kwargs)


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_a_window_written_after_a_later_incremental_run_never_puts_back_older_copies(
    provider, sandbox, admin, connect, pg_warehouse
):
    """The window reads the last day at T0; a day later (T1) the incremental run loads what changed since, and
    commits; then the window's T0 page arrives. Run one after the other, the T1 copies win; at once, they must
    too: otherwise a conversation that closed meanwhile stays open in the warehouse, and no later incremental
    run (which starts from T1) would ever look at it again."""
    case: ProviderCase = PROVIDERS[provider]
    connect(sandbox)
    integration = case.integration(INTEGRATION)
    t0 = admin.now()
    window = pipeline.plan_windows(t0, weeks=1)[-1]
    held = HeldWarehouse(pg_warehouse.engine)
    window_task = TaskRunner(case, integration, held, tries=1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(window_task.window, window)
        assert held.holding.wait(timeout=60), "the window task never got to write"
        admin.advance("1d")
        TaskRunner(case, integration, pg_warehouse, tries=1).incremental()
        held.release.set()
        loading.result(timeout=60)

    before, after = case.expected(admin.truth(provider, at=t0)), case.expected(admin.truth(provider))
    in_window = {iid for iid in before if window.start <= _started(case, before[iid]) < window.end}
    changed = {iid for iid in in_window if after.get(iid) != before[iid]}
    assert changed, "some conversation of the window changed between the window's read and the incremental run"
    loaded = case.loaded(pg_warehouse, INTEGRATION)
    stale = sorted(iid for iid in changed if loaded.get(iid) == before[iid])
    assert stale == [], f"older copies written over newer ones: {stale[:5]} ({len(stale)} of {len(changed)})"
    assert {iid: loaded[iid] for iid in in_window} == {iid: after[iid] for iid in in_window}


def _started(case: ProviderCase, row: dict) -> Any:
    from datetime import datetime

    value = row["started_at"]
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
