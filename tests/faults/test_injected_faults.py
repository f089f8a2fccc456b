"""Injected faults change nothing: a roster sync, a one-week backfill and, a day later, an incremental run against
a sandbox that answers at least 10 % of requests with one kind of fault leave a warehouse equal, row for row in
every table (load times aside), to the same runs against a fault-free sandbox, and equal to the ground truth.

Both providers; faults: 5xx, 429 with and without `Retry-After` (at random, as when other clients use up a shared
quota), connection resets, answers slower than the client's read timeout, truncated JSON bodies, and for
LivePerson `partialResult` answers and `isPartial` records; and a real rate limit far below what the client asks
at first (it slows down after the first 429s, so fewer than one answer in ten is a 429 there). Retries wait
milliseconds (connection extras).

When the request layer's retry budget runs out, the task fails with a `RetriableError` and Airflow runs it
again; `TaskRunner` does what Airflow's task retry does, and the last test shows such re-runs converge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cxsync.hooks.liveperson import LivePersonHook
from cxsync.warehouse import Warehouse
from support.providers import PROVIDERS, ProviderCase, SandboxAdmin, first_difference, start_sandbox
from support.runs import TaskRunner
from support.warehouse import snapshot, snapshot_difference

INTEGRATION = "it_faults"
LP_SEARCH = "conversations_search"


@dataclass(frozen=True)
class Fault:
    settings: dict[str, Any]
    counter: str  # the sandbox's name for the fault in its counters
    per: str = "request"  # what the 10 % is a share of: every request, msgHist searches, or records answered
    extras: dict[str, Any] = field(default_factory=dict)  # connection extras for this fault
    provider_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-provider overrides
    min_share: float = 0.10  # at least this share of answers faulty (0: at least one)

    def settings_for(self, provider: str) -> dict[str, Any]:
        return {**self.settings, **self.provider_settings.get(provider, {})}


# A 429's wait: the server's `Retry-After` (1 s) capped by retry_max_seconds, or backoff, at least the minimum.
RATE_LIMIT_EXTRAS = {"rate_limit_min_wait": 0.02, "retry_max_seconds": 0.05}

FAULTS: dict[str, Fault] = {
    "5xx": Fault({"p_5xx": 0.25}, "5xx"),
    # 429s at random, whatever the rate (a quota other clients use up too): a rate limit alone would not give one
    # answer in ten, since the client slows down to the rate the server accepts after its first 429.
    "429 with Retry-After": Fault({"p_429": 0.25, "retry_after": True}, "429", extras=RATE_LIMIT_EXTRAS),
    "429 without Retry-After": Fault({"p_429": 0.25, "retry_after": False}, "429", extras=RATE_LIMIT_EXTRAS),
    # A real rate limit, far below what the unpaced client asks at first: it slows down and still gets it all.
    "rate limit": Fault(
        {"retry_after": True},
        "rate_limit",
        extras=RATE_LIMIT_EXTRAS,
        provider_settings={"liveperson": {"rate_limit_rps": 8}, "helpdesk": {"rate_limit_rps": 20}},
        min_share=0.0,
    ),
    "reset": Fault({"p_reset": 0.25}, "reset"),
    "timeout": Fault({"p_slow": 0.25, "slow_seconds": 1.0}, "slow", extras={"timeout": 0.3}),
    "truncated JSON": Fault({"p_truncate": 0.25}, "truncate"),
    "partialResult": Fault({"p_partial": 0.3}, "partial", per="search"),
    "isPartial": Fault({"p_is_partial": 0.3}, "is_partial", per="record"),
}
LIVEPERSON_ONLY = {"partialResult", "isPartial"}
CASES = [
    pytest.param(provider, fault, id=f"{provider}-{fault}")
    for provider in PROVIDERS
    for fault in FAULTS
    if provider == "liveperson" or fault not in LIVEPERSON_ONLY
]


def load_a_day(case: ProviderCase, admin: SandboxAdmin, warehouse: Warehouse, **options: Any) -> TaskRunner:
    """Roster, a one-week backfill, a day later (sandbox clock) the incremental run: the first days of a deployment."""
    runner = TaskRunner(case, case.integration(INTEGRATION, **options), warehouse)
    runner.roster()
    runner.backfill(weeks=1)
    admin.advance("1d")
    runner.incremental()
    return runner


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, dict]:
    """Per provider, the warehouse the same runs leave without faults: {provider: {"snapshot", "expected"}}."""
    from support.providers import connection_env, sandbox_connections

    out: dict[str, dict] = {}
    server = start_sandbox()
    admin = SandboxAdmin(server)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in connection_env(sandbox_connections(server)).items():
                mp.setenv(name, value)
            warehouses = {}
            for provider, case in PROVIDERS.items():
                wh = Warehouse.from_url(f"sqlite:///{tmp_path_factory.mktemp('reference')}/{provider}.db")
                wh.ensure_schema()
                runner = TaskRunner(case, case.integration(INTEGRATION), wh)
                runner.roster()
                runner.backfill(weeks=1)
                warehouses[provider] = (wh, runner)
            admin.advance("1d")
            for provider, (wh, runner) in warehouses.items():
                runner.incremental()
                case = PROVIDERS[provider]
                expected = case.expected(admin.truth(provider))
                loaded = case.loaded(wh, INTEGRATION)
                assert loaded == expected, first_difference(loaded, expected)
                assert runner.reruns == 0
                out[provider] = {"snapshot": snapshot(wh.engine, INTEGRATION), "expected": expected}
                wh.dispose()
    finally:
        server.stop()
    return out


@pytest.fixture
def sqlite_warehouse(tmp_path) -> Warehouse:
    wh = Warehouse.from_url(f"sqlite:///{tmp_path / 'faulty.db'}")
    wh.ensure_schema()
    yield wh
    wh.dispose()


@pytest.fixture
def records_answered(monkeypatch) -> list[int]:
    """Counts the conversation records LivePerson's msgHist searches answer (the share `isPartial` is taken of)."""
    answered = [0]
    search = LivePersonHook.search_conversations

    def counting(self, *args, **kwargs):
        answer = search(self, *args, **kwargs)
        answered[0] += len(answer.get("conversationHistoryRecords") or [])
        return answer

    monkeypatch.setattr(LivePersonHook, "search_conversations", counting)
    return answered


