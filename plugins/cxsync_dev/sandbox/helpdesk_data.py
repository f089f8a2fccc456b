"""The HelpDesk sandbox's world: account, agents, teams and tickets as pure functions of (seed, time).

Nothing is stored per ticket. Ticket `k` of UTC day `d` (days since the epoch) is generated from
`random.Random(f"{seed}:hd:{d}:{k}")` with its whole future already decided: every event it will ever get,
with dates that may lie after the sandbox clock. The ticket "as of T" keeps the events dated <= T, and its
`status`, `assignment`, `tagIDs`, `updatedAt`, `lastMessageAt` and silo follow from them. Moving the clock
therefore brings new tickets, new messages, status changes, archiving and agent deletions without any
bookkeeping, and the same seed and start time always give the same answers.

Rules the generator follows (the traps clients must survive):
- a ticket's first event is the customer's message at `createdAt`; an assignment by the system follows
  (a few tickets stay unassigned: `assignment.agent` is null);
- agent replies set `pending` (sometimes `onhold`), customer replies set `open` again (author `system`),
  private notes (`isPrivate: true`), attachment-only messages (empty text), `tags` and `merge` events
  (types a client does not know), reassignments, `solved` and later `closed`;
- a status or assignment event can share the second of the message that caused it; event IDs are integers,
  increasing but not contiguous;
- some tickets are created in the same second (bulk imports), so sort keys tie and only (value, ID) is a
  safe cursor;
- a ticket with no event for `archive_idle_days` moves to the `archive` silo and never changes again;
  spam tickets live in `spam`; some tickets are deleted into `trash` and purged `trash_purge_days` later;
- agents get deleted: they vanish from `/v1/agents`, their IDs stay in old events and assignments, and
  they never act after their deletion (their tickets are reassigned first);
- once first solved, most tickets carry `ratingRequestSent: true` and a `rating` (`good`, `bad`, or null when
  the customer never answered), kept if the ticket is reopened; files sent with a message are on the event as
  `attachments.files[]` (`name`, `url`, `type`, `size`).
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import time
import uuid
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from random import Random
from typing import Any

from cxsync_dev.sandbox import helpdesk_text as text
from cxsync_dev.sandbox.cache import LRUCache

DAY = 86400
HOUR = 3600

SILOS = ("tickets", "archive", "spam", "trash")
SORT_FIELDS = ("createdAt", "updatedAt", "lastMessageAt")
STATUSES = ("open", "pending", "onhold", "solved", "closed")

# Event kinds and author codes inside a plan (compact tuples; rendered to API dicts on demand).
MESSAGE, STATUS, ASSIGNMENT, TAGS, MERGE = "message", "status", "assignment", "tags", "merge"
CLIENT, SYSTEM = -1, -2
SYSTEM_AUTHOR = {"type": "system", "ID": None, "name": "HelpDesk", "email": None}


@dataclass(frozen=True)
class HelpDeskSettings:
    """Volumes and behaviour of the HelpDesk world; read from `sandbox.options` as `hd_<field>`."""

    agents: int = 12
    teams: int = 3
    tickets_per_day: float = 40.0
    days: int = 90
    messages_mean: float = 6.0
    messages_max: int = 40
    archive_idle_days: float = 60.0
    trash_purge_days: float = 30.0
    deleted_agents: float = 0.2
    spam_rate: float = 0.03
    trash_rate: float = 0.02
    list_events: int = 3
    token_ttl: int = 28800
    code_ttl: int = 600
    role: str = "owner"

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> HelpDeskSettings:
        options = options or {}
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = options.get(f"hd_{f.name}")
            if raw is None:
                continue
            kind = type(getattr(cls, f.name))
            try:
                values[f.name] = kind(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"option hd_{f.name}: expected {kind.__name__}, got {raw!r}") from exc
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        problems = []
        if self.agents < 1:
            problems.append("hd_agents must be >= 1")
        if self.teams < 1:
            problems.append("hd_teams must be >= 1")
        if self.tickets_per_day < 0:
            problems.append("hd_tickets_per_day must be >= 0")
        if self.days < 0:
            problems.append("hd_days must be >= 0")
        if self.messages_mean < 1 or self.messages_max < 1:
            problems.append("hd_messages_mean and hd_messages_max must be >= 1")
        if self.archive_idle_days <= 0 or self.trash_purge_days <= 0:
            problems.append("hd_archive_idle_days and hd_trash_purge_days must be > 0")
        for name in ("deleted_agents", "spam_rate", "trash_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"hd_{name} must be between 0 and 1")
        if self.list_events < -1:
            problems.append("hd_list_events must be >= 0, or -1 for every event")
        if self.token_ttl < 1 or self.code_ttl < 1:
            problems.append("hd_token_ttl and hd_code_ttl must be >= 1 second")
        if self.role not in ("owner", "normal", "viewer", "none"):
            problems.append("hd_role must be owner, normal, viewer or none")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Agent:
    index: int
    id: str
    name: str
    email: str
    roles: tuple[str, ...]
    teams: tuple[int, ...]
    status: str  # active | invited
    deleted_at: int | None  # epoch seconds; None = never

    def exists_at(self, ts: int) -> bool:
        return self.deleted_at is None or ts < self.deleted_at

    def works_at(self, ts: int) -> bool:
        return self.status == "active" and "viewer" not in self.roles and self.exists_at(ts)


@dataclass(frozen=True, slots=True)
class Summary:
    """What the list index needs of one ticket, for any time: event dates and silo changes."""

    id: str
    created: int
    times: array  # every event date, ascending
    msg_times: array  # message event dates, ascending
    spam: bool
    trash_at: int | None


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def epoch(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp()) if dt.tzinfo else int(dt.replace(tzinfo=UTC).timestamp())


def _randint(rng: Random, lo: int, hi: int) -> int:
    """`rng.randint` without its argument checks: the generator's hot path calls it a dozen times a ticket."""
    return lo + int(rng.random() * (hi - lo + 1))


