"""LivePerson reconciliation helpers: which open conversations changed since our copy, by `latestUpdateTime`
searches only, checked against a brute-force answer; and what an info-only record says."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from cxsync.config import Integration
from cxsync.sources.liveperson import TEN_MINUTES_MS, LivePersonSource, _listed, to_ms
from cxsync.warehouse.store import HeldInteraction

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


class Searches:
    """Answers info-only searches from a table of provider update stamps, as LivePerson filters them."""

    def __init__(self, stamps: dict[str, int], starts: dict[str, int]):
        self.stamps, self.starts, self.calls = stamps, starts, []

    def __call__(self, filters, label):
        self.calls.append(filters)
        low = filters["latestUpdateTime"]["from"] // TEN_MINUTES_MS * TEN_MINUTES_MS
        for key, stamp in self.stamps.items():
            if stamp >= low and filters["start"]["from"] <= self.starts[key] <= filters["start"]["to"]:
                yield {"info": {"conversationId": key, "status": "OPEN"}}


@pytest.mark.parametrize("seed", range(6))
def test_changed_open_conversations_are_exactly_those_updated_after_our_copy(seed):
    rng = random.Random(seed)
    source = LivePersonSource(Integration(id="lp", provider="liveperson", conn_id="x", label="x"), hook=object())
    held, stamps, starts = [], {}, {}
    for n in range(150):
        started = NOW - timedelta(hours=rng.uniform(2, 200))
        ours = started + (NOW - started) * rng.random()
        changed = rng.random() < 0.15
        # A change lands at least one 10-minute boundary after our copy (closer ones are documented as unseen).
        theirs = ours + timedelta(minutes=rng.uniform(10, 600)) if changed else ours
        key = f"c{n}"
        held.append(HeldInteraction(key, started, ours, "open", None, None))
        stamps[key], starts[key] = to_ms(min(theirs, NOW)), to_ms(started)
    searches = Searches(stamps, starts)
    source._light_records = searches
    expected = {
        h.interaction_id
        for h in held
        if stamps[h.interaction_id] >= (to_ms(h.updated_at) // TEN_MINUTES_MS + 1) * TEN_MINUTES_MS
    }
    assert source.changed(held, NOW) == expected
    boundaries = {(to_ms(h.updated_at) // TEN_MINUTES_MS + 1) * TEN_MINUTES_MS for h in held}
    assert len(searches.calls) == len(boundaries)  # one search per distinct boundary, none per record


def test_only_copies_older_than_the_incremental_runs_floor_are_asked_about():
    source = LivePersonSource(Integration(id="lp", provider="liveperson", conn_id="x", label="x"), hook=object())
    fresh = HeldInteraction("fresh", NOW - timedelta(hours=3), NOW - timedelta(minutes=20), "open", None, None)
    searches = Searches({"fresh": to_ms(NOW)}, {"fresh": to_ms(fresh.started_at)})
    source._light_records = searches
    assert source.changed([fresh], NOW, covered_since=NOW - timedelta(hours=1)) == set()
    assert searches.calls == []


def test_an_info_only_record_gives_status_start_agent_and_a_closed_ones_end():
    closed = {"info": {"conversationId": "c1", "status": "CLOSE", "startTimeL": 1000, "endTimeL": 5000}}
    listed = _listed("c1", {**closed, "info": {**closed["info"], "latestAgentId": 42}})
    assert (listed.status, listed.agent_id, listed.agent_known) == ("closed", "42", True)
    assert listed.updated_at == datetime.fromtimestamp(5, UTC) and listed.started_at == datetime.fromtimestamp(1, UTC)
    opened = _listed("c2", {"info": {"conversationId": "c2", "status": "OPEN", "startTimeL": 1000, "endTimeL": -1}})
    assert (opened.status, opened.updated_at, opened.agent_id) == ("open", None, None)
