"""LivePerson's data in the sandbox: agents, skills, groups and conversations, generated lazily from a seed.

Everything the provider holds "as of time T" is a pure function of (seed, options, start time, T):
- Conversation k of day d comes from `random.Random(f"{seed}:lp:{d}:{k}")` (its timeline) and
  `random.Random(f"{seed}:lp:{d}:{k}:body")` (its content), so any conversation can be built alone, and
  100,000 conversations of history cost only the compact headers of the days recently used.
- Days of history lie before the sandbox's start time; days after it fill as the clock moves. A conversation
  exists once its start time has passed, shows the messages, participants and transfers whose time has
  passed, and is OPEN (endTime -1 / "undefined") until its close time.
- Some agents are deleted at a time (some before the start, some after): `deleted: true` from then on.
- Conversation ids are UUID-shaped and end in the hex day and index (`...-dddd kkkkkkkk`), so the by-id search
  finds a conversation without an index.

The record shape follows docs/provider-apis.md (LivePerson), traps included: `sentBy` in varying case,
non-contiguous `seq`, private notes (`audience: AGENTS_AND_MANAGERS`), rich-content and file messages,
bots as agent participants (`userTypeName: Bot`), transfers, agent ids as numbers in some records and
strings in others.
"""

from __future__ import annotations

import bisect
import math
import random
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from cxsync_dev.sandbox.cache import LRUCache
from cxsync_dev.sandbox.core import Sandbox, from_ms, to_ms

DAY_MS = 86_400_000
TEN_MINUTES_MS = 600_000

DEFAULT_OPTIONS: dict[str, Any] = {
    "lp_account_id": "12345678",
    "lp_agents": 12,
    "lp_bots": 2,
    "lp_deleted_agents": 2,
    "lp_conversations_per_day": 40,
    "lp_days": 30,
    "lp_messages": "5:20",
    "lp_token_ttl": 3600,
    "lp_day_cache": 128,
    # The docs leave the shape of `latestUpdateTime` open: `object` ({"from": ms}), `number` (bare ms) or `both`.
    "lp_latest_update_time": "both",
}
LATEST_UPDATE_TIME_READINGS = ("both", "object", "number")

# Every section a record can carry, and what is returned without `contentToRetrieve`.
ALL_SECTIONS = (
    "campaign",
    "messageRecords",
    "agentParticipants",
    "consumerParticipants",
    "transfers",
    "interactions",
    "dialogs",
    "conversationSurveys",
    "summary",
    "sdes",
)
KNOWN_SECTIONS = frozenset(
    (
        *ALL_SECTIONS,
        "agentParticipantsLeave",
        "agentParticipantsActive",
        "messageScores",
        "messageStatuses",
        "coBrowseSessions",
        "unAuthSdes",
        "monitoring",
        "responseTime",
    )
)

SKILLS = ((1101, "billing"), (1102, "sales"), (1103, "support"), (1104, "vip"))
GROUPS = ((-1, "Main Group"), (2201, "Tier 1"), (2202, "Tier 2"))

CONSUMER, HUMAN, BOT = 0, 1, 2

