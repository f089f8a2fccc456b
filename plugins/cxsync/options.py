"""Integration options (`options:` of an entry in the integrations file), declared as frozen dataclasses.

Each field is one option: its type annotation (`int`, `float`, `tuple[str, ...]`), its default and its bounds
(`option(default, minimum=..., maximum=...)`). The declaration is the single truth: the config checks an entry's
options against it when the integrations file is loaded (a bad option lands in `cxsync_config_errors`, naming
file, entry and field), and the source reads its values from it (`parse`).

Every provider takes `CommonOptions` and the analytics thresholds (`cxsync.analytics.options`); its source
declares its own options in the dataclass its `ProviderSpec.options` names.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from cxsync import settings

T = TypeVar("T")


def option(
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    check: Callable[[Any], str | None] | None = None,
    help: str = "",
    minimum_means: str = "",
) -> Any:
    """A dataclass field that is an integration option. `help`: what the value counts ("hours"); `minimum_means`:
    what the minimum does ("no reconciliation"); `check(value)` returns what else is wrong, or None."""
    if isinstance(default, list):
        default = tuple(default)
    return field(
        default=default,
        metadata={
            "minimum": minimum,
            "maximum": maximum,
            "check": check,
            "help": help,
            "minimum_means": minimum_means,
        },
    )


@dataclass(frozen=True)
class CommonOptions:
    """Options every provider takes."""

    # The look-back compared with the provider's lists after every incremental load; 0 turns it off.
    reconcile_hours: float = option(
        settings.DEFAULT_RECONCILE_HOURS,
        minimum=0,
        maximum=settings.MAX_RECONCILE_HOURS,
        help="hours",
        minimum_means="no reconciliation",
    )
    # Reconcile only when the last pass ended at least this long ago (by the provider's clock); 0: after every load.
    reconcile_every_hours: float = option(
        settings.DEFAULT_RECONCILE_EVERY_HOURS,
        minimum=0,
        maximum=settings.MAX_RECONCILE_HOURS,
        help="hours",
        minimum_means="after every incremental load",
    )
    # The status page warns when the integration's data is older than this; 0: automatic (two schedule intervals,
    # at least the interval plus two hours).
    freshness_warn_hours: float = option(0, minimum=0, maximum=24 * 366, help="hours", minimum_means="automatic")


def names(schema: type) -> list[str]:
    return [f.name for f in fields(schema)]


def problems(schema: type, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(option, what is wrong) for each option of `schema` in `options` whose value does not fit; in the
    declaration's order. Options not in the schema are left to the caller."""
    hints = typing.get_type_hints(schema)
    found = []
    for f in fields(schema):
        if f.name in options:
            wrong = _wrong(hints[f.name], f.metadata, options[f.name])
            if wrong:
                found.append((f.name, wrong))
    return found


def parse(schema: type[T], options: Mapping[str, Any] | None, where: str) -> T:
    """The schema's values from `options` (its defaults for those not given); other keys are ignored.
    Raises ConfigError naming `where` (e.g. "integration 'lp_main'") and the option."""
    options = options or {}
    wrong = problems(schema, options)
    if wrong:
        from cxsync.config import ConfigError

        raise ConfigError("; ".join(f"{where}: option `{name}`: {what}" for name, what in wrong))
    hints = typing.get_type_hints(schema)
    given = {}
    for f in fields(schema):
        if f.name in options:
            value = options[f.name]
            given[f.name] = tuple(value) if _is_tuple(hints[f.name]) else value
    return schema(**given)


def _is_tuple(annotation: Any) -> bool:
    return typing.get_origin(annotation) is tuple


def _number_kind(annotation: Any) -> type | None:
    """int or float for `int`, `float` and their optional forms (`int | None`); else None."""
    if annotation in (int, float):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 and args[0] in (int, float) else None


def _bounds(meta: Mapping[str, Any]) -> str:
    low, high = meta.get("minimum"), meta.get("maximum")
    low_text = "" if low is None else f"{low:g}" + (f" ({meta['minimum_means']})" if meta.get("minimum_means") else "")
    if low is not None and high is not None:
        return f" from {low_text} to {high:g}"
    if low is not None:
        return f" >= {low_text}"
    if high is not None:
        return f" <= {high:g}"
    return ""


def _wrong(annotation: Any, meta: Mapping[str, Any], value: Any) -> str | None:
    kind = _number_kind(annotation)
    unit = f" of {meta['help']}" if meta.get("help") else ""
    if kind is not None:
        ok = isinstance(value, kind if kind is int else int | float) and not isinstance(value, bool)
        low, high = meta.get("minimum"), meta.get("maximum")
        if ok and ((low is not None and value < low) or (high is not None and value > high)):
            ok = False
        if not ok:
            what = "a whole number" if kind is int else "a number"
            return f"{value!r:.80} must be {what}{unit}{_bounds(meta)}"
    elif _is_tuple(annotation):
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
            return f"{value!r:.80} must be a list of non-empty strings{unit}"
    elif annotation is str:
        if not isinstance(value, str):
            return f"{value!r:.80} must be a string{unit}"
    elif annotation is bool and not isinstance(value, bool):
        return f"{value!r:.80} must be true or false{unit}"
    check = meta.get("check")
    return check(value) if check else None
