"""The integrations file: load, validate, and report errors that name the file, the entry and the field.

One bad entry never hides the good ones: `load_integrations` returns both the valid integrations and
the errors, and the DAG factory builds DAGs for the first and shows the second in the Airflow UI.
"""

from __future__ import annotations

import os
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cxsync import options as declared
from cxsync import registry, safe_yaml, settings
from cxsync.analytics.options import ThresholdOptions
from cxsync.redaction.options import RedactionPolicy, parse_pii_redaction

_ID_RE = re.compile(settings.INTEGRATION_ID_PATTERN)
_KNOWN_KEYS = {
    "id",
    "provider",
    "label",
    "description",
    "conn_id",
    "backfill_weeks",
    "retention",
    "conversation_analytics",
    "schedule",
    "options",
    "pii_redaction",
}
_TOP_LEVEL_KEYS = {"warehouse_conn_id", "integrations"}
# Airflow's cron presets (airflow.utils.dates.cron_presets); anything else must be a 5-field cron line.
_CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}


# Values quoted in error messages are cut short: YAML aliases let a few hundred bytes of file expand into a value
# whose full repr is tens of megabytes, and these messages land in task logs and DAG docs.
_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxset = 2, 6, 6, 6, 6
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 80, 80, 40


def _show(value: Any) -> str:
    """A value as it reads in an error message: its repr, cut to a few lines at most."""
    return _SHORT.repr(value)


class ConfigError(ValueError):
    """A problem with the integrations file; the message says where and what to fix."""


@dataclass(frozen=True)
class Retention:
    value: int
    unit: str
    # A scheduled run that would delete more than this share of the integration's interactions (or delete for
    # the first time) waits for a person's approval.
    approval_share: float = settings.RETENTION_APPROVAL_SHARE

    def __str__(self) -> str:
        # "1 year", not "1 years": the unit is stored plural, as the integrations file spells it
        return f"{self.value} {self.unit[:-1] if self.value == 1 else self.unit}"


@dataclass(frozen=True)
class Integration:
    id: str
    provider: str
    conn_id: str
    label: str
    description: str = ""
    backfill_weeks: int = settings.DEFAULT_BACKFILL_WEEKS
    retention: Retention = Retention(**settings.DEFAULT_RETENTION)
    conversation_analytics: bool = False
    schedule: str = settings.DEFAULT_SCHEDULE
    # Tunables (overlaps, window sizes, thresholds), as written: checked at load against the options declared for
    # every provider (`cxsync.options.CommonOptions`, the analytics thresholds) and the provider's own
    # (`ProviderSpec.options`); each reader takes its values through its declaration.
    options: dict[str, Any] = field(default_factory=dict)
    # PII redaction before storage (`pii_redaction`: cxsync.redaction.options); None: stored as the provider sends.
    pii_redaction: RedactionPolicy | None = None

    @property
    def common_options(self) -> declared.CommonOptions:
        return declared.parse(declared.CommonOptions, self.options, f"integration {self.id!r}")

    @property
    def reconcile_hours(self) -> float:
        """The look-back reconciled with the provider after each incremental load (option `reconcile_hours`); 0: off."""
        return float(self.common_options.reconcile_hours)


@dataclass
class IntegrationsConfig:
    path: Path
    warehouse_conn_id: str = settings.DEFAULT_WAREHOUSE_CONN_ID
    integrations: list[Integration] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def get(self, integration_id: str) -> Integration:
        for integration in self.integrations:
            if integration.id == integration_id:
                return integration
        raise ConfigError(f"{self.path}: no valid integration with id {integration_id!r}")


