"""HelpDesk sandbox: credentials, User-Agent, roles and the OAuth 2 accounts server, over plain HTTP."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

UA = {"User-Agent": "cxsync-sandbox-tests/1.0"}
REDIRECT = "http://127.0.0.1:9/callback"


def conn(server, conn_id: str = "sandbox_helpdesk_main") -> dict:
    return json.loads(server.connection_uris()[conn_id])


def basic(server) -> requests.Session:
    c = conn(server)
    session = requests.Session()
    session.auth = (c["login"], c["password"])
    session.headers.update(UA)
    return session


class _Form(HTMLParser):
    """The fields and buttons of the authorize page's form, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action, self.method = a.get("action"), (a.get("method") or "get").lower()
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button":
            self.buttons[a["value"]] = a["name"]


def authorize(
    server, state: str = "xyz-123", redirect_uri: str = REDIRECT, decision: str = "approve", **pkce: str
) -> dict:
    """Walk the authorize page like a browser; the redirect's query parameters."""
    client_id = conn(server, "sandbox_helpdesk_oauth")["login"]
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state, **pkce}
    page = requests.get(server.base_url + "/", params=params)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    form = _Form()
    form.feed(page.text)
    assert form.method == "post" and "approve" in form.buttons
    data = {**form.fields, form.buttons[decision]: decision}
    answer = requests.post(server.base_url + (form.action or "/"), data=data, allow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(redirect_uri + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()} | {"_raw": location}


def exchange(server, code: str, redirect_uri: str = REDIRECT, **override: str) -> requests.Response:
    c = conn(server, "sandbox_helpdesk_oauth")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": c["login"],
        "client_secret": c["password"],
        "redirect_uri": redirect_uri,
    } | override
    return requests.post(server.base_url + "/v2/token", data=form)


def refresh(server, refresh_token: str, **override: str) -> requests.Response:
    c = conn(server, "sandbox_helpdesk_oauth")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": c["login"],
        "client_secret": c["password"],
    } | override
    return requests.post(server.base_url + "/v2/token", data=form)


def bearer_get(server, token: str, path: str = "/v1/agents") -> requests.Response:
    return requests.get(server.base_url + path, headers={**UA, "Authorization": f"Bearer {token}"})


def advance(server, delta: str) -> None:
    assert requests.post(server.base_url + "/_sandbox/clock", json={"advance": delta}).status_code == 200


# ------------------------------------------------------------------------------------ Basic token
def test_connection_declares_token_and_oauth_credentials(sandbox_server):
    main, oauth = conn(sandbox_server), conn(sandbox_server, "sandbox_helpdesk_oauth")
    assert main["conn_type"] == oauth["conn_type"] == "helpdesk"
    assert (main["host"], main["schema"], main["port"]) == ("127.0.0.1", "http", sandbox_server.port)
    assert main["extra"] == {"auth_type": "token"}
    assert re.fullmatch(r"dal:[A-Za-z0-9_-]+", main["password"])
    assert oauth["extra"] == {
        "auth_type": "oauth2",
        "accounts_url": sandbox_server.base_url,
        "allow_plain_http_loopback": True,
    }


def test_basic_auth_with_a_token_containing_colons_works(sandbox_server):
    c = conn(sandbox_server)
    raw = base64.b64encode(f"{c['login']}:{c['password']}".encode()).decode()
    answer = requests.get(sandbox_server.base_url + "/v1/licenses", headers={**UA, "Authorization": f"Basic {raw}"})
    assert answer.status_code == 200
    assert isinstance(answer.json(), list) and answer.json()


@pytest.mark.parametrize(
    "pair",
    [
        lambda login, token: f"{login}:{token}x",  # wrong token
        lambda login, token: f"{login}:{token.split(':', 1)[1]}",  # region prefix dropped
        lambda login, token: f"{login}x:{token}",  # wrong account
    ],
)
def test_basic_auth_with_wrong_credentials_is_401_with_a_body(sandbox_server, pair):
    c = conn(sandbox_server)
    raw = base64.b64encode(pair(c["login"], c["password"]).encode()).decode()
    answer = requests.get(sandbox_server.base_url + "/v1/agents", headers={**UA, "Authorization": f"Basic {raw}"})
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"


