"""`contentToRetrieve` is never sent empty: the docs leave open what `[]` means, and one reading ("the default
sections") carries every message. Reconciliation lists ask for the smallest documented section."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cxsync.config import ConfigError, Integration
from cxsync.hooks.liveperson import LivePersonHook
from cxsync.sources.liveperson import LIST_CONTENT, LivePersonSource, content_to_retrieve
from support.liveperson import LPSandbox, export_connections, start_lp_sandbox


@pytest.fixture
def lp(monkeypatch) -> LPSandbox:
    sandbox = start_lp_sandbox()
    export_connections(sandbox, monkeypatch)
    yield sandbox
    sandbox.server.stop()


class Spy(LivePersonHook):
    """Records every search body it sends."""

    def __init__(self, conn_id: str) -> None:
        super().__init__(conn_id)
        self.bodies: list[dict] = []

    def search_conversations(self, body, **kwargs):
        self.bodies.append(dict(body))
        return super().search_conversations(body, **kwargs)


def source(hook: LivePersonHook, **options) -> LivePersonSource:
    integration = Integration(id="lp_test", provider="liveperson", conn_id=hook.conn_id, label="test", options=options)
    return LivePersonSource(integration, hook=hook)


def test_the_reconciliation_list_asks_for_the_smallest_section_and_gets_no_transcripts(lp):
    hook = Spy("sandbox_liveperson_main")
    src = source(hook)
    now = src.server_now()
    listed = list(src.listing(now - timedelta(days=2), now))
    assert listed
    assert hook.bodies and all(b.get("contentToRetrieve") == ["dialogs"] for b in hook.bodies)
    assert LIST_CONTENT == ("dialogs",)
    # what came back is info and dialogs only: no messages were downloaded to compare
    body = {"start": hook.bodies[0]["start"], "contentToRetrieve": list(LIST_CONTENT)}
    records = hook.search_conversations(body, limit=5)["conversationHistoryRecords"]
    assert records and all(set(r) <= {"info", "dialogs"} for r in records)


def test_an_empty_section_list_is_left_out_rather_than_sent(lp):
    """`contentToRetrieve: []` is never on the wire; the loads' own option cannot be empty either."""
    assert content_to_retrieve([]) == {} and content_to_retrieve(("dialogs",)) == {"contentToRetrieve": ["dialogs"]}
    with pytest.raises(ConfigError, match="content_to_retrieve"):
        source(Spy("sandbox_liveperson_main"), content_to_retrieve=[])
    hook = Spy("sandbox_liveperson_main")
    src = source(hook)
    now = src.server_now()
    list(src.changes(now - timedelta(hours=6), now))
    assert hook.bodies and all(b.get("contentToRetrieve") for b in hook.bodies)
