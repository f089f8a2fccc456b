"""QA list runs: which conversations each evaluator scores, reproducible from a seed and a population.

A run (1) asks SQL for the eligible population (only the columns the filters and the sampling need: the
filtering happens in the database), (2) samples it with pandas (`select_items`, pure and deterministic for a
seed), (3) assigns evaluators round-robin, never to their own conversations, (4) writes `cx_qa_lists` and
`cx_qa_list_items` in one transaction and exports the items (and the population, for audits) as CSV.

`rebuild_list_run` redoes a recorded run from its definition and seed and says whether it is identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cxsync import settings
from cxsync.qa.csv_cells import safe_cell
from cxsync.qa.lists_config import SIGNAL_TEXT_FILTERS, QaList
from cxsync.warehouse import schema as t
from cxsync.warehouse.bulk import BulkUpsert
from cxsync.warehouse.connect import default_sqlite_path
from cxsync.warehouse.store import Warehouse, to_json

log = logging.getLogger(__name__)

POPULATION_COLUMNS = ["integration_id", "interaction_id", "agent_id", "staff_id", "ended_at"]
ITEM_COLUMNS = ["rank", "integration_id", "interaction_id", "agent_id", "staff_id", "evaluator_id", "ended_at"]
# What evaluators see of each item's interaction beside it (read_items, the exported and downloaded CSV); `tags`
# as stored, a JSON list of names. Null once retention removed the interaction.
DETAIL_COLUMNS = ["display_id", "status", "channel", "csat_score", "sentiment_score", "close_reason", "skill",
                  "agent_group", "priority", "tags"]  # fmt: skip
ITEM_KEY = ["list_run_id", "integration_id", "interaction_id"]
ITEM_TABLE_COLUMNS = [*ITEM_KEY, "staff_id", "agent_id", "evaluator_id", "rank"]
TOTAL_KEY = "_total"  # the shortfall key of a list with a `total` quota
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_CANONICAL = "cxsync_canonical_population"


@dataclass
class ListRun:
    list_run_id: str
    list_id: str
    run_at: datetime
    period_start: datetime
    period_end: datetime
    seed: int
    population_size: int
    population_hash: str
    items: pd.DataFrame
    shortfall: dict[str, int]
    export_path: Path | None = None
    population_path: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the run


@dataclass
class Rebuild:
    list_run_id: str
    items: pd.DataFrame
    population_hash: str
    recorded_hash: str
    identical: bool  # the rebuilt items equal the recorded ones, row for row

    @property
    def population_unchanged(self) -> bool:
        return self.population_hash == self.recorded_hash


# ---- pure: seed, population hash, sampling, evaluators ------------------------------------------------------


def list_run_id(list_id: str, run_at: datetime) -> str:
    return f"{list_id}-{run_at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def default_seed(list_id: str, period_start: datetime, period_end: datetime) -> int:
    """Derived from the list id and the period: the same run re-done gets the same seed."""
    text = f"{list_id}|{period_start.astimezone(UTC).isoformat()}|{period_end.astimezone(UTC).isoformat()}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1  # fits a signed BIGINT


def canonical_population(population: pd.DataFrame) -> pd.DataFrame:
    """The population in one fixed order with `ended_at` as fixed-width UTC text, whatever the database."""
    if population.attrs.get(_CANONICAL) == id(population):  # this very frame (pandas copies attrs to derived ones)
        return population
    frame = population[POPULATION_COLUMNS].copy()
    ended = pd.to_datetime(frame["ended_at"], utc=True, format="mixed")
    frame["ended_at"] = ended.dt.strftime(_TIME_FORMAT)
    for column in ("integration_id", "interaction_id", "agent_id", "staff_id"):
        frame[column] = frame[column].astype(str)
    frame = frame.sort_values(["integration_id", "interaction_id"], kind="mergesort").reset_index(drop=True)
    frame.attrs[_CANONICAL] = id(frame)  # computed once per run: hashing, sampling and export reuse it
    return frame


def population_hash(population: pd.DataFrame) -> str:
    """SHA-256 of the canonical population: an auditor checks a population against the recorded run with it."""
    frame = canonical_population(population)
    digest = hashlib.sha256()
    if len(frame):
        lines = frame[POPULATION_COLUMNS[0]]
        for column in POPULATION_COLUMNS[1:]:
            lines = lines + "\x1f" + frame[column]
        digest.update("\n".join(lines.tolist()).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def select_items(population: pd.DataFrame, qa_list: QaList, seed: int) -> pd.DataFrame:
    """The list's items in rank order (rank from 1), evaluators assigned. Same population and seed, same items.

    random + per_agent: each staff member's quota drawn uniformly (stratified by staff member);
    random + total: draws spread evenly over staff members (each one's first draw before anyone's second);
    sequential: earliest-ended first (per staff member, or overall for a total); all: every row.
    """
    frame = canonical_population(population).copy()
    frame.attrs.pop(_CANONICAL, None)
    frame["_key"] = np.random.default_rng(seed).random(len(frame))
    by_time = ["ended_at", "integration_id", "interaction_id"]
    if qa_list.type == "all":
        chosen = frame.sort_values(["staff_id", *by_time], kind="mergesort")
    elif qa_list.type == "random":
        frame = frame.sort_values(["staff_id", "_key"], kind="mergesort")
        if qa_list.per_agent is not None:
            chosen = frame.groupby("staff_id", sort=False).head(qa_list.per_agent)
        else:
            frame["_draw"] = frame.groupby("staff_id", sort=False).cumcount()
            chosen = frame.sort_values(["_draw", "_key"], kind="mergesort").head(qa_list.total)
    else:  # sequential
        if qa_list.per_agent is not None:
            frame = frame.sort_values(["staff_id", *by_time], kind="mergesort")
            chosen = frame.groupby("staff_id", sort=False).head(qa_list.per_agent)
        else:
            chosen = frame.sort_values(by_time, kind="mergesort").head(qa_list.total)
    items = chosen.reset_index(drop=True)[POPULATION_COLUMNS].copy()
    items.insert(0, "rank", np.arange(1, len(items) + 1))
    items["evaluator_id"] = assign_evaluators(items["staff_id"].tolist(), list(qa_list.evaluators))
    return items[ITEM_COLUMNS]


def assign_evaluators(staff_ids: list[str], evaluators: list[str]) -> list[str | None]:
    """Round-robin over the evaluators, in item order; an evaluator never gets their own conversation (the
    next one in the rotation takes it). None when no evaluator may take an item, or none is configured."""
    if not evaluators:
        return [None] * len(staff_ids)
    out: list[str | None] = []
    turn = 0
    for staff_id in staff_ids:
        chosen = None
        for step in range(len(evaluators)):
            candidate = evaluators[(turn + step) % len(evaluators)]
            if candidate != staff_id:
                chosen = candidate
                turn = (turn + step + 1) % len(evaluators)
                break
        out.append(chosen)
    return out


def shortfall_of(items: pd.DataFrame, qa_list: QaList, expected_staff: set[str]) -> dict[str, int]:
    """Per staff member, how many items short of the quota (only those short); `_total` for a total quota."""
    if qa_list.per_agent is not None:
        taken = items["staff_id"].value_counts().to_dict()
        short = {s: qa_list.per_agent - int(taken.get(s, 0)) for s in expected_staff | set(taken)}
        return {s: n for s, n in sorted(short.items()) if n > 0}
    if qa_list.total is not None and len(items) < qa_list.total:
        return {TOTAL_KEY: qa_list.total - len(items)}
    return {}


# ---- SQL: the population -----------------------------------------------------------------------------------


def _duration_seconds(dialect: str, started: sa.ColumnElement, ended: sa.ColumnElement) -> sa.ColumnElement:
    if dialect == "postgresql":
        return sa.func.extract("epoch", ended - started)
    return (sa.func.julianday(ended) - sa.func.julianday(started)) * 86400.0


def _messages_of(i: sa.Table, sender_type: str) -> list[sa.ColumnElement]:
    m = t.messages
    return [
        m.c.integration_id == i.c.integration_id,
        m.c.interaction_id == i.c.interaction_id,
        m.c.sender_type == sender_type,
        m.c.is_private.is_(False),
        m.c.dialog_type == settings.SCORED_DIALOG_TYPE,  # a survey's messages are not the conversation's
    ]


def _message_count(i: sa.Table, sender_type: str) -> sa.ScalarSelect:
    return sa.select(sa.func.count()).where(*_messages_of(i, sender_type)).scalar_subquery()


def _has_message(i: sa.Table, sender_type: str) -> sa.Exists:
    """At least one: an index probe that stops at the first message, cheaper than counting them all."""
    return sa.exists(sa.select(sa.literal(1)).where(*_messages_of(i, sender_type)))


_SQLITE_LOWER = "cx_lower"  # Python's str.lower on SQLite, whose own lower() folds ASCII letters only


def _lower(dialect: str, value: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.lower(value) if dialect == "postgresql" else getattr(sa.func, _SQLITE_LOWER)(value)


def _any_tag(dialect: str, tags: sa.ColumnElement, names: tuple[str, ...]) -> sa.Exists:
    """`tags` (a JSON list of names) holds one of `names`, letter case aside."""
    if dialect == "postgresql":
        each = sa.func.json_array_elements_text(sa.cast(tags, sa.JSON)).table_valued("value").alias("tag")
    else:
        each = sa.func.json_each(tags).table_valued("value").alias("tag")
    wanted = sorted({name.lower() for name in names})
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(_lower(dialect, each.c.value).in_(wanted)))


def _signal_filters(qa_list: QaList, i: sa.Table, dialect: str) -> list[sa.ColumnElement]:
    """The QA-signal filters: text ones letter case aside, scores as inclusive bounds (a missing score fails)."""
    f = qa_list.filters
    where: list[sa.ColumnElement] = []
    if f.tags:
        where.append(_any_tag(dialect, i.c.tags, f.tags))
    for name in SIGNAL_TEXT_FILTERS:
        values = getattr(f, name)
        if values and name != "tags":
            where.append(_lower(dialect, i.c[name]).in_(sorted({v.lower() for v in values})))
    for column, low, high in (
        (i.c.csat_score, f.min_csat, f.max_csat),
        (i.c.sentiment_score, f.min_sentiment, f.max_sentiment),
    ):
        if low is not None:
            where.append(column >= low)
        if high is not None:
            where.append(column <= high)
    return where


def population_query(qa_list: QaList, run_at: datetime, this_run_id: str, dialect: str) -> sa.Select:
    """Interactions of matched staff that ended in the period and pass the filters, minus what any list took
    within `exclude_listed_within_days` before this run."""
    i, m, s = t.interactions, t.agent_matches, t.staff
    start = run_at - timedelta(seconds=qa_list.period.seconds())
    f = qa_list.filters
    source = i.join(m, sa.and_(m.c.integration_id == i.c.integration_id, m.c.agent_id == i.c.agent_id))
    where = [m.c.staff_id.is_not(None), i.c.ended_at >= start, i.c.ended_at < run_at]
    if f.team:
        source = source.join(s, s.c.staff_id == m.c.staff_id)
        where.append(s.c.team.in_(f.team))
    if qa_list.integrations:
        where.append(i.c.integration_id.in_(qa_list.integrations))
    if f.status:
        where.append(i.c.status.in_(f.status))
    if f.channel:
        where.append(i.c.channel.in_(f.channel))
    if f.staff:
        where.append(m.c.staff_id.in_(f.staff))
    where.extend(_signal_filters(qa_list, i, dialect))
    duration = _duration_seconds(dialect, i.c.started_at, i.c.ended_at)
    if f.min_duration_seconds is not None:
        where.append(duration >= f.min_duration_seconds)
    if f.max_duration_seconds is not None:
        where.append(duration <= f.max_duration_seconds)
    for side, low, high in (
        ("agent", f.min_agent_messages, f.max_agent_messages),
        ("customer", f.min_customer_messages, f.max_customer_messages),
    ):
        if low == 1:
            where.append(_has_message(i, side))
        elif low is not None and low > 1:
            where.append(_message_count(i, side) >= low)
        if high is not None:
            where.append(_message_count(i, side) <= high)
    if f.flags or f.min_first_response_seconds is not None or f.max_first_response_seconds is not None:
        # Conversation analytics: only interactions the integration's analytics DAG computed pass.
        im = t.interaction_metrics
        source = source.join(
            im, sa.and_(im.c.integration_id == i.c.integration_id, im.c.interaction_id == i.c.interaction_id)
        )
        if f.flags:
            where.append(sa.or_(*[im.c.flags.like(f'%"{flag}"%') for flag in f.flags]))
        if f.min_first_response_seconds is not None:
            where.append(im.c.first_response_seconds >= f.min_first_response_seconds)
        if f.max_first_response_seconds is not None:
            where.append(im.c.first_response_seconds <= f.max_first_response_seconds)
    if qa_list.exclude_listed_within_days > 0:
        li, ql = t.qa_list_items, t.qa_lists
        listed = (
            sa.select(sa.literal(1))
            .select_from(li.join(ql, ql.c.list_run_id == li.c.list_run_id))
            .where(
                li.c.integration_id == i.c.integration_id,
                li.c.interaction_id == i.c.interaction_id,
                ql.c.list_run_id != this_run_id,
                ql.c.run_at <= run_at,
                ql.c.run_at >= run_at - timedelta(days=qa_list.exclude_listed_within_days),
            )
        )
        where.append(~sa.exists(listed))
    return (
        sa.select(i.c.integration_id, i.c.interaction_id, i.c.agent_id, m.c.staff_id, i.c.ended_at)
        .select_from(source)
        .where(*where)
    )


def _lower_text(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def read_population(warehouse: Warehouse, qa_list: QaList, run_at: datetime, this_run_id: str) -> pd.DataFrame:
    query = population_query(qa_list, run_at, this_run_id, warehouse.dialect)
    with warehouse.engine.connect() as conn:
        if warehouse.dialect == "sqlite":
            conn.connection.dbapi_connection.create_function(_SQLITE_LOWER, 1, _lower_text, deterministic=True)
        result = conn.execution_options(stream_results=True, yield_per=50_000).execute(query)
        chunks = [pd.DataFrame(part, columns=POPULATION_COLUMNS) for part in result.partitions()]
    if not chunks:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in POPULATION_COLUMNS})
    return pd.concat(chunks, ignore_index=True)


def expected_staff(warehouse: Warehouse, qa_list: QaList) -> set[str]:
    """Active staff matched to an agent of the list's integrations, within its team/staff filters: whoever
    the quota applies to, even with no eligible conversation (then they are short by the whole quota)."""
    m, s = t.agent_matches, t.staff
    query = (
        sa.select(m.c.staff_id)
        .distinct()
        .select_from(m.join(s, s.c.staff_id == m.c.staff_id))
        .where(s.c.is_active.is_(True))
    )
    if qa_list.integrations:
        query = query.where(m.c.integration_id.in_(qa_list.integrations))
    if qa_list.filters.team:
        query = query.where(s.c.team.in_(qa_list.filters.team))
    if qa_list.filters.staff:
        query = query.where(m.c.staff_id.in_(qa_list.filters.staff))
    with warehouse.engine.connect() as conn:
        return set(conn.execute(query).scalars())


# ---- a run -----------------------------------------------------------------------------------------------


def export_dir(warehouse: Warehouse) -> Path:
    """`CXSYNC_QA_EXPORT_DIR`, else `qa_lists/` next to the SQLite warehouse file (or the default file's place)."""
    env = os.environ.get(settings.QA_EXPORT_DIR_ENV)
    if env:
        return Path(env)
    url = warehouse.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / settings.QA_EXPORT_SUBDIR
    return default_sqlite_path().parent / settings.QA_EXPORT_SUBDIR


def build_list_run(warehouse: Warehouse, qa_list: QaList, run_at: datetime, *, export: bool = True) -> ListRun:
    """Build, record and export one run of a QA list. Re-running the same list at the same `run_at` replaces
    that run (same id, same seed, same items unless the data changed)."""
    run_at = run_at.astimezone(UTC)
    run_id = list_run_id(qa_list.id, run_at)
    start = run_at - timedelta(seconds=qa_list.period.seconds())
    seed = qa_list.seed if qa_list.seed is not None else default_seed(qa_list.id, start, run_at)
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    population = read_population(warehouse, qa_list, run_at, run_id)
    lap("population query")
    population = canonical_population(population)
    digest = population_hash(population)
    items = select_items(population, qa_list, seed)
    shortfall = shortfall_of(items, qa_list, expected_staff(warehouse, qa_list))
    lap("sampling")
    run = ListRun(run_id, qa_list.id, run_at, start, run_at, seed, len(population), digest, items, shortfall)
    log.info(
        "QA list %s run %s: period %s to %s, seed %d, population %d (hash %s), %d item(s)",
        qa_list.id,
        run_id,
        start.isoformat(),
        run_at.isoformat(),
        seed,
        len(population),
        digest[:12],
        len(items),
    )
    if shortfall:
        log.info("QA list %s: short of the quota: %s", qa_list.id, json.dumps(shortfall))
    unassigned = int(items["evaluator_id"].isna().sum()) if qa_list.evaluators else 0
    if unassigned:
        log.warning(
            "QA list %s: %d item(s) without an evaluator (each one's only evaluator is its agent)",
            qa_list.id,
            unassigned,
        )
    if export:
        details = item_details(warehouse, items)
        run.export_path, run.population_path = export_run(export_dir(warehouse), run, population, details)
        log.info(
            "QA list %s: items exported to %s (population for audits: %s)",
            qa_list.id,
            run.export_path,
            run.population_path,
        )
        lap("export")
    write_run(warehouse, run, qa_list)
    lap("write")
    run.timings = timings
    log.info("QA list %s: %s", qa_list.id, ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    return run


def item_details(warehouse: Warehouse, items: pd.DataFrame) -> pd.DataFrame:
    """DETAIL_COLUMNS of the items' interactions, keyed by `integration_id` and `interaction_id`."""
    i = t.interactions
    keys = ["integration_id", "interaction_id"]
    parts = []
    with warehouse.engine.connect() as conn:
        for integration_id, group in items.groupby("integration_id", sort=True):
            ids = group["interaction_id"].tolist()
            for start in range(0, len(ids), settings.UPSERT_BATCH_ROWS):
                query = sa.select(*(i.c[c] for c in (*keys, *DETAIL_COLUMNS))).where(
                    i.c.integration_id == integration_id,
                    i.c.interaction_id.in_(ids[start : start + settings.UPSERT_BATCH_ROWS]),
                )
                parts.append(pd.DataFrame(conn.execute(query).all(), columns=[*keys, *DETAIL_COLUMNS]))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (*keys, *DETAIL_COLUMNS)})
    return pd.concat(parts, ignore_index=True)


