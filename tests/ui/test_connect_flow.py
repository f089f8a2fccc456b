"""Connect HelpDesk through the cxsync app, without a browser: the app mounted as the api-server mounts it (under
`/cxsync`, inside Airflow's access-log middleware), an auth manager that grants edit access per connection and
team, and the sandbox's authorize page and token URL (which check the PKCE verifier).

The metadata database is the one thing played here: connections are read from, and the refresh token written
to, a dict (`read_connection` / `store_refresh_token`), so the tests see exactly which connection got written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import structlog
from airflow.api_fastapi.common.http_access_log import HttpAccessLogMiddleware
from airflow.models.connection import Connection
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cxsync import helpdesk_oauth, settings
from cxsync.ui import connect_state, security
from cxsync.ui.app import app
from support.helpdesk import AuthorizePage

BASE_URL = "http://127.0.0.1:8080"  # Airflow's [api] base_url: where the redirect URI points
CALLBACK = BASE_URL + "/cxsync/connect/helpdesk/callback"
TEAMS = {"hd_blue": "blue", "hd_red": "red"}


@dataclass
class User:
    name: str
    grants: set[tuple[str, str | None]] = field(default_factory=set)  # (conn_id, team) it may edit

    def get_name(self) -> str:
        return self.name


class PerConnectionAuthManager:
    """Grants reading to everyone and edit access only to the (connection, team) pairs a user holds."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None, str | None]] = []

    def is_authorized_dag(self, *, method: str, user: User, details: Any = None) -> bool:
        if method == "GET":
            return True
        return details is not None and (f"dag:{details.id}", details.team_name) in user.grants

    def is_authorized_connection(self, *, method: str, user: User, details: Any = None) -> bool:
        conn_id, team = (details.conn_id, details.team_name) if details is not None else (None, None)
        self.asked.append((method, conn_id, team))
        return method == "PUT" and (conn_id, team) in user.grants


@dataclass
class Ui:
    client: TestClient
    manager: PerConnectionAuthManager
    stored: list[tuple[str, str]]
    current: dict[str, User]

    def as_user(self, user: User) -> None:
        self.current["user"] = user

    def page(self, conn_id: str) -> str:
        answer = self.client.get("/cxsync/connect/helpdesk", params={"conn_id": conn_id})
        assert answer.status_code == 200, answer.text
        return answer.text

    def start(self, conn_id: str, **headers: str) -> Any:
        token = re.search(r'name="csrf_token" value="([^"]+)"', self.page(conn_id)).group(1)
        return self.client.post(
            "/cxsync/connect/helpdesk",
            params={"conn_id": conn_id},
            data={"csrf_token": token},
            headers=headers,
            follow_redirects=False,
        )

    def csrf(self) -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', self.page("hd_blue")).group(1)


