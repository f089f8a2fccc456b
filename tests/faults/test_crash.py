"""SIGKILL at random points of a load, then the re-run: the same warehouse as an uninterrupted run, and the
watermark never ahead of committed rows.

A child process (`crash_worker.load`) runs a one-week backfill or an incremental run against the sandbox into a
SQLite or PostgreSQL warehouse. The parent kills it with SIGKILL, at a point drawn from a seeded generator: as
soon as the child says it starts writing page N (so the kill lands inside the write transaction), right after
page N committed, or after a random delay (mostly while it fetches). It then checks the warehouse, starts the
run again, kills that one too, and so on; a last run goes through. Its warehouse must then equal, in every
table and row (load times aside), the one an uninterrupted run leaves.

The invariant checked after every kill. The sandbox clock stands still during a run, so the provider's state
has a few known versions: T0 (the backfill's time) and, for the incremental run, T1 (a day later); `truth(T)`
is every interaction as the provider held it at T, mapped as the warehouse must hold it.
1. No torn rows: every interaction in the warehouse equals, with all its messages, its version at one of the
   clock times the runs saw. A kill inside a transaction leaves the interaction as it was, never half-written.
2. The watermark is never ahead of committed rows: when the stored watermark is W, every interaction in
   `truth(W)` (everything the provider had created or updated before W) is in the warehouse, as its version at
   W or a later one. An incremental run resumes from W, so anything missing here would be missed for good.
The sandbox's history (6 days) lies inside the backfill's week, and the incremental run's look-back covers it
too, so "everything in truth(W)" is exactly what the runs are meant to load.
"""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from cxsync.warehouse import Warehouse, parse_watermark
from cxsync.warehouse import schema as t
from faults import crash_worker
from support.providers import PROVIDERS, ProviderCase, SandboxAdmin, connection_env, sandbox_connections, start_sandbox
from support.runs import TaskRunner
from support.warehouse import snapshot, snapshot_difference

INTEGRATION = "it_crash"
KILLS = 5
CHILD_TIMEOUT = 60.0
# Small HelpDesk list pages and a busier LivePerson day: several page writes per run to kill between.
OPTIONS = {"liveperson": {}, "helpdesk": {"page_size": 4}}
SANDBOX_OPTIONS = {"lp_conversations_per_day": 60}


@dataclass(frozen=True)
class KillPlan:
    at: str  # "writing" (inside the page's transaction), "committed" (right after it), or "delay"
    page: int = 1
    delay: float = 0.0

    def __str__(self) -> str:
        return f"after {self.delay:.3f} s" if self.at == "delay" else f"at page {self.page} {self.at}"


@dataclass
class Outcome:
    plan: KillPlan | None
    killed: bool
    in_transaction: bool  # killed between "writing" and "committed"
    events: list[bytes] = field(default_factory=list)


def forkserver() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(crash_worker.PRELOAD)
    return context


def run_child(context: Any, args: tuple, plan: KillPlan | None) -> Outcome:
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=crash_worker.load, args=(*args, writer), daemon=True)
    child.start()
    writer.close()
    started = time.monotonic()
    deadline = started + (plan.delay if plan is not None and plan.at == "delay" else CHILD_TIMEOUT)
    counts = {crash_worker.WRITING: 0, crash_worker.COMMITTED: 0}
    events: list[bytes] = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                assert plan is not None and plan.at == "delay", f"the load process hung: {events}"
                child.kill()
                break
            if not reader.poll(remaining):
                continue
            try:
                message = reader.recv_bytes()
            except EOFError:
                break  # the child ended
            events.append(message)
            if message in counts:
                counts[message] += 1
                if plan is not None and plan.at == message.decode() and counts[message] == plan.page:
                    child.kill()
                    break
    finally:
        child.join(CHILD_TIMEOUT)
        reader.close()
    killed = child.exitcode == -signal.SIGKILL
    assert killed or child.exitcode == 0, f"the load process failed (exit {child.exitcode}) after {events}"
    if not killed:
        assert events and events[-1] == crash_worker.DONE, events
    in_transaction = killed and bool(events) and events[-1] == crash_worker.WRITING
    return Outcome(plan, killed, in_transaction, events)


def random_plan(rng: random.Random, pages: int, seconds: float) -> KillPlan:
    at = rng.choice(["writing", "writing", "committed", "delay"])
    if at == "delay":
        return KillPlan("delay", delay=rng.uniform(0.0, seconds))
    return KillPlan(at, page=rng.randint(1, max(pages, 1)))