def integrations_path() -> Path:
    """`CXSYNC_INTEGRATIONS_FILE`, else include/integrations.yaml next to dags/ (the project root)."""
    env = os.environ.get(settings.INTEGRATIONS_FILE_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / settings.DEFAULT_INTEGRATIONS_FILE


def load_integrations(path: str | os.PathLike | None = None) -> IntegrationsConfig:
    """Read and validate the file. Raises ConfigError only when the file as a whole is unusable."""
    file_path = Path(path) if path is not None else integrations_path()
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file_path}: integrations file not found; create it or set {settings.INTEGRATIONS_FILE_ENV}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{file_path}: cannot read the integrations file: {reason}") from None
    try:
        document = safe_yaml.load(text)
    except safe_yaml.AliasBudgetExceeded as exc:
        raise ConfigError(f"{file_path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file_path}: not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{file_path}: the top level must be a mapping with an `integrations` list")

    config = IntegrationsConfig(path=file_path)
    unknown = sorted(map(str, set(document) - _TOP_LEVEL_KEYS))
    if unknown:
        config.errors.append(
            f"{file_path}: unknown top-level field(s) {', '.join(map(_show, unknown))}; "
            f"allowed: {', '.join(sorted(_TOP_LEVEL_KEYS))}"
        )
    conn = document.get("warehouse_conn_id", settings.DEFAULT_WAREHOUSE_CONN_ID)
    if not isinstance(conn, str) or not conn.strip():
        config.errors.append(f"{file_path}: field `warehouse_conn_id`: must be a non-empty string")
    else:
        config.warehouse_conn_id = conn
    entries = document.get("integrations", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ConfigError(f"{file_path}: field `integrations`: must be a list of integration entries")

    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = _entry_name(file_path, index, entry)
        problems: list[str] = []
        integration = _parse_entry(entry, problems)
        if integration is not None and integration.id in seen:
            problems.append(f"field `id`: duplicate id {integration.id!r}; every integration id must be unique")
            integration = None
        if problems:
            config.errors.extend(f"{where}: {p}" for p in problems)
            continue
        assert integration is not None
        seen.add(integration.id)
        config.integrations.append(integration)
    return config


def _entry_name(file_path: Path, index: int, entry: Any) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    label = f" (id {_show(ident)})" if isinstance(ident, str) and ident else ""
    return f"{file_path}: integrations[{index}]{label}"


def _parse_entry(entry: Any, problems: list[str]) -> Integration | None:
    if not isinstance(entry, dict):
        problems.append("must be a mapping with at least id, provider and conn_id")
        return None
    unknown = sorted(map(str, set(entry) - _KNOWN_KEYS))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(map(_show, unknown))}; allowed: {', '.join(sorted(_KNOWN_KEYS))}")

    ident = entry.get("id")
    if not isinstance(ident, str) or not _ID_RE.fullmatch(ident):
        problems.append(f"field `id`: {_show(ident)} must match {settings.INTEGRATION_ID_PATTERN} (e.g. lp_main)")
    elif len(ident) > settings.MAX_INTEGRATION_ID_LENGTH:
        # The id is part of DAG ids and tags, which Airflow limits (250 and 100 characters).
        problems.append(f"field `id`: {_show(ident)} is longer than {settings.MAX_INTEGRATION_ID_LENGTH} characters")

    provider = entry.get("provider")
    if not isinstance(provider, str) or provider not in registry.PROVIDERS:
        problems.append(f"field `provider`: {_show(provider)} must be one of {', '.join(registry.PROVIDERS)}")
        provider = None

    conn_id = entry.get("conn_id")
    if not isinstance(conn_id, str) or not conn_id.strip():
        problems.append("field `conn_id`: required; the Airflow connection holding this integration's credentials")

    label = entry.get("label", ident if isinstance(ident, str) else "")
    if not isinstance(label, str):
        problems.append(f"field `label`: {_show(label)} must be a string")
    description = entry.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        problems.append(f"field `description`: {_show(description)} must be a string")

    weeks = entry.get("backfill_weeks", settings.DEFAULT_BACKFILL_WEEKS)
    if (
        isinstance(weeks, bool)
        or not isinstance(weeks, int)
        or not (settings.MIN_BACKFILL_WEEKS <= weeks <= settings.MAX_BACKFILL_WEEKS)
    ):
        problems.append(
            f"field `backfill_weeks`: {_show(weeks)} must be an integer from {settings.MIN_BACKFILL_WEEKS} "
            f"to {settings.MAX_BACKFILL_WEEKS}"
        )

    retention = _parse_retention(entry.get("retention", settings.DEFAULT_RETENTION), problems)

    analytics = entry.get("conversation_analytics", False)
    if not isinstance(analytics, bool):
        problems.append(f"field `conversation_analytics`: {_show(analytics)} must be true or false")

    schedule = entry.get("schedule", settings.DEFAULT_SCHEDULE)
    if isinstance(schedule, str):
        schedule = settings.SCHEDULE_PRESETS.get(schedule.strip(), schedule)
    if not isinstance(schedule, str) or not _valid_cron(schedule):
        presets = sorted(_CRON_PRESETS | set(settings.SCHEDULE_PRESETS))
        problems.append(
            f'field `schedule`: {_show(schedule)} is not a valid 5-field cron expression (e.g. "0 2 * * *") '
            f"or preset ({', '.join(presets)})"
        )

    options = entry.get("options", {}) or {}
    if not isinstance(options, dict):
        problems.append(f"field `options`: {_show(options)} must be a mapping")
    else:
        problems.extend(option_problems(provider, options))

    pii_redaction = parse_pii_redaction(entry.get("pii_redaction", False), problems)

    if problems:
        return None
    return Integration(
        id=ident,
        provider=provider,
        conn_id=conn_id,
        label=label or ident,
        description=description,
        backfill_weeks=weeks,
        retention=retention,
        conversation_analytics=analytics,
        schedule=schedule,
        options=dict(options),
        pii_redaction=pii_redaction,
    )