def approve(authorize_url: str) -> str:
    """What the user's browser does at the sandbox's authorize page; the callback URL it is sent back to."""
    page = requests.get(authorize_url, timeout=30)
    assert page.status_code == 200 and urlsplit(page.url).path != "/ooops", page.text[:300]
    form = AuthorizePage()
    form.feed(page.text)
    answer = requests.post(
        authorize_url.split("/?", 1)[0] + form.action,
        data={**form.fields, form.buttons["approve"]: "approve"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302
    return answer.headers["location"]


def local(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL, url
    return parts.path + "?" + parts.query


@pytest.fixture
def ui(hd_sandbox, monkeypatch) -> Ui:
    hd = hd_sandbox()
    oauth = hd.connection("sandbox_helpdesk_oauth")
    for conn_id in TEAMS:
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)

    def read_connection(conn_id: str) -> Connection:
        if conn_id not in TEAMS:
            raise helpdesk_oauth.ConnectError(f"no connection {conn_id!r}")
        fields = {k: oauth[k] for k in ("conn_type", "host", "schema", "port", "login", "password")}
        return Connection(conn_id=conn_id, extra=json.dumps(oauth["extra"]), **fields)

    stored: list[tuple[str, str]] = []

    def store_refresh_token(conn_id: str, airflow_conn: Any, refresh_token: str) -> helpdesk_oauth.ConnectResult:
        stored.append((conn_id, refresh_token))
        return helpdesk_oauth.ConnectResult(conn_id, None, "metadata database")

    monkeypatch.setattr(helpdesk_oauth, "read_connection", read_connection)
    monkeypatch.setattr(helpdesk_oauth, "store_refresh_token", store_refresh_token)
    monkeypatch.setattr(Connection, "get_team_name", staticmethod(lambda conn_id, **_: TEAMS.get(conn_id)))
    manager = PerConnectionAuthManager()
    monkeypatch.setattr("airflow.api_fastapi.app.get_auth_manager", lambda: manager)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    monkeypatch.setenv("AIRFLOW__API__SECRET_KEY", "test-secret-key-for-signing")
    current = {"user": User("blue_op", {("hd_blue", "blue")})}
    app.dependency_overrides[security.current_user] = lambda: current["user"]
    server = FastAPI()
    server.mount("/cxsync", app)  # as the api-server mounts plugin apps, inside its access log
    server.add_middleware(HttpAccessLogMiddleware)
    try:
        yield Ui(TestClient(server, base_url=BASE_URL), manager, stored, current)
    finally:
        app.dependency_overrides.pop(security.current_user, None)


def test_the_connection_written_is_the_one_checked_with_its_team(ui):
    started = ui.start("hd_blue")
    assert started.status_code == 303
    authorize_url = started.headers["location"]
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["redirect_uri"] == [CALLBACK]
    assert settings.UI_CONNECT_COOKIE_CONN not in started.cookies  # the connection travels in the signed state
    callback = approve(authorize_url)
    done = ui.client.get(local(callback), follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/cxsync/"
    assert [conn_id for conn_id, _ in ui.stored] == ["hd_blue"]
    assert ("PUT", "hd_blue", "blue") in ui.manager.asked  # the team went to the auth manager
    assert all(conn_id in (None, "hd_blue") for _, conn_id, _ in ui.manager.asked)


def test_a_connection_named_elsewhere_than_the_signed_state_is_never_written(ui):
    """The old attack: the URL names the connection the user may edit (the check passed on it) and a cookie
    names another (the callback wrote that one). Only the signed state counts now."""
    callback = approve(ui.start("hd_blue").headers["location"])
    ui.client.cookies.set(settings.UI_CONNECT_COOKIE_CONN, "hd_red", path="/cxsync/connect/helpdesk")
    done = ui.client.get(local(callback) + "&conn_id=hd_blue", follow_redirects=False)
    assert done.status_code == 303
    assert [conn_id for conn_id, _ in ui.stored] == ["hd_blue"]


def test_edit_access_to_another_connection_or_another_team_is_not_enough(ui):
    ui.as_user(User("red_op", {("hd_red", "red")}))
    assert ui.client.get("/cxsync/connect/helpdesk", params={"conn_id": "hd_blue"}).status_code == 403
    # access to a connection of that name in no team does not reach the one that belongs to team blue
    ui.as_user(User("teamless_op", {("hd_blue", None)}))
    refused = ui.client.get("/cxsync/connect/helpdesk", params={"conn_id": "hd_blue"})
    assert refused.status_code == 403 and "connection 'hd_blue'" in refused.json()["detail"]
    assert ui.stored == []


def test_a_state_altered_or_started_by_another_user_is_refused(ui):
    started = ui.start("hd_blue")
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    nonce, _, user, issued, signature = state.split(".")
    red = connect_state._b64("hd_red")
    forged = ".".join((nonce, red, user, issued, signature))
    ui.as_user(User("both_op", {("hd_blue", "blue"), ("hd_red", "red")}))
    _replace_cookie(ui.client, settings.UI_CONNECT_COOKIE_STATE, forged)
    answer = ui.client.get(
        "/cxsync/connect/helpdesk/callback", params={"state": forged, "code": "dal:x"}, follow_redirects=False
    )
    assert answer.status_code == 400 and "not issued by this Airflow" in answer.text
    # the genuine state of blue_op's sign-in, completed by someone else
    ui.client.cookies.clear()
    ui.as_user(User("blue_op", {("hd_blue", "blue")}))
    callback = approve(ui.start("hd_blue").headers["location"])
    ui.as_user(User("other_op", {("hd_blue", "blue")}))
    other = ui.client.get(local(callback), follow_redirects=False)
    assert other.status_code == 400 and "started by another Airflow user" in other.text
    assert ui.stored == []


def test_the_redirect_uri_comes_from_the_configured_base_url_not_the_host_header(ui):
    started = ui.start("hd_blue", host="evil.example")
    assert parse_qs(urlsplit(started.headers["location"]).query)["redirect_uri"] == [CALLBACK]


def test_an_unset_base_url_is_said_plainly(ui, monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL")
    monkeypatch.setattr("airflow.configuration.conf.get", _conf_without_base_url(), raising=True)
    page = ui.client.get("/cxsync/connect/helpdesk", params={"conn_id": "hd_blue"})
    assert page.status_code == 400 and "[api] base_url is not set" in page.text


def _conf_without_base_url():
    from airflow.configuration import conf

    original = conf.get

    def get(section: str, key: str, *args: Any, **kwargs: Any) -> Any:
        if (section, key) == ("api", "base_url"):
            return kwargs.get("fallback")
        return original(section, key, *args, **kwargs)

    return get


def test_the_authorization_code_never_reaches_the_access_log(ui):
    callback = approve(ui.start("hd_blue").headers["location"])
    code = parse_qs(urlsplit(callback).query)["code"][0]
    with structlog.testing.capture_logs() as logs:
        done = ui.client.get(local(callback), follow_redirects=False)
        ui.client.get("/cxsync/connect/helpdesk/callback", params={"code": "dal:another-code", "state": "x"})
    assert done.status_code == 303 and ui.stored
    lines = [entry for entry in logs if entry.get("event") == "request finished"]
    assert len(lines) == 2 and all("code=%5Bredacted%5D" in entry["query"] for entry in lines)
    assert code not in json.dumps(logs, default=str) and "another-code" not in json.dumps(logs, default=str)


def test_the_page_opens_the_sign_in_in_a_top_level_tab_and_comes_back(ui):
    """Real sign-in pages refuse to be framed and Airflow's iframe sandbox forbids pop-ups: the form targets a
    new tab and is submitted from Airflow's own (top) document; the page then says where a refusal shows, polls
    for the end of the sign-in, and goes back to the status page."""
    page = ui.page("hd_blue")
    form = re.search(r"<form[^>]*id=\"connect-form\"[^>]*>|<form[^>]*target=\"_blank\"[^>]*>", page, re.S).group(0)
    assert 'target="_blank"' in form and 'action="/cxsync/connect/helpdesk?conn_id=hd_blue"' in form
    assert "window.top.document" in page and 'copy.target = "_blank"' in page and "copy.submit()" in page
    assert 'var statusPage = "/cxsync/"' in page and "/cxsync/connect/helpdesk/pending?conn_id=hd_blue" in page
    hint = re.search(r'<p id="connect-refusal">(.*?)</p>', page, re.S).group(1)
    assert "http://127.0.0.1" in hint and "/ooops shows the reason" in hint and "code_challenge_method=s256" in hint
    assert 'id="connect-cancel"' in page


def test_pending_and_cancel(ui):
    pending = "/cxsync/connect/helpdesk/pending?conn_id=hd_blue"
    assert ui.client.get(pending).json() == {"pending": False, "conn_id": None, "done": ""}
    assert ui.client.get("/cxsync/connect/helpdesk/pending?conn_id=hd_red").status_code == 403
    callback = approve(ui.start("hd_blue").headers["location"])
    assert ui.client.get(pending).json() == {"pending": True, "conn_id": "hd_blue", "done": ""}
    waiting_page = ui.page("hd_blue")  # rendered with the marker as it is now; the page polls for a change
    cancelled = ui.client.post(
        "/cxsync/connect/helpdesk/cancel?conn_id=hd_blue", data={"csrf_token": ui.csrf()}, follow_redirects=False
    )
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "/cxsync/"
    after = ui.client.get(pending).json()
    assert after["pending"] is False and after["done"] and 'var doneBefore = ""' in waiting_page
    late = ui.client.get(local(callback), follow_redirects=False)
    assert late.status_code == 400 and "No HelpDesk sign-in is under way" in late.text
    assert ui.stored == []


def test_a_sign_in_the_provider_refuses_lands_on_its_error_page(ui, monkeypatch):
    """With RFC 7636's spelling the sandbox (as LiveChat documents) refuses on /ooops: nothing comes back, which
    is why the page says where the reason is shown."""
    original = helpdesk_oauth.pkce_method
    monkeypatch.setattr(
        helpdesk_oauth, "pkce_method", lambda extra, conn_id: "S256" if original(extra, conn_id) else ""
    )
    url = ui.start("hd_blue").headers["location"]
    landing = requests.get(url, timeout=30)
    assert urlsplit(landing.url).path == "/ooops" and "code_challenge_method" in landing.text
    assert "S256" in ui.page("hd_blue")


def test_the_code_exchange_carries_the_verifier_the_sandbox_checks(ui):
    """A wrong verifier (the cookie swapped) is refused by the token URL: nothing stored."""
    callback = approve(ui.start("hd_blue").headers["location"])
    _replace_cookie(ui.client, settings.UI_CONNECT_COOKIE_VERIFIER, "x" * 64)
    answer = ui.client.get(local(callback), follow_redirects=False)
    assert answer.status_code == 400 and "Nothing was stored" in answer.text and ui.stored == []


def test_query_strings_other_than_the_callback_are_left_alone(ui):
    with structlog.testing.capture_logs() as logs:
        ui.client.get("/cxsync/connect/helpdesk", params={"conn_id": "hd_blue", "code": "kept"})
    assert any(entry.get("query") == urlencode({"conn_id": "hd_blue", "code": "kept"}) for entry in logs)


def test_overrides_are_checked_on_the_matching_dag_with_its_team(ui, monkeypatch):
    """Every check passes the team: edit access to the matching DAG in no team does not reach the one that
    belongs to team qa."""
    from airflow.models.dag import DagModel

    monkeypatch.setattr(DagModel, "get_team_name", staticmethod(lambda dag_id, **_: "qa"))
    form = {"integration_id": "hd", "agent_id": "a1", "action": "clear"}
    ui.as_user(User("teamless", {(f"dag:{settings.AGENT_MATCHING_DAG_ID}", None)}))
    refused = ui.client.post("/cxsync/agents/override", data=form, follow_redirects=False)
    assert refused.status_code == 403 and "may not set agent-match overrides" in refused.json()["detail"]
    ui.as_user(User("qa_lead", {(f"dag:{settings.AGENT_MATCHING_DAG_ID}", "qa")}))
    allowed = ui.client.post("/cxsync/agents/override", data=form, follow_redirects=False)
    assert allowed.status_code == 403 and "CSRF" in allowed.json()["detail"]  # past the permission, at the token


def _replace_cookie(client: TestClient, name: str, value: str) -> None:
    """Swap the browser's cookie in place: a second cookie of the same name beside it (another domain in the jar)
    would leave which one the server reads to the order the client sends them in."""
    [cookie] = [c for c in client.cookies.jar if c.name == name]
    client.cookies.delete(name, domain=cookie.domain, path=cookie.path)
    client.cookies.set(name, value, domain=cookie.domain, path=cookie.path)