def committed_state(case: ProviderCase, warehouse: Warehouse) -> tuple[dict[str, dict], str | None]:
    """The interactions and the watermark the warehouse holds; none before the first run created the tables."""
    inspector = sa.inspect(warehouse.engine)
    if not all(inspector.has_table(table.name) for table in (t.interactions, t.messages, t.sync_state)):
        return {}, None
    return case.loaded(warehouse, INTEGRATION), warehouse.get_watermark(INTEGRATION, "interactions")


def check_invariant(loaded: dict[str, dict], watermark: str | None, versions: dict[datetime, dict[str, dict]]) -> None:
    """See the module docstring: no torn rows; nothing the watermark covers missing or older than at W."""
    for iid, row in loaded.items():
        assert any(v.get(iid) == row for v in versions.values()), f"interaction {iid} is torn or unknown"
    if watermark is None:
        return
    w = parse_watermark(watermark)
    assert w in versions, f"watermark {watermark} is none of the clock times the runs saw"
    for iid in versions[w]:
        assert iid in loaded, f"watermark {watermark} covers interaction {iid}, which is not in the warehouse"
        newer = [versions[at][iid] for at in versions if at >= w and iid in versions[at]]
        assert loaded[iid] in newer, f"interaction {iid} is older than the watermark {watermark} says"


class CountingWarehouse(Warehouse):
    """Counts page writes, to aim kills at pages that exist."""

    writes = 0

    def write_interactions(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return super().write_interactions(*args, **kwargs)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crashed.db'}"
    return request.getfixturevalue("pg_url")


SCENARIOS = [
    pytest.param(provider, step, seed, id=f"{provider}-{step}-seed{seed}")
    for seed, (provider, step) in enumerate([(p, s) for p in PROVIDERS for s in ("backfill", "incremental")], start=101)
]


@pytest.mark.parametrize(("provider", "step", "seed"), SCENARIOS)
def test_sigkill_at_random_points_then_rerun_gives_the_uninterrupted_warehouse(
    provider, step, seed, crash_url, tmp_path, monkeypatch
):
    case = PROVIDERS[provider]
    server = start_sandbox(**SANDBOX_OPTIONS)
    try:
        admin = SandboxAdmin(server)
        env = connection_env(sandbox_connections(server))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        integration = case.integration(INTEGRATION, **OPTIONS[provider])
        reference = CountingWarehouse(Warehouse.from_url(f"sqlite:///{tmp_path / 'reference.db'}").engine)
        reference.ensure_schema()
        crashed = Warehouse.from_url(crash_url)  # a backfill into an empty database: kills may hit schema creation

        versions = {admin.now(): case.expected(admin.truth(provider))}
        if step == "incremental":  # both warehouses start from the same complete backfill
            crashed.ensure_schema()
            TaskRunner(case, integration, reference).backfill(weeks=1)
            TaskRunner(case, integration, crashed).backfill(weeks=1)
            now = admin.advance("2d")
            versions[now] = case.expected(admin.truth(provider))
        reference.writes = 0
        began = time.monotonic()
        ref_runner = TaskRunner(case, integration, reference, tries=1)
        if step == "backfill":
            ref_runner.backfill(weeks=1)
        else:
            ref_runner.incremental()
        seconds, pages = time.monotonic() - began, reference.writes
        assert pages >= 2, "a run of several pages, so kills land between them"

        context = forkserver()
        args = (step, integration, crash_url, env)
        rng = random.Random(seed)
        outcomes = []
        for _ in range(KILLS):
            outcome = run_child(context, args, random_plan(rng, pages, seconds + 0.05))
            outcomes.append(outcome)
            check_invariant(*committed_state(case, crashed), versions)
        final = run_child(context, args, None)
        assert not final.killed

        assert sum(o.killed for o in outcomes) >= KILLS - 2, [str(o.plan) for o in outcomes if not o.killed]
        assert any(o.in_transaction for o in outcomes), "at least one kill meant to land inside a transaction"
        got, want = snapshot(crashed.engine, INTEGRATION), snapshot(reference.engine, INTEGRATION)
        assert got == want, snapshot_difference(got, want)
        last = max(versions)
        assert case.loaded(crashed, INTEGRATION) == versions[last]
        watermark = reference.get_watermark(INTEGRATION, "interactions")
        assert crashed.get_watermark(INTEGRATION, "interactions") == watermark
        crashed.dispose()
        reference.dispose()
    finally:
        server.stop()
