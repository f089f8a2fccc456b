"""Provider-neutral test harness over the sandbox: one sandbox serving LivePerson and HelpDesk, its admin API,
connections pointing at it, and per provider what a test needs to compare the warehouse with the ground truth.

- `start_sandbox(seed, now, **options)`: a started `SandboxServer` with small volumes of both providers, whose
  history (6 days) a one-week backfill covers entirely, so "equal to the ground truth" is exact.
- `SandboxAdmin`: clock, faults, counters and ground truth through `/_sandbox/...`, for either provider.
- `sandbox_connections(server, **extras)`: its Airflow connections as dicts, with millisecond retries.
- `PROVIDERS["liveperson"|"helpdesk"]`: a `ProviderCase` that builds integrations and sources and says what the
  warehouse must hold for a ground truth (`expected`), in the same shape as what it holds (`loaded`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from cxsync.config import Integration, Retention
from cxsync_dev.sandbox.core import Sandbox
from cxsync_dev.sandbox.server import SandboxServer
from support.helpdesk import HD_OPTIONS, expected_from_truth, warehouse_view
from support.liveperson import expected_interaction, small_options, warehouse_interactions

SANDBOX_NOW = "2025-03-14T09:30:00+00:00"
SEED = 23
# Six days of history of both providers: a one-week backfill loads all of it.
OPTIONS: dict[str, Any] = {**small_options(), "lp_days": 6, "lp_conversations_per_day": 12, **HD_OPTIONS}
# The request layer's tunables: retries and 429 waits of milliseconds, no client-side pacing.
FAST_EXTRAS: dict[str, Any] = {
    "requests_per_second": 0,
    "retry_base_seconds": 0.002,
    "retry_max_seconds": 0.01,
    "rate_limit_min_wait": 0.002,
    "max_attempts": 8,
    "timeout": 10,
    "connect_timeout": 5,
}
NO_FAULTS: dict[str, Any] = {
    "rate_limit_rps": None,
    "retry_after": True,
    "p_5xx": 0.0,
    "p_reset": 0.0,
    "p_slow": 0.0,
    "p_truncate": 0.0,
    "p_partial": 0.0,
    "p_is_partial": 0.0,
}


def start_sandbox(seed: int | str = SEED, now: str | None = SANDBOX_NOW, **options: Any) -> SandboxServer:
    return SandboxServer(Sandbox(seed=seed, now=now, options={**OPTIONS, **options})).start()


class SandboxAdmin:
    """The sandbox's admin API (never faulted), for both providers."""

    def __init__(self, server: SandboxServer):
        self.server = server
        self.session = requests.Session()

    def call(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        answer = self.session.request(
            method, f"{self.server.base_url}/_sandbox{path}", json=body, params=params, timeout=30
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def now(self) -> datetime:
        return datetime.fromisoformat(self.call("GET", "/clock")["now"])

    def advance(self, duration: str) -> datetime:
        return datetime.fromisoformat(self.call("POST", "/clock", {"advance": duration})["now"])

    def faults(self, provider: str, **settings: Any) -> dict[str, Any]:
        """Set the named fault settings of `provider` (the others keep their values)."""
        return self.call("PUT", f"/faults/{provider}", settings)

    def no_faults(self, provider: str) -> None:
        self.faults(provider, **NO_FAULTS)

    def counters(self) -> dict[str, Any]:
        return self.call("GET", "/counters")

    def reset_counters(self) -> None:
        self.call("DELETE", "/counters")

    def requests_served(self, provider: str, endpoint: str | None = None) -> int:
        served = self.counters()["requests"].get(provider, {})
        if endpoint is None:
            return served.get("total", 0)
        return sum(served.get("by_endpoint", {}).get(endpoint, {}).values())

    def faults_injected(self, provider: str) -> dict[str, int]:
        return self.counters()["faults"].get(provider, {})

    def truth(self, provider: str, at: datetime | None = None) -> list[dict[str, Any]]:
        params = {"at": at.isoformat()} if at is not None else None
        return self.call("GET", f"/truth/{provider}", params=params)["interactions"]

    def helpdesk_refresh_token(self) -> str:
        return self.call("POST", "/helpdesk/oauth/refresh-token")["refresh_token"]


def sandbox_connections(server: SandboxServer, **extras: Any) -> dict[str, dict[str, Any]]:
    """Every connection the sandbox declares, with `FAST_EXTRAS` and `extras` merged into each one's extra."""
    out = {}
    for conn_id, text in server.connection_uris().items():
        conn = json.loads(text)
        conn["extra"] = {**conn.get("extra", {}), **FAST_EXTRAS, **extras}
        out[conn_id] = conn
    return out


def connection_env(conns: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """`{AIRFLOW_CONN_<ID>: JSON}` for the connections."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(dict(conn)) for conn_id, conn in conns.items()}


@dataclass(frozen=True)
class ProviderCase:
    """What a provider-neutral test needs to know about one provider."""

    name: str
    conn_id: str  # the sandbox's connection with every permission
    source_path: str  # "module:Class"
    # ground truth (as the admin API gives it) -> {interaction_id: comparable dict}
    expected: Callable[[list[dict[str, Any]]], dict[str, dict[str, Any]]]
    # (warehouse, integration id) -> the same shape, from cx_interactions and cx_messages
    loaded: Callable[[Any, str], dict[str, dict[str, Any]]]

    def integration(self, integration_id: str, conn_id: str | None = None, **options: Any) -> Integration:
        retention = options.pop("retention", Retention(90, "days"))
        return Integration(
            id=integration_id,
            provider=self.name,
            conn_id=conn_id or self.conn_id,
            label=f"{self.name} {integration_id}",
            retention=retention,
            options=options,
        )

    def source(self, integration: Integration) -> Any:
        from cxsync.registry import load

        return load(self.source_path)(integration)


def _lp_expected(truth: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["interaction_id"]: expected_interaction(t) for t in truth}


def _lp_loaded(warehouse: Any, integration_id: str) -> dict[str, dict[str, Any]]:
    return warehouse_interactions(warehouse.engine, integration_id)


PROVIDERS: dict[str, ProviderCase] = {
    "liveperson": ProviderCase(
        "liveperson", "sandbox_liveperson_main", "cxsync.sources.liveperson:LivePersonSource", _lp_expected, _lp_loaded
    ),
    "helpdesk": ProviderCase(
        "helpdesk",
        "sandbox_helpdesk_main",
        "cxsync.sources.helpdesk:HelpDeskSource",
        expected_from_truth,
        warehouse_view,
    ),
}


def first_difference(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """A short account of how two {interaction_id: row} maps differ, for assertion messages."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing or extra:
        return f"missing {missing[:5]} ({len(missing)}), unexpected {extra[:5]} ({len(extra)})"
    for key in sorted(expected):
        if actual[key] != expected[key]:
            fields = sorted(f for f in expected[key] if actual[key].get(f) != expected[key].get(f))
            return f"interaction {key} differs in {fields}"
    return "no difference"