def option_schemas(provider: str | None) -> list[type]:
    """The option declarations an integration of this provider is checked against (its provider's last)."""
    schemas: list[type] = [declared.CommonOptions, ThresholdOptions]
    if provider is not None:
        own = registry.options_schema(provider)
        if own is not None:
            schemas.append(own)
    return schemas


def option_problems(provider: str | None, options: dict[str, Any]) -> list[str]:
    """What is wrong with an entry's options, each naming its field. With an unknown provider only the options
    every provider takes are checked."""
    schemas = option_schemas(provider)
    problems = [
        f"field `options.{name}`: {what}" for schema in schemas for name, what in declared.problems(schema, options)
    ]
    if provider is not None:
        allowed = sorted({name for schema in schemas for name in declared.names(schema)})
        unknown = sorted(map(str, set(options) - set(allowed)))
        if unknown:
            problems.append(
                f"field `options`: unknown option(s) {', '.join(map(_show, unknown))} for provider {provider}; "
                f"allowed: {', '.join(allowed)}"
            )
    return problems


def _parse_retention(value: Any, problems: list[str]) -> Retention | None:
    if not isinstance(value, dict):
        problems.append(f"field `retention`: {_show(value)} must be a mapping like {{value: 90, unit: days}}")
        return None
    amount, unit = value.get("value"), value.get("unit")
    ok = True
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        problems.append(f"field `retention.value`: {_show(amount)} must be a whole number greater than 0")
        ok = False
    if unit not in settings.RETENTION_UNITS:
        problems.append(f"field `retention.unit`: {_show(unit)} must be one of {', '.join(settings.RETENTION_UNITS)}")
        ok = False
    share = value.get("approval_share", settings.RETENTION_APPROVAL_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        problems.append(
            f"field `retention.approval_share`: {_show(share)} must be a number from 0 to 1 (the share of the "
            "integration's interactions a scheduled run may delete without approval; 0: always ask)"
        )
        ok = False
    extra = sorted(set(value) - {"value", "unit", "approval_share"})
    if extra:
        problems.append(
            f"field `retention`: unknown key(s) {', '.join(map(_show, extra))}; allowed: value, unit, approval_share"
        )
        ok = False
    return Retention(amount, unit, float(share)) if ok else None


def _valid_cron(expression: str) -> bool:
    from croniter import croniter

    expression = expression.strip()
    if expression.startswith("@"):
        return expression in _CRON_PRESETS
    # croniter also takes a 6th (seconds) field, which Airflow's cron timetables do not mean.
    return len(expression.split()) == 5 and croniter.is_valid(expression)
