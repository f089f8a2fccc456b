"""HelpDeskHook against the sandbox over real HTTP: both auth types, plain-words failures, retries, paging."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from cxsync import settings
from cxsync.errors import AuthenticationError, FatalError, PermissionDenied
from cxsync.hooks.helpdesk import HelpDeskHook, PagingStalled
from cxsync.http.tunables import ConnectionSettingError
from support.helpdesk import HelpDeskAdmin


@pytest.fixture
def hd(hd_sandbox) -> HelpDeskAdmin:
    return hd_sandbox()


def secrets_of(hd: HelpDeskAdmin) -> list[str]:
    token = hd.connection("sandbox_helpdesk_main")["password"]
    oauth = hd.connection("sandbox_helpdesk_oauth")
    return [token, oauth["password"], oauth["extra"].get("refresh_token") or "never-set"]


# ---- personal access token (Basic) ----------------------------------------------------------------------


def test_token_auth_connects_and_names_the_account(hd):
    account = hd.connection("sandbox_helpdesk_main")["login"]
    assert ":" in hd.connection("sandbox_helpdesk_main")["password"]  # `dal:...`: used whole as the Basic password
    ok, message = HelpDeskHook("sandbox_helpdesk_main").test_connection()
    assert ok, message
    assert f"Connected to HelpDesk account {account}" in message
    assert "personal access token" in message
    assert "8 agent(s)" in message


def test_requests_carry_the_specific_user_agent(hd):
    """The API blocks generic User-Agents; ours is cxsync's own."""
    hook = HelpDeskHook("sandbox_helpdesk_main")
    assert hook.get_conn().session.headers["User-Agent"] == settings.USER_AGENT
    assert len(hook.agents()) == 8
    conn = hd.connection("sandbox_helpdesk_main")
    generic = requests.get(f"{hd.url}/v1/agents", auth=(conn["login"], conn["password"]), timeout=10)
    assert generic.status_code == 403 and "User-Agent" in generic.text


def test_server_now_is_the_sandbox_clock(hd):
    hook = HelpDeskHook("sandbox_helpdesk_main")
    assert hook.server_now() == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    hd.advance("2h")
    hook.agents()
    assert hook.server_now() == datetime(2025, 3, 14, 11, 30, tzinfo=UTC)


def test_token_sent_as_bearer_header_value_fails_in_plain_words(hd):
    """The usual mistake: the token pasted as `Bearer dal:...`. 401, and the message says what HelpDesk wants."""
    token = hd.connection("sandbox_helpdesk_main")["password"]
    hd.derive("hd_wrong_scheme", password=f"Bearer {token}")
    ok, message = HelpDeskHook("hd_wrong_scheme").test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert "Basic auth with the account ID as user name" in message
    assert "personal access token" in message and "as password" in message
    assert "starts with the word `Bearer`" in message
    assert token not in message


def test_wrong_scheme_explained_when_the_api_answers_with_a_bearer_challenge(hd):
    """A personal token that reaches the API as Bearer gets a Bearer challenge; the hint names the scheme."""
    conn = hd.connection("sandbox_helpdesk_main")
    raw = requests.get(
        f"{hd.url}/v1/licenses",
        timeout=10,
        headers={"Authorization": f"Bearer {conn['password']}", "User-Agent": settings.USER_AGENT},
    )
    assert raw.status_code == 401 and "Bearer" in raw.headers["WWW-Authenticate"]
    hook = HelpDeskHook("sandbox_helpdesk_main")
    hint = hook.explain(raw)
    assert "Basic auth with the account ID as user name" in hint
    assert "wrong scheme" in hint


def test_swapped_login_and_password_are_pointed_out(hd):
    conn = hd.connection("sandbox_helpdesk_main")
    hd.derive("hd_swapped", login=conn["password"], password=conn["login"])
    ok, message = HelpDeskHook("hd_swapped").test_connection()
    assert not ok
    assert "swapped" in message


def test_task_failure_carries_the_same_hint(hd):
    hd.derive("hd_bad", password="dal:not-the-token")
    with pytest.raises(AuthenticationError) as failure:
        HelpDeskHook("hd_bad").agents()
    assert "account ID as user name" in str(failure.value)
    assert "dal:not-the-token" not in str(failure.value)


def test_missing_role_is_named(hd):
    hd.set_role("token", "viewer")
    ok, message = HelpDeskHook("sandbox_helpdesk_main").test_connection()
    assert not ok
    assert "reading the agent roster" in message
    assert "403" in message
    assert "lacks the role HelpDesk asks for: owner or normal" in message
    with pytest.raises(PermissionDenied) as failure:
        HelpDeskHook("sandbox_helpdesk_main").agents()
    assert "owner or normal" in str(failure.value)
    # A viewer still reads tickets: only the roster needs the stronger role.
    assert HelpDeskHook("sandbox_helpdesk_main").get("/tickets", {"pageSize": 1})


