"""The QA lists file (`include/qa_lists.yaml`): load, validate, report errors naming the file, entry and field.

Like the integrations file: one bad list never hides the good ones; `load_qa_lists` returns both, and the DAG
factory builds one DAG per good list and shows the errors in the Airflow UI. A missing default file means no
lists; a broken file is one error, never an import error that would hide the ingestion DAGs.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cxsync import safe_yaml, settings
from cxsync.config import _valid_cron

_ID_RE = re.compile(settings.QA_LIST_ID_PATTERN)
_KNOWN_KEYS = {
    "id",
    "label",
    "description",
    "type",
    "integrations",
    "period",
    "per_agent",
    "total",
    "filters",
    "exclude_listed_within_days",
    "seed",
    "evaluators",
    "schedule",
}
STATUSES = ("open", "closed")
_LIST_FILTERS = ("status", "channel", "team", "staff", "flags")
# QA signals of the interaction (cx_interactions): matched case-insensitively, since each provider spells them its
# own way (`AGENT`, `Refund`); `tags` passes an interaction with any of the names.
SIGNAL_TEXT_FILTERS = ("tags", "close_reason", "skill", "agent_group", "priority")
# Inclusive bounds on the interaction's scores: an interaction without the score never passes them.
SIGNAL_SCORE_FILTERS = ("min_csat", "max_csat", "min_sentiment", "max_sentiment")
_SENTIMENT_RANGE = (0, 100)  # LivePerson MCS
# Filters on conversation analytics (cx_interaction_metrics): only interactions with metrics pass them.
_METRIC_FILTERS = ("min_first_response_seconds", "max_first_response_seconds")
_COUNT_FILTERS = (
    "min_agent_messages",
    "max_agent_messages",
    "min_customer_messages",
    "max_customer_messages",
    "min_duration_seconds",
    "max_duration_seconds",
)


@dataclass(frozen=True)
class Period:
    last: int
    unit: str  # hours | days | weeks

    def seconds(self) -> int:
        return self.last * {"hours": 3600, "days": 86400, "weeks": 7 * 86400}[self.unit]


@dataclass(frozen=True)
class Filters:
    status: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()
    team: tuple[str, ...] = ()
    staff: tuple[str, ...] = ()
    min_agent_messages: int | None = None
    max_agent_messages: int | None = None
    min_customer_messages: int | None = None
    max_customer_messages: int | None = None
    min_duration_seconds: int | None = None
    max_duration_seconds: int | None = None
    flags: tuple[str, ...] = ()  # any of these analytics flags
    min_first_response_seconds: float | None = None
    max_first_response_seconds: float | None = None
    tags: tuple[str, ...] = ()  # any of these tag names
    close_reason: tuple[str, ...] = ()
    skill: tuple[str, ...] = ()
    agent_group: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    min_csat: float | None = None
    max_csat: float | None = None
    min_sentiment: float | None = None
    max_sentiment: float | None = None


@dataclass(frozen=True)
class QaList:
    id: str
    type: str
    period: Period
    label: str = ""
    description: str = ""
    integrations: tuple[str, ...] = ()  # empty: every integration
    per_agent: int | None = None
    total: int | None = None
    filters: Filters = Filters()
    exclude_listed_within_days: int = 0
    seed: int | None = None
    evaluators: tuple[str, ...] = ()
    schedule: str = settings.QA_LIST_DEFAULT_SCHEDULE

    def definition(self) -> dict[str, Any]:
        """What a run records in `cx_qa_lists.definition`; `from_definition` reads it back."""
        return asdict(self)

    @classmethod
    def from_definition(cls, data: dict[str, Any]) -> QaList:
        data = dict(data)
        data["period"] = Period(**data["period"])
        filters = dict(data.get("filters") or {})
        for key in (*_LIST_FILTERS, *SIGNAL_TEXT_FILTERS):
            filters[key] = tuple(filters.get(key) or ())
        data["filters"] = Filters(**filters)
        for key in ("integrations", "evaluators"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


@dataclass
class QaListsConfig:
    path: Path
    lists: list[QaList] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def get(self, list_id: str) -> QaList:
        for qa_list in self.lists:
            if qa_list.id == list_id:
                return qa_list
        raise KeyError(f"{self.path}: no valid QA list with id {list_id!r}")


def qa_lists_path() -> tuple[Path, bool]:
    """The file, and whether it was named explicitly (`CXSYNC_QA_LISTS_FILE`)."""
    env = os.environ.get(settings.QA_LISTS_FILE_ENV)
    if env:
        return Path(env), True
    return Path(__file__).resolve().parents[3] / settings.DEFAULT_QA_LISTS_FILE, False


def load_qa_lists(path: str | os.PathLike | None = None) -> QaListsConfig:
    explicit = path is not None
    if path is None:
        file_path, explicit = qa_lists_path()
    else:
        file_path = Path(path)
    config = QaListsConfig(path=file_path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            config.errors.append(f"{file_path}: QA lists file not found; create it or fix {settings.QA_LISTS_FILE_ENV}")
        return config
    except (OSError, UnicodeDecodeError) as exc:
        config.errors.append(f"{file_path}: cannot read the QA lists file: {exc}")
        return config
    try:
        document = safe_yaml.load(text)
    except safe_yaml.AliasBudgetExceeded as exc:
        config.errors.append(f"{file_path}: {exc}")
        return config
    except yaml.YAMLError as exc:
        config.errors.append(f"{file_path}: not valid YAML: {exc}")
        return config
    if document is None:
        return config
    if not isinstance(document, dict) or not isinstance(document.get("lists", []), list | None):
        config.errors.append(f"{file_path}: the top level must be a mapping with a `lists` list")
        return config
    unknown = sorted(map(str, set(document) - {"lists"}))
    if unknown:
        config.errors.append(f"{file_path}: unknown top-level field(s) {', '.join(map(repr, unknown))}; allowed: lists")
    seen: set[str] = set()
    for index, entry in enumerate(document.get("lists") or []):
        ident = entry.get("id") if isinstance(entry, dict) else None
        where = f"{file_path}: lists[{index}]" + (f" (id {ident!r})" if isinstance(ident, str) and ident else "")
        problems: list[str] = []
        qa_list = _parse_entry(entry, problems)
        if qa_list is not None and qa_list.id in seen:
            problems.append(f"field `id`: duplicate id {qa_list.id!r}; every list id must be unique")
        if problems:
            config.errors.extend(f"{where}: {p}" for p in problems)
            continue
        assert qa_list is not None
        seen.add(qa_list.id)
        config.lists.append(qa_list)
    return config


def _whole(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _texts(value: Any, name: str, problems: list[str]) -> tuple[str, ...]:
    """A string or a list of strings."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        problems.append(f"field `{name}`: {value!r} must be a non-empty string or list of strings")
        return ()
    return tuple(v.strip() for v in items)


