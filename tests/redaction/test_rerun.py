"""Re-redaction of stored rows: turning redaction on redacts what was stored in clear, in place, in batches that
resume from their checkpoint; nothing else changes, and a later load under the same rules writes nothing."""

from __future__ import annotations

import sqlalchemy as sa
from tests.redaction.test_pipeline_redaction import _integration
from tests.support.pii import CorpusSource, leaks, planted_values

from cxsync import pipeline
from cxsync.redaction import rerun, runtime
from cxsync.warehouse import schema as t
from cxsync_dev.pii.corpus import generate

CORPUS = generate(60)
KEPT = {  # what re-redaction must not touch
    t.interactions.name: (
        "interaction_id",
        "provider",
        "status",
        "started_at",
        "agent_id",
        "message_count",
        "loaded_at",
    ),
    t.messages.name: ("interaction_id", "message_id", "seq", "sent_at", "sender_type", "is_private", "dialog_type"),
}


def _load(integration, warehouse) -> dict:
    source = CorpusSource(integration, CORPUS)
    pipeline.sync_roster(integration, source, warehouse)
    now = source.server_now()
    return pipeline.load_window(integration, source, warehouse, pipeline.Window(now, now))


def _kept(warehouse) -> dict:
    with warehouse.engine.connect() as conn:
        return {
            name: sorted(conn.execute(sa.select(*(t.metadata.tables[name].c[c] for c in cols))).all())
            for name, cols in KEPT.items()
        } | {"agents": sorted(conn.execute(sa.select(t.agents)).all())}


def test_turning_redaction_on_re_redacts_stored_rows_resumably(warehouse, tmp_path):
    plain = _integration(tmp_path, "helpdesk", "false")
    _load(plain, warehouse)
    planted = planted_values(CORPUS)
    assert leaks(warehouse.engine, planted)
    before = _kept(warehouse)

    on = _integration(tmp_path, "helpdesk", "true")
    redactor = runtime.redactor_for(on)
    identity = runtime.identity_reader(CorpusSource(on, CORPUS))
    first = rerun.reredact(on.id, warehouse, redactor, identity, batch_size=25, max_batches=1)
    assert first == {"interactions": 25, "messages": first["messages"], "rejected": 0, "batches": 1, "complete": False}
    assert warehouse.get_watermark(on.id, f"redaction:{redactor.version}:interactions") is not None

    rest = rerun.reredact(on.id, warehouse, runtime.redactor_for(on), identity, batch_size=25)
    assert rest["interactions"] == len(CORPUS) - 25  # resumed after the checkpoint: none done twice
    assert rest["complete"] and rest["rejected"] >= 1
    assert leaks(warehouse.engine, planted) == []
    assert _kept(warehouse) == before  # nothing else changed: keys, times, roster
    with warehouse.engine.connect() as conn:
        assert set(conn.execute(sa.select(t.interactions.c.redaction_version)).scalars()) == {redactor.version}
        assert None not in set(conn.execute(sa.select(t.messages.c.pii_counts)).scalars())

    # A run with nothing left does nothing; a load under the same rules finds every interaction unchanged.
    again = rerun.reredact(on.id, warehouse, runtime.redactor_for(on), identity)
    assert again["interactions"] == 0
    reload = _load(on, warehouse)
    assert reload["unchanged"] == reload["conversations"] == len(CORPUS)


def test_the_task_refuses_an_integration_without_redaction(monkeypatch, tmp_path):
    import pytest

    from cxsync import tasks
    from cxsync.config import ConfigError

    path = tmp_path / "integrations.yaml"
    path.write_text("integrations:\n  - id: plain\n    provider: helpdesk\n    conn_id: unused\n")
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(path))
    monkeypatch.setenv("CXSYNC_WAREHOUSE_PATH", str(tmp_path / "wh.db"))
    with pytest.raises(Exception, match="has no pii_redaction") as raised:
        tasks.reredact("plain")
    assert isinstance(raised.value.__cause__, ConfigError)