def test_missing_credentials_are_401(sandbox_server):
    answer = requests.get(sandbox_server.base_url + "/v1/agents", headers=UA)
    assert answer.status_code == 401
    assert "message" in answer.json()


def test_personal_token_sent_as_bearer_is_401_with_a_body(sandbox_server):
    answer = bearer_get(sandbox_server, conn(sandbox_server)["password"])
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication"
    assert answer.headers["www-authenticate"].startswith("Bearer")


# ------------------------------------------------------------------------------------ User-Agent
def test_request_without_user_agent_is_403_saying_so(sandbox_server):
    c = conn(sandbox_server)
    raw = base64.b64encode(f"{c['login']}:{c['password']}".encode()).decode()
    # http.client sends no User-Agent of its own (requests/urllib3 would add theirs).
    link = http.client.HTTPConnection("127.0.0.1", sandbox_server.port, timeout=10)
    try:
        link.request("GET", "/v1/tickets", headers={"Authorization": f"Basic {raw}"})
        answer = link.getresponse()
        status, body = answer.status, answer.read().decode()
    finally:
        link.close()
    assert status == 403
    assert "User-Agent header is required" in body


@pytest.mark.parametrize(
    "agent", ["", "python-requests/2.32.3", "python-urllib3/2.2", "curl/8.5.0", "Go-http-client/1.1", "Wget/1.21"]
)
def test_generic_user_agent_is_403_saying_so(sandbox_server, agent):
    c = conn(sandbox_server)
    answer = requests.get(
        sandbox_server.base_url + "/v1/tickets", auth=(c["login"], c["password"]), headers={"User-Agent": agent}
    )
    assert answer.status_code == 403
    assert "User-Agent" in answer.text
    assert basic(sandbox_server).get(sandbox_server.base_url + "/v1/tickets").status_code == 200


# ------------------------------------------------------------------------------------------ roles
def test_role_switch_makes_agents_403_naming_the_role_and_keeps_tickets(sandbox_server):
    s, base = basic(sandbox_server), sandbox_server.base_url
    assert requests.put(base + "/_sandbox/helpdesk/role", json={"credential": "token", "role": "viewer"}).ok
    for path in ("/v1/agents", "/v1/teams"):
        answer = s.get(base + path)
        assert answer.status_code == 403
        body = answer.json()
        assert body["error"] == "forbidden"
        assert "'owner' or 'normal' role" in body["message"]
    assert s.get(base + "/v1/tickets").status_code == 200
    assert s.get(base + "/v1/licenses").status_code == 200


def test_generic_switch_with_role_none_forbids_tickets(sandbox_server):
    s, base = basic(sandbox_server), sandbox_server.base_url
    login = conn(sandbox_server)["login"]
    assert requests.put(base + f"/_sandbox/switches/helpdesk/{login}", json={"role": "none"}).ok
    answer = s.get(base + "/v1/tickets")
    assert answer.status_code == 403
    assert "'viewer' role" in answer.json()["message"]
    assert requests.delete(base + f"/_sandbox/switches/helpdesk/{login}").ok
    assert s.get(base + "/v1/tickets").status_code == 200


def test_role_option_applies_to_oauth_credentials(sandbox_factory):
    server = sandbox_factory(hd_role="viewer")
    token = refresh(server, _preapproved(server)).json()["access_token"]
    assert bearer_get(server, token, "/v1/agents").status_code == 403
    assert bearer_get(server, token, "/v1/tickets").status_code == 200


# ----------------------------------------------------------------------------------------- OAuth 2
def test_authorize_form_redirects_with_code_and_state(sandbox_server):
    got = authorize(sandbox_server, state="s t&ate")
    assert got["state"] == "s t&ate"
    assert got["code"].startswith("dal:")
    assert "code=dal%3A" in got["_raw"]


def test_authorize_deny_redirects_with_access_denied(sandbox_server):
    got = authorize(sandbox_server, decision="deny")
    assert got["error"] == "access_denied" and "code" not in got


