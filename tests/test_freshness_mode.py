"""Freshness mode, against the sandbox over real HTTP: incremental loads 15 minutes apart stay cheap (HelpDesk
fetches only the tickets changed since it stored them, not its whole overlap again), a run with nothing new
writes nothing and asks for little, and the warehouse equals the provider's ground truth at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t
from support.providers import PROVIDERS, SandboxAdmin, connection_env, sandbox_connections, start_sandbox
from support.runs import TaskRunner

VOLUMES = {"lp_conversations_per_day": 200, "hd_tickets_per_day": 200}


@pytest.fixture
def sandbox(monkeypatch) -> Iterator[SandboxAdmin]:
    server = start_sandbox(**VOLUMES)
    for name, value in connection_env(sandbox_connections(server)).items():
        monkeypatch.setenv(name, value)
    yield SandboxAdmin(server)
    server.stop()


@pytest.fixture
def sqlite_warehouse(tmp_path) -> Iterator[Warehouse]:
    wh = Warehouse.from_url(f"sqlite:///{tmp_path / 'wh.db'}")
    wh.ensure_schema()
    yield wh
    wh.dispose()


def _state(warehouse: Warehouse, integration_id: str) -> tuple:
    """What a write would change: row counts, the newest load time, the watermark."""
    with warehouse.engine.connect() as conn:
        loaded = conn.execute(
            sa.select(sa.func.max(t.interactions.c.loaded_at)).where(t.interactions.c.integration_id == integration_id)
        ).scalar()
    return warehouse.table_counts(integration_id), loaded, warehouse.get_watermark(integration_id, "interactions")


@pytest.mark.parametrize("provider", ["liveperson", "helpdesk"])
def test_loads_every_15_minutes_fetch_only_what_changed_and_an_idle_run_writes_nothing(
    sandbox, sqlite_warehouse, provider
):
    case = PROVIDERS[provider]
    runner = TaskRunner(case, case.integration(f"{provider[:2]}_fresh"), sqlite_warehouse)
    runner.roster()
    runner.backfill()
    for _ in range(4):
        sandbox.advance("15m")
        sandbox.reset_counters()
        result = runner.incremental()
        if provider == "helpdesk":
            # Every ticket fetched whole was new or changed: the overlap's unchanged tickets are not fetched again.
            fetched = sandbox.requests_served(provider, "helpdesk_ticket")
            assert result["unchanged"] == 0 and fetched == result["inserted"] + result["updated"]
    assert result["inserted"] + result["updated"] > 0, "nothing changed in 15 minutes: the test proves nothing"

    before = _state(sqlite_warehouse, runner.integration.id)
    sandbox.reset_counters()
    idle = runner.incremental()  # the clock has not moved: nothing new
    assert (idle["inserted"], idle["updated"], idle["messages_written"]) == (0, 0, 0)
    assert _state(sqlite_warehouse, runner.integration.id) == before
    assert sandbox.requests_served(provider) <= 4  # the provider's time and a list page or two
    assert runner.incremental()["inserted"] == 0  # and again: idempotent

    expected = case.expected(sandbox.truth(provider))
    assert case.loaded(sqlite_warehouse, runner.integration.id) == expected
