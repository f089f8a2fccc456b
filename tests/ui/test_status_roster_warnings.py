"""The status page shows what the last roster sync lacked (a privilege the credentials miss), from the warehouse."""

from __future__ import annotations

from pathlib import Path

from cxsync.config import Integration, IntegrationsConfig
from cxsync.ui import status
from cxsync.ui import warehouse_reads as reads


def test_roster_warnings_show_on_the_status_page_and_clear_with_the_next_sync(warehouse, monkeypatch):
    integration = Integration(id="lp_x", provider="liveperson", conn_id="lp_conn", label="LP")
    config = IntegrationsConfig(path=Path("integrations.yaml"), integrations=[integration])
    monkeypatch.setattr(status, "integrations_config", lambda: config)
    monkeypatch.setattr(status.AirflowFacts, "read", classmethod(lambda cls, *a: cls(set(), {}, {})))
    monkeypatch.setattr(reads, "warehouse_engine", lambda conn_id: warehouse.engine)

    missing = "LivePerson connection 'lp_conn' lacks the \"Skills API Read\" privilege"
    warehouse.set_roster_warnings("lp_x", [missing])
    row = status.collect()["integrations"][0]
    assert f"Roster sync: {missing}" in row["warnings"]
    assert all(mark["stream"] != "roster_warnings" for mark in row["watermarks"])  # not shown as a watermark

    warehouse.set_roster_warnings("lp_x", [])
    assert not any(w.startswith("Roster sync") for w in status.collect()["integrations"][0]["warnings"])