def test_connection_settings_are_checked_in_plain_words(hd):
    hd.derive("hd_no_login", login="")
    with pytest.raises(ConnectionSettingError, match="field `login` is empty; it must hold the HelpDesk account ID"):
        HelpDeskHook("hd_no_login").agents()
    hd.derive("hd_bad_type", extra={"auth_type": "bearer"})
    ok, message = HelpDeskHook("hd_bad_type").test_connection()
    assert not ok and "extra `auth_type` is 'bearer'" in message
    hd.derive("hd_bad_tunable", extra={"timeout": "soon"})
    with pytest.raises(ConnectionSettingError, match="extra `timeout` must be a number"):
        HelpDeskHook("hd_bad_tunable").agents()


def test_api_url_from_host_schema_port_or_a_typed_url(hd, monkeypatch):
    conn = hd.connection("sandbox_helpdesk_main")
    assert HelpDeskHook("sandbox_helpdesk_main").connection.api_url == f"http://127.0.0.1:{conn['port']}/v1"
    hd.derive("hd_url_host", host=f"http://127.0.0.1:{conn['port']}/v1", port=None, schema=None)
    assert HelpDeskHook("hd_url_host").connection.api_url == f"http://127.0.0.1:{conn['port']}/v1"
    assert len(HelpDeskHook("hd_url_host").teams()) == 2
    monkeypatch.setenv("AIRFLOW_CONN_HD_DEFAULTS", json.dumps({"conn_type": "helpdesk", "login": "a", "password": "b"}))
    defaults = HelpDeskHook("hd_defaults").connection
    assert defaults.api_url == "https://api.helpdesk.com/v1"
    assert defaults.accounts_url == "https://accounts.livechat.com"
    assert defaults.auth_type == "token"
    assert defaults.tunables.requests_per_second == 5


# ---- OAuth 2 ------------------------------------------------------------------------------------------------


def test_oauth_connects_and_reuses_the_access_token(hd):
    hd.authorize_oauth()
    ok, message = HelpDeskHook("sandbox_helpdesk_oauth").test_connection()
    assert ok, message
    assert f"account {hd.info()['account_id']}" in message and "OAuth 2" in message
    hd.reset_counters()
    hook = HelpDeskHook("sandbox_helpdesk_oauth")
    for _ in range(5):
        hook.agents()
    assert hd.requests_to("helpdesk_token") == 1  # one token for every request
    assert hd.requests_to("helpdesk_agents", "200") == 5


def test_oauth_token_expiry_on_the_provider_clock_refreshes_once(hd):
    hd.authorize_oauth()
    hook = HelpDeskHook("sandbox_helpdesk_oauth")
    hook.agents()
    hd.reset_counters()
    hd.advance("9h")  # past the 8-hour lifetime, on the sandbox's clock
    assert len(hook.agents()) == 8
    assert hd.requests_to("helpdesk_agents", "401") == 1  # the stale token is refused once...
    assert hd.requests_to("helpdesk_token", "200") == 1  # ...a new one is fetched once...
    assert hd.requests_to("helpdesk_agents", "200") == 1  # ...and the request goes through
    # The new token is reused; near its expiry it is renewed before sending, without a 401.
    hook.teams()
    hd.advance("7h58m")
    hook.teams()  # learns the provider's new time from this answer
    hook.teams()
    assert hd.requests_to("helpdesk_token", "200") == 2
    assert hd.requests_to("helpdesk_teams", "401") == 0


def test_oauth_revoked_access_tokens_are_replaced(hd):
    hd.authorize_oauth()
    hook = HelpDeskHook("sandbox_helpdesk_oauth")
    hook.teams()
    hd.expire_access_tokens()
    assert len(hook.teams()) == 2
    assert hd.requests_to("helpdesk_token", "200") == 2


def test_oauth_invalid_refresh_token_fails_with_the_servers_words_and_no_secret(hd):
    token = hd.authorize_oauth()
    hd.revoke_tokens()
    with pytest.raises(AuthenticationError) as failure:
        HelpDeskHook("sandbox_helpdesk_oauth").agents()
    message = str(failure.value)
    assert "invalid_grant" in message and "refresh token is invalid or revoked" in message
    assert "python -m cxsync.helpdesk_oauth --conn-id sandbox_helpdesk_oauth" in message
    for secret in [token, *secrets_of(hd)]:
        assert secret not in message


def test_oauth_wrong_client_secret(hd):
    hd.authorize_oauth()
    hd.derive("hd_oauth_bad_secret", base="sandbox_helpdesk_oauth", password="not-the-secret")
    ok, message = HelpDeskHook("hd_oauth_bad_secret").test_connection()
    assert not ok
    assert "invalid_client" in message and "client_secret (password) of the connection is wrong" in message
    assert "not-the-secret" not in message