def export_run(
    directory: Path, run: ListRun, population: pd.DataFrame, details: pd.DataFrame | None = None
) -> tuple[Path, Path]:
    """`<list run id>.csv` (the items, for QA tools that import lists; with `details`, each one's DETAIL_COLUMNS)
    and `<list run id>.population.csv`."""
    directory.mkdir(parents=True, exist_ok=True)
    items_path = directory / f"{run.list_run_id}.csv"
    population_path = directory / f"{run.list_run_id}.population.csv"
    items = run.items.copy()
    if details is not None:
        items = items.merge(details, on=["integration_id", "interaction_id"], how="left")
    items.insert(0, "list_run_id", run.list_run_id)
    items.insert(0, "list_id", run.list_id)
    # The items file is for people and QA tools (spreadsheets): no cell may run as a formula. The population
    # file is read back by `read_population_csv` for audits and keeps its values exactly.
    items = items.map(safe_cell)
    for frame, path in ((items, items_path), (canonical_population(population), population_path)):
        partial = path.with_suffix(".csv.partial")
        frame.to_csv(partial, index=False)
        partial.replace(path)  # readers never see half a file
    return items_path, population_path


def write_run(warehouse: Warehouse, run: ListRun, qa_list: QaList) -> None:
    """The run and exactly its items, in one transaction (a re-run replaces the items of the same run id)."""
    head = {
        "list_run_id": run.list_run_id,
        "list_id": run.list_id,
        "run_at": run.run_at,
        "period_start": run.period_start,
        "period_end": run.period_end,
        "seed": run.seed,
        "population_size": run.population_size,
        "population_hash": run.population_hash,
        "item_count": len(run.items),
        "shortfall": to_json(run.shortfall),
        "definition": to_json(qa_list.definition()),
        "export_path": str(run.export_path) if run.export_path else None,
    }
    rows = [
        (
            run.list_run_id,
            r.integration_id,
            r.interaction_id,
            r.staff_id,
            r.agent_id,
            r.evaluator_id if isinstance(r.evaluator_id, str) else None,
            int(r.rank),
        )
        for r in run.items.itertuples(index=False)
    ]
    items = BulkUpsert(warehouse.engine.dialect, t.qa_list_items, ITEM_TABLE_COLUMNS, ITEM_KEY)
    stmt = warehouse._insert(t.qa_lists)
    upsert = stmt.on_conflict_do_update(
        index_elements=["list_run_id"], set_={c: stmt.excluded[c] for c in head if c != "list_run_id"}
    )
    with warehouse.engine.begin() as conn:
        conn.execute(upsert, [head])
        conn.execute(t.qa_list_items.delete().where(t.qa_list_items.c.list_run_id == run.list_run_id))
        for start in range(0, len(rows), settings.UPSERT_BATCH_ROWS * 4):
            items.execute(conn, rows[start : start + settings.UPSERT_BATCH_ROWS * 4])


