"""The metrics themselves: pure pandas over one batch of interactions and their messages, no database.

Every definition here is the one docs/metrics.md states with a worked example; tests/analytics holds the two
equal. Messages are taken in `seq` order. Private notes and `system` messages are never a turn or a reply;
a bot message is a turn but never an agent reply.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

import numpy as np
import pandas as pd

from cxsync.analytics.options import Thresholds

FLAG_NAMES = (
    "no_agent_reply",
    "long_first_response",
    "long_wait",
    "escalation_request",
    "bot_only",
    "reopened",
    "many_agents",
)
CLOSED_PROVIDER_STATUSES = frozenset({"solved", "closed"})  # HelpDesk statuses that close a ticket

# Columns of the frames `interaction_metrics` takes.
INTERACTION_FRAME_COLUMNS = ("interaction_id", "status", "started_at", "ended_at", "agent_id", "reopened")
MESSAGE_FRAME_COLUMNS = ("interaction_id", "seq", "sent_at", "sender_type", "sender_id", "text", "is_private")

COUNT_COLUMNS = (
    "customer_runs",
    "unanswered_runs",
    "agent_messages",
    "customer_messages",
    "bot_messages",
    "system_messages",
    "private_notes",
    "agent_words",
    "customer_words",
    "turns",
    "agents_involved",
)
SECONDS_COLUMNS = ("first_response_seconds", "avg_response_seconds", "max_response_seconds", "handle_seconds")


@functools.cache
def escalation_pattern() -> re.Pattern[str]:
    """One case-insensitive regular expression of every phrase in escalation_phrases.txt, as whole words."""
    text = resources.files("cxsync.analytics").joinpath("escalation_phrases.txt").read_text(encoding="utf-8")
    phrases = {line.strip().casefold() for line in text.splitlines()}
    phrases = sorted((p for p in phrases if p and not p.startswith("#")), key=lambda p: (-len(p), p))
    # Spaces in a phrase match any run of whitespace; `\w` is Unicode-aware, so "jefe" is not found in "jefes".
    alternatives = "|".join(r"\s+".join(map(re.escape, p.split())) for p in phrases)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def reopened_from_raw(provider: str, raw: str | None) -> bool:
    """Whether the provider's own history shows the conversation closed and then opened again.

    HelpDesk: a `status` event in the ticket's events whose old status is solved/closed and whose new one is
    not. LivePerson never reopens a closed conversation (a returning customer starts a new one), so false.
    """
    if provider != "helpdesk" or not raw or '"status"' not in raw:
        return False
    try:
        events = json.loads(raw).get("events") or []
    except (ValueError, AttributeError):
        return False
    for event in events:
        if not isinstance(event, dict) or event.get("type") != "status" or not isinstance(event.get("status"), dict):
            continue
        change = event["status"]
        old, new = str(change.get("old") or "").lower(), str(change.get("new") or "").lower()
        if old in CLOSED_PROVIDER_STATUSES and new and new not in CLOSED_PROVIDER_STATUSES:
            return True
    return False


def interaction_metrics(interactions: pd.DataFrame, messages: pd.DataFrame, thresholds: Thresholds) -> pd.DataFrame:
    """One row per interaction (index `interaction_id`): every metric of docs/metrics.md and the flags.

    `interactions`: INTERACTION_FRAME_COLUMNS, `started_at`/`ended_at` UTC datetimes. `messages`:
    MESSAGE_FRAME_COLUMNS, ordered by interaction and `seq`. Interactions without messages get zero counts.
    """
    ids = pd.Index(interactions["interaction_id"], name="interaction_id")
    out = pd.DataFrame(index=ids)
    msgs = messages.reset_index(drop=True)
    iid = msgs["interaction_id"]
    private = msgs["is_private"].astype(bool)
    sender = msgs["sender_type"].where(~private, "private")
    is_agent, is_customer, is_bot = sender == "agent", sender == "customer", sender == "bot"
    is_system = ~private & ~(is_agent | is_customer | is_bot)  # `system` and any type we do not know

    counted = pd.DataFrame(
        {
            "agent_messages": is_agent,
            "customer_messages": is_customer,
            "bot_messages": is_bot,
            "system_messages": is_system,
            "private_notes": private,
        }
    )
    words = _word_counts(msgs["text"], is_agent | is_customer)
    counted["agent_words"] = words.where(is_agent, 0)
    counted["customer_words"] = words.where(is_customer, 0)
    out = out.join(counted.groupby(iid.values).sum())

    # Turns: maximal runs of one sender type among customer, agent and bot.
    talk = msgs.loc[is_agent | is_customer | is_bot, ["interaction_id", "sender_type"]]
    starts = (talk["sender_type"] != talk["sender_type"].shift()) | (
        talk["interaction_id"] != talk["interaction_id"].shift()
    )
    out["turns"] = starts.groupby(talk["interaction_id"].values).sum()

    agent_rows = msgs.loc[is_agent, ["interaction_id", "sender_id"]]
    out["agents_involved"] = (
        agent_rows["sender_id"].fillna("\x00unknown").groupby(agent_rows["interaction_id"]).nunique()
    )

    runs = _customer_runs(msgs.loc[is_agent | is_customer, ["interaction_id", "sender_type", "sent_at"]])
    ended = interactions.set_index("interaction_id")["ended_at"]
    closed = interactions.set_index("interaction_id")["status"].eq("closed") & ended.notna()
    per_run = runs.groupby("interaction_id")
    out["customer_runs"] = per_run.size()
    out["unanswered_runs"] = (~runs["answered"]).groupby(runs["interaction_id"]).sum()
    out["first_response_seconds"] = runs.loc[runs["run"] == 0].set_index("interaction_id")["response_seconds"]
    out["avg_response_seconds"] = per_run["response_seconds"].mean()
    out["max_response_seconds"] = per_run["response_seconds"].max()
    # A run never answered in a closed conversation waited until the end; in an open one it is still waiting.
    run_end = runs["interaction_id"].map(ended.where(closed))
    unanswered_wait = (run_end - runs["started"]).dt.total_seconds().clip(lower=0)
    runs["wait_seconds"] = runs["response_seconds"].where(runs["answered"], unanswered_wait)
    longest_wait = runs.groupby("interaction_id")["wait_seconds"].max()

    customer = msgs.loc[is_customer, ["interaction_id", "text"]]
    asked = customer["text"].fillna("").str.contains(escalation_pattern(), regex=True)
    escalation = asked.groupby(customer["interaction_id"].values).any()

    info = interactions.set_index("interaction_id")
    handle = (info["ended_at"] - info["started_at"]).dt.total_seconds()
    out["handle_seconds"] = handle.where(closed)

    for column in COUNT_COLUMNS:
        out[column] = out[column].fillna(0).astype("int64") if column in out else 0
    for column in SECONDS_COLUMNS:
        out[column] = out[column].astype("float64")

    flags = pd.DataFrame(
        {
            "no_agent_reply": (out["customer_messages"] > 0) & (out["agent_messages"] == 0),
            "long_first_response": out["first_response_seconds"] > thresholds.long_first_response_seconds,
            "long_wait": longest_wait.reindex(ids) > thresholds.long_wait_seconds,
            "escalation_request": escalation.reindex(ids, fill_value=False).astype(bool),
            "bot_only": (out["bot_messages"] > 0) & (out["agent_messages"] == 0),
            "reopened": info["reopened"].astype(bool),
            "many_agents": out["agents_involved"] >= thresholds.many_agents,
        },
        index=ids,
    ).fillna(False)
    out["flags"] = _flag_lists(flags)
    return out


def _word_counts(text: pd.Series, wanted: pd.Series) -> pd.Series:
    """Whitespace-separated words of each wanted message's text; 0 elsewhere and for empty text."""
    counts = pd.Series(0, index=text.index, dtype="int64")
    chosen = text[wanted & text.notna()]
    if len(chosen):
        counts[chosen.index] = chosen.astype(str).str.split().str.len().fillna(0).astype("int64")
    return counts