def _uuid(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hash_uuid(key: str) -> str:
    return str(uuid.UUID(bytes=hashlib.blake2b(key.encode(), digest_size=16).digest(), version=4))


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class Snapshot:
    """All visible tickets at one instant, with lazily built sort orders per (silo, sortBy, created range)."""

    def __init__(self, at: int, rows: list[tuple[str, int, int, int, int, int, str]]) -> None:
        self.at = at
        self.rows = rows  # (ID, d, k, createdAt, updatedAt, lastMessageAt, silo)
        self.by_id = {row[0]: row for row in rows}
        self._orders: LRUCache[tuple[list, list]] = LRUCache(8)

    def order(self, silo: str, sort_by: str, created_from: int | None, created_to: int | None) -> tuple[list, list]:
        """(keys, rows) ascending by (sort value, ID); keys are (value, ID) pairs for bisecting a cursor."""
        cache_key = (silo, sort_by, created_from, created_to)
        hit = self._orders.get(cache_key)
        if hit is not None:
            return hit
        column = 3 + SORT_FIELDS.index(sort_by)
        lo = created_from if created_from is not None else -(2**62)
        hi = created_to if created_to is not None else 2**62
        chosen = [r for r in self.rows if r[6] == silo and lo <= r[3] < hi]
        chosen.sort(key=lambda r: (r[column], r[0]))
        keys = [(r[column], r[0]) for r in chosen]
        return self._orders.put(cache_key, (keys, chosen))


class HelpDeskWorld:
    """One HelpDesk account. Thread-safe: the server answers from a thread pool."""

    def __init__(self, seed: Any, genesis: datetime, settings: HelpDeskSettings | None = None) -> None:
        self.seed = seed
        self.settings = settings or HelpDeskSettings()
        self.genesis = epoch(genesis)
        self.first_day = (self.genesis - self.settings.days * DAY) // DAY
        rng = Random(f"{seed}:hd:account")
        self.account_id = _uuid(rng)
        self.organization_id = _uuid(rng)
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
        self.api_token = "dal:" + "".join(rng.choice(alphabet) for _ in range(27))
        self.client_id = f"{rng.getrandbits(128):032x}"
        self.client_secret = f"{rng.getrandbits(160):040x}"
        self.signing_key = rng.getrandbits(256).to_bytes(32, "big")
        self._id_mask = rng.getrandbits(48)
        self.teams = self._make_teams(rng)
        self.tags = [(_uuid(rng), name) for name in text.TAG_NAMES]
        self.agents = self._make_agents()
        self._team_workers = [[a.index for a in self.agents if t in a.teams] for t in range(len(self.teams))]
        # Tickets deleted through the API: ID -> when (moves them to trash, like DELETE /v1/tickets/{ID}).
        self.deleted: dict[str, int] = {}
        self._lock = threading.RLock()
        self._days: LRUCache[tuple[int, ...]] = LRUCache(8192)
        self._summaries: dict[int, list[Summary]] = {}
        self._rendered: LRUCache[dict[str, Any]] = LRUCache(4096)
        # Two: tests and benchmarks alternate "now" with ground truth at an earlier time.
        self._snapshots: LRUCache[Snapshot] = LRUCache(2)
        self._deleted_version = 0

    # ------------------------------------------------------------------------------------ people
    def _make_teams(self, rng: Random) -> list[tuple[str, str]]:
        names = text.TEAM_NAMES
        out = []
        for i in range(self.settings.teams):
            name = names[i % len(names)] + (f" {i // len(names) + 1}" if i >= len(names) else "")
            out.append((_uuid(rng), name))
        return out

    def _make_agents(self) -> list[Agent]:
        s = self.settings
        rng = Random(f"{self.seed}:hd:agents")
        n_teams = len(self.teams)
        drafts = []
        for i in range(s.agents):
            name, _ = text.person(rng)
            local = text.ascii_fold(name).lower().replace(" ", ".").replace("'", "")
            email = f"{local}.{i}@support.acme-sandbox.example"
            if i == 0:
                roles, teams, status = ("owner",), tuple(range(n_teams)), "active"
            else:
                roles = ("viewer",) if rng.random() < 0.1 else ("normal",)
                extra = rng.randrange(n_teams)
                teams = tuple(sorted({(i - 1) % n_teams, extra} if rng.random() < 0.3 else {(i - 1) % n_teams}))
                status = "invited" if rng.random() < 0.08 else "active"
            drafts.append([i, _uuid(rng), name, email, roles, teams, status, None])
        workers = [d[0] for d in drafts if d[0] > 0 and d[6] == "active" and d[4] != ("viewer",)]
        count = round(len(workers) * s.deleted_agents)
        if s.deleted_agents > 0 and count == 0 and len(workers) >= 2:
            count = 1
        for j, i in enumerate(sorted(rng.sample(workers, count))):
            if j == 0:
                # One agent leaves within the first night, so "tomorrow" always shows a deletion.
                drafts[i][7] = self.genesis + rng.randint(2 * HOUR, 20 * HOUR)
            elif j % 2 == 1:
                drafts[i][7] = self.genesis - rng.randint(DAY, max(DAY, int(s.days * DAY * 0.8)))
            else:
                drafts[i][7] = self.genesis + rng.randint(DAY, 30 * DAY)
        return [Agent(*d) for d in drafts]

    def agents_at(self, at: int) -> list[dict[str, Any]]:
        return [self.agent_api(a) for a in self.agents if a.exists_at(at)]

    def agent_api(self, agent: Agent) -> dict[str, Any]:
        return {
            "ID": agent.id,
            "email": agent.email,
            "name": agent.name,
            "roles": list(agent.roles),
            "teamIDs": [self.teams[t][0] for t in agent.teams],
            "status": agent.status,
        }

    def teams_api(self) -> list[dict[str, Any]]:
        return [{"ID": tid, "name": name} for tid, name in self.teams]

    def _pick_agent(self, rng: Random, team: int, ts: int, exclude: int | None = None) -> int:
        candidates = [i for i in self._team_workers[team] if i != exclude and self.agents[i].works_at(ts)]
        if not candidates:
            candidates = [0]  # the owner is never deleted and covers every team
        return rng.choice(candidates)

    # ----------------------------------------------------------------------------------- tickets
    def day_created(self, d: int) -> tuple[int, ...]:
        """Creation times (epoch seconds, ascending, ties allowed) of day `d`'s tickets."""
        if d < self.first_day:
            return ()
        hit = self._days.get(d)
        if hit is not None:
            return hit
        rng = Random(f"{self.seed}:hd:day:{d}")
        base = self.settings.tickets_per_day
        n = int(base * rng.uniform(0.8, 1.2) + rng.random())
        offsets: list[int] = []
        for _ in range(n):
            if offsets and rng.random() < 0.05:
                offsets.append(offsets[-1])  # a bulk import: same second as the previous ticket
            elif rng.random() < 0.75:
                offsets.append(rng.randrange(8 * HOUR, 20 * HOUR))
            else:
                offsets.append(rng.randrange(DAY))
        offsets.sort()
        created = tuple(d * DAY + o for o in offsets)
        return self._days.put(d, created)

    def ticket_id(self, d: int, k: int) -> str:
        """A UUID that looks random but carries (d, k) in its last group, so lookups need no index."""
        h = hashlib.blake2b(f"{self.seed}:hd:id:{d}:{k}".encode(), digest_size=10).hexdigest()
        tail = ((d << 24) | k) ^ self._id_mask
        return f"{h[0:8]}-{h[8:12]}-4{h[12:15]}-{'89ab'[int(h[15], 16) & 3]}{h[16:19]}-{tail:012x}"

    def locate(self, ticket_id: str) -> tuple[int, int] | None:
        """(d, k) of a ticket ID this world generated, else None."""
        tid = ticket_id.strip().lower()
        if len(tid) != 36:
            return None
        try:
            packed = int(tid[24:], 16) ^ self._id_mask
        except ValueError:
            return None
        d, k = packed >> 24, packed & 0xFFFFFF
        if d < self.first_day or k >= len(self.day_created(d)) or self.ticket_id(d, k) != tid:
            return None
        return d, k

    def short_id(self, d: int, k: int) -> str:
        return _base36(d * 2**20 + k)

    def _gap(self, rng: Random, mean: float, lo: int, hi: int) -> int:
        return int(min(hi, max(lo, rng.expovariate(1.0 / mean))))

    def plan(self, d: int, k: int) -> dict[str, Any]:
        """The ticket's whole life: (event ID, kind, date, author, payload) tuples, plus spam/trash."""
        s = self.settings
        rng = Random(f"{self.seed}:hd:{d}:{k}")
        created = self.day_created(d)[k]
        spam = rng.random() < s.spam_rate
        team = rng.randrange(len(self.teams))
        events: list[tuple[int, str, int, int, tuple]] = []
        next_id = [_randint(rng, 1, 40)]

        def add(kind: str, ts: int, author: int, payload: tuple) -> None:
            events.append((next_id[0], kind, ts, author, payload))
            next_id[0] += 1 + int(rng.random() * 3)

        add(MESSAGE, created, CLIENT, (False, 1 if rng.random() < 0.1 else 0, True))
        plan = {"created": created, "team0": team, "spam": spam, "events": events, "trash_at": None}
        if spam:
            return plan

        ts = created
        status = "open"
        agent: int | None = None
        unassigned = rng.random() < 0.04
        if not unassigned:
            ts += _randint(rng, 5, 1800)
            agent = self._pick_agent(rng, team, ts)
            add(ASSIGNMENT, ts, SYSTEM, (team, None, team, agent))

        def ensure_agent(at: int) -> None:
            nonlocal agent
            if agent is not None and not self.agents[agent].works_at(at):
                new = self._pick_agent(rng, team, at, exclude=agent)
                add(ASSIGNMENT, at, SYSTEM, (team, agent, team, new))
                agent = new

        mean_extra = s.messages_mean - 1
        extra = int(rng.expovariate(1.0 / mean_extra)) if mean_extra > 0 else 0
        left = min(s.messages_max, 1 + extra) - 1
        agent_turn = True
        while left > 0:
            if agent is None or not agent_turn:
                ts += self._gap(rng, 10 * HOUR, 120, 5 * DAY)
                if rng.random() < 0.12:
                    add(MESSAGE, ts, CLIENT, (False, _randint(rng, 1, 2), False))  # attachment only
                else:
                    add(MESSAGE, ts, CLIENT, (False, 1 if rng.random() < 0.05 else 0, True))
                left -= 1
                if status != "open":
                    add(STATUS, ts, SYSTEM, (status, "open"))
                    status = "open"
                agent_turn = True
                continue
            ts += self._gap(rng, 2 * HOUR, 60, 2 * DAY)
            ensure_agent(ts)
            if left > 1 and rng.random() < 0.15:
                add(MESSAGE, ts, agent, (True, 0, True))  # private note
                left -= 1
                ts += _randint(rng, 30, 900)
            if rng.random() < 0.08:
                add(TAGS, ts, agent, (rng.randrange(len(self.tags)),))
            add(MESSAGE, ts, agent, (False, 1 if rng.random() < 0.08 else 0, True))
            left -= 1
            new_status = "onhold" if rng.random() < 0.07 else "pending"
            if status != new_status:
                add(STATUS, ts, agent, (status, new_status))
                status = new_status
            if left > 0 and rng.random() < 0.05:
                ts += _randint(rng, 60, HOUR)
                other = rng.randrange(len(self.teams))
                new = self._pick_agent(rng, other, ts, exclude=agent)
                add(ASSIGNMENT, ts, agent, (team, agent, other, new))
                team, agent = other, new
            agent_turn = False

        if rng.random() < 0.03:
            ts += _randint(rng, 60, 6 * HOUR)
            add(MERGE, ts, SYSTEM, (_uuid(rng), _base36(rng.getrandbits(36))))
        if agent is not None and rng.random() < 0.72:
            ts += self._gap(rng, HOUR, 60, DAY)
            ensure_agent(ts)
            add(STATUS, ts, agent, (status, "solved"))
            if rng.random() < 0.1:  # the customer writes again: reopened, then solved again
                ts += self._gap(rng, DAY, HOUR, 6 * DAY)
                add(MESSAGE, ts, CLIENT, (False, 0, True))
                add(STATUS, ts, SYSTEM, ("solved", "open"))
                ts += self._gap(rng, 3 * HOUR, 60, DAY)
                ensure_agent(ts)
                add(STATUS, ts, agent, ("open", "solved"))
            if rng.random() < 0.55:
                ts += _randint(rng, 2 * DAY, 7 * DAY)
                add(STATUS, ts, SYSTEM, ("solved", "closed"))

        # Idle long enough to be archived: archived tickets are read-only, so later events never happen.
        idle = int(s.archive_idle_days * DAY)
        for i in range(1, len(events)):
            if events[i][2] - events[i - 1][2] >= idle:
                del events[i:]
                break
        if rng.random() < s.trash_rate:
            plan["trash_at"] = events[-1][2] + _randint(rng, HOUR, 5 * DAY)
        return plan

    def _day_summaries(self, d: int) -> list[Summary]:
        with self._lock:
            hit = self._summaries.get(d)
        if hit is not None:
            return hit
        out = []
        for k in range(len(self.day_created(d))):
            p = self.plan(d, k)
            ev = p["events"]
            out.append(
                Summary(
                    id=self.ticket_id(d, k),
                    created=p["created"],
                    times=array("q", sorted(e[2] for e in ev)),
                    msg_times=array("q", sorted(e[2] for e in ev if e[1] == MESSAGE)),
                    spam=p["spam"],
                    trash_at=p["trash_at"],
                )
            )
        with self._lock:
            self._summaries[d] = out
        return out

    def _trash_at(self, summary: Summary) -> int | None:
        deleted = self.deleted.get(summary.id)
        if deleted is None:
            return summary.trash_at
        return deleted if summary.trash_at is None else min(deleted, summary.trash_at)

    def _state(self, summary: Summary, at: int) -> tuple[str | None, int, int]:
        """(silo or None when purged, updatedAt, lastMessageAt) at `at`; the ticket exists (created <= at)."""
        times = summary.times
        updated = times[bisect.bisect_right(times, at) - 1]
        mt = summary.msg_times
        last_msg = mt[bisect.bisect_right(mt, at) - 1]
        trash_at = self._trash_at(summary)
        if trash_at is not None and trash_at <= at:
            if at >= trash_at + int(self.settings.trash_purge_days * DAY):
                return None, updated, last_msg
            return "trash", updated, last_msg
        if summary.spam:
            return "spam", updated, last_msg
        if at - updated >= int(self.settings.archive_idle_days * DAY):
            return "archive", updated, last_msg
        return "tickets", updated, last_msg

    def snapshot(self, at: int) -> Snapshot:
        """Every ticket visible at `at` with its silo and sort keys; cached until the clock or a DELETE moves."""
        key = (at, self._deleted_version)
        hit = self._snapshots.get(key)
        if hit is not None:
            return hit
        with self._lock:
            rows = []
            for d in range(self.first_day, at // DAY + 1):
                for k, summary in enumerate(self._day_summaries(d)):
                    if summary.created > at:
                        break
                    silo, updated, last_msg = self._state(summary, at)
                    if silo is not None:
                        rows.append((summary.id, d, k, summary.created, updated, last_msg, silo))
            return self._snapshots.put(key, Snapshot(at, rows))

    def delete_ticket(self, ticket_id: str, at: int) -> None:
        with self._lock:
            self.deleted.setdefault(ticket_id, at)
            self._deleted_version += 1

    # --------------------------------------------------------------------------------- rendering
    def _author(self, code: int, requester: dict[str, Any]) -> dict[str, Any]:
        if code == CLIENT:
            return requester
        if code == SYSTEM:
            return dict(SYSTEM_AUTHOR)
        a = self.agents[code]
        return {"type": "agent", "ID": a.id, "name": a.name, "email": a.email}

    def _assignee(self, team: int, agent: int | None) -> dict[str, Any]:
        tid, tname = self.teams[team]
        who = None if agent is None else {"ID": self.agents[agent].id, "name": self.agents[agent].name}
        return {"team": {"ID": tid, "name": tname}, "agent": who}

    def render(self, d: int, k: int) -> dict[str, Any]:
        """The ticket with every event it will ever have (cached); `as_of` cuts it to a point in time."""
        key = (d, k)
        hit = self._rendered.get(key)
        if hit is not None:
            return hit
        p = self.plan(d, k)
        rng = Random(f"{self.seed}:hd:{d}:{k}:text")
        tid = self.ticket_id(d, k)
        name, email = text.person(rng)
        requester = {"type": "client", "ID": _hash_uuid(f"{self.seed}:client:{email}"), "name": name, "email": email}
        custom: dict[str, Any] = {}
        if rng.random() < 0.4:
            custom = {"orderNumber": str(rng.randrange(100000, 999999)), "country": rng.choice(["FR", "DE", "US"])}
        events = []
        for eid, kind, ts, author_code, payload in p["events"]:
            ev: dict[str, Any] = {
                "ID": eid,
                "type": kind,
                "date": iso(ts),
                "author": self._author(author_code, requester),
            }
            if kind == MESSAGE:
                private, n_attach, has_text = payload
                author_kind = "agent" if author_code >= 0 else "client"
                body = text.message_text(rng, author_kind, private, name) if has_text else ""
                files = []
                for j in range(n_attach):
                    fname, ctype = rng.choice(text.ATTACHMENT_KINDS)
                    files.append(
                        {
                            "ID": _hash_uuid(f"{tid}:{eid}:{j}"),
                            "name": fname,
                            "url": f"https://files.helpdesk.sandbox.invalid/{tid}/{eid}/{fname}",
                            "size": rng.randrange(2_000, 4_000_000),
                            "type": ctype,
                        }
                    )
                ev["message"] = {"text": body, "richTextHtml": text.rich_html(body), "isPrivate": private}
                if files:  # on the event, as `attachments.files[]` (the notes' field names)
                    ev["attachments"] = {"files": files}
            elif kind == STATUS:
                ev["status"] = {"old": payload[0], "new": payload[1]}
            elif kind == ASSIGNMENT:
                old_team, old_agent, new_team, new_agent = payload
                ev["assignment"] = {
                    "old": self._assignee(old_team, old_agent),
                    "new": self._assignee(new_team, new_agent),
                }
            elif kind == TAGS:
                ev["tags"] = {"added": [self.tags[payload[0]][0]], "removed": []}
            elif kind == MERGE:
                ev["merge"] = {"sourceTicketID": payload[0], "sourceShortID": payload[1]}
            events.append((ts, ev))
        rendered = {
            "ID": tid,
            "shortID": self.short_id(d, k),
            "subject": text.subject(rng),
            "priority": rng.choices((0, 1, 2, 3), weights=(5, 3, 1, 1))[0],
            "requester": {"email": email, "name": name},
            "source": {"type": rng.choice(text.SOURCES)},
            "spam": p["spam"],
            "customFields": custom,
            "team0": p["team0"],
            "created": p["created"],
            "events": events,
            **self._rating(d, k),
        }
        return self._rendered.put(key, rendered)

    def _rating(self, d: int, k: int) -> dict[str, Any]:
        """Whether the customer is asked to rate once the ticket is solved, and the answer (good, bad or none).
        A separate random stream: adding it changed nothing else the world generates."""
        rng = Random(f"{self.seed}:hd:{d}:{k}:rating")
        asked = rng.random() < 0.8
        answer = rng.choices(("good", "bad", None), weights=(6, 2, 2))[0] if asked else None
        return {"rating_asked": asked, "rating_answer": answer}

    def as_of(self, d: int, k: int, at: int, last_events: int | None = None) -> dict[str, Any]:
        """The API's ticket object at `at`; `last_events` keeps only the newest few events (list rows)."""
        r = self.render(d, k)
        events = [ev for ts, ev in r["events"] if ts <= at]
        status = "open"
        assignment = self._assignee(r["team0"], None)
        tag_ids: list[str] = []
        updated = last_msg = r["created"]
        solved_once = False
        for ts, ev in r["events"]:
            if ts > at:
                break
            updated = ts
            kind = ev["type"]
            if kind == STATUS:
                status = ev["status"]["new"]
                solved_once = solved_once or status in ("solved", "closed")
            elif kind == ASSIGNMENT:
                assignment = ev["assignment"]["new"]
            elif kind == TAGS:
                tag_ids += [t for t in ev["tags"]["added"] if t not in tag_ids]
            elif kind == MESSAGE:
                last_msg = ts
        if last_events is not None and last_events >= 0:  # -1: the list row carries every event
            events = events[-last_events:] if last_events else []
        return {
            "ID": r["ID"],
            "shortID": r["shortID"],
            "subject": r["subject"],
            "status": status,
            "priority": r["priority"],
            "requester": dict(r["requester"]),
            "assignment": assignment,
            "teamIDs": [assignment["team"]["ID"]],
            "tagIDs": tag_ids,
            "createdAt": iso(r["created"]),
            "updatedAt": iso(updated),
            "lastMessageAt": iso(last_msg),
            "source": dict(r["source"]),
            "spam": r["spam"],
            "customFields": dict(r["customFields"]),
            # The rating request goes out when the ticket is first solved; the answer stays, even if reopened.
            "ratingRequestSent": solved_once and r["rating_asked"],
            "rating": r["rating_answer"] if solved_once and r["rating_asked"] else None,
            "events": events,
        }

    def ticket(self, ticket_id: str, at: int) -> tuple[dict[str, Any], str] | None:
        """(ticket as of `at`, silo) for an ID, or None when unknown, not created yet, or purged."""
        where = self.locate(ticket_id)
        if where is None:
            return None
        d, k = where
        summary = self._day_summaries(d)[k]
        if summary.created > at:
            return None
        silo, _, _ = self._state(summary, at)
        if silo is None:
            return None
        return self.as_of(d, k, at), silo

    # ------------------------------------------------------------------------------ ground truth
    def ground_truth(self, at: datetime) -> list[dict[str, Any]]:
        """Every ticket the account holds at `at` (all silos, purged ones gone), oldest first.

        Shape (neutral, mapped as docs/architecture.md says for HelpDesk):
        `{"interaction_id", "provider": "helpdesk", "silo", "status": "open"|"closed", "provider_status",
          "subject", "started_at", "updated_at", "last_message_at", "ended_at", "agent_id", "team_id",
          "customer_id", "customer_name", "message_count", "csat_score", "tags", "priority", "display_id",
          "agent_group",
          "messages": [{"message_id", "seq", "sent_at", "sender_type": "agent"|"customer"|"system",
                        "sender_id", "sender_name", "text", "is_private",
                        "attachments": [{"name", "type", "size"}]}],
          "ticket": <the API's ticket object, every event included>}`.
        Times are ISO 8601 UTC with `Z`; `ended_at` is the date of the latest solved/closed status
        change while the ticket is solved or closed, else null; `message_id` is the event ID as text.
        """
        ts = epoch(at)
        snap = self.snapshot(ts)
        rows = sorted(snap.rows, key=lambda r: (r[3], r[0]))
        return [self.truth_record(self.as_of(d, k, ts), silo) for _, d, k, _, _, _, silo in rows]

    def tags_api(self) -> list[dict[str, Any]]:
        return [{"ID": tid, "name": name} for tid, name in self.tags]

    def truth_record(self, ticket: dict[str, Any], silo: str) -> dict[str, Any]:
        messages = []
        ended_at = None
        for ev in ticket["events"]:
            if ev["type"] == STATUS:
                ended_at = ev["date"] if ev["status"]["new"] in ("solved", "closed") else None
            if ev["type"] != MESSAGE:
                continue
            author = ev["author"]
            messages.append(
                {
                    "message_id": str(ev["ID"]),
                    "seq": len(messages) + 1,
                    "sent_at": ev["date"],
                    "sender_type": {"client": "customer"}.get(author["type"], author["type"]),
                    "sender_id": author["ID"],
                    "sender_name": author["name"],
                    "text": ev["message"]["text"],
                    "is_private": ev["message"]["isPrivate"],
                    "attachments": [
                        {"name": f["name"], "type": f["type"], "size": f["size"]}
                        for f in ev.get("attachments", {}).get("files", [])
                    ],
                }
            )
        agent = ticket["assignment"]["agent"]
        status = ticket["status"]
        return {
            "interaction_id": ticket["ID"],
            "provider": "helpdesk",
            "silo": silo,
            "status": "closed" if status in ("solved", "closed") else "open",
            "provider_status": status,
            "subject": ticket["subject"],
            "started_at": ticket["createdAt"],
            "updated_at": ticket["updatedAt"],
            "last_message_at": ticket["lastMessageAt"],
            "ended_at": ended_at if status in ("solved", "closed") else None,
            "agent_id": agent["ID"] if agent else None,
            "team_id": ticket["assignment"]["team"]["ID"],
            "customer_id": ticket["requester"]["email"],
            "customer_name": ticket["requester"]["name"],
            "message_count": len(messages),
            "messages": messages,
            # QA signals: rating good 5 / bad 1, tag names, priority as text, the short ID, the team's name.
            "csat_score": {"good": 5.0, "bad": 1.0}.get(ticket["rating"]),
            "tags": [dict(self.tags).get(t, t) for t in ticket["tagIDs"]],
            "priority": str(ticket["priority"]),
            "display_id": ticket["shortID"],
            "agent_group": ticket["assignment"]["team"]["name"],
            "ticket": ticket,
        }