# ---- reading runs back, audits ------------------------------------------------------------------------------


def list_runs(warehouse: Warehouse, list_id: str | None = None, limit: int = 100) -> list[dict]:
    """Recorded runs, newest first, JSON columns decoded."""
    q = t.qa_lists
    query = sa.select(q).order_by(q.c.run_at.desc(), q.c.list_run_id).limit(limit)
    if list_id is not None:
        query = query.where(q.c.list_id == list_id)
    with warehouse.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["shortfall"] = json.loads(row["shortfall"])
        row["definition"] = json.loads(row["definition"])
    return rows


def read_items(warehouse: Warehouse, run_id: str) -> pd.DataFrame:
    """A recorded run's items in rank order, with each interaction's end time and DETAIL_COLUMNS (None once
    retention removed it)."""
    li, i = t.qa_list_items, t.interactions
    query = (
        sa.select(
            li.c.rank,
            li.c.integration_id,
            li.c.interaction_id,
            li.c.agent_id,
            li.c.staff_id,
            li.c.evaluator_id,
            i.c.ended_at,
            *(i.c[c] for c in DETAIL_COLUMNS),
        )
        .select_from(
            li.outerjoin(
                i, sa.and_(i.c.integration_id == li.c.integration_id, i.c.interaction_id == li.c.interaction_id)
            )
        )
        .where(li.c.list_run_id == run_id)
        .order_by(li.c.rank)
    )
    with warehouse.engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=[*ITEM_COLUMNS, *DETAIL_COLUMNS])


