"""Task glue: a pipeline not built yet fails plainly; errors no retry can fix fail at once; the rest runs."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException

from cxsync import registry, tasks
from cxsync.errors import PermissionDenied, RetriableError
from cxsync.records import AgentRecord
from cxsync.sources.base import Roster, Source

INTEGRATIONS = """
integrations:
  - {id: lp_main, provider: liveperson, conn_id: sandbox_liveperson_main, retention: {value: 30, unit: days}}
  - {id: hd_main, provider: helpdesk, conn_id: sandbox_helpdesk_main}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    path = tmp_path / "integrations.yaml"
    path.write_text(INTEGRATIONS)
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(path))
    monkeypatch.setenv("CXSYNC_WAREHOUSE_PATH", str(tmp_path / "warehouse.db"))
    monkeypatch.delenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", raising=False)
    return tmp_path


def point_source_at(monkeypatch, provider: str, source: str) -> None:
    spec = registry.PROVIDERS[provider]
    monkeypatch.setitem(
        registry.PROVIDERS, provider, registry.ProviderSpec(spec.name, spec.display_name, source, spec.hook)
    )


@pytest.mark.parametrize("provider", ["liveperson", "helpdesk"])
@pytest.mark.parametrize("source", ["cxsync.sources.not_built_yet:Source", "cxsync.settings:NoSuchSource"])
def test_tasks_of_a_provider_not_built_yet_fail_plainly(env, monkeypatch, provider, source):
    point_source_at(monkeypatch, provider, source)
    integration_id = {"liveperson": "lp_main", "helpdesk": "hd_main"}[provider]
    window = {"start": "2026-03-01T00:00:00+00:00", "end": "2026-03-02T00:00:00+00:00"}
    calls = [
        lambda: tasks.roster_sync(integration_id),
        lambda: tasks.plan_backfill(integration_id, 1),
        lambda: tasks.backfill_window(integration_id, window),
        lambda: tasks.incremental(integration_id),
    ]
    for call in calls:
        with pytest.raises(AirflowFailException, match=f"^not implemented yet for {provider}"):
            call()
    # it fails before touching the warehouse
    assert not (env / "warehouse.db").exists()


def test_a_broken_source_module_is_not_mistaken_for_a_missing_one(monkeypatch):
    """A source that exists but lacks one of its own dependencies must say so, not "not implemented yet"."""
    import importlib.abc
    import importlib.util

    class BrokenModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            return importlib.util.spec_from_loader(name, self) if name == "cxsync_test_broken" else None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            import cxsync_no_such_dependency  # noqa: F401

    monkeypatch.setattr(sys, "meta_path", [BrokenModule(), *sys.meta_path])
    with pytest.raises(ModuleNotFoundError) as info:
        registry.load("cxsync_test_broken:Source")
    assert info.value.name == "cxsync_no_such_dependency"
    sys.modules.pop("cxsync_test_broken", None)


def test_unknown_integration_fails_at_once(env):
    with pytest.raises(AirflowFailException, match="no valid integration with id 'nope'"):
        tasks.roster_sync("nope")


class FakeSource(Source):
    provider = "liveperson"
    behaviour = "ok"

    def server_now(self) -> datetime:
        return datetime(2026, 3, 1, tzinfo=UTC)

    def roster(self) -> Roster:
        if FakeSource.behaviour == "forbidden":
            raise PermissionDenied("the credentials lack the Users permission (403): grant it to the API key")
        if FakeSource.behaviour == "flaky":
            raise RetriableError("503 from the provider")
        return Roster(agents=[AgentRecord("a1", display_name="Ann"), AgentRecord("a2")])

    def window(self, start, end):
        return iter(())

    def changes(self, since, until):
        return iter(())


@pytest.fixture
def fake_source(env, monkeypatch):
    module = types.ModuleType("cxsync_test_fake_source")
    module.FakeSource = FakeSource
    monkeypatch.setitem(sys.modules, "cxsync_test_fake_source", module)
    point_source_at(monkeypatch, "liveperson", "cxsync_test_fake_source:FakeSource")
    monkeypatch.setattr(FakeSource, "behaviour", "ok")
    return env


def test_roster_sync_with_a_working_source_writes_the_warehouse(fake_source):
    result = tasks.roster_sync("lp_main")
    assert result["agents"] == 2 and result["new"] == 2
    engine = sa.create_engine(f"sqlite:///{fake_source / 'warehouse.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT agent_id FROM cx_agents ORDER BY agent_id")).scalars().all() == ["a1", "a2"]
    engine.dispose()