def _customer_runs(talk: pd.DataFrame) -> pd.DataFrame:
    """One row per customer run (maximal consecutive customer messages, bots and notes between them ignored):
    `interaction_id`, `run` (0 for the first), `started` (its first message's time), `answered` (an agent
    message follows it), `response_seconds` (to that agent message; null when unanswered or a time is missing;
    a negative difference from clock skew counts as 0)."""
    talk = talk.reset_index(drop=True)
    ids = talk["interaction_id"]
    customer = talk["sender_type"].eq("customer")
    new_interaction = ids.ne(ids.shift())
    run_start = customer & (new_interaction | ~customer.shift(fill_value=False))
    position = pd.Series(np.arange(len(talk), dtype="float64"))
    # The next agent message at or after each row, within the interaction (backward fill per interaction).
    next_agent = position.where(~customer).groupby(ids.values).bfill()
    starts = talk.loc[run_start, ["interaction_id", "sent_at"]].rename(columns={"sent_at": "started"})
    reply_at = next_agent[run_start]
    starts["answered"] = reply_at.notna().to_numpy()
    reply_times = pd.Series(pd.NaT, index=starts.index, dtype=talk["sent_at"].dtype)
    answered = starts["answered"].to_numpy()
    reply_times[answered] = talk["sent_at"].to_numpy()[reply_at[answered].astype("int64").to_numpy()]
    starts["response_seconds"] = (reply_times - starts["started"]).dt.total_seconds().clip(lower=0)
    starts["run"] = starts.groupby("interaction_id").cumcount()
    return starts.reset_index(drop=True)


