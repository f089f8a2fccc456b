"""QA list runs on SQLite and PostgreSQL: filters in SQL, quotas and shortfalls, exclusion windows, evaluators
never on their own conversations, and runs an auditor rebuilds from the recorded seed and population."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest

from cxsync.qa.lists import (
    assign_evaluators,
    build_list_run,
    canonical_population,
    list_runs,
    population_hash,
    read_items,
    read_population,
    read_population_csv,
    rebuild_list_run,
    select_items,
)
from cxsync.qa.lists_config import Filters, Period, QaList
from cxsync.qa.matching import run_matching
from cxsync.qa.staff import load_staff
from support.qa import NOW, add_agents, add_interactions, interaction

STAFF = (
    "s-1,Ann Lee,ann@acme.example,Team A,agent,true,lp:b1\n"
    "s-2,Bo Berg,bo@acme.example,Team A,agent,true,\n"
    "s-3,Cy Chen,cy@acme.example,Team B,agent,true,\n"
    "s-9,Quinn Avery,quinn@acme.example,QA,evaluator,true,\n"
)
ELIGIBLE = {("hd", f"i{n}") for n in range(1, 5)} | {("lp", "j1"), ("hd", "k1")}
WEEK = Period(7, "days")


@pytest.fixture
def loaded(warehouse, write_staff_csv):
    add_agents(
        warehouse,
        "hd",
        [
            {"agent_id": "a1", "display_name": "Ann Lee", "email": "ann@acme.example"},
            {"agent_id": "a2", "display_name": "Bo Berg", "email": "BO@acme.example"},
            {"agent_id": "a3", "display_name": "Cy Chen", "email": "cy@acme.example"},
            {"agent_id": "a4", "display_name": "Not Staff", "email": "who@else.example"},
        ],
    )
    add_agents(warehouse, "lp", [{"agent_id": "b1", "display_name": "Ann L."}])
    add_interactions(
        warehouse,
        "hd",
        [
            *(interaction(f"i{n}", "a1", n) for n in range(1, 5)),
            interaction("k1", "a2", 2),
            interaction("u1", "a4", 2),  # unmatched agent: never in a list
            interaction("x-open", "a1", 3, status="open"),
            interaction("x-chat", "a1", 3, channel="chat"),
            interaction("x-nocust", "a1", 3, customer_messages=0),
            interaction("x-private", "a1", 3, agent_messages=0, private_notes=2),  # notes are no agent messages
            interaction("x-old", "a1", 8 * 24),
            interaction("x-long", "a1", 3, minutes=120),
            interaction("c-old", "a3", 300),  # s-3's only conversation is outside the period
        ],
    )
    add_interactions(warehouse, "lp", [interaction("j1", "b1", 5)])
    run_matching(warehouse, load_staff(write_staff_csv(STAFF)))
    return warehouse


def _list(**kw) -> QaList:
    base = {
        "id": "t",
        "type": "all",
        "period": WEEK,
        "filters": Filters(
            status=("closed",),
            channel=("messaging",),
            min_agent_messages=1,
            min_customer_messages=1,
            max_duration_seconds=3600,
        ),
    }
    return QaList(**{**base, **kw})


def _keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["integration_id"], frame["interaction_id"], strict=True))


def test_filters_run_in_sql(loaded):
    def population(qa_list: QaList) -> set[tuple[str, str]]:
        return _keys(read_population(loaded, qa_list, NOW, "probe"))

    everyone = _list()
    assert population(everyone) == ELIGIBLE
    f = everyone.filters
    assert population(replace(everyone, filters=replace(f, team=("Team B",)))) == set()
    assert population(replace(everyone, filters=replace(f, team=("Team A",)))) == ELIGIBLE
    assert population(replace(everyone, filters=replace(f, staff=("s-2",)))) == {("hd", "k1")}
    assert population(replace(everyone, integrations=("lp",))) == {("lp", "j1")}
    assert population(replace(everyone, period=Period(150, "hours"))) == ELIGIBLE
    # The period is [run - period, run): i3 ended exactly 3 hours before the run.
    assert population(replace(everyone, period=Period(3, "hours"))) == {
        ("hd", "i1"),
        ("hd", "i2"),
        ("hd", "i3"),
        ("hd", "k1"),
    }
    long_only = replace(f, max_duration_seconds=None, min_duration_seconds=3600)
    assert population(replace(everyone, filters=long_only)) == {("hd", "x-long")}
    assert population(replace(everyone, filters=replace(f, status=("open",)))) == {("hd", "x-open")}
    assert population(replace(everyone, filters=replace(f, channel=("chat",)))) == {("hd", "x-chat")}
    no_customer = replace(f, min_customer_messages=None, max_customer_messages=0)
    assert population(replace(everyone, filters=no_customer)) == {("hd", "x-nocust")}
    notes_only = replace(f, min_agent_messages=None, max_agent_messages=0)
    assert population(replace(everyone, filters=notes_only)) == {("hd", "x-private")}
    assert ("hd", "x-old") in population(replace(everyone, period=Period(9, "days")))
    two_sided = replace(f, min_agent_messages=2, min_customer_messages=3)  # counted, not just "any"
    assert population(replace(everyone, filters=two_sided)) == set()
    assert population(replace(everyone, filters=replace(f, min_agent_messages=2))) == ELIGIBLE


def test_quotas_and_shortfall_per_staff_member_and_in_total(loaded):
    per_agent = build_list_run(loaded, _list(type="random", per_agent=3), NOW, export=False)
    assert per_agent.items["staff_id"].value_counts().to_dict() == {"s-1": 3, "s-2": 1}
    assert per_agent.shortfall == {"s-2": 2, "s-3": 3}  # s-3 is matched and active, nothing eligible
    assert list(per_agent.items["rank"]) == [1, 2, 3, 4]

    total = build_list_run(loaded, _list(id="t2", type="random", total=4), NOW, export=False)
    assert total.items["staff_id"].value_counts().to_dict() == {"s-1": 3, "s-2": 1}  # spread over people first
    assert total.shortfall == {}
    assert build_list_run(loaded, _list(id="t3", type="random", total=10), NOW, export=False).shortfall == {"_total": 4}

    sequential = build_list_run(loaded, _list(id="t4", type="sequential", per_agent=2), NOW, export=False)
    assert list(zip(sequential.items["staff_id"], sequential.items["interaction_id"], strict=True)) == [
        ("s-1", "j1"),  # earliest-ended first
        ("s-1", "i4"),
        ("s-2", "k1"),
    ]
    first = build_list_run(loaded, _list(id="t5", type="sequential", total=1), NOW, export=False)
    assert list(first.items["interaction_id"]) == ["j1"]
    runs = {r["list_run_id"]: r for r in list_runs(loaded)}
    assert runs[per_agent.list_run_id]["shortfall"] == {"s-2": 2, "s-3": 3}
    assert runs[per_agent.list_run_id]["population_size"] == 6


def test_exclusion_window_covers_every_list_and_a_rerun_replaces_its_own_run(loaded):
    first = build_list_run(loaded, _list(id="first", exclude_listed_within_days=30), NOW, export=False)
    assert _keys(first.items) == ELIGIBLE
    again = build_list_run(loaded, _list(id="first", exclude_listed_within_days=30), NOW, export=False)
    assert again.list_run_id == first.list_run_id and _keys(again.items) == ELIGIBLE  # not excluded by itself
    assert len(read_items(loaded, first.list_run_id)) == len(ELIGIBLE)  # replaced, not doubled

    older = {("hd", "x-old"), ("hd", "c-old")}  # in a 60-day period, not in the week "first" covered
    other = _list(id="other", period=Period(60, "days"), exclude_listed_within_days=30)
    assert _keys(build_list_run(loaded, other, NOW + timedelta(hours=1), export=False).items) == older
    # 30 days and 30 minutes on, what "first" took is free again; what "other" took 29 days 23.5 hours ago is not.
    later = build_list_run(loaded, replace(other, id="later"), NOW + timedelta(days=30, minutes=30), export=False)
    assert _keys(later.items) == ELIGIBLE
    unlimited = replace(other, id="unlimited", exclude_listed_within_days=0)
    assert _keys(build_list_run(loaded, unlimited, NOW + timedelta(days=31, hours=1), export=False).items) == (
        ELIGIBLE | older
    )


def test_evaluators_round_robin_never_their_own_conversations(loaded):
    run = build_list_run(loaded, _list(evaluators=("s-1", "s-9", "s-2")), NOW, export=False)
    items = run.items
    assert len(items) == 6 and items["evaluator_id"].notna().all()
    assert not (items["evaluator_id"] == items["staff_id"]).any()
    assert set(items["evaluator_id"]) == {"s-1", "s-2", "s-9"}
    assert assign_evaluators(["s-1", "s-2", "s-1", "s-1"], ["s-1", "s-2"]) == ["s-2", "s-1", "s-2", "s-2"]
    assert assign_evaluators(["s-1", "s-2"], ["s-1"]) == [None, "s-1"]
    assert assign_evaluators(["s-1"], []) == [None]


def test_a_run_is_rebuilt_identically_from_its_seed_and_population(loaded, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CXSYNC_QA_EXPORT_DIR", str(tmp_path / "exports"))
    qa_list = _list(id="audit", type="random", per_agent=2, evaluators=("s-9", "s-2"))
    with caplog.at_level(logging.INFO, logger="cxsync.qa.lists"):
        run = build_list_run(loaded, qa_list, NOW)
    assert str(run.export_path) in caplog.text and run.export_path.parent == tmp_path / "exports"
    exported = pd.read_csv(run.export_path, dtype=str)
    assert list(exported["interaction_id"]) == list(run.items["interaction_id"])
    assert set(exported["list_run_id"]) == {run.list_run_id}

    rebuilt = rebuild_list_run(loaded, run.list_run_id)
    assert rebuilt.identical and rebuilt.population_unchanged
    from_file = rebuild_list_run(loaded, run.list_run_id, read_population_csv(run.population_path))
    assert from_file.identical and from_file.population_unchanged

    population = canonical_population(read_population(loaded, qa_list, NOW, run.list_run_id))
    shuffled = population.sample(frac=1, random_state=3)  # a derived frame: canonical again, not trusted as is
    assert select_items(shuffled, qa_list, run.seed).equals(select_items(population, qa_list, run.seed))
    assert population_hash(shuffled) == run.population_hash
    others = {tuple(select_items(population, qa_list, seed)["interaction_id"]) for seed in range(20)}
    assert len(others) > 1  # the seed does decide

    add_interactions(loaded, "hd", [interaction("late", "a1", 1.5)])  # the data changed since the run
    changed = rebuild_list_run(loaded, run.list_run_id)
    assert not changed.population_unchanged
    assert rebuild_list_run(loaded, run.list_run_id, read_population_csv(run.population_path)).identical


def test_retention_deletes_list_items_with_their_interactions_and_keeps_the_run(loaded):
    run = build_list_run(loaded, _list(id="kept"), NOW, export=False)
    result = loaded.delete_older_than("hd", NOW - timedelta(hours=3, minutes=30))  # i4 (and older) go
    assert result.counts["cx_qa_list_items"] == 1
    assert _keys(read_items(loaded, run.list_run_id)) == ELIGIBLE - {("hd", "i4")}
    assert list_runs(loaded, "kept")[0]["item_count"] == len(ELIGIBLE)  # the run's record says what it was


def test_lists_filter_on_conversation_analytics(loaded):
    from cxsync.analytics.run import run_analytics
    from cxsync.config import Integration

    def population(filters: Filters) -> set[tuple[str, str]]:
        return _keys(read_population(loaded, _list(filters=filters), NOW, "probe"))

    f = _list().filters
    # no metrics computed yet: a metric filter lets nothing through
    assert population(replace(f, min_first_response_seconds=0)) == set()
    for integration_id in ("hd", "lp"):
        run_analytics(loaded, Integration(integration_id, "helpdesk", "c", integration_id, conversation_analytics=True))
    # every eligible conversation was answered 2 s after the customer first wrote (support.qa.interaction)
    assert population(replace(f, min_first_response_seconds=0)) == ELIGIBLE
    assert population(replace(f, max_first_response_seconds=2)) == ELIGIBLE
    assert population(replace(f, min_first_response_seconds=2.5)) == set()
    # the customer wrote and only private notes followed: no agent reply
    unanswered = replace(f, min_agent_messages=None, flags=("no_agent_reply",))
    assert population(unanswered) == {("hd", "x-private")}
    assert population(replace(f, flags=("no_agent_reply", "escalation_request"))) == set()


def test_the_exported_items_file_never_holds_a_spreadsheet_formula(loaded, tmp_path, monkeypatch):
    """Provider ids reach the items CSV that QA tools and spreadsheets open: a formula start is quoted away;
    the population file (read back for audits) keeps its values exactly."""
    monkeypatch.setenv("CXSYNC_QA_EXPORT_DIR", str(tmp_path / "exports"))
    add_interactions(loaded, "hd", [interaction("=HYPERLINK(1)", "a1", 2), interaction("+cmd", "a1", 2)])
    run = build_list_run(loaded, _list(id="csv"), NOW)
    exported = pd.read_csv(run.export_path, dtype=str)
    assert {"'=HYPERLINK(1)", "'+cmd"} <= set(exported["interaction_id"])
    assert not any(str(v).startswith(("=", "+", "-", "@")) for v in exported.to_numpy().ravel())
    population = read_population_csv(run.population_path)
    assert {"=HYPERLINK(1)", "+cmd"} <= set(population["interaction_id"])
    assert rebuild_list_run(loaded, run.list_run_id, population).identical
