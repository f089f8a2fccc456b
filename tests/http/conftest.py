"""Fixtures for request-layer tests: a scripted loopback HTTP server and a recording `sleep`."""

from __future__ import annotations

import pytest

from support.http_stub import Sleeps, Stub


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
