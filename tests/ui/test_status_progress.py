"""A running backfill shows days done of days total and an estimate; the page reloads itself while a run is
under way, and stops doing so when nothing runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from cxsync import settings
from cxsync.ui import status
from cxsync.ui.app import templates

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_days_done_of_total_with_an_estimate_from_the_pace_so_far():
    started = NOW - timedelta(minutes=10)
    assert status.progress_text({"done": 5, "total": 25}, started, NOW) == "5 of 25 days done, about 40 minutes left"
    assert status.progress_text({"done": 0, "total": 28}, started, NOW) == "0 of 28 days done"
    assert status.progress_text({"done": 7, "total": 7}, started, NOW) == "7 of 7 days done"
    assert status.progress_text(None, started, NOW) is None  # the plan task has not made the days yet
    assert status.progress_text({"done": 0, "total": 0}, started, NOW) is None


def _render(running: bool) -> str:
    data = {"integrations": [], "warnings": [], "pools": [], "integrations_file": "x.yaml", "warehouse": "sqlite://",
            "running": running}  # fmt: skip
    request = SimpleNamespace(url=SimpleNamespace(path="/cxsync/"))
    return templates.env.get_template("status.html").render(
        request=request, base="/cxsync", airflow="", data=data, now=NOW, refresh_seconds=settings.UI_REFRESH_SECONDS
    )


def test_the_page_reloads_itself_only_while_something_runs():
    refresh = f'<meta http-equiv="refresh" content="{settings.UI_REFRESH_SECONDS}">'
    assert refresh in _render(running=True)
    assert "refresh" not in _render(running=False)
