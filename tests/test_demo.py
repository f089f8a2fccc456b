"""`make demo`: builds the warehouse, lists the DAGs, says which pipelines are not built, prints counts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cxsync import demo, registry

INTEGRATIONS = """
integrations:
  - {id: lp_one, provider: liveperson, conn_id: lp, label: LP One}
  - {id: hd_one, provider: helpdesk, conn_id: hd, label: HD One}
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "integrations.yaml"
    path.write_text(INTEGRATIONS)
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(path))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CXSYNC_WAREHOUSE_PATH", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", raising=False)
    return tmp_path


def not_built(monkeypatch, provider: str) -> None:
    spec = registry.PROVIDERS[provider]
    monkeypatch.setitem(registry.PROVIDERS, provider, registry.ProviderSpec(
        spec.name, spec.display_name, "cxsync.sources.not_built_yet:Source", spec.hook))


def test_demo_creates_the_warehouse_lists_dags_and_counts(home, capsys):
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert (home / "home" / "cxsync.db").is_file()
    for integration_id in ("lp_one", "hd_one"):
        for kind in demo.KINDS:
            assert f"    cxsync_{integration_id}_{kind}\n" in out
    assert "MISSING" not in out
    engine = sa.create_engine(f"sqlite:///{home / 'home' / 'cxsync.db'}")
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("cx_interactions")
    engine.dispose()
    for table in ("cx_agents", "cx_interactions", "cx_messages", "cx_sync_state", "cx_retention_log",
                  "cx_rejected_records"):
        assert f"\n{table} " in out


def test_demo_says_plainly_which_pipelines_are_not_built(home, capsys, monkeypatch):
    not_built(monkeypatch, "helpdesk")
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "HelpDesk: not built yet: cxsync.sources.not_built_yet:Source does not exist" in out
    assert "not implemented yet for helpdesk" in out
    assert "pipelines not built yet: helpdesk" in out


def test_demo_fails_on_a_bad_integrations_entry(home, capsys):
    (home / "integrations.yaml").write_text(INTEGRATIONS + "  - {id: bad, provider: zendesk, conn_id: x}\n")
    assert demo.main([]) == 1
    captured = capsys.readouterr()
    assert "`provider`" in captured.out and "problem(s)" in captured.err
    assert "cxsync_lp_one_roster_sync" in captured.out  # the good entries still show


def test_demo_reports_an_unusable_integrations_file(home, capsys):
    (home / "integrations.yaml").write_text("integrations: [")
    assert demo.main([]) == 2
    assert "not valid YAML" in capsys.readouterr().err
