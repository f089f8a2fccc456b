"""The sandbox's late visibility: a per-provider lag (reads show the world that many minutes ago) and a one-off
backlog (records created in a window appear hours late), through the admin API, the CLI and the real APIs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from cxsync.hooks.helpdesk import HelpDeskHook
from cxsync.hooks.liveperson import LivePersonHook
from cxsync_dev.sandbox.__main__ import build_parser, faults_from_args
from cxsync_dev.sandbox.core import FaultSettings, Sandbox
from support.providers import connection_env, sandbox_connections

T0 = "2025-03-14T09:30:00+00:00"


@pytest.fixture
def server(sandbox_factory, monkeypatch):
    server = sandbox_factory(lp_conversations_per_day=48, hd_tickets_per_day=24, hd_days=2, lp_days=2)
    for name, value in connection_env(sandbox_connections(server)).items():
        monkeypatch.setenv(name, value)
    return server


def admin(server, method: str, path: str, body=None) -> dict:
    answer = requests.request(method, f"{server.base_url}/_sandbox{path}", json=body, timeout=30)
    answer.raise_for_status()
    return answer.json()


def lp_listing(start: datetime) -> list:
    hook = LivePersonHook("sandbox_liveperson_main")
    try:
        body = {"start": {"from": int(start.timestamp() * 1000), "to": int(start.timestamp() * 1000) + 3 * 86400000}}
        answer = hook.search_conversations(body, offset=0, limit=100)
        return answer["conversationHistoryRecords"]
    finally:
        hook.close()


def hd_listing() -> list:
    hook = HelpDeskHook("sandbox_helpdesk_main")
    try:
        return [row for page in hook.ticket_pages(silo="tickets", sort_by="createdAt", order="desc") for row in page]
    finally:
        hook.close()


def test_with_a_lag_every_read_shows_the_world_that_long_ago(server):
    start = datetime.fromisoformat(T0) - timedelta(hours=20)
    lp_before, hd_before = lp_listing(start), hd_listing()
    admin(server, "POST", "/clock", {"advance": "50m"})
    assert len(lp_listing(start)) > len(lp_before) or len(hd_listing()) > len(hd_before)  # the world moved on
    for provider in ("liveperson", "helpdesk"):
        assert admin(server, "PUT", f"/faults/{provider}", {"visibility_lag_minutes": 50})["visibility_lag_minutes"]
    assert lp_listing(start) == lp_before
    assert hd_listing() == hd_before
    # Reads by id lag as well: a ticket created in the last 50 minutes is not found yet.
    admin(server, "PUT", "/faults/helpdesk", {"visibility_lag_minutes": 0})
    newest = hd_listing()[0]
    admin(server, "PUT", "/faults/helpdesk", {"visibility_lag_minutes": 50})
    if newest["ID"] not in {row["ID"] for row in hd_before}:
        hook = HelpDeskHook("sandbox_helpdesk_main")
        try:
            with pytest.raises(Exception, match="404"):
                hook.ticket(newest["ID"])
        finally:
            hook.close()


def test_a_backlog_holds_records_back_until_hours_after_its_end(server):
    start = datetime.fromisoformat(T0) - timedelta(hours=20)
    frm, until = datetime.fromisoformat(T0) - timedelta(hours=8), datetime.fromisoformat(T0) - timedelta(hours=2)

    def inside_lp(records):
        return {
            r["info"]["conversationId"]
            for r in records
            if frm.timestamp() * 1000 <= r["info"]["startTimeL"] < until.timestamp() * 1000
        }

    def inside_hd(rows):
        return {r["ID"] for r in rows if frm <= datetime.fromisoformat(r["createdAt"].replace("Z", "+00:00")) < until}

    lp_all, hd_all = inside_lp(lp_listing(start)), inside_hd(hd_listing())
    assert lp_all and hd_all
    backlog = {"backlog_from": frm.isoformat(), "backlog_until": until.isoformat(), "backlog_hours": 3}
    for provider in ("liveperson", "helpdesk"):
        admin(server, "PUT", f"/faults/{provider}", backlog)
    assert inside_lp(lp_listing(start)) == set() and inside_hd(hd_listing()) == set()
    admin(server, "POST", "/clock", {"advance": "1h"})  # until + 3 h: out
    assert inside_lp(lp_listing(start)) >= lp_all and inside_hd(hd_listing()) >= hd_all


def test_bad_late_visibility_settings_are_refused_plainly(server):
    for body, words in (
        ({"visibility_lag_minutes": -5}, "visibility_lag_minutes must be a number >= 0"),
        ({"backlog_from": "2025-03-14T10:00:00Z"}, "backlog_from and backlog_until go together"),
        ({"backlog_from": "2025-03-14T10:00:00Z", "backlog_until": "2025-03-14T09:00:00Z"}, "must be after"),
        ({"backlog_from": "soon", "backlog_until": "later"}, "ISO 8601"),
    ):
        answer = requests.put(f"{server.base_url}/_sandbox/faults/helpdesk", json=body, timeout=10)
        assert answer.status_code == 400 and words in answer.text, (body, answer.text)


def test_cli_flags_set_late_visibility_per_provider():
    args = build_parser().parse_args(
        [
            "--lp-visibility-lag",
            "50",
            "--hd-backlog-from",
            "2025-03-14T10:30:00Z",
            "--hd-backlog-until",
            "2025-03-14T11:30:00Z",
            "--hd-backlog-hours",
            "6",
        ]
    )
    faults = faults_from_args(args)
    assert faults["liveperson"].visibility_lag_minutes == 50 and faults["liveperson"].backlog_window() is None
    sandbox = Sandbox(seed=1, now="2025-03-14T12:00:00Z", faults=faults)
    assert sandbox.view_time("liveperson") == sandbox.clock.now() - timedelta(minutes=50)
    assert sandbox.view_time("helpdesk") == sandbox.clock.now()
    created = datetime.fromisoformat("2025-03-14T11:00:00+00:00")
    assert sandbox.in_backlog("helpdesk", created) and not sandbox.in_backlog("liveperson", created)
    sandbox.clock.advance(timedelta(hours=5, minutes=30))  # 11:30 + 6 h
    assert not sandbox.in_backlog("helpdesk", created)
    with pytest.raises(ValueError, match="must be after"):
        FaultSettings(backlog_from="2025-03-14T10:00:00Z", backlog_until="2025-03-14T10:00:00Z").validate()
