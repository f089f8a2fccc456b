"""Every metric and flag on hand-computed transcripts, each edge case, on SQLite and PostgreSQL (docs/metrics.md)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import numpy as np
from transcripts import (
    HD,
    LP,
    T0,
    WORKED_EXAMPLE,
    WORKED_EXAMPLE_METRICS,
    conversation,
    daily,
    load,
    metrics,
)

from cxsync import settings
from cxsync.analytics.compute import asks_for_escalation, word_counts
from cxsync.analytics.run import run_analytics

# (transcript, the figures it must give; figures not named are not the point of that transcript)
CASES = {
    # Open: no handle time; the customer's last run is still waiting, so it is unanswered but no long wait yet.
    "open": (
        conversation(
            "open",
            [(0, "customer", "c1", "hello"), (30, "agent", "a1", "hi there"), (100, "customer", "c1", "so?")],
            ended_after=None,
        ),
        {
            "status": "open",
            "handle_seconds": None,
            "first_response_seconds": 30.0,
            "customer_runs": 2,
            "unanswered_runs": 1,
            "turns": 3,
            "flags": [],
        },
    ),
    # A customer run never answered, in a closed conversation: it waited until the end (900 s > 300 s).
    "never_answered": (
        conversation(
            "never_answered",
            [(0, "customer", "c1", "hello?"), (10, "customer", "c1", "anyone there?")],
            ended_after=900,
        ),
        {
            "first_response_seconds": None,
            "avg_response_seconds": None,
            "max_response_seconds": None,
            "customer_runs": 1,
            "unanswered_runs": 1,
            "customer_words": 3,
            "turns": 1,
            "flags": ["no_agent_reply", "long_wait"],
        },
    ),
    # No customer message (an outbound message): nothing to respond to, no flag.
    "outbound": (
        conversation("outbound", [(0, "agent", "a1", "Your parcel ships today")], ended_after=60),
        {
            "customer_messages": 0,
            "agent_messages": 1,
            "agent_words": 4,
            "first_response_seconds": None,
            "customer_runs": 0,
            "unanswered_runs": 0,
            "turns": 1,
            "handle_seconds": 60.0,
            "flags": [],
        },
    ),
    # Bots only: a bot reply is no agent reply, and bot messages do not split the customer's run.
    "bot_only": (
        conversation(
            "bot_only",
            [
                (0, "customer", "c1", "where is my order"),
                (2, "bot", "b1", "It ships tomorrow"),
                (10, "customer", "c1", "thanks"),
                (12, "bot", "b1", "You're welcome"),
            ],
            agent=None,
            ended_after=60,
        ),
        {
            "bot_messages": 2,
            "agent_messages": 0,
            "customer_runs": 1,
            "unanswered_runs": 1,
            "turns": 4,
            "agents_involved": 0,
            "flags": ["no_agent_reply", "bot_only"],
        },
    ),
    # Equal timestamps: `seq` decides the order, so the reply sent in the same second answers in 0 s; a reply
    # stamped before the question (clock skew) counts 0 s too, never negative.
    "equal_times": (
        conversation(
            "equal_times",
            [
                (0, "customer", "c1", "hi"),
                (0, "agent", "a1", "hello"),
                (50, "customer", "c1", "one more thing"),
                (40, "agent", "a1", "yes?"),
            ],
        ),
        {
            "first_response_seconds": 0.0,
            "avg_response_seconds": 0.0,
            "max_response_seconds": 0.0,
            "customer_runs": 2,
            "unanswered_runs": 0,
            "turns": 4,
            "flags": [],
        },
    ),
    # A first response over the threshold (121 s > 120 s), no wait over 300 s.
    "slow_first": (
        conversation("slow_first", [(0, "customer", "c1", "hello"), (121, "agent", "a1", "hi")]),
        {"first_response_seconds": 121.0, "flags": ["long_first_response"]},
    ),
    # Exactly at the threshold is not over it.
    "at_threshold": (
        conversation("at_threshold", [(0, "customer", "c1", "hello"), (120, "agent", "a1", "hi")]),
        {"first_response_seconds": 120.0, "flags": []},
    ),
    # Three agents wrote (transfers); a fourth only left a private note, which is no part of the conversation.
    "transfers": (
        conversation(
            "transfers",
            [
                (0, "customer", "c1", "hello"),
                (10, "agent", "a1", "let me transfer you"),
                (20, "customer", "c1", "ok"),
                (30, "agent", "a2", "billing here"),
                (35, "agent", "a4", "note for a2", True),
                (40, "customer", "c1", "and refunds?"),
                (50, "agent", "a3", "refunds here"),
            ],
            agent="a3",
        ),
        {
            "agents_involved": 3,
            "private_notes": 1,
            "agent_messages": 3,
            "avg_response_seconds": 10.0,
            "turns": 6,
            "flags": ["many_agents"],
        },
    ),
    # No message at all: zeros and nulls, no flag.
    "empty": (
        conversation("empty", [], ended_after=30),
        {
            "agent_messages": 0,
            "customer_messages": 0,
            "turns": 0,
            "customer_runs": 0,
            "agents_involved": 0,
            "first_response_seconds": None,
            "handle_seconds": 30.0,
            "flags": [],
        },
    ),
    # A message without a time: its run is answered, but the response time is unknown (null), not a guess.
    "no_time": (
        conversation("no_time", [(None, "customer", "c1", "hello"), (10, "agent", "a1", "hi")]),
        {"customer_runs": 1, "unanswered_runs": 0, "first_response_seconds": None, "flags": []},
    ),
    # Escalation phrases in several languages, in customer messages only, as whole words.
    "escalation_es": (
        conversation(
            "escalation_es", [(0, "customer", "c1", "Quiero hablar con el GERENTE"), (5, "agent", "a1", "ok")]
        ),
        {"flags": ["escalation_request"]},
    ),
    "escalation_de": (
        conversation(
            "escalation_de",
            [(0, "customer", "c1", "Verbinden Sie mich mit Ihrem Vorgesetzten!"), (5, "agent", "a1", "ok")],
        ),
        {"flags": ["escalation_request"]},
    ),
    "escalation_phrase_over_lines": (
        conversation(
            "escalation_phrase_over_lines", [(0, "customer", "c1", "get me\nyour   boss"), (5, "agent", "a1", "ok")]
        ),
        {"flags": ["escalation_request"]},
    ),
    "no_escalation": (
        conversation(
            "no_escalation",
            [
                (0, "customer", "c1", "I work in management, the managers' app is down"),
                (5, "agent", "a1", "A supervisor will call you"),
                (6, "agent", "a1", "customer wants a manager", True),
            ],
        ),
        {"flags": []},
    ),
}


def test_the_worked_example_of_the_docs_and_every_edge_case(warehouse):
    load(warehouse, LP, WORKED_EXAMPLE, *(record for record, _ in CASES.values()))
    result = run_analytics(warehouse, LP)
    assert result.interactions_computed == len(CASES) + 1
    computed = metrics(warehouse, LP.id)
    # One warehouse for every case (a database per case would make this slow); every mismatch is reported.
    mismatches = {}
    for name, expected in [("worked", WORKED_EXAMPLE_METRICS), *((n, e) for n, (_, e) in CASES.items())]:
        got = {k: (json.loads(computed[name][k]) if k == "flags" else computed[name][k]) for k in expected}
        if got != expected:
            mismatches[name] = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert mismatches == {}
    raised = {flag for row in computed.values() for flag in json.loads(row["flags"])}
    assert raised == {
        "no_agent_reply",
        "long_first_response",
        "long_wait",
        "escalation_request",
        "bot_only",
        "many_agents",
    }
    assert {row["metrics_version"] for row in computed.values()} == {settings.ANALYTICS_METRICS_VERSION}


def test_thresholds_come_from_the_integration_options(warehouse):
    strict = replace(LP, options={"long_first_response_seconds": 60, "long_wait_seconds": 100, "many_agents": 2})
    load(warehouse, strict, WORKED_EXAMPLE)
    run_analytics(warehouse, strict)
    # 120 s first response > 60; 120 s answered wait > 100; 2 agents >= 2.
    assert json.loads(metrics(warehouse, strict.id)["worked"]["flags"]) == [
        "long_first_response",
        "long_wait",
        "escalation_request",
        "many_agents",
    ]


def test_helpdesk_long_defaults_and_reopened_from_the_status_history(warehouse):
    def status(old, new):
        return {"type": "status", "status": {"old": old, "new": new}}

    reopened = conversation(
        "t-reopened",
        [(0, "customer", "c1", "broken"), (3600, "agent", "a1", "fixed"), (7200, "customer", "c1", "broken again")],
        provider="helpdesk",
        ended_after=9000,
        raw={"events": [status("open", "solved"), status("solved", "open"), status("open", "solved")]},
    )
    straight = conversation(
        "t-straight",
        [(0, "customer", "c1", "question"), (9 * 3600, "agent", "a1", "answer")],
        provider="helpdesk",
        ended_after=10 * 3600,
        raw={"events": [status("open", "pending"), status("pending", "solved"), status("solved", "closed")]},
    )
    load(warehouse, HD, reopened, straight)
    run_analytics(warehouse, HD)
    rows = metrics(warehouse, HD.id)
    # HelpDesk defaults: first response over 8 h, a wait over 24 h. The reopened ticket's last run waited 1800 s.
    assert json.loads(rows["t-reopened"]["flags"]) == ["reopened"]
    assert json.loads(rows["t-straight"]["flags"]) == ["long_first_response"]


def test_agent_day_figures(warehouse):
    day2 = T0 + timedelta(days=1)
    records = [
        replace(
            conversation("d1", [(0, "customer", "c", "a"), (10, "agent", "a9", "b")], agent="a9", ended_after=100),
            csat_score=4.0,
        ),
        replace(
            conversation(
                "d2",
                [(0, "customer", "c", "a"), (30, "agent", "a9", "b"), (40, "agent", "a9", "c")],
                agent="a9",
                ended_after=300,
            ),
            csat_score=1.0,
            sentiment_score=70.0,
        ),
        # open, unanswered; scored by MCS but not rated
        replace(conversation("d3", [(0, "customer", "c", "a")], agent="a9", ended_after=None), sentiment_score=20.0),
        conversation("d4", [(0, "customer", "c", "a"), (50, "agent", "a9", "b")], agent="a9", start=day2),
        conversation("d5", [(0, "customer", "c", "a"), (5, "agent", "a8", "b")], agent="a8"),
        conversation("d6", [(0, "customer", "c", "a")], agent=None),  # no agent: in no agent day
    ]
    load(warehouse, LP, *records)
    run_analytics(warehouse, LP)
    days = daily(warehouse, LP.id)
    assert set(days) == {("a9", "2026-03-02"), ("a9", "2026-03-03"), ("a8", "2026-03-02")}
    first = days[("a9", "2026-03-02")]
    assert {k: first[k] for k in first if k not in ("integration_id", "agent_id", "day", "computed_at")} == {
        "metrics_version": first["metrics_version"],
        "conversations": 3,
        "closed_conversations": 2,
        "median_first_response_seconds": 20.0,  # of 10 and 30 (the open one has none)
        "p90_first_response_seconds": 28.0,  # 10 + 0.9 * (30 - 10)
        "avg_handle_seconds": 200.0,  # of 100 and 300 (the open one has none)
        "messages": 3,  # agent messages
        "customer_messages": 3,
        "unanswered_runs": 1,
        "flagged_conversations": 1,  # d3: no_agent_reply
        "rated_conversations": 2,  # d1 and d2 carry a CSAT
        "mean_csat_score": 2.5,  # (4 + 1) / 2: the unrated d3 is left out, not counted as 0
        "sentiment_conversations": 2,  # d2 and d3 carry an MCS
        "mean_sentiment_score": 45.0,  # (70 + 20) / 2
    }
    assert days[("a9", "2026-03-03")]["conversations"] == 1
    assert days[("a9", "2026-03-03")]["median_first_response_seconds"] == 50.0
    assert (days[("a9", "2026-03-03")]["rated_conversations"], days[("a9", "2026-03-03")]["mean_csat_score"]) == (
        0,
        None,
    )
    rows = metrics(warehouse, LP.id)
    assert (rows["d2"]["csat_score"], rows["d2"]["sentiment_score"], rows["d1"]["sentiment_score"]) == (1.0, 70.0, None)


def test_word_counts_equal_str_split_on_any_whitespace():
    texts = ["", None, "one", "  two  words ", "tab\tand\nnew line", "nbsp\u00a0ideographic\u3000space", "émoji 🙂 ok"]
    expected = [len((text or "").split()) for text in texts]
    assert word_counts(np.array(texts, dtype=object)).tolist() == expected


def test_escalation_phrases_are_found_next_to_other_phrases_and_only_as_whole_words():
    texts = [
        "my team is great but get me your manager",  # "team" alone is no phrase; the manager is
        "managers, management, xmanager",
        "JEFE!",
        "jefes",
        "speak to your\n   boss",
        "",
        None,
    ]
    assert asks_for_escalation(np.array(texts, dtype=object)).tolist() == [True, False, True, False, True, False, False]