def test_oauth_without_refresh_token_says_how_to_get_one(hd):
    ok, message = HelpDeskHook("sandbox_helpdesk_oauth").test_connection()
    assert not ok
    # the Test button tests the form under a temporary id: the advice names no connection id
    assert (
        "has no refresh token yet: run `python -m cxsync.helpdesk_oauth --conn-id <the connection id, once saved>`"
        in message
    )


def test_secrets_are_registered_with_the_masker(hd):
    from airflow.sdk._shared.secrets_masker import redact

    hd.authorize_oauth()
    hook = HelpDeskHook("sandbox_helpdesk_oauth")
    hook.agents()
    HelpDeskHook("sandbox_helpdesk_main").agents()
    access_token = hook._tokens.get()
    for secret in [*secrets_of(hd), access_token]:
        assert secret not in redact(f"log line with {secret} inside")


# ---- the shared request layer in HelpDesk's hands ---------------------------------------------------------


def test_rate_limit_429_is_waited_out(hd):
    hd.derive("hd_patient", extra={"rate_limit_min_wait": 0.05, "retry_max_seconds": 0.2, "max_attempts": 10})
    hd.faults(rate_limit_rps=20, retry_after=True)
    hook = HelpDeskHook("hd_patient")
    for _ in range(40):
        assert len(hook.teams()) == 2
    assert hd.fault_count("rate_limit") > 0
    assert hook.get_conn().stats.rate_limited == hd.fault_count("rate_limit")


def test_5xx_resets_and_truncated_bodies_are_retried(hd):
    hd.faults(p_5xx=0.25, p_reset=0.1, p_truncate=0.1)
    hook = HelpDeskHook("sandbox_helpdesk_main")
    for _ in range(30):
        assert len(hook.agents()) == 8
    assert hd.fault_count("5xx") > 0
    assert hd.fault_count("reset") + hd.fault_count("truncate") > 0
    assert hook.get_conn().stats.retries >= hd.fault_count("5xx")


# ---- keyset paging ------------------------------------------------------------------------------------------


def test_keyset_paging_walks_many_pages_without_gaps_or_repeats(hd_sandbox):
    hd = hd_sandbox(hd_tickets_per_day=20, hd_archive_idle_days=60)
    truth = [t for t in hd.truth() if t["silo"] == "tickets"]
    expected = [t["interaction_id"] for t in sorted(truth, key=lambda t: (t["started_at"], t["interaction_id"]))]
    hook = HelpDeskHook("sandbox_helpdesk_main")
    pages = list(hook.ticket_pages(silo="tickets", sort_by="createdAt", order="asc", page_size=3))
    assert len(pages) >= len(expected) // 3 >= 10
    assert [row["ID"] for page in pages for row in page] == expected
    # Tickets created in the same second (bulk imports) are where a value-only cursor would lose rows.
    created = [t["started_at"] for t in truth]
    assert len(set(created)) < len(created)
    newest_first = [
        row["ID"]
        for page in hook.ticket_pages(silo="tickets", sort_by="updatedAt", order="desc", page_size=4)
        for row in page
    ]
    assert sorted(newest_first) == sorted(expected) and len(newest_first) == len(set(newest_first))


class _StuckTicketList(BaseHTTPRequestHandler):
    """A ticket list that ignores the cursor and answers the same full page every time."""

    def do_GET(self) -> None:
        rows = [{"ID": f"t{i}", "createdAt": f"2025-03-01T00:00:0{i}Z"} for i in range(2)]
        body = json.dumps(rows).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return


def test_a_cursor_that_does_not_advance_stops_with_a_clear_error(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StuckTicketList)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = {
            "conn_type": "helpdesk",
            "host": "127.0.0.1",
            "port": server.server_address[1],
            "schema": "http",
            "login": "acc",
            "password": "dal:x",
            "extra": {"requests_per_second": 0},
        }
        monkeypatch.setenv("AIRFLOW_CONN_HD_STUCK", json.dumps(conn))
        pages = HelpDeskHook("hd_stuck").ticket_pages(silo="tickets", sort_by="createdAt", order="asc", page_size=2)
        with pytest.raises(PagingStalled, match="the keyset cursor does not advance") as stalled:
            for _ in range(10):
                next(pages)
        assert isinstance(stalled.value, FatalError)
        assert "next.ID=t1" in str(stalled.value)
    finally:
        server.shutdown()
        server.server_close()


def test_the_hook_is_an_http_hook_whose_run_and_check_response_use_the_request_layer(hd):
    from airflow.providers.http.hooks.http import HttpHook

    hook = HelpDeskHook("sandbox_helpdesk_main")
    assert isinstance(hook, HttpHook) and hook.helpdesk_conn_id == "sandbox_helpdesk_main"
    response = hook.run("/teams")
    assert response.status_code == 200 and len(response.json()) == 2
    assert hook.url_from_endpoint("/teams") == f"{hook.connection.api_url}/teams"
    missing = hook.run("/no-such-endpoint", extra_options={"check_response": False})
    with pytest.raises(FatalError, match="HTTP 404"):
        hook.check_response(missing)
