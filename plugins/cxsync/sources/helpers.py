"""Helpers every provider's mapping shares: stream names, text and time conversions.

Pure functions, no provider in them: a mapping module (`<provider>_mapping.py`) imports what it needs from
here instead of writing its own `as_text` or ISO reader again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# The streams a rejected record names (cx_rejected_records.stream).
INTERACTIONS_STREAM = "interactions"
AGENTS_STREAM = "agents"
GROUPS_STREAM = "agent_groups"
SKILLS_STREAM = "skills"
TEAMS_STREAM = "teams"


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
