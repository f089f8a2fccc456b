"""Agent matching ("Manage Users"): every provider agent of every integration to at most one staff member.

Precedence: a person's override > external id from the staff file > bot > e-mail > name. A method decides
only when exactly one staff member fits; two or more make `ambiguous` with the candidates (never a guess),
and the lower methods are not tried then. An override naming an unknown staff id is reported and ignored.

`match_agents` is pure (lists in, matches out); `run_matching` reads and writes the warehouse around it.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from cxsync import settings
from cxsync.qa.staff import StaffFile, StaffMember, write_staff
from cxsync.records import RejectedRecord
from cxsync.warehouse import schema as t
from cxsync.warehouse.bulk import BulkUpsert
from cxsync.warehouse.store import Warehouse, to_json

log = logging.getLogger(__name__)

METHODS = ("manual", "external_id", "email", "name", "bot", "ambiguous", "unmatched")
# Letters NFKD does not split into a base letter and a mark.
_FOLD = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "\u0131": "i"})
_NOT_ALNUM = re.compile(r"[\W_]+")
# Names listed per method in the run's summary; the rest are counted.
SUMMARY_NAMES = 50


@dataclass(frozen=True)
class ProviderAgent:
    integration_id: str
    agent_id: str
    display_name: str | None = None
    email: str | None = None
    role: str | None = None
    is_deleted: bool = False


@dataclass(frozen=True)
class Override:
    integration_id: str
    agent_id: str
    staff_id: str | None  # None: never match this agent


@dataclass(frozen=True)
class Match:
    integration_id: str
    agent_id: str
    staff_id: str | None
    method: str
    confidence: float
    candidates: tuple[str, ...] = ()


@dataclass
class MatchOutcome:
    matches: list[Match] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # overrides not applied, and why


def normalize_name(value: str | None) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form: "  José  O'Neil-Smith" -> "jose o neil smith"."""
    if not value:
        return ""
    if value.isascii():  # most names: no accents to strip
        return " ".join(_NOT_ALNUM.sub(" ", value.lower()).split())
    decomposed = unicodedata.normalize("NFKD", value.casefold().translate(_FOLD))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NOT_ALNUM.sub(" ", bare).split())


def normalize_email(value: str | None) -> str:
    return (value or "").strip().casefold()


def is_bot(agent: ProviderAgent) -> bool:
    return (agent.role or "").lower() in settings.BOT_ROLES


def match_agents(
    agents: Iterable[ProviderAgent],
    staff: Sequence[StaffMember],
    overrides: Iterable[Override] = (),
    *,
    known_staff_ids: Iterable[str] | None = None,
) -> MatchOutcome:
    """One `Match` per agent. `known_staff_ids`: ids an override may name (default: the staff given)."""
    by_external: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_email: dict[str, set[str]] = defaultdict(set)
    by_name: dict[str, set[str]] = defaultdict(set)
    for member in staff:
        for key in member.external_ids:
            by_external[key].add(member.staff_id)
        if normalize_email(member.email):
            by_email[normalize_email(member.email)].add(member.staff_id)
        if normalize_name(member.name):
            by_name[normalize_name(member.name)].add(member.staff_id)
    known = set(known_staff_ids) if known_staff_ids is not None else {s.staff_id for s in staff}
    override_of = {(o.integration_id, o.agent_id): o for o in overrides}

    outcome = MatchOutcome()
    for agent in sorted(agents, key=lambda a: (a.integration_id, a.agent_id)):
        key = (agent.integration_id, agent.agent_id)
        override = override_of.get(key)
        if override is not None:
            if override.staff_id is None or override.staff_id in known:
                outcome.matches.append(_match(agent, "manual", override.staff_id))
                continue
            outcome.problems.append(
                f"override for {agent.integration_id}:{agent.agent_id} ({agent.display_name or 'no name'}) names "
                f"staff id {override.staff_id!r}, which is not in the staff table: not applied; fix the override "
                f"or add that person to the staff file"
            )
        outcome.matches.append(_automatic(agent, by_external, by_email, by_name))
    for key in sorted(set(override_of) - {(a.integration_id, a.agent_id) for a in outcome.matches}):
        outcome.problems.append(f"override for {key[0]}:{key[1]}: no such provider agent in cx_agents (kept, unused)")
    return outcome


def _automatic(agent: ProviderAgent, by_external, by_email, by_name) -> Match:
    found = by_external.get((agent.integration_id, agent.agent_id))
    if found:
        return _decide(agent, "external_id", found)
    if is_bot(agent):
        return _match(agent, "bot", None)
    for method, index, value in (
        ("email", by_email, normalize_email(agent.email)),
        ("name", by_name, normalize_name(agent.display_name)),
    ):
        found = index.get(value) if value else None
        if found:
            return _decide(agent, method, found)
    return _match(agent, "unmatched", None)