def test_fatal_errors_fail_the_task_at_once(fake_source, monkeypatch):
    monkeypatch.setattr(FakeSource, "behaviour", "forbidden")
    with pytest.raises(AirflowFailException, match="lack the Users permission"):
        tasks.roster_sync("lp_main")


def test_retriable_errors_are_left_to_airflows_retries(fake_source, monkeypatch):
    monkeypatch.setattr(FakeSource, "behaviour", "flaky")
    with pytest.raises(RetriableError):
        tasks.roster_sync("lp_main")


def test_plan_backfill_and_empty_windows(fake_source):
    windows = tasks.plan_backfill("lp_main", 1)
    assert len(windows) == 7
    assert windows[-1]["end"] == "2026-03-01T00:00:00+00:00"
    assert tasks.backfill_window("lp_main", windows[0])["conversations"] == 0
    tasks.finish_backfill("lp_main", windows)
    assert tasks.incremental("lp_main")["watermark"] == "2026-03-01T00:00:00.000000Z"


def test_retention_needs_no_provider_code(env, monkeypatch):
    point_source_at(monkeypatch, "liveperson", "cxsync.sources.not_built_yet:Source")
    result = tasks.retention("lp_main", dry_run=True)
    assert result["dry_run"] is True and result["cx_interactions"] == 0
    engine = sa.create_engine(f"sqlite:///{env / 'warehouse.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT integration_id, dry_run FROM cx_retention_log")).all() == [("lp_main", 1)]
    engine.dispose()


@pytest.mark.parametrize(
    ("requested", "run_type", "counts_only"),
    [(True, "manual", True), (False, "manual", False), (True, "scheduled", False), (False, "scheduled", False),
     (True, None, True)],
)  # fmt: skip
def test_a_manual_retention_run_honours_dry_run_and_the_scheduled_one_deletes(env, requested, run_type, counts_only):
    assert tasks.retention_dry_run(requested, run_type) is counts_only
    assert tasks.assess_retention("lp_main", requested, run_type)["dry_run"] is counts_only


@pytest.mark.parametrize("weeks", [0, 5, -1, 2.5, "2", True, None])
def test_backfill_refuses_weeks_outside_one_to_four_at_once(env, weeks):
    with pytest.raises(AirflowFailException, match=r"`weeks` must be a whole number from 1 to 4, got "):
        tasks.plan_backfill("lp_main", weeks)


@pytest.mark.parametrize("behaviour", ["ok", "flaky"])
def test_each_task_records_what_its_requests_cost_failed_ones_too(fake_source, monkeypatch, behaviour):
    from cxsync.http.client import RequestStats

    stats = RequestStats(requests=12, retries=3, rate_limited=2, waited_seconds=4.25, by_status={200: 10, 429: 2})
    monkeypatch.setattr(FakeSource, "request_stats", lambda self: stats, raising=False)
    monkeypatch.setattr(FakeSource, "behaviour", behaviour)
    try:
        tasks.roster_sync("lp_main")
    except RetriableError:
        assert behaviour == "flaky"
    engine = sa.create_engine(f"sqlite:///{fake_source / 'warehouse.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT integration_id, requests, retries, rate_limited, waited_seconds, by_status "
                "FROM cx_request_stats"
            )
        ).all()
    engine.dispose()
    assert rows == [("lp_main", 12, 3, 2, 4.25, '{"200": 10, "429": 2}')]


def test_a_task_without_requests_records_nothing(fake_source):
    tasks.roster_sync("lp_main")
    engine = sa.create_engine(f"sqlite:///{fake_source / 'warehouse.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cx_request_stats")).scalar_one() == 0
    engine.dispose()


def test_a_task_waits_within_its_execution_timeout(monkeypatch):
    """Inside an Airflow task, cxsync's own waits are bounded by what is left of the task's execution_timeout."""
    import types
    from datetime import UTC, datetime, timedelta

    import airflow.sdk

    from cxsync import tasks as task_module
    from cxsync.task_deadline import remaining, task_deadline

    ti = types.SimpleNamespace(
        task=types.SimpleNamespace(execution_timeout=timedelta(seconds=100)),
        start_date=datetime.now(UTC) - timedelta(seconds=40),
    )
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"ti": ti})
    left = task_module._seconds_left()
    assert left is not None and 55 <= left <= 60
    with task_deadline(left):
        assert 55 <= remaining() <= 60
    assert remaining() is None