def _parse_entry(entry: Any, problems: list[str]) -> QaList | None:
    if not isinstance(entry, dict):
        problems.append("must be a mapping with at least id, type and period")
        return None
    unknown = sorted(map(str, set(entry) - _KNOWN_KEYS))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_KNOWN_KEYS))}")
    ident = entry.get("id")
    if not isinstance(ident, str) or not _ID_RE.fullmatch(ident):
        problems.append(f"field `id`: {ident!r} must match {settings.QA_LIST_ID_PATTERN} (e.g. weekly_random)")
    elif len(ident) > settings.MAX_INTEGRATION_ID_LENGTH:
        problems.append(f"field `id`: longer than {settings.MAX_INTEGRATION_ID_LENGTH} characters")
    kind = entry.get("type")
    if kind not in settings.QA_LIST_TYPES:
        problems.append(f"field `type`: {kind!r} must be one of {', '.join(settings.QA_LIST_TYPES)}")
    for name in ("label", "description"):
        if not isinstance(entry.get(name, ""), str):
            problems.append(f"field `{name}`: must be a string")

    integrations = _texts(entry.get("integrations"), "integrations", problems)
    evaluators = _texts(entry.get("evaluators"), "evaluators", problems)
    period = _parse_period(entry.get("period"), problems)

    per_agent, total = entry.get("per_agent"), entry.get("total")
    if kind == "all":
        if per_agent is not None or total is not None:
            problems.append("fields `per_agent` / `total`: a list of type `all` takes every eligible interaction")
    elif kind in settings.QA_LIST_TYPES and (per_agent is None) == (total is None):
        problems.append("fields `per_agent` / `total`: give exactly one (e.g. per_agent: 3 or total: 50)")
    for name, value in (("per_agent", per_agent), ("total", total)):
        if value is not None and not _whole(value, 1):
            problems.append(f"field `{name}`: {value!r} must be a whole number greater than 0")

    filters = _parse_filters(entry.get("filters") or {}, problems)
    exclude = entry.get("exclude_listed_within_days", 0)
    if not _whole(exclude, 0):
        problems.append(f"field `exclude_listed_within_days`: {exclude!r} must be a whole number of days (0: off)")
    seed = entry.get("seed")
    if seed is not None and not (_whole(seed, 0) and seed < 2**63):
        problems.append(f"field `seed`: {seed!r} must be a whole number from 0 to 2**63-1")
    schedule = entry.get("schedule", settings.QA_LIST_DEFAULT_SCHEDULE)
    if schedule is not None and (not isinstance(schedule, str) or not _valid_cron(schedule)):
        problems.append(f'field `schedule`: {schedule!r} is not a valid 5-field cron expression (e.g. "0 6 * * 1")')
    if problems:
        return None
    return QaList(
        id=ident,
        type=kind,
        period=period,
        label=entry.get("label") or ident,
        description=entry.get("description") or "",
        integrations=integrations,
        per_agent=per_agent,
        total=total,
        filters=filters,
        exclude_listed_within_days=exclude,
        seed=seed,
        evaluators=evaluators,
        schedule=schedule,
    )


