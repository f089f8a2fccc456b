"""Secrets go only where they belong: the hooks and the connect command against hostile token servers.

Each test stands up a local server playing the hostile party (a foreign token server, a CSDS answer pointing
elsewhere, a token server that redirects) and checks that the client secret and refresh token never reach it,
and that the error says what to fix.
"""

from __future__ import annotations

import json
import logging

import pytest

from cxsync.errors import CxsyncError, FatalError
from cxsync.helpdesk_oauth import main as connect_main
from cxsync.hooks.helpdesk import HelpDeskConnection, HelpDeskHook
from cxsync.hooks.liveperson import LivePersonHook
from cxsync.http import Token
from cxsync.http.endpoints import UntrustedEndpoint
from support.hostile import send

CLIENT_SECRET = "hd-client-secret-must-not-leak"
REFRESH_TOKEN = "dal:refresh-token-must-not-leak"
LP_SECRET = "lp-client-secret-must-not-leak"
ACCOUNT = "12345678"
FAST = {"max_attempts": 1, "requests_per_second": 0, "timeout": 5, "connect_timeout": 2}


def helpdesk_oauth_conn(monkeypatch, conn_id: str, accounts_url: str, **extra) -> str:
    conn = {
        "conn_type": "helpdesk",
        "host": "127.0.0.1",
        "schema": "http",
        "port": 9,
        "login": "client-id",
        "password": CLIENT_SECRET,
        "extra": {"auth_type": "oauth2", "refresh_token": REFRESH_TOKEN, "accounts_url": accounts_url, **FAST, **extra},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def liveperson_oauth2_conn(monkeypatch, conn_id: str, csds_port: int) -> str:
    conn = {
        "conn_type": "liveperson",
        "host": "127.0.0.1",
        "schema": "http",
        "port": csds_port,
        "login": "lp-client",
        "password": LP_SECRET,
        "extra": {"account_id": ACCOUNT, "auth_type": "oauth2", **FAST},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def csds(**hosts: str):
    """A CSDS that answers `hosts` (service -> baseURI) and anything else with a token."""

    def behaviour(handler, seen):
        if "/baseURI.json" in seen.path:
            entries = [{"service": s, "account": ACCOUNT, "baseURI": h} for s, h in hosts.items()]
            send(handler, 200, json.dumps({"baseURIs": entries}).encode())
        elif "/app/token" in seen.path:
            send(handler, 200, json.dumps({"access_token": "lp-access-token", "expires_in": 3600}).encode())
        else:
            send(handler, 200, json.dumps({"_metadata": {"count": 0}, "conversationHistoryRecords": []}).encode())

    return behaviour


# ---- HelpDesk accounts_url ------------------------------------------------------------------------------------


def test_helpdesk_refuses_a_token_server_outside_the_providers_domain(monkeypatch, hostile, resolve_to_loopback):
    evil = hostile()
    resolve_to_loopback("accounts.evil.example")
    conn_id = helpdesk_oauth_conn(monkeypatch, "hd_evil", f"http://accounts.evil.example:{evil.port}")
    with pytest.raises(UntrustedEndpoint) as info:
        HelpDeskHook(conn_id).agents()
    assert "not a host of the provider" in str(info.value) and "trusted_hosts" in str(info.value)
    assert evil.seen == [], "nothing, least of all the refresh token, may reach a foreign token server"


def test_helpdesk_refuses_plain_http_to_the_real_accounts_host(monkeypatch, hostile, resolve_to_loopback):
    # The right name over plain http: anyone on the path reads the client secret and refresh token.
    evil = hostile()
    resolve_to_loopback("accounts.livechat.com")
    conn_id = helpdesk_oauth_conn(monkeypatch, "hd_http", f"http://accounts.livechat.com:{evil.port}")
    with pytest.raises(UntrustedEndpoint, match="plain http"):
        HelpDeskHook(conn_id).agents()
    assert evil.seen == []


def test_helpdesk_trusted_hosts_is_an_explicit_opt_out_for_https_only(monkeypatch):
    conn_id = helpdesk_oauth_conn(monkeypatch, "hd_gw", "https://auth.gateway.example")
    with pytest.raises(UntrustedEndpoint):
        HelpDeskHook(conn_id).connection  # noqa: B018
    conn_id = helpdesk_oauth_conn(
        monkeypatch, "hd_gw2", "https://auth.gateway.example", trusted_hosts=["auth.gateway.example"]
    )
    assert HelpDeskHook(conn_id).connection.token_url == "https://auth.gateway.example/v2/token"
    conn_id = helpdesk_oauth_conn(
        monkeypatch, "hd_gw3", "http://auth.gateway.example", trusted_hosts="auth.gateway.example"
    )
    with pytest.raises(UntrustedEndpoint, match="plain http"):
        HelpDeskHook(conn_id).connection  # noqa: B018


def test_helpdesk_token_request_does_not_follow_a_redirect(monkeypatch, hostile):
    thief = hostile()
    redirector = hostile(lambda h, seen: send(h, 307, b"", {"Location": f"{thief.origin}/v2/token"}))
    conn_id = helpdesk_oauth_conn(monkeypatch, "hd_redirect", redirector.origin)  # loopback: allowed
    with pytest.raises(FatalError) as info:
        HelpDeskHook(conn_id).agents()
    assert "HTTP 307" in str(info.value) and "does not follow redirects" in str(info.value)
    assert len(redirector.seen) == 1
    assert thief.seen == [], "a 307 would have forwarded the client secret and refresh token"


def test_the_connect_command_refuses_a_foreign_accounts_url_before_anything_is_sent(monkeypatch, capsys):
    conn_id = helpdesk_oauth_conn(monkeypatch, "hd_connect_evil", "https://accounts.evil.example")
    assert connect_main(["--conn-id", conn_id, "--port", "0", "--no-browser", "--timeout", "1"]) == 1
    out, err = capsys.readouterr()
    assert "not a host of the provider" in err and "trusted_hosts" in err
    assert "accounts.evil.example" not in out, "no authorize URL may send the user's browser there"


# ---- LivePerson CSDS-resolved hosts ---------------------------------------------------------------------------


def test_liveperson_refuses_a_csds_answer_with_user_info(monkeypatch, hostile):
    server = hostile()
    server.behaviour = csds(sentinel=f"va.sentinel.liveperson.net@127.0.0.1:{server.port}", msgHist="127.0.0.1")
    hook = LivePersonHook(liveperson_oauth2_conn(monkeypatch, "lp_userinfo", server.port))
    with pytest.raises(UntrustedEndpoint, match="not a bare host name"):
        hook.search_conversations({"start": {"from": 0, "to": 1}})
    assert LP_SECRET not in server.received()
    assert not any("/app/token" in s.path for s in server.seen)


def test_liveperson_refuses_a_resolved_host_outside_liveperson_net(monkeypatch, hostile, resolve_to_loopback):
    server = hostile()
    resolve_to_loopback("sentinel.evil.example")
    server.behaviour = csds(sentinel=f"sentinel.evil.example:{server.port}", msgHist=f"127.0.0.1:{server.port}")
    hook = LivePersonHook(liveperson_oauth2_conn(monkeypatch, "lp_evil", server.port))
    with pytest.raises(UntrustedEndpoint, match=r"not a host of the provider \(\*\.liveperson\.net\)"):
        hook.search_conversations({"start": {"from": 0, "to": 1}})
    assert LP_SECRET not in server.received()


def test_liveperson_refuses_plain_http_to_a_liveperson_host(monkeypatch, hostile, resolve_to_loopback):
    server = hostile()
    resolve_to_loopback("va.sentinel.liveperson.net")
    server.behaviour = csds(sentinel=f"va.sentinel.liveperson.net:{server.port}", msgHist=f"127.0.0.1:{server.port}")
    hook = LivePersonHook(liveperson_oauth2_conn(monkeypatch, "lp_plain", server.port))
    with pytest.raises(UntrustedEndpoint, match="plain http"):
        hook.search_conversations({"start": {"from": 0, "to": 1}})
    assert LP_SECRET not in server.received()


def test_liveperson_token_request_does_not_follow_a_redirect(monkeypatch, hostile):
    thief = hostile()
    server = hostile()
    inner = csds(sentinel=f"127.0.0.1:{server.port}", msgHist=f"127.0.0.1:{server.port}")

    def behaviour(handler, seen):
        if "/app/token" in seen.path:
            send(handler, 307, b"", {"Location": f"{thief.origin}/steal"})
        else:
            inner(handler, seen)

    server.behaviour = behaviour
    hook = LivePersonHook(liveperson_oauth2_conn(monkeypatch, "lp_redirect", server.port))
    with pytest.raises(CxsyncError, match="HTTP 307"):
        hook.search_conversations({"start": {"from": 0, "to": 1}})
    assert thief.seen == []


def test_the_sandbox_setup_still_works_over_loopback(monkeypatch, hostile):
    # The sandbox and tests use http://127.0.0.1: loopback passes every check.
    server = hostile()
    server.behaviour = csds(sentinel=f"127.0.0.1:{server.port}", msgHist=f"127.0.0.1:{server.port}")
    hook = LivePersonHook(liveperson_oauth2_conn(monkeypatch, "lp_loopback", server.port))
    assert hook.search_conversations({"start": {"from": 0, "to": 1}})["_metadata"]["count"] == 0


# ---- reprs and warnings ---------------------------------------------------------------------------------------


def test_reprs_hide_secrets(monkeypatch):
    conn = HelpDeskHook(helpdesk_oauth_conn(monkeypatch, "hd_repr", "https://accounts.livechat.com")).connection
    assert isinstance(conn, HelpDeskConnection)
    shown = repr(conn) + repr(Token("access-token-value", 1.0))
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, "access-token-value"):
        assert secret not in shown
    assert "hd_repr" in shown


def test_plain_http_to_a_non_loopback_host_is_warned_about(monkeypatch, caplog):
    conn = {
        "conn_type": "helpdesk",
        "host": "api.helpdesk.example",
        "schema": "http",
        "login": "a",
        "password": "dal:x",
    }
    monkeypatch.setenv("AIRFLOW_CONN_HD_PLAIN", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_HD_LOCAL", json.dumps({**conn, "host": "127.0.0.1"}))
    with caplog.at_level(logging.WARNING, logger="cxsync.http.endpoints"):
        HelpDeskHook("hd_local").connection  # noqa: B018
        assert not caplog.records
        HelpDeskHook("hd_plain").connection  # noqa: B018
    assert "`schema: http` with host api.helpdesk.example" in caplog.text


# ---- plain http to loopback: only when the user says so -------------------------------------------------------


def test_plain_http_to_a_loopback_token_server_needs_an_opt_in(monkeypatch, hostile):
    """Another local user's process on a loopback port would read the secret: plain http to loopback is refused
    unless the connection (or the environment) opts in; the sandbox's connections do."""
    monkeypatch.delenv("CXSYNC_ALLOW_PLAIN_HTTP_LOOPBACK", raising=False)
    listener = hostile()
    conn_id = helpdesk_oauth_conn(monkeypatch, "hd_loop", listener.origin)
    with pytest.raises(UntrustedEndpoint) as info:
        HelpDeskHook(conn_id).agents()
    assert "allow_plain_http_loopback" in str(info.value) and "CXSYNC_ALLOW_PLAIN_HTTP_LOOPBACK" in str(info.value)
    assert listener.seen == [], "nothing may reach a loopback listener over plain http without the opt-in"
    opted = helpdesk_oauth_conn(monkeypatch, "hd_loop_ok", listener.origin, allow_plain_http_loopback=True)
    assert HelpDeskHook(opted).connection.token_url == f"{listener.origin}/v2/token"
    monkeypatch.setenv("CXSYNC_ALLOW_PLAIN_HTTP_LOOPBACK", "1")
    assert HelpDeskHook(conn_id).connection.token_url == f"{listener.origin}/v2/token"


def test_helpdesks_own_accounts_host_is_a_provider_host(monkeypatch):
    conn_id = helpdesk_oauth_conn(monkeypatch, "hd_own", "https://accounts.helpdesk.com")
    assert HelpDeskHook(conn_id).connection.token_url == "https://accounts.helpdesk.com/v2/token"