def fault_share(admin: SandboxAdmin, provider: str, fault: Fault, records_answered: int) -> float:
    injected = admin.faults_injected(provider).get(fault.counter, 0)
    total = {
        "request": admin.requests_served(provider),
        "search": admin.requests_served(provider, LP_SEARCH),
        "record": records_answered,
    }[fault.per]
    return injected / max(total, 1)


@pytest.mark.parametrize(("provider", "fault_name"), CASES)
def test_a_fault_at_ten_percent_or_more_changes_nothing(
    provider, fault_name, reference, sandbox, admin, connect, sqlite_warehouse, records_answered
):
    case, fault = PROVIDERS[provider], FAULTS[fault_name]
    connect(sandbox, **fault.extras)
    admin.faults(provider, **fault.settings_for(provider))

    runner = load_a_day(case, admin, sqlite_warehouse)

    share = fault_share(admin, provider, fault, records_answered[0])
    assert share >= fault.min_share and share > 0, f"{fault_name}: {share:.0%} of answers faulty: {admin.counters()}"
    assert runner.unexpected_failures() == []
    got = snapshot(sqlite_warehouse.engine, INTEGRATION)
    assert got == reference[provider]["snapshot"], snapshot_difference(got, reference[provider]["snapshot"])
    admin.no_faults(provider)
    loaded, expected = case.loaded(sqlite_warehouse, INTEGRATION), case.expected(admin.truth(provider))
    assert loaded == expected == reference[provider]["expected"], first_difference(loaded, expected)


# Two tries per request: a request fails for good about as often as two faults in a row. LivePerson's tasks make
# a few requests each, HelpDesk's one per ticket, so HelpDesk gets fewer faults for its tasks to get through.
BUDGET_FAULTS = {
    "liveperson": {"p_reset": 0.15, "p_5xx": 0.15, "p_truncate": 0.15, "p_partial": 0.2, "p_is_partial": 0.2},
    "helpdesk": {"p_reset": 0.06, "p_5xx": 0.06, "p_truncate": 0.06},
}


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_when_retry_budgets_run_out_the_task_re_runs_converge_to_the_same_warehouse(
    provider, reference, sandbox, admin, connect, sqlite_warehouse
):
    """Two tries per request and one re-ask of a partial answer: the request layer gives up often, the task fails
    with a `RetriableError`, and running it again (as Airflow's task retry does) converges: each re-run resumes
    from what was committed, and the final warehouse equals the fault-free one."""
    case = PROVIDERS[provider]
    connect(sandbox, max_attempts=2)
    admin.faults(provider, **BUDGET_FAULTS[provider])
    options = {"partial_retries": 1} if provider == "liveperson" else {}

    runner = load_a_day(case, admin, sqlite_warehouse, **options)

    assert runner.reruns >= 2, "the retry budgets were meant to run out, so that tasks re-run"
    assert runner.unexpected_failures() == []
    got = snapshot(sqlite_warehouse.engine, INTEGRATION)
    assert got == reference[provider]["snapshot"], snapshot_difference(got, reference[provider]["snapshot"])
    admin.no_faults(provider)
    assert case.loaded(sqlite_warehouse, INTEGRATION) == case.expected(admin.truth(provider))
