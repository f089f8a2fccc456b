"""Fixtures that run the sandbox providers on a free loopback port.

- `sandbox_server`: a started `SandboxServer` with small volumes, a fixed seed and a fixed clock.
- `sandbox_factory(seed=..., now=..., faults={provider: FaultSettings}, **options)`: the same with your
  options (volumes by option name, e.g. `lp_agents=3`); every server it starts stops after the test.
Each provider module may define `TEST_OPTIONS` (its small volumes); they are the defaults here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cxsync_dev.sandbox.app import provider_modules
from cxsync_dev.sandbox.core import FaultSettings, Sandbox
from cxsync_dev.sandbox.server import SandboxServer

SANDBOX_NOW = "2025-03-14T09:30:00+00:00"
SANDBOX_SEED = 7


def small_options() -> dict[str, Any]:
    options: dict[str, Any] = {}
    for module in provider_modules().values():
        options.update(getattr(module, "TEST_OPTIONS", {}))
    return options


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    servers: list[SandboxServer] = []

    def start(
        seed: int | str = SANDBOX_SEED,
        now: str | None = SANDBOX_NOW,
        faults: dict[str, FaultSettings] | None = None,
        **options: Any,
    ) -> SandboxServer:
        sandbox = Sandbox(seed=seed, now=now, options={**small_options(), **options}, faults=faults)
        server = SandboxServer(sandbox).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox_server(sandbox_factory: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox_factory()