def _flag_lists(flags: pd.DataFrame) -> pd.Series:
    """Each row's raised flags as a JSON list in FLAG_NAMES order; computed once per distinct combination."""
    bits = np.zeros(len(flags), dtype="int64")
    for position, name in enumerate(FLAG_NAMES):
        bits |= flags[name].to_numpy(dtype=bool).astype("int64") << position
    codes = pd.Series(bits, index=flags.index)
    texts = {
        code: json.dumps([n for p, n in enumerate(FLAG_NAMES) if code >> p & 1]) for code in np.unique(bits).tolist()
    }
    return codes.map(texts)


def agent_daily_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (`agent_id`, `day`) of interaction metrics rows: the cx_agent_daily_metrics figures.

    `metrics`: rows of cx_interaction_metrics (`agent_id`, `day`, `status`, `first_response_seconds`,
    `handle_seconds`, `agent_messages`, `customer_messages`, `unanswered_runs`, `flags`).
    """
    frame = metrics.assign(
        closed=metrics["status"].eq("closed"),
        flagged=metrics["flags"].ne("[]"),
        first=metrics["first_response_seconds"].astype("float64"),
        handle=metrics["handle_seconds"].astype("float64"),
    )
    grouped = frame.groupby(["agent_id", "day"], sort=True)
    out = pd.DataFrame(
        {
            "conversations": grouped.size(),
            "closed_conversations": grouped["closed"].sum(),
            # Linear interpolation between the two nearest values (pandas' and PostgreSQL percentile_cont's).
            "median_first_response_seconds": grouped["first"].median(),
            "p90_first_response_seconds": grouped["first"].quantile(0.9),
            "avg_handle_seconds": grouped["handle"].mean(),
            "messages": grouped["agent_messages"].sum(),
            "customer_messages": grouped["customer_messages"].sum(),
            "unanswered_runs": grouped["unanswered_runs"].sum(),
            "flagged_conversations": grouped["flagged"].sum(),
        }
    )
    return out.reset_index()
