"""The metrics themselves: pure pandas over one batch of interactions and their messages, no database.

Every definition here is the one docs/metrics.md states with a worked example; tests/analytics holds the two
equal. Messages are taken in `seq` order. Private notes and `system` messages are never a turn or a reply;
a bot message is a turn but never an agent reply.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from cxsync import settings
from cxsync.analytics.options import Thresholds

FLAG_NAMES = settings.ANALYTICS_FLAGS

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
# The interaction's QA scores (cx_interactions), kept with its metrics; per agent day, each one's count and mean.
SCORE_COLUMNS = ("csat_score", "sentiment_score")
DAILY_SCORE_COLUMNS = ("rated_conversations", "mean_csat_score", "sentiment_conversations", "mean_sentiment_score")


@functools.cache
def escalation_pattern() -> re.Pattern[str]:
    """One case-insensitive regular expression of every phrase in escalation_phrases.txt, as whole words.

    The phrases are merged into a trie (`manager|manage` as `manage(?:r)?`), so the engine tries one branch per
    character instead of every phrase: several times faster on long texts. A space in a phrase matches any run
    of whitespace; `\b` is Unicode-aware, so "jefe" is not found in "jefes"."""
    phrases = {" ".join(words) for words in _phrase_words()}
    return re.compile(rf"\b(?:{_trie_pattern(phrases)})\b", re.IGNORECASE)


def _trie_pattern(phrases: set[str]) -> str:
    trie: dict = {}
    for phrase in phrases:
        node = trie
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: dict) -> str:
        ends = "" in node
        branches = [(r"\s+" if c == " " else re.escape(c)) + pattern(sub) for c, sub in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return pattern(trie)


def reopened_from_raw(provider: str, raw: str | None) -> bool:
    """Whether the provider's own history shows the conversation closed and then opened again: the provider's
    reader of its raw records (`ProviderSpec.reopened`); a provider without one never reopens (LivePerson: a
    returning customer starts a new conversation)."""
    reader = reopened_reader(provider)
    return bool(raw) and reader is not None and reader(raw)


@functools.cache
def reopened_reader(provider: str) -> Callable[[str], bool] | None:
    from cxsync.registry import PROVIDERS, load

    path = PROVIDERS[provider].reopened
    return load(path) if path else None


# Code points `str.split()` splits on (`str.isspace`), and NUL (the separator of joined texts), as a lookup table.
_SPACE_TABLE = np.zeros(0x3001, dtype=bool)
_SPACE_TABLE[[0, 9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)]] = True
_SPACE_TABLE[[0x2028, 0x2029, 0x202F, 0x205F, 0x3000]] = True

# Sender kinds of a message, as small integers for the array code below.
CUSTOMER, AGENT, BOT, SYSTEM, PRIVATE = range(5)
NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds


def interaction_metrics(interactions: pd.DataFrame, messages: pd.DataFrame, thresholds: Thresholds) -> pd.DataFrame:
    """One row per interaction (index `interaction_id`): every metric of docs/metrics.md and the flags.

    `interactions`: INTERACTION_FRAME_COLUMNS, `started_at`/`ended_at` UTC datetimes. `messages`:
    MESSAGE_FRAME_COLUMNS, ordered by interaction and `seq`. Interactions without messages get zero counts.
    Everything is array arithmetic over the whole batch: each message gets its interaction's position
    (`code`) once, and per-interaction figures are sums (`bincount`) or group reductions over those codes.
    """
    ids = pd.Index(interactions["interaction_id"], name="interaction_id")
    n = len(ids)
    code = ids.get_indexer(messages["interaction_id"])
    if (code < 0).any():
        raise ValueError("messages of interactions that are not in the batch")
    sender = messages["sender_type"].to_numpy(dtype=object)
    kind = np.full(len(messages), SYSTEM, dtype=np.int8)  # `system` and any type we do not know
    kind[sender == "customer"] = CUSTOMER
    kind[sender == "agent"] = AGENT
    kind[sender == "bot"] = BOT
    kind[messages["is_private"].to_numpy(dtype=bool)] = PRIVATE
    texts = messages["text"].to_numpy(dtype=object)
    sent = _nanoseconds(messages["sent_at"])

    def per_interaction(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(code[mask], weights=weights, minlength=n)

    out = pd.DataFrame(index=ids)
    out["agent_messages"] = per_interaction(kind == AGENT)
    out["customer_messages"] = per_interaction(kind == CUSTOMER)
    out["bot_messages"] = per_interaction(kind == BOT)
    out["system_messages"] = per_interaction(kind == SYSTEM)
    out["private_notes"] = per_interaction(kind == PRIVATE)

    talk = (kind == AGENT) | (kind == CUSTOMER)
    words = word_counts(texts[talk])
    out["agent_words"] = per_interaction(talk, np.where(kind[talk] == AGENT, words, 0))
    out["customer_words"] = per_interaction(talk, np.where(kind[talk] == CUSTOMER, words, 0))

    # Turns: maximal runs of one sender kind among customer, agent and bot.
    turn = (kind == CUSTOMER) | (kind == AGENT) | (kind == BOT)
    k, c = kind[turn], code[turn]
    starts = np.ones(len(k), dtype=bool)
    starts[1:] = (k[1:] != k[:-1]) | (c[1:] != c[:-1])
    out["turns"] = per_interaction(turn, starts)

    # Agents involved: distinct sender ids of agent messages (an unknown id counts as one agent).
    agent = kind == AGENT
    senders, _ = pd.factorize(pd.Series(messages["sender_id"].to_numpy(dtype=object)[agent]), use_na_sentinel=False)
    width = len(senders) + 1
    pairs = np.unique(code[agent].astype(np.int64) * width + senders)
    out["agents_involved"] = np.bincount(pairs // width, minlength=n)

    started = _nanoseconds(interactions["started_at"])
    ended = _nanoseconds(interactions["ended_at"])
    closed = (interactions["status"].to_numpy(dtype=object) == "closed") & (ended != NAT)
    runs = _customer_runs(code[talk], kind[talk] == CUSTOMER, sent[talk], n)
    out["customer_runs"] = runs.count
    out["unanswered_runs"] = runs.unanswered
    out["first_response_seconds"] = runs.first_response
    out["avg_response_seconds"] = runs.mean_response
    out["max_response_seconds"] = runs.max_response
    # A run never answered in a closed conversation waited until the end; in an open one it is still waiting.
    run_end = np.where(closed[runs.code], ended[runs.code], NAT)
    wait = np.where(runs.answered, runs.response, np.clip(_seconds(runs.started, run_end), 0, None))
    longest_wait = pd.Series(wait).groupby(runs.code).max().reindex(range(n)).to_numpy(dtype="float64")

    customer = kind == CUSTOMER
    escalation = per_interaction(customer, asks_for_escalation(texts[customer])) > 0

    out["handle_seconds"] = np.where(closed, _seconds(started, ended), np.nan)

    for column in COUNT_COLUMNS:
        out[column] = out[column].astype("int64")
    for column in SECONDS_COLUMNS:
        out[column] = out[column].astype("float64")

    with np.errstate(invalid="ignore"):
        flags = pd.DataFrame(
            {
                "no_agent_reply": (out["customer_messages"] > 0) & (out["agent_messages"] == 0),
                "long_first_response": out["first_response_seconds"] > thresholds.long_first_response_seconds,
                "long_wait": longest_wait > thresholds.long_wait_seconds,
                "escalation_request": escalation,
                "bot_only": (out["bot_messages"] > 0) & (out["agent_messages"] == 0),
                "reopened": interactions["reopened"].to_numpy(dtype=bool),
                "many_agents": out["agents_involved"] >= thresholds.many_agents,
            },
            index=ids,
        )
    out["flags"] = _flag_lists(flags)
    return out


def word_counts(texts: np.ndarray) -> np.ndarray:
    """What `len(text.split())` gives for each text (0 for a null one), without a Python call per text: the
    texts are joined by NUL (never in stored text) into one array of code points, and a word starts at every
    non-space code point that follows a space, a NUL or the start; the starts are summed per text."""
    if not len(texts):
        return np.zeros(0, dtype=np.int64)
    codes = _code_points("\x00".join(_texts(texts)))
    space = np.zeros(len(codes), dtype=bool)
    low = codes < len(_SPACE_TABLE)
    space[low] = _SPACE_TABLE[codes[low]]
    starts_word = ~space
    starts_word[1:] &= space[:-1]
    begins = np.concatenate(([0], np.flatnonzero(codes == 0) + 1))
    return np.add.reduceat(np.append(starts_word, False).astype(np.int64), begins)


def asks_for_escalation(texts: np.ndarray) -> np.ndarray:
    """Whether each text holds an escalation phrase.

    The texts are joined by NUL (never in stored text, neither a word character nor whitespace, so no phrase
    spans two texts). Most conversations hold no phrase, so the expensive part, the regular expression, runs only
    in a small window around each place where a phrase's longest word occurs (a plain substring search); a
    match there counts when it starts and ends at word boundaries of the whole text. Matches are mapped back to
    their texts by offset.
    """
    found = np.zeros(len(texts), dtype=bool)
    if not len(texts):
        return found
    joined = "\x00".join(_texts(texts))
    lowered = joined.lower()
    pattern = escalation_pattern()
    if len(lowered) != len(joined):  # a character whose lower case is longer: offsets differ, scan everything
        positions = {m.start() for m in pattern.finditer(joined)}
    else:
        positions = set()
        window = _window()
        for word in _key_words():
            at = lowered.find(word)
            while at >= 0:
                for match in pattern.finditer(joined, max(0, at - window), at + len(word) + window):
                    if _bounded(joined, match.start(), match.end()):
                        positions.add(match.start())
                at = lowered.find(word, at + 1)
    if positions:
        codes = _code_points(joined)
        ends = np.append(np.flatnonzero(codes == 0), len(codes))  # where each text ends
        found[np.searchsorted(ends, np.fromiter(positions, dtype=np.int64))] = True
    return found


@functools.cache
def _key_words() -> tuple[str, ...]:
    """The longest word of each escalation phrase (lower case): every match holds one of them."""
    return tuple(sorted({max(words, key=len) for words in _phrase_words()}))


@functools.cache
def _window() -> int:
    """Characters searched on either side of a key word: the longest phrase, with room for longer whitespace
    between its words (a phrase spread wider than that is missed)."""
    return max(len(" ".join(words)) for words in _phrase_words()) + 16


@functools.cache
def _phrase_words() -> list[list[str]]:
    """escalation_phrases.txt: each phrase's words, in lower case."""
    text = resources.files("cxsync.analytics").joinpath("escalation_phrases.txt").read_text(encoding="utf-8")
    return [line.split() for line in text.lower().splitlines() if line.strip() and not line.startswith("#")]