def test_authorize_page_refuses_an_unknown_client(sandbox_server):
    params = {"response_type": "code", "client_id": "nope", "redirect_uri": REDIRECT, "state": "1"}
    answer = requests.get(sandbox_server.base_url + "/", params=params)
    # as LiveChat documents: every authorization error lands on its error page, never on the redirect URI
    assert (
        urlsplit(answer.url).path == "/ooops"
        and "client_id" in parse_qs(urlsplit(answer.url).query)["oauth_exception"][0]
    )
    assert "client_id" in answer.text and REDIRECT not in answer.history[0].headers["location"]


def _pkce(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


VERIFIER = "v" * 43 + "-verifier"


@pytest.mark.parametrize("method", ["s256", "plain"])
def test_pkce_as_livechat_documents_it_checks_the_verifier(sandbox_server, method):
    challenge = _pkce(VERIFIER) if method == "s256" else VERIFIER
    code = authorize(sandbox_server, code_challenge=challenge, code_challenge_method=method)["code"]
    missing = exchange(sandbox_server, code)
    wrong = exchange(sandbox_server, code, code_verifier="w" * 50)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_grant")
    assert "code_verifier" in missing.json()["error_description"]
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert exchange(sandbox_server, code, code_verifier=VERIFIER).status_code == 200


def test_a_challenge_without_a_method_is_plain_as_documented(sandbox_server):
    code = authorize(sandbox_server, code_challenge=_pkce(VERIFIER))["code"]
    assert exchange(sandbox_server, code, code_verifier=VERIFIER).status_code == 400  # plain: verifier != S256 hash
    code = authorize(sandbox_server, code_challenge=_pkce(VERIFIER))["code"]
    assert exchange(sandbox_server, code, code_verifier=_pkce(VERIFIER)).status_code == 200


def test_the_rfc_spelling_of_the_pkce_method_lands_on_the_error_page(sandbox_server):
    client_id = conn(sandbox_server, "sandbox_helpdesk_oauth")["login"]
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "1",
              "code_challenge": _pkce(VERIFIER), "code_challenge_method": "S256"}  # fmt: skip
    answer = requests.get(sandbox_server.base_url + "/", params=params, allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"].startswith("/ooops?oauth_exception=")
    page = requests.get(sandbox_server.base_url + answer.headers["location"])
    assert page.status_code == 200 and "code_challenge_method" in page.text and "s256" in page.text


def test_code_exchange_answers_the_documented_token(sandbox_server):
    answer = exchange(sandbox_server, authorize(sandbox_server)["code"])
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "expires_in",
        "token_type",
        "account_id",
        "organization_id",
        "scope",
    }
    assert body["expires_in"] == 28800 and body["token_type"] == "Bearer"
    assert body["account_id"] == conn(sandbox_server)["login"]
    agents = bearer_get(sandbox_server, body["access_token"])
    assert agents.status_code == 200 and isinstance(agents.json(), list)
    assert "refresh_token" in conn(sandbox_server, "sandbox_helpdesk_oauth")["extra"]


