"""Fixtures of the fault tests: a sandbox serving both providers, its admin API, and connections to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cxsync_dev.sandbox.server import SandboxServer
from support.providers import SandboxAdmin, connection_env, sandbox_connections, start_sandbox


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = start_sandbox()
    yield server
    server.stop()


@pytest.fixture
def admin(sandbox: SandboxServer) -> SandboxAdmin:
    return SandboxAdmin(sandbox)


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, dict[str, Any]]]:
    """`connect(server, **extras)`: point every sandbox connection at `server` (AIRFLOW_CONN_* for this test)."""

    def export(server: SandboxServer, **extras: Any) -> dict[str, dict[str, Any]]:
        conns = sandbox_connections(server, **extras)
        for name, value in connection_env(conns).items():
            monkeypatch.setenv(name, value)
        return conns

    return export
