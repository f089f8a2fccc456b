"""An integration with `pii_redaction: true` loads every message of the labelled corpus, and no planted value is
stored anywhere: any table, any column, raw JSON and rejected records included, on SQLite and PostgreSQL.
Agents' names and benign text survive; the evidence (per-message counts, cx_redaction_stats) holds no values."""

from __future__ import annotations

import json
import logging
import socket

import pytest
import sqlalchemy as sa
from tests.support.pii import CorpusSource, leaks, planted_values

from cxsync import pipeline
from cxsync.config import load_integrations
from cxsync.warehouse import schema as t
from cxsync_dev.pii.corpus import AGENT_NAMES, generate

CORPUS = generate(120)


def _integration(tmp_path, provider: str, redaction: str = "true"):
    path = tmp_path / "integrations.yaml"
    path.write_text(
        "integrations:\n"
        f"  - id: pii_{provider}\n    provider: {provider}\n    conn_id: unused\n    pii_redaction: {redaction}\n"
    )
    config = load_integrations(path)
    assert not config.errors, config.errors
    return config.integrations[0]


@pytest.fixture
def no_network(monkeypatch):
    """Redaction runs offline: any socket opened while it works fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("redaction opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _load(integration, warehouse, conversations=CORPUS) -> dict:
    source = CorpusSource(integration, conversations)
    pipeline.sync_roster(integration, source, warehouse)
    return pipeline.load_window(
        integration, source, warehouse, pipeline.Window(source.server_now(), source.server_now())
    )


@pytest.mark.parametrize("provider", ["liveperson", "helpdesk"])
def test_no_planted_value_reaches_any_table(provider, warehouse, tmp_path, caplog):
    integration = _integration(tmp_path, provider)
    caplog.set_level(logging.DEBUG)
    result = _load(integration, warehouse)

    # Every message is stored; none of the values planted in texts, subjects, notes and the customer's record is.
    with warehouse.engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(t.messages)).scalar_one()
        rejected = conn.execute(sa.select(t.rejected_records.c.raw)).scalars().all()
    assert stored == sum(len(c.messages) for c in CORPUS)
    assert rejected and all(raw for raw in rejected)  # the broken record is kept, redacted
    planted = planted_values(CORPUS)
    assert leaks(warehouse.engine, planted) == []
    # Nor do the task's log and its result (the XCom).
    logged = caplog.text.lower()
    assert [v for v in planted if v.lower() in logged] == []
    assert [v for v in planted if v.lower() in json.dumps(result, ensure_ascii=False).lower()] == []
    assert result["redaction"]["messages_scanned"] == stored


@pytest.mark.parametrize("provider", ["liveperson", "helpdesk"])
def test_agents_names_and_benign_text_survive(provider, warehouse, tmp_path):
    _load(_integration(tmp_path, provider), warehouse)
    with warehouse.engine.connect() as conn:
        texts = "\n".join(conn.execute(sa.select(t.messages.c.text)).scalars())
        roster = conn.execute(sa.select(t.agents.c.display_name)).scalars().all()
    kept = set().union(*(c.kept() for c in CORPUS))
    assert [v for v in kept if v not in texts] == []
    assert sorted(roster) == sorted(f"{first} {last}" for first, last in AGENT_NAMES)
    assert "<CARD>" in texts and "<EMAIL>" in texts and "<NAME>" in texts


def test_redaction_is_offline(warehouse, tmp_path, no_network):
    _load(_integration(tmp_path, "liveperson"), warehouse, CORPUS[:10])
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.messages)).scalar_one() > 0


def test_evidence_counts_by_entity_without_values(warehouse, tmp_path):
    integration = _integration(tmp_path, "liveperson")
    _load(integration, warehouse)
    with warehouse.engine.connect() as conn:
        counts = [json.loads(c) for c in conn.execute(sa.select(t.messages.c.pii_counts)).scalars()]
        stats = conn.execute(sa.select(t.redaction_stats)).mappings().one()
        versions = set(conn.execute(sa.select(t.interactions.c.redaction_version)).scalars())
    assert all(isinstance(c, dict) for c in counts)  # every message scanned
    assert sum(c.get("CARD", 0) for c in counts) > 0
    assert stats["integration_id"] == integration.id
    assert stats["messages_scanned"] == len(counts)
    assert stats["messages_redacted"] == sum(1 for c in counts if c)
    by_entity = json.loads(stats["by_entity"])
    assert set(by_entity) <= {"EMAIL", "PHONE", "CARD", "IBAN", "NATIONAL_ID", "IP", "NAME"}
    assert by_entity["CARD"] >= sum(c.get("CARD", 0) for c in counts)
    assert versions == {integration.pii_redaction.version}


def test_a_reload_with_the_same_rules_writes_nothing_and_new_rules_rewrite(warehouse, tmp_path):
    integration = _integration(tmp_path, "helpdesk")
    _load(integration, warehouse)
    again = _load(integration, warehouse)
    assert again["unchanged"] == again["conversations"] and again["updated"] == 0
    changed = _integration(tmp_path, "helpdesk", "{entities: [email, phone, card, iban, national_id, customer]}")
    assert changed.pii_redaction.version != integration.pii_redaction.version
    rewritten = _load(changed, warehouse)
    assert rewritten["updated"] == rewritten["conversations"]


def test_without_redaction_the_values_are_stored_as_sent(warehouse, tmp_path):
    """The scan above can fail: the same load with redaction off stores the planted values."""
    _load(_integration(tmp_path, "liveperson", "false"), warehouse, CORPUS[:20])
    assert leaks(warehouse.engine, planted_values(CORPUS[:20]))
    with warehouse.engine.connect() as conn:
        assert set(conn.execute(sa.select(t.messages.c.pii_counts)).scalars()) == {None}


def test_reconciliation_redacts_what_it_loads(warehouse, tmp_path):
    from cxsync.reconcile import reconcile

    integration = _integration(tmp_path, "liveperson")
    source = CorpusSource(integration, CORPUS[:30])
    result = reconcile(integration, source, warehouse, hours=24 * 31)
    assert result["loaded"] == 30 and result["redaction"]["messages_scanned"] > 0
    assert leaks(warehouse.engine, planted_values(CORPUS[:30])) == []