def _decide(agent: ProviderAgent, method: str, found: set[str]) -> Match:
    if len(found) == 1:
        return _match(agent, method, next(iter(found)))
    return _match(agent, "ambiguous", None, tuple(sorted(found)))


def _match(agent: ProviderAgent, method: str, staff_id: str | None, candidates: tuple[str, ...] = ()) -> Match:
    return Match(agent.integration_id, agent.agent_id, staff_id, method, settings.MATCH_CONFIDENCE[method], candidates)


# ---- warehouse I/O ---------------------------------------------------------------------------------------------


def read_agents(warehouse: Warehouse) -> list[ProviderAgent]:
    a = t.agents
    query = sa.select(a.c.integration_id, a.c.agent_id, a.c.display_name, a.c.email, a.c.role, a.c.is_deleted)
    with warehouse.engine.connect() as conn:
        return [ProviderAgent(*row) for row in conn.execute(query)]


def read_overrides(warehouse: Warehouse) -> list[Override]:
    o = t.agent_match_overrides
    with warehouse.engine.connect() as conn:
        return [Override(*row) for row in conn.execute(sa.select(o.c.integration_id, o.c.agent_id, o.c.staff_id))]


def set_override(
    warehouse: Warehouse,
    integration_id: str,
    agent_id: str,
    staff_id: str | None,
    *,
    note: str | None = None,
    set_by: str | None = None,
    now: datetime | None = None,
) -> None:
    """Record a person's decision (what the UI page or an SQL statement does); the next matching run applies it."""
    table = t.agent_match_overrides
    row = {
        "integration_id": integration_id,
        "agent_id": agent_id,
        "staff_id": staff_id,
        "note": note,
        "set_by": set_by,
        "set_at": now or datetime.now(UTC),
    }
    stmt = warehouse._insert(table)
    with warehouse.engine.begin() as conn:
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["integration_id", "agent_id"],
                set_={c: stmt.excluded[c] for c in ("staff_id", "note", "set_by", "set_at")},
            ),
            [row],
        )


def clear_override(warehouse: Warehouse, integration_id: str, agent_id: str) -> bool:
    """Remove a person's decision; the next matching run matches the agent automatically again."""
    table = t.agent_match_overrides
    with warehouse.engine.begin() as conn:
        deleted = conn.execute(
            table.delete().where(table.c.integration_id == integration_id, table.c.agent_id == agent_id)
        ).rowcount
    return deleted > 0


MATCH_COLUMNS = [
    "integration_id",
    "agent_id",
    "staff_id",
    "method",
    "confidence",
    "candidates",
    "matched_at",
    "updated_at",
]


def write_matches(warehouse: Warehouse, matches: Sequence[Match], *, now: datetime | None = None) -> None:
    """Upsert one row per agent, in one transaction. `matched_at` moves only when the outcome (staff id, method)
    changes, so it says since when an agent has been matched the way it is."""
    if not matches:
        return
    now = now or datetime.now(UTC)
    table = t.agent_matches
    upsert = BulkUpsert(warehouse.engine.dialect, table, MATCH_COLUMNS, ["integration_id", "agent_id"])
    with warehouse.engine.begin() as conn:
        before = {
            (i, a): (s, m, at)
            for i, a, s, m, at in conn.execute(
                sa.select(
                    table.c.integration_id, table.c.agent_id, table.c.staff_id, table.c.method, table.c.matched_at
                )
            )
        }
        rows = []
        for m in sorted(matches, key=lambda m: (m.integration_id, m.agent_id)):
            old = before.get((m.integration_id, m.agent_id))
            since = old[2] if old is not None and (old[0], old[1]) == (m.staff_id, m.method) else now
            candidates = to_json(list(m.candidates)) if m.candidates else None
            rows.append((m.integration_id, m.agent_id, m.staff_id, m.method, m.confidence, candidates, since, now))
        for start in range(0, len(rows), settings.UPSERT_BATCH_ROWS * 4):
            upsert.execute(conn, rows[start : start + settings.UPSERT_BATCH_ROWS * 4])


