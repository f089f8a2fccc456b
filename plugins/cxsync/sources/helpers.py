"""Helpers every provider's mapping shares: stream names, the mapping error convention, text and time conversions.

Pure functions, no provider in them: a mapping module (`<provider>_mapping.py`) imports what it needs from
here instead of writing its own `as_text` or ISO reader again.

The one mapping error convention: a `map_*` function returns its record or raises `MappingError(reason)`, the
reason a person can act on; the source turns it into a `RejectedRecord` (`rejected`, `map_all`), a row of
`cx_rejected_records`, and the run goes on. A part rejected on its own (a HelpDesk message event) is caught by
the mapping of the whole, which loads without it and hands the part's rejection back with the record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from cxsync.records import RejectedRecord

T = TypeVar("T")

# The streams a rejected record names (cx_rejected_records.stream).
INTERACTIONS_STREAM = "interactions"
AGENTS_STREAM = "agents"
GROUPS_STREAM = "agent_groups"
SKILLS_STREAM = "skills"
TEAMS_STREAM = "teams"


class MappingError(ValueError):
    """A record that cannot be mapped: the message is the reason stored with the rejected record; `key` is the
    record's id when the mapping could read one."""

    def __init__(self, reason: str, key: str | None = None):
        super().__init__(reason)
        self.key = key


def rejected(stream: str, error: MappingError, raw: Any, key: str | None = None) -> RejectedRecord:
    """The `cx_rejected_records` row of a record its mapping refused (the error's key, else `key`)."""
    return RejectedRecord(stream, error.key if error.key is not None else key, str(error), raw)


def keyed_object(raw: Any, what: str, id_field: str) -> str:
    """The id (`raw[id_field]` as text) of a record that must be a JSON object with one; `MappingError` naming
    `what` ("an agent", "a user") and the field otherwise."""
    if not isinstance(raw, Mapping):
        raise MappingError(f"{what} must be a JSON object, got {type(raw).__name__}")
    key = as_text(raw.get(id_field))
    if not key:
        raise MappingError(f"the {what.split(' ', 1)[-1]} has no `{id_field}`")
    return key


def map_all(
    map_one: Callable[[Any], T],
    raws: Iterable[Any],
    stream: str,
    key_of: Callable[[Any], str | None] = lambda raw: None,
) -> tuple[list[T], list[RejectedRecord]]:
    """Every record mapped, and the ones refused as rejected records (keyed by `key_of` when the error has none)."""
    mapped: list[T] = []
    refused: list[RejectedRecord] = []
    for raw in raws:
        try:
            mapped.append(map_one(raw))
        except MappingError as exc:
            refused.append(rejected(stream, exc, raw, key_of(raw)))
    return mapped, refused


def as_text(value: Any) -> str | None:
    """Ids arrive as numbers or strings: always text; blanks (and objects or lists, which no id is) are None.
    12.0 stays "12"."""
    if type(value) is str:  # most ids and names: the fast path (this runs for every field of every message)
        text = value.strip()
        return text or None
    if value is None or isinstance(value, bool | Mapping | list):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def as_list(value: Any) -> list:
    """An optional list section: the list; empty when absent or malformed (not a list), which only loses
    what that section would have added."""
    return value if isinstance(value, list) else []


def parse_iso_time(value: Any) -> datetime | None:
    """ISO 8601 (`Z` or an offset; naive is UTC) to aware UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def dig(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]...`, None as soon as a step is not an object."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
