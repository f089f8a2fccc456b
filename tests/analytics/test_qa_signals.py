"""Analytics and the QA signals: a post-conversation survey is left out of the scored transcript, and CSAT and
MCS per agent day follow the interactions' scores when they change (docs/metrics.md)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa
from transcripts import LP, T0, WORKED_EXAMPLE, WORKED_EXAMPLE_METRICS, conversation, daily, load, metrics

from cxsync.analytics.run import run_analytics
from cxsync.records import InteractionRecord, MessageRecord

# A LivePerson post-conversation survey after the conversation: a survey bot, the customer's answers (one of them
# with an escalation phrase), all after the agent's last message.
SURVEY = [
    (1300, "bot", "survey", "How satisfied were you? (1-5)"),
    (1310, "customer", "c1", "1"),
    (1320, "agent", "survey", "Anything to add?"),
    (1400, "customer", "c1", "Terrible, I want to speak to a manager next time"),
]


def with_survey(record: InteractionRecord, iid: str) -> InteractionRecord:
    survey = [
        MessageRecord(
            message_id=f"s{n}",
            seq=len(record.messages) + n,
            sent_at=record.started_at + timedelta(seconds=offset),
            sender_type=sender,
            sender_id=sender_id,
            text=text,
            dialog_type="post_survey",
        )
        for n, (offset, sender, sender_id, text) in enumerate(SURVEY, start=1)
    ]
    return replace(record, interaction_id=iid, messages=[*record.messages, *survey])


def _figures(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("interaction_id", "content_hash", "computed_at")}


def test_a_post_conversation_survey_is_not_part_of_the_scored_transcript(warehouse):
    surveyed = with_survey(WORKED_EXAMPLE, "worked-surveyed")
    load(warehouse, LP, WORKED_EXAMPLE, surveyed)
    run_analytics(warehouse, LP)
    rows = metrics(warehouse, LP.id)
    # Counts, words, turns, runs, waits and flags are those of the conversation alone.
    assert _figures(rows["worked-surveyed"]) == _figures(rows["worked"])
    got = {k: rows["worked-surveyed"][k] for k in WORKED_EXAMPLE_METRICS if k != "flags"}
    assert got == {k: v for k, v in WORKED_EXAMPLE_METRICS.items() if k != "flags"}
    assert json.loads(rows["worked-surveyed"]["flags"]) == WORKED_EXAMPLE_METRICS["flags"]


def test_a_survey_alone_raises_no_flag_and_counts_no_customer_message(warehouse):
    # A conversation the agent handled with no customer message of its own, then a survey the customer answered:
    # the survey's unanswered answers are no long wait, no missing agent reply and no escalation.
    outbound = conversation("outbound", [(0, "agent", "a1", "Your parcel ships today")], ended_after=60)
    load(warehouse, LP, with_survey(outbound, "outbound-surveyed"))
    run_analytics(warehouse, LP)
    row = metrics(warehouse, LP.id)["outbound-surveyed"]
    assert (row["customer_messages"], row["agent_messages"], row["bot_messages"]) == (0, 1, 0)
    assert (row["customer_runs"], row["unanswered_runs"], row["turns"], row["agents_involved"]) == (0, 0, 1, 1)
    assert json.loads(row["flags"]) == []


def test_csat_and_mcs_per_agent_day_follow_a_changed_score(warehouse):
    def chat(iid: str, start=T0, **scores) -> InteractionRecord:
        lines = [(0, "customer", "c1", "hi"), (20, "agent", "a1", "hello")]
        return replace(conversation(iid, lines, agent="a1", start=start), **scores)

    load(warehouse, LP, chat("q1", csat_score=5.0, sentiment_score=90.0), chat("q2", csat_score=2.0), chat("q3"))
    run_analytics(warehouse, LP)
    day = daily(warehouse, LP.id)[("a1", T0.date().isoformat())]
    assert (day["conversations"], day["rated_conversations"], day["mean_csat_score"]) == (3, 2, 3.5)
    assert (day["sentiment_conversations"], day["mean_sentiment_score"]) == (1, 90.0)

    # The customer answers the survey late: q3 is rated now, and the agent day's mean follows.
    load(warehouse, LP, chat("q3", csat_score=1.0, sentiment_score=30.0))
    assert run_analytics(warehouse, LP).interactions_computed == 1
    day = daily(warehouse, LP.id)[("a1", T0.date().isoformat())]
    assert (day["rated_conversations"], day["mean_csat_score"]) == (3, 8.0 / 3)
    assert (day["sentiment_conversations"], day["mean_sentiment_score"]) == (2, 60.0)

    # Over a window of days, docs/metrics.md weights each day's mean by its count.
    load(warehouse, LP, chat("q4", T0 + timedelta(days=1), csat_score=4.0))
    run_analytics(warehouse, LP)
    with warehouse.engine.connect() as conn:
        rated, csat, mcs = conn.execute(sa.text(WINDOW_SQL), {"integration": LP.id}).one()
    assert (rated, csat, mcs) == (4, 3.0, 60.0)  # (5 + 2 + 1 + 4) / 4; MCS of the first day only


WINDOW_SQL = """
SELECT SUM(rated_conversations) AS rated,
       SUM(mean_csat_score * rated_conversations) / NULLIF(SUM(rated_conversations), 0) AS csat,
       SUM(mean_sentiment_score * sentiment_conversations) / NULLIF(SUM(sentiment_conversations), 0) AS mcs
FROM cx_agent_daily_metrics
WHERE integration_id = :integration AND agent_id = 'a1' AND day >= '2026-03-01' AND day < '2026-04-01'
"""
