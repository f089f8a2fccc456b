"""The analytics thresholds of an integration: `options` of its entry in the integrations file.

| option | means | default (liveperson / helpdesk) |
|---|---|---|
| `long_first_response_seconds` | `long_first_response` when the first response took longer | 120 / 28800 |
| `long_wait_seconds` | `long_wait` when a customer waited longer for an agent | 300 / 86400 |
| `many_agents` | `many_agents` when at least this many agents wrote | 3 / 3 |

The defaults are the provider's (`ProviderSpec.analytics_thresholds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cxsync import options as declared
from cxsync.options import option


@dataclass(frozen=True)
class ThresholdOptions:
    """The options every provider takes for analytics; None: the provider's default."""

    long_first_response_seconds: int | None = option(None, minimum=1)
    long_wait_seconds: int | None = option(None, minimum=1)
    many_agents: int | None = option(None, minimum=2)


@dataclass(frozen=True)
class Thresholds:
    long_first_response_seconds: int
    long_wait_seconds: int
    many_agents: int

    @classmethod
    def for_integration(cls, provider: str, options: Mapping[str, Any] | None) -> Thresholds:
        """The provider's defaults, overridden by the integration's options (validated by the config)."""
        from cxsync.registry import PROVIDERS

        values = dict(PROVIDERS[provider].analytics_thresholds)
        given = declared.parse(ThresholdOptions, options, f"provider {provider!r}")
        values.update({k: v for k, v in vars(given).items() if v is not None})
        return cls(**values)