def read_population_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A population exported with a run (`<list run id>.population.csv`), ready for `select_items`."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)[POPULATION_COLUMNS]


def rebuild_list_run(warehouse: Warehouse, run_id: str, population: pd.DataFrame | None = None) -> Rebuild:
    """Redo a recorded run from its definition and seed, on `population` (e.g. the exported CSV) or, without
    one, on the population the warehouse gives today for that run's time. `identical`: the items match the
    recorded ones; `population_unchanged`: the population hashes to the recorded hash."""
    q = t.qa_lists
    with warehouse.engine.connect() as conn:
        recorded = conn.execute(sa.select(q).where(q.c.list_run_id == run_id)).one_or_none()
    if recorded is None:
        raise KeyError(f"no QA list run {run_id!r} in cx_qa_lists")
    qa_list = QaList.from_definition(json.loads(recorded.definition))
    if population is None:
        population = read_population(warehouse, qa_list, recorded.run_at, run_id)
    items = select_items(population, qa_list, int(recorded.seed))
    stored = read_items(warehouse, run_id)
    key = ["rank", "integration_id", "interaction_id", "agent_id", "staff_id", "evaluator_id"]
    mine = items[key].astype(object).where(items[key].notna(), None).reset_index(drop=True)
    theirs = stored[key].astype(object).where(stored[key].notna(), None).reset_index(drop=True)
    mine["rank"], theirs["rank"] = mine["rank"].astype(int), theirs["rank"].astype(int)
    identical = mine.values.tolist() == theirs.values.tolist()
    return Rebuild(run_id, items, population_hash(population), recorded.population_hash, identical)
