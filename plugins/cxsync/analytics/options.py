"""The analytics thresholds of an integration: `options` of its entry in the integrations file.

| option | means | default (liveperson / helpdesk) |
|---|---|---|
| `long_first_response_seconds` | `long_first_response` when the first response took longer | 120 / 28800 |
| `long_wait_seconds` | `long_wait` when a customer waited longer for an agent | 300 / 86400 |
| `many_agents` | `many_agents` when at least this many agents wrote | 3 / 3 |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cxsync import settings

# option -> smallest allowed value
OPTION_MINIMUMS = {"long_first_response_seconds": 1, "long_wait_seconds": 1, "many_agents": 2}


@dataclass(frozen=True)
class Thresholds:
    long_first_response_seconds: int
    long_wait_seconds: int
    many_agents: int

    @classmethod
    def for_integration(cls, provider: str, options: Mapping[str, Any] | None) -> Thresholds:
        """The provider's defaults, overridden by the integration's options (validated by the config)."""
        values = dict(settings.ANALYTICS_DEFAULT_THRESHOLDS[provider])
        values.update({k: v for k, v in (options or {}).items() if k in OPTION_MINIMUMS})
        return cls(**values)


def option_problems(options: Mapping[str, Any]) -> list[str]:
    """What is wrong with the analytics options of one entry, each naming its field."""
    problems = []
    for name, minimum in OPTION_MINIMUMS.items():
        if name not in options:
            continue
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            problems.append(f"field `options.{name}`: {value!r} must be a whole number >= {minimum}")
    return problems