def _bounded(text: str, start: int, end: int) -> bool:
    def word_char(at: int) -> bool:
        return 0 <= at < len(text) and (text[at].isalnum() or text[at] == "_")

    return not word_char(start - 1) and not word_char(end)


def _texts(values: np.ndarray) -> list[str]:
    """Null text as empty text."""
    return pd.Series(values, dtype=object).fillna("").astype(str).tolist()


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _nanoseconds(times: pd.Series) -> np.ndarray:
    """UTC times as int64 nanoseconds (NAT where missing)."""
    values = pd.to_datetime(times, utc=True).dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    return values.view(np.int64)


def _seconds(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """end - start in seconds, null where either is missing."""
    missing = (start == NAT) | (end == NAT)
    return np.where(missing, np.nan, (end - start) / 1e9)


@dataclass
class _Runs:
    """Customer runs of a batch, one entry per run in order; and per interaction figures over them."""

    code: np.ndarray  # the run's interaction
    started: np.ndarray  # its first message's time (ns)
    answered: np.ndarray  # an agent message follows it
    response: np.ndarray  # seconds to that agent message (NaN when unanswered or a time is missing)
    count: np.ndarray
    unanswered: np.ndarray
    first_response: np.ndarray
    mean_response: np.ndarray
    max_response: np.ndarray


def _customer_runs(code: np.ndarray, customer: np.ndarray, sent: np.ndarray, n: int) -> _Runs:
    """Customer runs among the customer and agent messages (bots, system messages and notes already left out):
    maximal consecutive customer messages. Each is answered by the next agent message of its interaction; the
    response is the time from the run's first message to it (a negative difference from clock skew counts 0)."""
    new_interaction = np.ones(len(code), dtype=bool)
    new_interaction[1:] = code[1:] != code[:-1]
    previous_customer = np.zeros(len(code), dtype=bool)
    previous_customer[1:] = customer[:-1]
    run_start = customer & (new_interaction | ~previous_customer)
    position = np.where(customer, np.nan, np.arange(len(code), dtype="float64"))
    # The next agent message at or after each row, within the interaction (backward fill per interaction).
    next_agent = pd.Series(position).groupby(code).bfill().to_numpy(dtype="float64")[run_start]
    answered = ~np.isnan(next_agent)
    started = sent[run_start]
    reply = np.full(len(started), NAT, dtype=np.int64)
    reply[answered] = sent[next_agent[answered].astype(np.int64)]
    response = np.clip(_seconds(started, reply), 0, None)
    run_code = code[run_start]

    timed = ~np.isnan(response)
    timed_count = np.bincount(run_code[timed], minlength=n)
    total = np.bincount(run_code[timed], weights=response[timed], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(timed_count > 0, total / np.maximum(timed_count, 1), np.nan)
    first = np.full(n, np.nan)
    with_runs, first_run = np.unique(run_code, return_index=True)
    first[with_runs] = response[first_run]
    maximum = pd.Series(response).groupby(run_code).max().reindex(range(n)).to_numpy(dtype="float64")
    return _Runs(
        code=run_code,
        started=started,
        answered=answered,
        response=response,
        count=np.bincount(run_code, minlength=n),
        unanswered=np.bincount(run_code[~answered], minlength=n),
        first_response=first,
        mean_response=mean,
        max_response=maximum,
    )


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
    `handle_seconds`, `agent_messages`, `customer_messages`, `unanswered_runs`, `flags`, `csat_score`,
    `sentiment_score`). A score's mean is over the interactions that have it (null when none has).
    """
    frame = metrics.assign(
        closed=metrics["status"].eq("closed"),
        flagged=metrics["flags"].ne("[]"),
        first=metrics["first_response_seconds"].astype("float64"),
        handle=metrics["handle_seconds"].astype("float64"),
        csat=metrics["csat_score"].astype("float64"),
        sentiment=metrics["sentiment_score"].astype("float64"),
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
            "rated_conversations": grouped["csat"].count(),
            "mean_csat_score": grouped["csat"].mean(),
            "sentiment_conversations": grouped["sentiment"].count(),
            "mean_sentiment_score": grouped["sentiment"].mean(),
        }
    )
    return out.reset_index()