def run_matching(warehouse: Warehouse, staff_file: StaffFile) -> dict:
    """Load the staff file into `cx_staff`, match every agent, write `cx_agent_matches`, log the summary.

    Returns a small summary (counts per method, problems) for the task's XCom."""
    for error in staff_file.errors:
        log.warning("staff file: %s", error)
    warehouse.reject(
        settings.STAFF_REJECTED_SCOPE,
        [
            RejectedRecord(settings.STAFF_REJECTED_STREAM, f"line {n}", reason, raw)
            for n, raw, reason in staff_file.rejected
        ],
    )
    staff_stats = write_staff(warehouse, staff_file.staff)
    log.info(
        "staff file %s: %d people loaded (%d new, %d no longer in the file), %d bad row(s)",
        staff_file.path,
        staff_stats["loaded"],
        staff_stats["new"],
        staff_stats["left_file"],
        len(staff_file.errors),
    )
    with warehouse.engine.connect() as conn:
        known = set(conn.execute(sa.select(t.staff.c.staff_id)).scalars())
    agents = read_agents(warehouse)
    outcome = match_agents(agents, staff_file.staff, read_overrides(warehouse), known_staff_ids=known)
    write_matches(warehouse, outcome.matches)
    for problem in outcome.problems:
        log.warning("%s", problem)
    for line in summary_lines(outcome.matches, agents, staff_file.staff):
        log.info("%s", line)
    counts = Counter(m.method for m in outcome.matches)
    return {
        "agents": len(outcome.matches),
        "by_method": {m: counts.get(m, 0) for m in METHODS},
        "staff_errors": len(staff_file.errors),
        "override_problems": outcome.problems,
    }


def summary_lines(matches: Sequence[Match], agents: Sequence[ProviderAgent], staff: Sequence[StaffMember]) -> list[str]:
    """Per method: how many, and which agents (name, integration, id) went to whom."""
    agent_of = {(a.integration_id, a.agent_id): a for a in agents}
    name_of = {s.staff_id: s.name or s.staff_id for s in staff}
    grouped: dict[str, list[Match]] = defaultdict(list)
    for m in matches:
        grouped[m.method].append(m)
    lines = [f"matched {len(matches)} agent(s): " + ", ".join(f"{m} {len(grouped[m])}" for m in METHODS)]
    for method in METHODS:
        group = grouped.get(method, [])
        if not group:
            continue
        shown = []
        for m in group[:SUMMARY_NAMES]:
            agent = agent_of.get((m.integration_id, m.agent_id))
            who = f"{(agent.display_name if agent else None) or '?'} ({m.integration_id}:{m.agent_id}"
            who += ", deleted)" if agent is not None and agent.is_deleted else ")"
            if m.staff_id:
                who += f" -> {m.staff_id} {name_of.get(m.staff_id, '')}".rstrip()
            elif m.candidates:
                who += f" -> one of {', '.join(m.candidates)}"
            shown.append(who)
        more = f"; and {len(group) - SUMMARY_NAMES} more" if len(group) > SUMMARY_NAMES else ""
        lines.append(f"  {method} ({len(group)}): " + "; ".join(shown) + more)
    return lines


def list_matches(warehouse: Warehouse, *, integration_id: str | None = None, method: str | None = None) -> list[dict]:
    """Every agent with its match, staff name and override, for pages and reports (rows as dicts)."""
    a, m, s, o = t.agents, t.agent_matches, t.staff, t.agent_match_overrides
    query = (
        sa.select(
            a.c.integration_id,
            a.c.agent_id,
            a.c.display_name,
            a.c.login_name,
            a.c.email,
            a.c.role,
            a.c.is_deleted,
            m.c.staff_id,
            m.c.method,
            m.c.confidence,
            m.c.candidates,
            m.c.matched_at,
            s.c.name.label("staff_name"),
            s.c.team.label("staff_team"),
            o.c.staff_id.label("override_staff_id"),
            o.c.note.label("override_note"),
            o.c.set_by.label("override_set_by"),
            o.c.set_at.label("override_set_at"),
            (o.c.agent_id.is_not(None)).label("has_override"),
        )
        .select_from(
            a.outerjoin(m, sa.and_(m.c.integration_id == a.c.integration_id, m.c.agent_id == a.c.agent_id))
            .outerjoin(s, s.c.staff_id == m.c.staff_id)
            .outerjoin(o, sa.and_(o.c.integration_id == a.c.integration_id, o.c.agent_id == a.c.agent_id))
        )
        .order_by(a.c.integration_id, a.c.agent_id)
    )
    if integration_id is not None:
        query = query.where(a.c.integration_id == integration_id)
    if method is not None:
        query = query.where(m.c.method == method)
    with warehouse.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        row["candidates"] = json.loads(row["candidates"]) if row["candidates"] else []
    return rows