_FIRST = ("Ava", "Ben", "Chloe", "Dan", "Eva", "Finn", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Liam", "Mia")
_LAST = ("Smith", "Novak", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Jensen", "Silva", "Ito", "Okafor")
_CONSUMER_LINES = (
    "Hi, my order has not arrived yet",
    "I was charged twice this month",
    "Can I change the delivery address?",
    "The app keeps logging me out",
    "How do I cancel my subscription?",
    "Thanks, that helps",
    "Order number is 48213",
    "It still does not work",
    "Could you check again please?",
    "Great, thank you!",
    "Is there a discount for annual plans?",
    "I need an invoice for my company",
)
_AGENT_LINES = (
    "Hello! Let me look into that for you.",
    "Thanks for waiting, I can see your order.",
    "I have refunded the duplicate charge.",
    "Could you confirm the email on the account?",
    "I have updated the address.",
    "Is there anything else I can help with?",
    "Please try logging in again now.",
    "I am escalating this to our billing team.",
    "You will get a confirmation email shortly.",
)
_BOT_LINES = (
    "Hi! I'm the virtual assistant. What can I help you with?",
    "I can help with orders, billing and accounts.",
    "Let me connect you with an agent.",
    "Please choose one of the options below.",
)
_NOTES = (
    "Customer is upset, handle with care",
    "Refund approved by supervisor",
    "Possible fraud, check the payment logs",
)
_SENT_BY_STYLES = (("Agent", "Consumer"), ("agent", "consumer"), ("AGENT", "CONSUMER"))
_ENCODE = msgspec.json.Encoder().encode
_SEQ_STEPS = (1, 1, 1, 2, 3)
_FILE_TYPES = ("PNG", "JPG", "PDF")
_CAPTIONS = ("receipt", "screenshot", "photo of the parcel")
# Rich content is a JSON document in a string, as LivePerson sends it.
_BOT_CARDS = {
    line: msgspec.json.encode(
        {
            "type": "vertical",
            "elements": [
                {"type": "text", "text": line},
                {
                    "type": "button",
                    "title": "Orders",
                    "click": {"actions": [{"type": "publishText", "text": "Orders"}]},
                },
            ],
        }
    ).decode()
    for line in _BOT_LINES
}
_AGENT_CARD = msgspec.json.encode(
    {
        "type": "vertical",
        "elements": [
            {"type": "text", "text": "Your order status"},
            {"type": "image", "url": "https://example.com/t.png"},
        ],
    }
).decode()


# messageData JSON of every text and card, encoded once.
_TEXT_DATA = {
    text: _ENCODE({"msg": {"text": text}}).decode() for text in (*_CONSUMER_LINES, *_AGENT_LINES, *_BOT_LINES, *_NOTES)
}
_RICH_DATA = {
    card: _ENCODE({"richContent": {"content": card}}).decode() for card in (*_BOT_CARDS.values(), _AGENT_CARD)
}
_MINUTE_PREFIX: dict[int, str] = {}


def fmt_time(ms: int) -> str:
    """LivePerson's time strings: `2016-08-29 14:30:24.565+0000`. Hot: minute prefixes are cached."""
    minute, rest = divmod(ms, 60_000)
    prefix = _MINUTE_PREFIX.get(minute)
    if prefix is None:
        if len(_MINUTE_PREFIX) > 200_000:
            _MINUTE_PREFIX.clear()
        prefix = _MINUTE_PREFIX[minute] = f"{datetime.fromtimestamp(minute * 60, tz=UTC):%Y-%m-%d %H:%M}:"
    return f"{prefix}{rest // 1000:02d}.{rest % 1000:03d}+0000"


def fmt_date(ms: int) -> str:
    """Users API dates: `2015-06-22 19:20:03`."""
    return f"{datetime.fromtimestamp(ms / 1000, tz=UTC):%Y-%m-%d %H:%M:%S}"


def day_of(ms: int) -> int:
    return ms // DAY_MS


def parse_count_spec(spec: str | int) -> tuple[str, float, float]:
    """Messages per conversation: `N` (fixed), `MIN:MAX` (uniform) or `MEAN/SD` (normal, at least 1)."""
    text = str(spec).strip()
    try:
        if ":" in text:
            low, high = (int(x) for x in text.split(":", 1))
            if not 1 <= low <= high:
                raise ValueError
            return ("uniform", low, high)
        if "/" in text:
            mean, sd = (float(x) for x in text.split("/", 1))
            if mean < 1 or sd < 0:
                raise ValueError
            return ("normal", mean, sd)
        n = int(text)
        if n < 1:
            raise ValueError
        return ("fixed", n, n)
    except ValueError:
        raise ValueError(
            f"messages per conversation {spec!r}: use N, MIN:MAX (e.g. 5:20) or MEAN/SD (e.g. 12/4), all >= 1"
        ) from None


def draw_count(rng: random.Random, spec: tuple[str, float, float]) -> int:
    kind, a, b = spec
    if kind == "uniform":
        return rng.randint(int(a), int(b))
    if kind == "normal":
        return max(1, round(rng.gauss(a, b)))
    return int(a)


# ---------------------------------------------------------------------------------------------- agents
@dataclass(frozen=True, slots=True)
class Agent:
    index: int
    id: int | str  # as the Users API shows it: mostly numbers, some strings
    login_name: str
    nickname: str
    email: str
    user_type: int  # 0 system, 1 human, 2 bot
    group_id: int
    skill_ids: tuple[int, ...]
    profile_ids: tuple[int, ...]
    created_ms: int
    deleted_ms: int | None

    id_text: str = ""  # str(id), precomputed: it is read for every message

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_text", str(self.id))

    @property
    def type_name(self) -> str:
        return ("System", "Human", "Bot")[self.user_type]

    def deleted_at(self, now_ms: int) -> bool:
        return self.deleted_ms is not None and self.deleted_ms <= now_ms

    def user_record(self, now_ms: int) -> dict[str, Any]:
        deleted = self.deleted_at(now_ms)
        updated = self.deleted_ms if deleted and self.deleted_ms is not None else self.created_ms
        return {
            "id": self.id,
            "pid": f"{zlib.crc32(self.login_name.encode()):08x}-{self.index:04d}",
            "deleted": deleted,
            "loginName": self.login_name,
            "fullName": "",  # LivePerson returns it empty on purpose (privacy)
            "nickname": self.nickname,
            "isEnabled": not deleted,
            "maxChats": 4,
            "maxAsyncChats": 10,
            "email": self.email,
            "disabledManually": deleted,
            "skillIds": list(self.skill_ids),
            "profileIds": list(self.profile_ids),
            "lobIds": [],
            "changePwdNextLogin": False,
            "memberOf": {"agentGroupId": str(self.group_id), "assignmentDate": fmt_date(self.created_ms)},
            "managerOf": [],
            "permissionGroups": ["1"] if self.user_type == 1 else [],
            "description": "",
            "mobileNumber": "",
            "employeeId": f"EMP-{1000 + self.index}" if self.user_type == 1 else "",
            "backgndImgUri": "",
            "pnCertName": "",
            "dateUpdated": fmt_date(updated),
            "lastPwdChangeDate": fmt_date(self.created_ms),
            "isApiUser": self.user_type == 2,
            "userTypeId": self.user_type,
        }


# Share of conversations (closed by agent or consumer, on accounts with a bot) that end with a post-conversation
# survey dialog.
SURVEY_SHARE = 0.4
SURVEY_QUESTION = "How would you rate your experience today, from 1 (poor) to 5 (great)?"

# The Profiles API's answer: (id, name, roleTypeId); roleTypeId 1 Admin, 2 Agent, 3 Agent Manager,
# 4 Campaign Manager. Users carry only `profileIds`.
PROFILES = ((1, "Administrator", 1), (2, "Campaign Manager", 4), (3, "Agent", 2), (4, "Agent Manager", 3))
ADMIN_PROFILE_ID = 1


def build_agents(seed: Any, humans: int, bots: int, deleted: int, genesis_ms: int, days: int) -> list[Agent]:
    rng = random.Random(f"{seed}:lp:agents")
    created_base = genesis_ms - (days + 60) * DAY_MS
    human_idx = list(range(humans))
    # Deleted agents: some before the start (history), some after it (they vanish as the clock moves). At
    # least one human always stays.
    doomed = rng.sample(human_idx, min(deleted, max(0, humans - 1)))
    deleted_at: dict[int, int] = {}
    for j, idx in enumerate(sorted(doomed)):
        if j % 2 == 0:
            back = max(1, days) * DAY_MS * (0.2 + 0.6 * rng.random())
            deleted_at[idx] = genesis_ms - int(back)
        else:
            deleted_at[idx] = genesis_ms + int(DAY_MS * (0.5 + 1.5 * rng.random()))
    agents: list[Agent] = []
    for i in range(humans):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        login = f"{first.lower()}.{last.lower()}{i}@example.com"
        numeric_id = 3_677_470_410 + 7919 * i
        agents.append(
            Agent(
                index=i,
                # Ids are numbers in the Users API, except every fourth agent's (a string): store ids as text.
                id=str(numeric_id) if i % 4 == 3 else numeric_id,
                login_name=login,
                nickname=f"{first} {last[0]}.",
                email=login,
                user_type=1,
                group_id=GROUPS[i % len(GROUPS)][0],
                skill_ids=tuple(sorted(s for s, _ in rng.sample(SKILLS, rng.randint(1, len(SKILLS))))),
                profile_ids=(3,),
                created_ms=created_base + rng.randint(0, 30) * DAY_MS,
                deleted_ms=deleted_at.get(i),
            )
        )
    for j in range(bots):
        i = humans + j
        agents.append(
            Agent(
                index=i,
                id=4_100_000_000 + 17 * j,
                login_name=f"assistant-bot-{j}",
                nickname=f"Virtual Assistant {j + 1}",
                email="",
                user_type=2,
                group_id=-1,
                skill_ids=tuple(s for s, _ in SKILLS),
                profile_ids=(3,),
                created_ms=created_base,
                deleted_ms=None,
            )
        )
    # An account administrator: a human user with the Admin profile only, who never takes conversations.
    agents.append(
        Agent(
            index=humans + bots,
            id=3_600_000_001,
            login_name="account.admin@example.com",
            nickname="Account Admin",
            email="account.admin@example.com",
            user_type=1,
            group_id=GROUPS[0][0],
            skill_ids=(),
            profile_ids=(ADMIN_PROFILE_ID,),
            created_ms=created_base,
            deleted_ms=None,
        )
    )
    return agents


# --------------------------------------------------------------------------------------- conversations
@dataclass(slots=True)
class Header:
    """What searching needs about a conversation: its start, its close, and when anything happened."""

    day: int
    k: int
    conversation_id: str
    start_ms: int
    close_ms: int
    events: array  # sorted epoch ms of every change (start, messages, joins, transfers, close)

    def updated_at(self, now_ms: int) -> int:
        """Latest change at or before `now_ms` (the start at least)."""
        i = bisect.bisect_right(self.events, now_ms)
        return self.events[i - 1] if i else self.start_ms


@dataclass(slots=True)
class Skeleton:
    """A conversation's timeline: who said something when, who joined, transfers, close."""

    header: Header
    skill_id: int
    messages: list[tuple[int, int, int]]  # (time_ms, role, agent index or -1)
    participants: list[tuple[int, int, str]]  # (agent index, join ms, permission)
    transfers: list[tuple[int, str, int, int, int, int]]  # (ms, reason, src agent, dst agent|-1, src skill, dst skill)
    close_reason: str
    # The MAIN dialog's end. With a post-conversation survey the conversation closes later, when the survey
    # dialog does (`header.close_ms`, what `info.endTimeL` says); without one both are the same.
    main_end_ms: int = 0
    # (survey bot's agent index, question ms, answer ms, CSAT 1-5) of the POST_SURVEY dialog, if one ran.
    survey: tuple[int, int, int, int] | None = None


@dataclass(slots=True)
class Conversation:
    """A conversation's full content; the record at any time is cut from it."""

    skeleton: Skeleton
    message_times: list[int]
    message_records: list[bytes]  # each message's JSON
    truths: list[tuple[Any, ...]]  # per message: what the ground truth reports
    consumer: dict[str, Any]
    info_static: dict[str, Any]
    sent_by_style: tuple[str, str]
    int_agent_ids: bool
    csat: int | None
    summary_text: str
    campaign: dict[str, Any]
    sdes: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def make_conversation_id(rng: random.Random, day: int, k: int) -> str:
    r = f"{rng.getrandbits(80):020x}"
    return f"{r[0:8]}-{r[8:12]}-4{r[12:15]}-{'89ab'[int(r[15], 16) % 4]}{r[16:19]}-{day:04x}{k:08x}"


def parse_conversation_id(conversation_id: str) -> tuple[int, int] | None:
    parts = conversation_id.split("-")
    if len(parts) != 5 or len(parts[4]) != 12:
        return None
    try:
        return int(parts[4][:4], 16), int(parts[4][4:], 16)
    except ValueError:
        return None


class LivePersonWorld:
    """The sandbox's LivePerson account. See the module docstring for how data is derived."""

    def __init__(self, sandbox: Sandbox) -> None:
        opts = {**DEFAULT_OPTIONS, **{k: v for k, v in sandbox.options.items() if k in DEFAULT_OPTIONS}}
        self.sandbox = sandbox
        self.seed = sandbox.seed
        self.account_id = str(opts["lp_account_id"])
        self.conversations_per_day = int(opts["lp_conversations_per_day"])
        self.days = int(opts["lp_days"])
        self.message_spec = parse_count_spec(opts["lp_messages"])
        self.token_ttl = int(opts["lp_token_ttl"])
        self.latest_update_time = str(opts.get("lp_latest_update_time", "both"))
        if self.latest_update_time not in LATEST_UPDATE_TIME_READINGS:
            raise ValueError(f"lp_latest_update_time must be one of {LATEST_UPDATE_TIME_READINGS}")
        if self.conversations_per_day < 0 or self.days < 0 or int(opts["lp_agents"]) < 1:
            raise ValueError("lp_conversations_per_day and lp_days must be >= 0, lp_agents >= 1")
        self.genesis_ms = to_ms(sandbox.genesis)
        self.first_day = day_of(self.genesis_ms) - self.days
        self.agents = build_agents(
            self.seed,
            int(opts["lp_agents"]),
            int(opts["lp_bots"]),
            int(opts["lp_deleted_agents"]),
            self.genesis_ms,
            self.days,
        )
        # Who takes conversations: human users with a profile other than Admin.
        self.humans = [a for a in self.agents if a.user_type == 1 and a.profile_ids != (ADMIN_PROFILE_ID,)]
        self.bots = [a for a in self.agents if a.user_type == 2]
        self._deletions = sorted(a.deleted_ms for a in self.agents if a.deleted_ms is not None)
        self._eligible: dict[int, list[int]] = {}
        self._bot_indexes = [a.index for a in self.bots]
        self._days: LRUCache[tuple[list[Header], list[int]]] = LRUCache(int(opts["lp_day_cache"]))
        # Recently used skeletons (a few KB each), full conversations and rendered records: enough for the
        # pages a client is reading, bounded whatever the volume.
        self._skeletons: LRUCache[Skeleton] = LRUCache(16_384)
        self._conversations: LRUCache[Conversation] = LRUCache(2048)
        self.rendered: LRUCache[bytes] = LRUCache(2048)  # record bytes, used by the router
        self.searches: LRUCache[list[Header]] = LRUCache(32)  # search results, used by the router
        self.auth: Any = None  # a LivePersonAuth, set by liveperson.init_world

    # --------------------------------------------------------------------------------- time helpers
    def now_ms(self) -> int:
        return self.sandbox.clock.now_ms()

    def deletion_epoch(self, now_ms: int) -> int:
        """How many agent deletions have happened: records showing `agentDeleted` change only with it."""
        return bisect.bisect_right(self._deletions, now_ms)

    def revision(self, now_ms: int) -> str:
        """The Users API's `ac-revision`: changes whenever the roster changes."""
        return str(1000 + self.deletion_epoch(now_ms))

    # ------------------------------------------------------------------------------------- agents
    def users(self, now_ms: int, include_deleted: bool) -> list[dict[str, Any]]:
        return [a.user_record(now_ms) for a in self.agents if include_deleted or not a.deleted_at(now_ms)]

    def agent_groups(self, now_ms: int) -> list[dict[str, Any]]:
        date = fmt_date(self.genesis_ms - (self.days + 90) * DAY_MS)
        return [
            {"id": gid, "deleted": False, "name": name, "isEnabled": True, "description": "", "dateUpdated": date}
            for gid, name in GROUPS
        ]

    def profiles(self, now_ms: int) -> list[dict[str, Any]]:
        date = fmt_date(self.genesis_ms - (self.days + 90) * DAY_MS)
        return [
            {
                "id": pid,
                "name": name,
                "description": "",
                "roleTypeId": role,
                "isAssignedToLPA": False,
                "dateUpdated": date,
                "deleted": False,
            }
            for pid, name, role in PROFILES
        ]

    def skills(self, now_ms: int) -> list[dict[str, Any]]:
        date = fmt_date(self.genesis_ms - (self.days + 90) * DAY_MS)
        return [
            {
                "id": sid,
                "deleted": False,
                "name": name,
                "description": f"{name} questions",
                "maxWaitTime": 120,
                "skillOrder": n + 1,
                "dateUpdated": date,
            }
            for n, (sid, name) in enumerate(SKILLS)
        ]

    # ------------------------------------------------------------------------------ conversations
    def day_headers(self, day: int) -> tuple[list[Header], list[int]]:
        """All conversations of a day (including those not started yet), sorted by start, and their starts."""

        def build() -> tuple[list[Header], list[int]]:
            headers = [self.skeleton(day, k).header for k in range(self.conversations_per_day)]
            headers.sort(key=lambda h: (h.start_ms, h.k))
            return headers, [h.start_ms for h in headers]

        return self._days.get_or_create(day, build)

    def data_days(self, now_ms: int) -> range:
        return range(self.first_day, day_of(now_ms) + 1)

    def headers_between(self, from_ms: int, to_ms_: int, now_ms: int) -> list[Header]:
        """Conversations started in [from, to] (inclusive) and by now, in start order."""
        out: list[Header] = []
        upper = min(to_ms_, now_ms)
        if upper < from_ms:
            return out
        for day in range(max(self.first_day, day_of(from_ms)), min(day_of(upper), day_of(now_ms)) + 1):
            headers, starts = self.day_headers(day)
            lo = bisect.bisect_left(starts, from_ms)
            hi = bisect.bisect_right(starts, upper)
            out.extend(headers[lo:hi])
        return out

    def find(self, conversation_id: str, now_ms: int) -> Header | None:
        parsed = parse_conversation_id(conversation_id)
        if parsed is None:
            return None
        day, k = parsed
        if not (self.first_day <= day <= day_of(now_ms) and 0 <= k < self.conversations_per_day):
            return None
        header = self.skeleton(day, k).header
        if header.conversation_id != conversation_id or header.start_ms > now_ms:
            return None
        return header

    def _eligible_humans(self, at_ms: int) -> list[int]:
        """Humans not deleted at `at_ms` (who can take a conversation then); one list per deletion epoch."""
        epoch = self.deletion_epoch(at_ms)
        cached = self._eligible.get(epoch)
        if cached is None:
            cached = self._eligible[epoch] = [
                a.index for a in self.humans if a.deleted_ms is None or a.deleted_ms > at_ms
            ]
        return cached

    def skeleton(self, day: int, k: int) -> Skeleton:
        return self._skeletons.get_or_create((day, k), lambda: self._build_skeleton(day, k))

    def _build_skeleton(self, day: int, k: int) -> Skeleton:
        rng = random.Random(f"{self.seed}:lp:{day}:{k}")
        conv_id = make_conversation_id(rng, day, k)
        start = day * DAY_MS + int(rng.random() * DAY_MS)
        n = draw_count(rng, self.message_spec)
        skill = rng.choice(SKILLS)[0]
        humans = self._eligible_humans(start)
        bots = self._bot_indexes
        use_bot = bool(bots) and (not humans or rng.random() < 0.3)
        bot_only = use_bot and (not humans or rng.random() < 0.25)
        # Messaging is asynchronous: a quarter of the conversations pause for hours, so conversations open at
        # any moment keep receiving messages later.
        long_gap_at = rng.randint(1, max(1, n - 1)) if rng.random() < 0.25 else -1

        messages: list[tuple[int, int, int]] = []
        participants: list[tuple[int, int, str]] = []
        transfers: list[tuple[int, str, int, int, int, int]] = []
        events: list[int] = [start]

        t = start + rng.randint(300, 4000)
        messages.append((t, CONSUMER, -1))
        current = -1
        bot_turns = 0
        if use_bot:
            current = rng.choice(bots)
            participants.append((current, start + rng.randint(50, 250), "ASSIGNED_AGENT"))
            bot_turns = (n - 1) if bot_only else min(n - 1, rng.randint(1, 4))
        elif humans:
            current = rng.choice(humans)
            participants.append((current, t + rng.randint(5_000, 90_000), "ASSIGNED_AGENT"))
            t = participants[-1][1]
        transfer_at = (
            rng.randint(2, n - 1) if (not bot_only and len(humans) > 1 and n > 3 and rng.random() < 0.15) else -1
        )
        reader_at = rng.randint(1, n - 1) if (n > 2 and len(humans) > 1 and rng.random() < 0.06) else -1

        rnd, log = rng.random, math.log
        for i in range(1, n):
            gap = int(-log(1.0 - rnd()) * 40_000)  # exponential, mean 40 s, clamped to 2 s..10 min
            if gap < 2_000:
                gap = 2_000
            elif gap > 600_000:
                gap = 600_000
            if i == long_gap_at:
                gap = rng.randint(3_600_000, 30 * 3_600_000)
            t += gap
            if use_bot and i <= bot_turns:
                role = BOT if i % 2 == 1 else CONSUMER
            else:
                if use_bot and i == bot_turns + 1 and not bot_only:
                    # The bot hands over to a skill; a human joins from the queue.
                    human = rng.choice(humans)
                    transfers.append((t, "Skill", current, -1, skill, skill))
                    t += rng.randint(5_000, 120_000)
                    participants.append((human, t, "ASSIGNED_AGENT"))
                    current = human
                    t += rng.randint(2_000, 20_000)
                if i == transfer_at:
                    target = rng.choice([h for h in humans if h != current])
                    new_skill = rng.choice(SKILLS)[0]
                    transfers.append((t, "Agent", current, target, skill, new_skill))
                    skill = new_skill
                    t += rng.randint(3_000, 60_000)
                    participants.append((target, t, "ASSIGNED_AGENT"))
                    current = target
                    t += rng.randint(2_000, 20_000)
                if i == reader_at:
                    manager = rng.choice([h for h in humans if h != current])
                    participants.append((manager, t - gap // 2, "READER"))
                role = HUMAN if current >= 0 and rnd() < 0.5 else CONSUMER
                if current >= 0 and i == (bot_turns + 1 if use_bot else 1):
                    role = HUMAN  # the agent greets first
            messages.append((t, role, current if role != CONSUMER else -1))

        last = max([m[0] for m in messages] + [p[1] for p in participants] + [x[0] for x in transfers])
        roll = rng.random()
        if roll < 0.1:
            close_reason, close = "SYSTEM", last + rng.randint(DAY_MS, 2 * DAY_MS)  # auto-closed when idle
        elif roll < 0.45:
            close_reason, close = "CONSUMER", last + rng.randint(20_000, 300_000)
        else:
            close_reason, close = "AGENT", last + rng.randint(20_000, 900_000)
        events.extend(m[0] for m in messages)
        events.extend(p[1] for p in participants)
        events.extend(x[0] for x in transfers)
        # A post-conversation survey (its own rng: the rest of the data stays as it was): a survey bot asks for a
        # 1-5 rating after the agent closed the MAIN dialog; the conversation closes with the survey dialog.
        main_end, survey = close, None
        survey_rng = random.Random(f"{self.seed}:lp:{day}:{k}:survey")
        if bots and close_reason != "SYSTEM" and survey_rng.random() < SURVEY_SHARE:
            asked = main_end + survey_rng.randint(500, 3_000)
            answered = asked + survey_rng.randint(5_000, 60_000)
            survey = (bots[0], asked, answered, survey_rng.randint(1, 5))
            close = answered + 1_000
            events.extend((asked, answered))
        events.append(close)
        events.sort()
        header = Header(day, k, conv_id, start, close, array("q", events))
        return Skeleton(header, skill, messages, participants, transfers, close_reason, main_end, survey)

    def conversation(self, header: Header) -> Conversation:
        return self._conversations.get_or_create(
            header.conversation_id, lambda: self._build_conversation(self.skeleton(header.day, header.k))
        )

    def _build_conversation(self, sk: Skeleton) -> Conversation:
        h = sk.header
        rng = random.Random(f"{self.seed}:lp:{h.day}:{h.k}:body")
        conv_id = h.conversation_id
        style = _SENT_BY_STYLES[0 if rng.random() < 0.6 else (1 if rng.random() < 0.75 else 2)]
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        consumer_id = f"{rng.getrandbits(128):032x}"
        consumer_id = (
            f"{consumer_id[:8]}-{consumer_id[8:12]}-{consumer_id[12:16]}-{consumer_id[16:20]}-{consumer_id[20:]}"
        )
        consumer = {
            "participantId": consumer_id,
            "firstName": first,
            "lastName": last,
            "token": "undefined",
            "email": f"{first.lower()}.{rng.randint(1, 999)}@mail.example" if rng.random() < 0.7 else "undefined",
            "phone": f"+4930{rng.randint(1_000_000, 9_999_999)}" if rng.random() < 0.4 else "0",
            "avatarURL": "undefined",
            "time": fmt_time(h.start_ms),
            "timeL": h.start_ms,
            "joinTime": fmt_time(h.start_ms),
            "joinTimeL": h.start_ms,
            "consumerName": first,
            "dialogId": conv_id,
        }
        records: list[bytes] = []
        truths: list[tuple[Any, ...]] = []
        rnd = rng.random  # the hot loop draws with random() alone: several times cheaper than choice/randint
        agents = self.agents
        account = self.account_id
        seq = 0
        for n, (t, role, agent_idx) in enumerate(sk.messages):
            if n:
                seq += _SEQ_STEPS[int(rnd() * 5)]  # ordered, not contiguous
            participant = agents[agent_idx].id_text if agent_idx >= 0 else consumer_id
            sent_by = style[1] if role == CONSUMER else style[0]
            if rnd() < 0.05:
                sent_by = sent_by.lower() if sent_by[0].isupper() else sent_by.capitalize()
            audience = "ALL"
            text: str | None = None
            file: dict[str, Any] | None = None
            rich: str | None = None
            draw = rnd()
            if role == CONSUMER:
                if draw < 0.06:
                    mtype = "HOSTED_FILE"
                    ext = _FILE_TYPES[int(rnd() * 3)]
                    file = {
                        "relativePath": f"/v1/AUTH/{account}/{rng.getrandbits(48):012x}.{ext.lower()}",
                        "fileType": ext,
                        "caption": _CAPTIONS[int(rnd() * 3)],
                    }
                    data = _ENCODE({"file": file}).decode()
                else:
                    mtype, text = "TEXT_PLAIN", _CONSUMER_LINES[int(rnd() * len(_CONSUMER_LINES))]
                    data = _TEXT_DATA[text]
            elif role == BOT:
                line = _BOT_LINES[int(rnd() * len(_BOT_LINES))]
                if draw < 0.3:
                    mtype, rich = "RICH_CONTENT", _BOT_CARDS[line]
                    data = _RICH_DATA[rich]
                else:
                    mtype, text = "TEXT_PLAIN", line
                    data = _TEXT_DATA[text]
            elif draw < 0.06:
                mtype, text, audience = "TEXT_PLAIN", _NOTES[int(rnd() * len(_NOTES))], "AGENTS_AND_MANAGERS"
                data = _TEXT_DATA[text]
            elif draw < 0.12:
                mtype, rich = "RICH_CONTENT", _AGENT_CARD
                data = _RICH_DATA[rich]
            else:
                mtype, text = "TEXT_PLAIN", _AGENT_LINES[int(rnd() * len(_AGENT_LINES))]
                data = _TEXT_DATA[text]
            message_id = f"ms::conv:{conv_id}::msg:{n}"
            # Pre-serialised: every value spliced in is JSON-safe (ids, names, times) or already JSON (data).
            records.append(
                f'{{"type":"{mtype}","messageData":{data},"messageId":"{message_id}","audience":"{audience}",'
                f'"seq":{seq},"dialogId":"{conv_id}","participantId":"{participant}","source":"APP",'
                f'"time":"{fmt_time(t)}","timeL":{t},"device":"undefined","sentBy":"{sent_by}"}}'.encode()
            )
            # Ground truth is built from these only when asked for.
            truths.append((message_id, seq, t, sent_by, role, participant, mtype, text, file, rich, audience))
        message_times = [m[0] for m in sk.messages]
        if sk.survey is not None:
            # The POST_SURVEY dialog's messages: its own dialogId, the survey bot asks, the consumer answers.
            bot, asked, answered, rating = sk.survey
            survey_dialog = f"{conv_id}-survey"
            for n, (t, role, who, text) in enumerate(
                ((asked, BOT, agents[bot].id_text, SURVEY_QUESTION), (answered, CONSUMER, consumer_id, str(rating))),
                start=len(sk.messages),
            ):
                seq += 1
                sent_by = style[1] if role == CONSUMER else style[0]
                message_id = f"ms::conv:{conv_id}::msg:{n}"
                records.append(
                    f'{{"type":"TEXT_PLAIN","messageData":{_ENCODE({"msg": {"text": text}}).decode()},'
                    f'"messageId":"{message_id}","audience":"ALL","seq":{seq},"dialogId":"{survey_dialog}",'
                    f'"participantId":"{who}","source":"APP","time":"{fmt_time(t)}","timeL":{t},'
                    f'"device":"undefined","sentBy":"{sent_by}"}}'.encode()
                )
                truths.append((message_id, seq, t, sent_by, role, who, "TEXT_PLAIN", text, None, None, "ALL"))
                message_times.append(t)
        source = rng.choice(("APP", "SHARK", "SMS", "FACEBOOK", "WhatsApp Business"))
        info_static = {
            "conversationId": conv_id,
            "brandId": self.account_id,
            "source": source,
            "device": "MOBILE" if source in ("APP", "SMS") else rng.choice(("DESKTOP", "MOBILE", "TABLET")),
            "browser": "chrome" if source == "SHARK" else "undefined",
            "operatingSystem": rng.choice(("WINDOWS", "MAC_OSX", "ANDROID", "IOS")),
            "firstConversation": rng.random() < 0.3,
            "language": rng.choice(("en-US", "en-GB", "de-DE", "fr-FR")),
            "mcs": rng.randint(0, 100),
            "alertedMCS": rng.choice((-1, 0, 1)),
        }
        csat = rng.randint(1, 5) if rng.random() < 0.4 else None  # drawn still, so the rest of the data is as it was
        csat = sk.survey[3] if sk.survey is not None else None  # CSAT is what the survey's answer says
        summary = rng.choice(("Refund issued", "Address updated", "Escalated to billing", "Resolved login issue"))
        campaign = {
            "campaignEngagementId": str(2_330_596_212 + rng.randint(0, 9)),
            "campaignEngagementName": "Messaging engagement",
            "campaignId": "2266771712",
            "campaignName": "Messaging on your site",
            "goalId": "2266719412",
            "goalName": "Interact with visitors",
            "engagementSource": "WEB_SITE",
            "lobId": 2_389_848_512,
            "lobName": "retail",
            "locationId": "2266779612",
            "locationName": "Entire site",
        }
        sdes = {"events": []}
        if rng.random() < 0.3:
            sdes["events"].append(
                {
                    "customerInfo": {
                        "serverTimeStamp": str(sk.header.start_ms),
                        "customerInfo": {"customerId": f"C{rng.randint(10_000, 99_999)}", "customerType": "vip"},
                    },
                    "sdeType": "CUSTOMER_INFO",
                    "serverTimeStamp": str(sk.header.start_ms),
                }
            )
        return Conversation(
            skeleton=sk,
            message_times=message_times,
            message_records=records,
            truths=truths,
            consumer=consumer,
            info_static=info_static,
            sent_by_style=style,
            int_agent_ids=rng.random() < 0.35,
            csat=csat,
            summary_text=summary,
            campaign=campaign,
            sdes=sdes,
        )

    # ----------------------------------------------------------------------------------- rendering
    def _agent_id(self, conv: Conversation, agent: Agent) -> int | str:
        # The same id is a string in most records and a number in some: store ids as text.
        return int(agent.id_text) if conv.int_agent_ids else agent.id_text

    def _skill_name(self, skill_id: int) -> str:
        return dict(SKILLS).get(skill_id, "Unassigned")

    def state(self, header: Header, now_ms: int) -> dict[str, Any]:
        """The facts of a conversation as of `now_ms` that the record and the ground truth share."""
        conv = self.conversation(header)
        sk = conv.skeleton
        n_visible = bisect.bisect_right(conv.message_times, now_ms)
        closed = header.close_ms <= now_ms
        participants = [p for p in sk.participants if p[1] <= now_ms]
        transfers = [x for x in sk.transfers if x[0] <= now_ms]
        assigned = [p for p in participants if p[2] == "ASSIGNED_AGENT"]
        latest = self.agents[assigned[-1][0]] if assigned else None
        skill = transfers[-1][5] if transfers else self._initial_skill(sk)
        return {
            "conv": conv,
            "n_visible": n_visible,
            "closed": closed,
            "participants": participants,
            "transfers": transfers,
            "latest": latest,
            "skill": skill,
        }

    @staticmethod
    def _initial_skill(sk: Skeleton) -> int:
        return sk.transfers[0][4] if sk.transfers else sk.skill_id

    def record(
        self, header: Header, now_ms: int, sections: tuple[str, ...] = ALL_SECTIONS, partial: bool = False
    ) -> bytes:
        """The conversation record's JSON as msgHist serves it at `now_ms`, with the requested sections.

        `partial`: `info.isPartial` true and the messages cut in half (what a truncated record looks like)."""
        st = self.state(header, now_ms)
        conv: Conversation = st["conv"]
        closed: bool = st["closed"]
        latest: Agent | None = st["latest"]
        info: dict[str, Any] = {
            "startTime": fmt_time(header.start_ms),
            "startTimeL": header.start_ms,
            "endTime": fmt_time(header.close_ms) if closed else "undefined",
            "endTimeL": header.close_ms if closed else -1,
            # For open conversations the duration runs until the data was retrieved (the API's words).
            "duration": (header.close_ms if closed else now_ms) - header.start_ms,
            **conv.info_static,
            "status": "CLOSE" if closed else "OPEN",
            "fullDialogStatus": "CLOSE" if closed else "OPEN",
            "latestSkillId": st["skill"],
            "latestSkillName": self._skill_name(st["skill"]),
            "latestQueueState": "ACTIVE" if latest else "IN_QUEUE",
            "isPartial": partial,
        }
        if latest is not None:
            info.update(
                {
                    "latestAgentId": self._agent_id(conv, latest),
                    "latestAgentNickname": latest.nickname,
                    "latestAgentFullName": "",
                    "latestAgentLoginName": latest.login_name,
                    "agentDeleted": latest.deleted_at(now_ms),
                    "latestAgentGroupId": latest.group_id,
                    "latestAgentGroupName": dict(GROUPS)[latest.group_id],
                }
            )
        if closed:
            info["closeReason"] = conv.skeleton.close_reason
            info["closeReasonDescription"] = {"AGENT": "MANUAL_CLOSE", "CONSUMER": "MANUAL_CLOSE"}.get(
                conv.skeleton.close_reason, "TIMEOUT"
            )
            if conv.csat is not None:
                info["csat"] = conv.csat
        rec: dict[str, Any] = {"info": info}
        want = set(sections)
        if "campaign" in want:
            rec["campaign"] = conv.campaign
        if "agentParticipants" in want:
            rec["agentParticipants"] = [self._participant(conv, p, now_ms) for p in st["participants"]]
        if "consumerParticipants" in want:
            rec["consumerParticipants"] = [conv.consumer]
        if "transfers" in want:
            rec["transfers"] = [self._transfer(conv, x) for x in st["transfers"]]
        if "interactions" in want:
            rec["interactions"] = [
                self._interaction(conv, p, n + 1)
                for n, p in enumerate(q for q in st["participants"] if q[2] == "ASSIGNED_AGENT")
            ]
        sk = conv.skeleton
        main_closed = sk.main_end_ms <= now_ms
        if "dialogs" in want:
            dialog = {
                "dialogId": header.conversation_id,
                "status": "CLOSE" if main_closed else "OPEN",
                "dialogType": "MAIN",
                "dialogChannelType": "MESSAGING",
                "startTime": fmt_time(header.start_ms),
                "startTimeL": header.start_ms,
                "skillId": str(st["skill"]),
                "skillName": self._skill_name(st["skill"]),
            }
            if main_closed:
                dialog.update(endTime=fmt_time(sk.main_end_ms), endTimeL=sk.main_end_ms, closeReason=sk.close_reason)
            rec["dialogs"] = [dialog]
            if sk.survey is not None and main_closed:
                survey = {
                    "dialogId": f"{header.conversation_id}-survey",
                    "status": "CLOSE" if closed else "OPEN",
                    "dialogType": "POST_SURVEY",
                    "dialogChannelType": "MESSAGING",
                    "startTime": fmt_time(sk.main_end_ms),
                    "startTimeL": sk.main_end_ms,
                }
                if closed:
                    survey.update(endTime=fmt_time(header.close_ms), endTimeL=header.close_ms)
                rec["dialogs"].append(survey)
        if "conversationSurveys" in want:
            rec["conversationSurveys"] = (
                [
                    {
                        "surveyType": "PostConversation",
                        "surveyStatus": "FILLED",
                        "dialogId": f"{header.conversation_id}-survey",
                        "surveyData": [{"questionId": "csat", "question": SURVEY_QUESTION, "answer": str(conv.csat)}],
                    }
                ]
                if closed and conv.csat is not None
                else []
            )
        if "summary" in want and closed:
            rec["summary"] = {"text": conv.summary_text, "lastUpdatedTime": header.close_ms}
        if "sdes" in want:
            rec["sdes"] = conv.sdes
        raw = _ENCODE(rec)
        if "messageRecords" not in want:
            return raw
        msgs = conv.message_records[: st["n_visible"]]
        if partial and len(msgs) > 1:
            msgs = msgs[: len(msgs) // 2]
        return raw[:-1] + b',"messageRecords":[' + b",".join(msgs) + b"]}"

    def _participant(self, conv: Conversation, p: tuple[int, int, str], now_ms: int) -> dict[str, Any]:
        agent = self.agents[p[0]]
        return {
            "agentFullName": "",
            "agentNickname": agent.nickname,
            "agentLoginName": agent.login_name,
            "agentId": agent.id_text,
            "agentDeleted": agent.deleted_at(now_ms),
            "userType": str(agent.user_type),
            "userTypeName": agent.type_name,
            "role": "AGENT" if p[2] == "ASSIGNED_AGENT" else "MANAGER",
            "agentGroupName": dict(GROUPS)[agent.group_id],
            "agentGroupId": agent.group_id,
            "time": fmt_time(p[1]),
            "timeL": p[1],
            "permission": p[2],
            "dialogId": conv.skeleton.header.conversation_id,
        }

    def _transfer(self, conv: Conversation, x: tuple[int, str, int, int, int, int]) -> dict[str, Any]:
        t, reason, src, dst, src_skill, dst_skill = x
        source = self.agents[src]
        out: dict[str, Any] = {
            "timeL": t,
            "time": fmt_time(t),
            "assignedAgentId": self.agents[dst].id_text if dst >= 0 else "null",
            "targetSkillId": dst_skill,
            "targetSkillName": self._skill_name(dst_skill),
            "reason": reason,
            "by": source.id_text,
            "sourceSkillId": src_skill,
            "sourceSkillName": self._skill_name(src_skill),
            "sourceAgentId": source.id_text,
            "sourceAgentFullName": "",
            "sourceAgentLoginName": source.login_name,
            "sourceAgentNickname": source.nickname,
            "dialogId": conv.skeleton.header.conversation_id,
        }
        if dst >= 0:
            out["assignedAgentLoginName"] = self.agents[dst].login_name
            out["assignedAgentNickname"] = self.agents[dst].nickname
        return out

    def _interaction(self, conv: Conversation, p: tuple[int, int, str], sequence: int) -> dict[str, Any]:
        agent = self.agents[p[0]]
        return {
            "assignedAgentId": agent.id_text,
            "assignedAgentFullName": "",
            "assignedAgentLoginName": agent.login_name,
            "assignedAgentNickname": agent.nickname,
            "interactionTimeL": p[1],
            "interactionTime": fmt_time(p[1]),
            "interactiveSequence": sequence,
            "dialogId": conv.skeleton.header.conversation_id,
        }

    # -------------------------------------------------------------------------------- ground truth
    def ground_truth(self, at: datetime) -> list[dict[str, Any]]:
        """Every conversation started by `at`, with its messages, as the provider holds them at `at`.

        Neutral shape per conversation: `interaction_id, status (OPEN|CLOSE), started_at, ended_at (None while
        open), updated_at, agent_id (latestAgentId as text, None before any agent), agent_login_name,
        agent_user_type (Human|Bot), agent_deleted, skill_id, customer_id, close_reason, message_count,
        messages[]`; each message: `message_id, seq (the provider's), sent_at, sent_by (as served),
        sender_type (customer|agent|bot), participant_id, type, text (None unless text), file, rich_content,
        is_private`. Times are ISO 8601 UTC. Ordered by start time.
        """
        return list(self.iter_ground_truth(at))

    def iter_ground_truth(self, at: datetime) -> Iterator[dict[str, Any]]:
        """`ground_truth`, one conversation at a time (the admin API streams it)."""
        now_ms = to_ms(at)
        for day in self.data_days(now_ms):
            headers, _ = self.day_headers(day)
            for header in headers:
                if header.start_ms <= now_ms:
                    yield self.truth(header, now_ms)

    def truth(self, header: Header, now_ms: int) -> dict[str, Any]:
        st = self.state(header, now_ms)
        conv: Conversation = st["conv"]
        latest: Agent | None = st["latest"]
        closed = st["closed"]
        messages = [
            {
                "message_id": message_id,
                "seq": seq,
                "sent_at": from_ms(t).isoformat(),
                "sent_by": sent_by,
                "sender_type": ("customer", "agent", "bot")[role],
                "participant_id": participant,
                "type": mtype,
                "text": text,
                "file": file,
                "rich_content": rich,
                "is_private": audience == "AGENTS_AND_MANAGERS",
                "dialog_type": "post_survey" if n >= len(conv.skeleton.messages) else "main",
            }
            for n, (message_id, seq, t, sent_by, role, participant, mtype, text, file, rich, audience) in enumerate(
                conv.truths[: st["n_visible"]]
            )
        ]
        return {
            "interaction_id": header.conversation_id,
            "status": "CLOSE" if closed else "OPEN",
            "started_at": from_ms(header.start_ms).isoformat(),
            # the agent's conversation ends with the MAIN dialog (a post-conversation survey runs after it)
            "ended_at": from_ms(self.conversation(header).skeleton.main_end_ms).isoformat() if closed else None,
            "updated_at": from_ms(header.updated_at(now_ms)).isoformat(),
            "agent_id": latest.id_text if latest else None,
            "agent_login_name": latest.login_name if latest else None,
            "agent_user_type": latest.type_name if latest else None,
            "agent_deleted": latest.deleted_at(now_ms) if latest else None,
            "skill_id": str(st["skill"]),
            "customer_id": conv.consumer["participantId"],
            "close_reason": conv.skeleton.close_reason if closed else None,
            "message_count": len(messages),
            "messages": messages,
        }

    def conversations_started(self, now_ms: int) -> int:
        """How many conversations exist at `now_ms` (cheap: counts headers)."""
        total = 0
        for day in self.data_days(now_ms):
            _, starts = self.day_headers(day)
            total += bisect.bisect_right(starts, now_ms)
        return total


def ten_minutes_down(ms: int) -> int:
    return ms - ms % TEN_MINUTES_MS


def ten_minutes_up(ms: int) -> int:
    rest = ms % TEN_MINUTES_MS
    return ms if rest == 0 else ms + TEN_MINUTES_MS - rest


def three_months_after(ms: int) -> int:
    from dateutil.relativedelta import relativedelta

    return to_ms(from_ms(ms) + relativedelta(months=3))
