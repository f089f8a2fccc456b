"""QA lists on the QA signals (CSAT, MCS, tags, close reason, skill, group, priority) on SQLite and PostgreSQL,
and a survey's messages left out of the message counts the lists filter on."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
import yaml

from cxsync.qa.lists import DETAIL_COLUMNS, ITEM_COLUMNS, build_list_run, read_items, read_population, rebuild_list_run
from cxsync.qa.lists_config import SIGNAL_SCORE_FILTERS, SIGNAL_TEXT_FILTERS, Filters, Period, QaList, load_qa_lists
from cxsync.qa.matching import run_matching
from cxsync.qa.staff import load_staff
from cxsync.records import InteractionRecord, MessageRecord
from support.qa import NOW, add_agents, add_interactions, interaction

STAFF = "s-1,Ann Lee,ann@acme.example,Team A,agent,true,\ns-2,Bo Berg,bo@acme.example,Team A,agent,true,\n"


def scored(iid: str, agent: str = "a1", *, status: str = "closed", **signals) -> InteractionRecord:
    return replace(interaction(iid, agent, 2, status=status), **signals)


def with_survey(record: InteractionRecord, senders: list[str]) -> InteractionRecord:
    """`record` with a post-conversation survey after its conversation: one message per sender."""
    last = record.messages[-1] if record.messages else None
    start = (last.seq if last else 0) + 1
    sent = (last.sent_at if last else record.started_at) + timedelta(seconds=30)
    survey = [
        MessageRecord(
            message_id=f"{record.interaction_id}-survey{n}",
            seq=seq,
            sent_at=sent + timedelta(seconds=n),
            sender_type=sender,
            sender_id="c1" if sender == "customer" else "survey-bot",
            text="How did we do?" if sender != "customer" else "1",
            dialog_type="post_survey",
        )
        for n, (seq, sender) in enumerate(enumerate(senders, start=start))
    ]
    return replace(record, messages=[*record.messages, *survey])


# What the example list (closed, CSAT at most 2, tag `refund`) must take, and why each other one is left out.
EXPECTED = {("hd", "r1"), ("hd", "r2"), ("hd", "r3")}
RECORDS = [
    scored("r1", csat_score=1.0, tags=["Refund", "Shipping"], display_id="1001", close_reason="solved"),
    scored("r2", "a2", csat_score=2.0, tags=["REFUND"]),  # at the bound; letter case aside
    scored("r3", csat_score=1.5, tags=["billing", "refund"]),
    scored("n-csat3", csat_score=3.0, tags=["refund"]),  # over the bound
    scored("n-unrated", tags=["refund"]),  # no CSAT: a CSAT bound never passes it
    scored("n-open", status="open", csat_score=1.0, tags=["refund"]),
    scored("n-refunds", csat_score=1.0, tags=["refunds"]),  # a whole tag name, not a part of one
    scored("n-untagged", csat_score=1.0),
    scored("n-likeish", csat_score=1.0, tags=["%efund", "re_und"]),  # no wildcard matching either
]


@pytest.fixture
def signals(warehouse, write_staff_csv):
    add_agents(
        warehouse,
        "hd",
        [
            {"agent_id": "a1", "display_name": "Ann Lee", "email": "ann@acme.example"},
            {"agent_id": "a2", "display_name": "Bo Berg", "email": "bo@acme.example"},
        ],
    )
    add_interactions(warehouse, "hd", RECORDS)
    run_matching(warehouse, load_staff(write_staff_csv(STAFF)))
    return warehouse


def _keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["integration_id"], frame["interaction_id"], strict=True))


def test_closed_low_csat_refund_list_from_the_file_takes_exactly_those_and_rebuilds_identically(signals, tmp_path):
    path = tmp_path / "qa_lists.yaml"
    path.write_text(
        textwrap.dedent("""
        lists:
          - id: unhappy_refunds
            type: random
            total: 10
            period: {last: 7, unit: days}
            filters: {status: closed, max_csat: 2, tags: [refund]}
        """)
    )
    config = load_qa_lists(path)
    assert config.errors == []
    qa_list = config.get("unhappy_refunds")
    run = build_list_run(signals, qa_list, NOW, export=False)
    assert _keys(run.items) == EXPECTED
    assert run.population_size == len(EXPECTED)
    again = build_list_run(signals, qa_list, NOW, export=False)
    assert again.items.equals(run.items) and again.seed == run.seed  # same inputs, same selection
    rebuilt = rebuild_list_run(signals, run.list_run_id)  # from the recorded definition, new filters included
    assert rebuilt.identical and rebuilt.population_unchanged


def test_the_items_show_the_interactions_signals_in_the_warehouse_and_the_exported_csv(signals, tmp_path, monkeypatch):
    monkeypatch.setenv("CXSYNC_QA_EXPORT_DIR", str(tmp_path / "exports"))
    qa_list = QaList(
        id="unhappy", type="all", period=Period(7, "days"), filters=Filters(status=("closed",), max_csat=2)
    )
    run = build_list_run(signals, qa_list, NOW)
    stored = read_items(signals, run.list_run_id).set_index("interaction_id")
    exported = pd.read_csv(run.export_path, dtype=str, keep_default_na=False)
    assert list(exported.columns) == ["list_id", "list_run_id", *ITEM_COLUMNS, *DETAIL_COLUMNS]
    exported = exported.set_index("interaction_id")
    for frame in (stored, exported):
        assert str(frame.loc["r1", "display_id"]) == "1001" and frame.loc["r1", "close_reason"] == "solved"
        assert float(frame.loc["r2", "csat_score"]) == 2.0 and frame.loc["r1", "status"] == "closed"
        assert json.loads(frame.loc["r1", "tags"]) == ["Refund", "Shipping"]
    assert pd.isna(stored.loc["r2", "display_id"]) and exported.loc["r2", "display_id"] == ""


def test_each_signal_filter(signals, warehouse):
    extra = [
        scored("g1", close_reason="AGENT", skill="Billing", agent_group="Tier 2", priority="high", sentiment_score=12),
        scored(
            "g2", close_reason="consumer", skill="billing", agent_group="Tier 1", priority="Low", sentiment_score=88
        ),
        scored("g3", tags=["RÉCLAMATION"], sentiment_score=50),  # non-ASCII letters fold too, on SQLite as well
    ]
    add_interactions(warehouse, "hd", extra)
    base = QaList(id="probe", type="all", period=Period(7, "days"))

    def population(**filters) -> set[str]:
        frame = read_population(signals, replace(base, filters=Filters(**filters)), NOW, "probe")
        return set(frame["interaction_id"])

    assert population(close_reason=("agent",)) == {"g1"}
    assert population(close_reason=("AGENT", "Consumer")) == {"g1", "g2"}
    assert population(skill=("BILLING",)) == {"g1", "g2"}
    assert population(agent_group=("tier 2",)) == {"g1"}
    assert population(priority=("low", "urgent")) == {"g2"}
    assert population(min_sentiment=50) == {"g2", "g3"}
    assert population(max_sentiment=12) == {"g1"}
    assert population(min_sentiment=13, max_sentiment=87) == {"g3"}
    assert population(tags=("réclamation",)) == {"g3"}
    assert population(tags=("shipping", "billing")) == {"r1", "r3"}  # any of them
    assert population(min_csat=2, max_csat=3) == {"r2", "n-csat3"}
    assert population(min_csat=1, status=("open",)) == {"n-open"}


def test_survey_messages_are_not_counted_as_the_conversations_messages(warehouse, write_staff_csv):
    add_agents(warehouse, "hd", [{"agent_id": "a1", "display_name": "Ann Lee", "email": "ann@acme.example"}])
    add_interactions(
        warehouse,
        "hd",
        [
            # The customer only answered the survey: no customer message in the conversation itself.
            with_survey(interaction("silent", "a1", 2, customer_messages=0), ["bot", "customer"]),
            with_survey(interaction("talked", "a1", 2, customer_messages=1, agent_messages=1), ["agent", "customer"]),
        ],
    )
    run_matching(warehouse, load_staff(write_staff_csv(STAFF)))
    base = QaList(id="probe", type="all", period=Period(7, "days"))

    def population(**filters) -> set[str]:
        frame = read_population(warehouse, replace(base, filters=Filters(**filters)), NOW, "probe")
        return set(frame["interaction_id"])

    assert population(min_customer_messages=1) == {"talked"}
    assert population(max_customer_messages=0) == {"silent"}
    assert population(max_agent_messages=1) == {"talked"}  # its one agent message; the survey's is left out
    assert population(min_agent_messages=2) == {"silent"}


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"max_csat": "low"}, "filters.max_csat"),
        ({"min_csat": True}, "filters.min_csat"),
        ({"min_csat": -1}, "filters.min_csat"),
        ({"max_sentiment": 101}, "filters.max_sentiment"),
        ({"min_sentiment": 60, "max_sentiment": 40}, "filters.min_sentiment"),
        ({"min_csat": 4, "max_csat": 2}, "filters.min_csat"),
        ({"tags": []}, "filters.tags"),
        ({"tags": ["refund", 7]}, "filters.tags"),
        ({"close_reason": ""}, "filters.close_reason"),
        ({"priority": {"high": 1}}, "filters.priority"),
        ({"skill": [None]}, "filters.skill"),
        ({"agent_group": 3}, "filters.agent_group"),
    ],
)
def test_bad_signal_filters_name_file_list_and_field(tmp_path, filters, field):
    path = tmp_path / "qa_lists.yaml"
    week = {"last": 7, "unit": "days"}
    entries = [
        {"id": "bad", "type": "all", "period": week, "filters": filters},
        {"id": "ok", "type": "all", "period": week, "filters": {"max_csat": 2, "tags": "refund"}},
    ]
    path.write_text(yaml.safe_dump({"lists": entries}))
    config = load_qa_lists(path)
    assert [q.id for q in config.lists] == ["ok"]
    assert any(e.startswith(f"{path}: lists[0] (id 'bad'): field `{field}`") for e in config.errors), config.errors


def test_signal_filters_read_back_from_the_recorded_definition(tmp_path):
    path = tmp_path / "qa_lists.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "lists": [
                    {
                        "id": "all_signals",
                        "type": "all",
                        "period": {"last": 7, "unit": "days"},
                        "filters": {
                            "tags": ["refund", "vip"],
                            "close_reason": "AGENT",
                            "skill": ["Billing"],
                            "agent_group": "Tier 2",
                            "priority": ["high", "urgent"],
                            "min_csat": 1,
                            "max_csat": 2.5,
                            "min_sentiment": 0,
                            "max_sentiment": 40,
                        },
                    }
                ]
            }
        )
    )
    qa_list = load_qa_lists(path).get("all_signals")
    f = qa_list.filters
    assert (f.tags, f.close_reason, f.priority) == (("refund", "vip"), ("AGENT",), ("high", "urgent"))
    assert (f.min_csat, f.max_csat, f.min_sentiment, f.max_sentiment) == (1.0, 2.5, 0.0, 40.0)
    assert QaList.from_definition(yaml.safe_load(yaml.safe_dump(qa_list.definition()))) == qa_list
    # A run recorded before these filters existed reads back with none of them.
    older = qa_list.definition()
    older["filters"] = {
        k: v for k, v in older["filters"].items() if k not in (*SIGNAL_TEXT_FILTERS, *SIGNAL_SCORE_FILTERS)
    }
    assert QaList.from_definition(older) == replace(qa_list, filters=Filters())