def _parse_period(value: Any, problems: list[str]) -> Period | None:
    if not isinstance(value, dict) or set(value) - {"last", "unit"}:
        problems.append(f"field `period`: {value!r} must be a mapping like {{last: 7, unit: days}}")
        return None
    last, unit = value.get("last"), value.get("unit", "days")
    ok = True
    if not _whole(last, 1):
        problems.append(f"field `period.last`: {last!r} must be a whole number greater than 0")
        ok = False
    if unit not in settings.QA_PERIOD_UNITS:
        problems.append(f"field `period.unit`: {unit!r} must be one of {', '.join(settings.QA_PERIOD_UNITS)}")
        ok = False
    return Period(last, unit) if ok else None


def _parse_filters(value: Any, problems: list[str]) -> Filters:
    if not isinstance(value, dict):
        problems.append(f"field `filters`: {value!r} must be a mapping")
        return Filters()
    allowed = _LIST_FILTERS + SIGNAL_TEXT_FILTERS + SIGNAL_SCORE_FILTERS + _COUNT_FILTERS + _METRIC_FILTERS
    unknown = sorted(map(str, set(value) - set(allowed)))
    if unknown:
        problems.append(
            f"field `filters`: unknown filter(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )
    out: dict[str, Any] = {}
    for name in (*_LIST_FILTERS, *SIGNAL_TEXT_FILTERS):
        out[name] = _texts(value.get(name), f"filters.{name}", problems)
    bad_status = [s for s in out["status"] if s not in STATUSES]
    if bad_status:
        problems.append(f"field `filters.status`: {bad_status[0]!r} must be one of {', '.join(STATUSES)}")
    bad_flags = [flag for flag in out["flags"] if flag not in settings.ANALYTICS_FLAGS]
    if bad_flags:
        problems.append(
            f"field `filters.flags`: {bad_flags[0]!r} is not an analytics flag; "
            f"one of {', '.join(settings.ANALYTICS_FLAGS)}"
        )
    for name in _METRIC_FILTERS:
        number = value.get(name)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float) or number < 0):
            problems.append(f"field `filters.{name}`: {number!r} must be a number of seconds, 0 or more")
        else:
            out[name] = number
    for name in _COUNT_FILTERS:
        number = value.get(name)
        if number is not None and not _whole(number, 0):
            problems.append(f"field `filters.{name}`: {number!r} must be a whole number, 0 or more")
        else:
            out[name] = number
    for name in SIGNAL_SCORE_FILTERS:
        number = value.get(name)
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int | float) or number != number:
            problems.append(f"field `filters.{name}`: {number!r} must be a number (e.g. {name}: 2)")
        elif name.endswith("_sentiment") and not _SENTIMENT_RANGE[0] <= number <= _SENTIMENT_RANGE[1]:
            problems.append(f"field `filters.{name}`: {number!r} must be from 0 to 100 (the MCS scale)")
        elif name.endswith("_csat") and number < 0:
            problems.append(f"field `filters.{name}`: {number!r} must be 0 or more")
        else:
            out[name] = float(number)
    bounds = (*_COUNT_FILTERS, *SIGNAL_SCORE_FILTERS)
    for low, high in zip(bounds[::2], bounds[1::2], strict=True):
        lo, hi = out.get(low), out.get(high)
        if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
            problems.append(f"field `filters.{low}`: {lo} is more than `filters.{high}` ({hi})")
    return Filters(**out)
