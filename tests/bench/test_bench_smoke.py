"""Every benchmark module runs end to end at toy size (CXSYNC_BENCH_SCALE), so `make bench` cannot rot.

Timings are not asserted: at toy size on a shared machine they mean nothing. What is asserted is that each
module's `run()` finishes and returns its section with a verdict for its target; docs/benchmarks.md is not
written (only `python -m bench` writes it).
"""

from __future__ import annotations

import importlib
import sys

import pytest
from bench.__main__ import DOC, benchmark_names

SCALE = "0.01"


@pytest.fixture
def toy_size(monkeypatch):
    """Bench modules read their volumes at import: import them afresh at toy size, and forget them after."""
    monkeypatch.setenv("CXSYNC_BENCH_SCALE", SCALE)
    for name in [m for m in sys.modules if m == "bench" or m.startswith("bench.")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m.startswith("bench.")]:
        sys.modules.pop(name, None)


def test_every_benchmark_module_is_found():
    assert set(benchmark_names()) >= {
        "throughput",
        "rate_limit",
        "memory",
        "incremental",
        "retention",
        "parsing",
        "sandbox_page",
        "qa",
        "status_page",
        "reconciliation",
        "latency",
        "freshness",
        "helpdesk_requests",
    }


@pytest.mark.parametrize("name", sorted(benchmark_names()))
def test_the_benchmark_runs_at_toy_size(name, toy_size, request):
    if name in ("retention", "qa", "status_page"):
        request.getfixturevalue("pg_admin_engine")  # PostgreSQL only: skipped (or failed under CI) without it
    if name == "latency":
        request.getfixturevalue("redis_url")  # the shared rate limit's store: skipped (or failed under CI) without it
    doc_before = DOC.read_text() if DOC.exists() else None
    module = importlib.import_module(f"bench.{name}")
    assert module.TITLE
    body = module.run()
    assert isinstance(body, str) and "|" in body  # a table of figures
    if name != "sandbox_page":
        assert "Target" in body and ("**met**" in body or "**not met**" in body)
    assert (DOC.read_text() if DOC.exists() else None) == doc_before


def test_the_summary_lists_every_section_whatever_its_spacing():
    from bench.__main__ import summary_section

    page = (
        "<!-- bench:old -->\n\n## Old style\n\n- Date: 2026-11-21 15:05 UTC\n\n| a | **met** |\n<!-- /bench:old -->\n\n"
        "<!-- bench:new -->\n## New style\n\n- Date: 2026-12-05 20:31 UTC\n\n| b | **not met** |\n<!-- /bench:new -->\n"
    )
    summary = summary_section(page)
    assert "[Old style](#old-style) | 1 of 1 met | 2026-11-21 15:05 UTC" in summary
    assert "[New style](#new-style) | **1 of 1 not met** (see the section) | 2026-12-05 20:31 UTC" in summary