def test_code_is_single_use(sandbox_server):
    code = authorize(sandbox_server)["code"]
    assert exchange(sandbox_server, code).status_code == 200
    again = exchange(sandbox_server, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert "error_description" in again.json()


def test_code_expires_on_the_sandbox_clock(sandbox_server):
    code = authorize(sandbox_server)["code"]
    advance(sandbox_server, "11m")
    answer = exchange(sandbox_server, code)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_code_with_another_redirect_uri_is_invalid_grant(sandbox_server):
    code = authorize(sandbox_server)["code"]
    answer = exchange(sandbox_server, code, redirect_uri="http://127.0.0.1:9/other")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert exchange(sandbox_server, code).status_code == 200  # a refused attempt does not burn the code


def test_unknown_code_is_invalid_grant(sandbox_server):
    answer = exchange(sandbox_server, "dal:not-a-code")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("override", [{"client_secret": "wrong"}, {"client_id": "wrong"}, {"client_secret": ""}])
def test_bad_client_credentials_are_invalid_client(sandbox_server, override):
    answer = exchange(sandbox_server, authorize(sandbox_server)["code"], **override)
    assert answer.status_code == 401
    body = answer.json()
    assert body["error"] == "invalid_client" and body["error_description"]


def test_client_credentials_in_basic_auth_instead_of_the_form_are_invalid_client(sandbox_server):
    c = conn(sandbox_server, "sandbox_helpdesk_oauth")
    code = authorize(sandbox_server)["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    answer = requests.post(sandbox_server.base_url + "/v2/token", data=form, auth=(c["login"], c["password"]))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_unsupported_grant_type(sandbox_server):
    c = conn(sandbox_server, "sandbox_helpdesk_oauth")
    form = {"grant_type": "password", "client_id": c["login"], "client_secret": c["password"]}
    answer = requests.post(sandbox_server.base_url + "/v2/token", data=form)
    assert answer.status_code == 400 and answer.json()["error"] == "unsupported_grant_type"


def test_refresh_grant_gives_a_new_access_token_and_keeps_the_refresh_token(sandbox_server):
    first = exchange(sandbox_server, authorize(sandbox_server)["code"]).json()
    answer = refresh(sandbox_server, first["refresh_token"])
    assert answer.status_code == 200
    body = answer.json()
    assert body["access_token"] != first["access_token"]
    assert body["refresh_token"] == first["refresh_token"]
    assert body["expires_in"] == 28800
    assert bearer_get(sandbox_server, body["access_token"]).status_code == 200


def test_bad_refresh_token_is_invalid_grant(sandbox_server):
    first = exchange(sandbox_server, authorize(sandbox_server)["code"]).json()
    tampered = first["refresh_token"][:-2] + ("AA" if not first["refresh_token"].endswith("AA") else "BB")
    for token in (tampered, first["access_token"], "dal:whatever"):
        answer = refresh(sandbox_server, token)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_access_token_expires_when_the_clock_passes_its_lifetime(sandbox_server):
    body = exchange(sandbox_server, authorize(sandbox_server)["code"]).json()
    advance(sandbox_server, "7h59m")
    assert bearer_get(sandbox_server, body["access_token"]).status_code == 200
    advance(sandbox_server, "1m")
    expired = bearer_get(sandbox_server, body["access_token"])
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]
    renewed = refresh(sandbox_server, body["refresh_token"]).json()["access_token"]
    assert bearer_get(sandbox_server, renewed).status_code == 200


def test_token_ttl_option_sets_expires_in(sandbox_factory):
    server = sandbox_factory(hd_token_ttl=60)
    body = refresh(server, _preapproved(server)).json()
    assert body["expires_in"] == 60
    advance(server, "61s")
    assert bearer_get(server, body["access_token"]).status_code == 401


def _preapproved(server) -> str:
    answer = requests.post(server.base_url + "/_sandbox/helpdesk/oauth/refresh-token")
    assert answer.status_code == 200
    return answer.json()["refresh_token"]


def test_preapproved_refresh_token_lands_in_the_oauth_connection(sandbox_server):
    assert "refresh_token" not in conn(sandbox_server, "sandbox_helpdesk_oauth")["extra"]
    token = _preapproved(sandbox_server)
    assert conn(sandbox_server, "sandbox_helpdesk_oauth")["extra"]["refresh_token"] == token
    assert refresh(sandbox_server, token).status_code == 200


def test_admin_expire_and_revoke(sandbox_server):
    token = _preapproved(sandbox_server)
    access = refresh(sandbox_server, token).json()["access_token"]
    assert requests.post(sandbox_server.base_url + "/_sandbox/helpdesk/oauth/expire").ok
    assert bearer_get(sandbox_server, access).status_code == 401
    assert refresh(sandbox_server, token).status_code == 200
    assert requests.post(sandbox_server.base_url + "/_sandbox/helpdesk/oauth/revoke").ok
    assert refresh(sandbox_server, token).json()["error"] == "invalid_grant"


def test_tokens_survive_a_restart_with_the_same_seed(sandbox_factory):
    first = sandbox_factory(seed=11)
    token = _preapproved(first)
    second = sandbox_factory(seed=11)
    assert refresh(second, token).status_code == 200
    other = sandbox_factory(seed=12)
    refused = refresh(other, token)  # another seed signs with another key
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
