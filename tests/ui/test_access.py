"""Every route of the cxsync app refuses anonymous and unprivileged requests, against the real api-server.

The routes come from the app itself, so a route added later is checked too: it must declare its access
(`cxsync.ui.security.require`) or this test fails.
"""

from __future__ import annotations

import re

import pytest
import requests
from fastapi.routing import APIRoute

from cxsync.ui.app import app

pytestmark = pytest.mark.browser

# Routes a viewer (read-only Airflow role) may use; every other route needs more than read access.
READ_ONLY = {
    "status_page",
    "status_api",
    "stylesheet",
    "script",
    "agents_page",
    "lists_page",
    "list_csv",
    "list_run_page",
    "transcript_page",
}


def routes() -> list[tuple[str, str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            for method in sorted(route.methods - {"HEAD"}):
                found.append(
                    (
                        route.name,
                        method,
                        "/cxsync" + path + ("?conn_id=sandbox_helpdesk_oauth" if "connect" in path else ""),
                    )
                )
    return found


ROUTES = routes()


def test_the_app_has_the_documented_pages():
    names = {name for name, _, _ in ROUTES}
    assert {"status_page", "status_api", "agents_page", "agents_override", "lists_page", "list_csv"} <= names
    assert {"connect_helpdesk", "connect_helpdesk_start", "connect_helpdesk_callback"} <= names
    assert names > READ_ONLY


def test_every_route_refuses_anonymous_requests(ui_server):
    for name, method, path in ROUTES:
        api = requests.request(method, ui_server.url + path, allow_redirects=False, timeout=30)
        assert api.status_code == 401, (name, method, api.status_code, api.text[:200])
        if method == "GET":  # a browser is sent to Airflow's login page, coming back here afterwards
            page = requests.get(
                ui_server.url + path, headers={"Accept": "text/html"}, allow_redirects=False, timeout=30
            )
            assert page.status_code == 303 and "/auth/login?next=" in page.headers["location"], (name, page.status_code)
        forged = requests.request(
            method, ui_server.url + path, cookies={"_token": "not-a-jwt"}, allow_redirects=False, timeout=30
        )
        assert forged.status_code == 401, (name, method, forged.status_code)


def test_every_route_refuses_a_user_without_permission(ui_server):
    """`nobody` is signed in but has no Airflow role: refused everywhere. `viewer` may only read."""
    for user, allowed in (("nobody", set()), ("viewer", READ_ONLY)):
        headers = {"Authorization": f"Bearer {ui_server.token(user)}"}
        for name, method, path in ROUTES:
            answer = requests.request(method, ui_server.url + path, headers=headers, allow_redirects=False, timeout=30)
            if name in allowed:
                assert answer.status_code in (200, 404), (user, name, answer.status_code, answer.text[:300])
            else:
                assert answer.status_code == 403, (user, name, method, answer.status_code, answer.text[:300])
                assert "may not" in answer.json()["detail"]


def test_posts_need_the_csrf_token_and_this_site_as_origin(ui_server):
    session = requests.Session()
    session.cookies.set("_token", ui_server.token("admin"))
    page = session.get(ui_server.url + "/cxsync/agents", timeout=30)
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {"integration_id": "hd_main", "agent_id": "nope", "action": "clear"}
    for name, method, path in ROUTES:
        if method != "POST":
            continue
        missing = session.post(ui_server.url + path, data=form, allow_redirects=False, timeout=30)
        assert missing.status_code == 403 and "CSRF" in missing.json()["detail"], (name, missing.text)
        wrong = session.post(
            ui_server.url + path, data={**form, "csrf_token": "x" * 43}, allow_redirects=False, timeout=30
        )
        assert wrong.status_code == 403, name
        cross_site = session.post(
            ui_server.url + path,
            data={**form, "csrf_token": token},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
            timeout=30,
        )
        assert cross_site.status_code == 403 and "Cross-site" in cross_site.json()["detail"], name
    ok = session.post(ui_server.url + "/cxsync/agents/override", data={**form, "csrf_token": token},
                      allow_redirects=False, timeout=30)  # fmt: skip
    assert ok.status_code == 303


def test_the_navigation_entry_points_at_the_pages(ui_server):
    plugins = requests.get(
        ui_server.url + "/api/v2/plugins", headers={"Authorization": f"Bearer {ui_server.token('admin')}"}, timeout=30
    ).json()["plugins"]
    cxsync = next(p for p in plugins if p["name"] == "cxsync")
    assert any(v["href"] == "/cxsync/" and v["nav_top_level"] for v in cxsync["external_views"])
    assert cxsync["fastapi_apps"][0]["url_prefix"] == "/cxsync"
