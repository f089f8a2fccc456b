"""HelpDesk's words for what went wrong: the Test button's steps, 401/403 hints and token-server refusals.

Kept apart from the hook (`cxsync.hooks.helpdesk`), which only talks to the API: this module words its
failures for the person who set the connection up, naming the field, role or scope to fix.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import requests

from cxsync import settings
from cxsync.errors import CxsyncError
from cxsync.http.oauth2 import TokenRequestRefused

if TYPE_CHECKING:
    from cxsync.hooks.helpdesk import HelpDeskConnection, HelpDeskHook

PAT_SCOPE = "accounts--my:ro"


def connect_command(conn_id: str) -> str:
    return f"`python -m cxsync.helpdesk_oauth --conn-id {conn_id}`"


def token_refusal(token_url: str, conn_id: str, refusal: TokenRequestRefused) -> str:
    """A token server's refusal in its own words (never the secrets sent), with what to do about it."""
    status = refusal.status or 0
    what = "refused the grant" if status >= 400 else "answered without an access token"
    detail = f"{refusal.error}: {refusal.description}" if refusal.description else refusal.error
    hint = {
        "invalid_grant": "the refresh token or code is no longer valid: authorize again with "
        + connect_command(conn_id),
        "invalid_client": "the client_id (login) or client_secret (password) of the connection is wrong",
        "unauthorized_client": "this app may not use this grant type; check the app in the Developers Console",
    }.get(refusal.error)
    message = f"HelpDesk token server {token_url} {what} (HTTP {status}) for connection {conn_id!r}"
    message += f": {detail}" if detail else ""
    return message + (f"; {hint}" if hint else "")


def explain(conn: HelpDeskConnection, response: requests.Response) -> str | None:
    if response.status_code == 401:
        return explain_401(conn, response)
    if response.status_code == 403:
        return explain_403(response)
    return None


def explain_401(conn: HelpDeskConnection, response: requests.Response) -> str:
    if conn.auth_type == "oauth2":
        return (
            "HelpDesk refused the OAuth access token even after fetching a new one. The app's "
            f"authorization may have been revoked: run {connect_command(conn.conn_id)} again, or switch the "
            "connection to a personal access token."
        )
    hints = [
        "HelpDesk expects HTTP Basic auth with the account ID as user name (the connection's login) and "
        "the whole personal access token, colons and region prefix included (e.g. `dal:...`), as "
        "password; not a Bearer token."
    ]
    scheme, _, rest = conn.secret.strip().partition(" ")
    if rest and scheme.lower() in ("bearer", "basic", "token"):
        hints.append(
            f"The password starts with the word `{scheme}`, as if it were a whole Authorization "
            "header: store only the token itself."
        )
    elif _looks_like_jwt(conn.secret):
        hints.append(
            "The password looks like an OAuth access token (a JWT), which is sent as Bearer: for a "
            "personal access token use the token itself; for OAuth set extra `auth_type` to "
            "`oauth2` with the app's client_id and client_secret."
        )
    elif _looks_like_token(conn.login) and not _looks_like_token(conn.secret):
        hints.append("The login looks like a token and the password does not: are the two swapped?")
    elif not _looks_like_token(conn.secret):
        hints.append("The password has no region prefix (like `dal:`): check that the whole token was pasted.")
    if _server_mentions_bearer(response):
        hints.append("The server answered about a Bearer token: the token reached it with the wrong scheme.")
    hints.append(
        f"A personal access token needs the scope `{PAT_SCOPE}`; create one in the Developers "
        "Console (Tools > Personal Access Tokens)."
    )
    return " ".join(hints)


def explain_403(response: requests.Response) -> str:
    """Name the role or scope the server says is missing, when it says so."""
    said = _server_message(response)
    if "user-agent" in said.lower():
        return (
            f"HelpDesk (or a firewall in front of it) blocked the request's User-Agent: {said} cxsync sends "
            f"`{settings.USER_AGENT}`; a proxy that rewrites User-Agent headers would cause this."
        )
    roles = re.findall(r"'(owner|normal|viewer)'", said.split(";")[0])
    missing = (
        f"The credential lacks the role HelpDesk asks for: {' or '.join(roles)}."
        if roles
        else "The token lacks a scope, or the agent behind it lacks a role."
    )
    return (
        f"HelpDesk accepted the credentials but refused access (403). {missing}"
        + (f" HelpDesk says: {said}" if said else "")
        + f" cxsync reads agents and teams (owner or normal role) and tickets (owner, normal or viewer); a "
        f"personal access token needs the scope `{PAT_SCOPE}`, an OAuth app the same scope when authorized."
    )


def connection_test(hook: HelpDeskHook) -> tuple[bool, str]:
    """The credentials, then each endpoint the pipelines read, in plain words."""
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("checking the credentials", "/licenses", {}),
        ("reading the agent roster", "/agents", {}),
        ("reading teams", "/teams", {}),
        ("reading tickets", "/tickets", {"silo": "tickets", "pageSize": 1}),
    ]
    answers: dict[str, Any] = {}
    try:
        conn = hook.connection
        for what, path, params in steps:
            try:
                answers[path] = hook.get(path, params)
            except CxsyncError as exc:
                return False, f"HelpDesk connection {conn.conn_id!r}: {what} (GET /v1{path}) failed. {exc}"
    except CxsyncError as exc:  # the connection itself is unusable (missing login, bad extra)
        return False, str(exc)
    finally:
        hook.close()
    account = account_name(conn, hook.token_account_id, answers["/licenses"])
    how = (
        "a personal access token (Basic auth)"
        if conn.auth_type == "token"
        else "OAuth 2 (refresh token, Bearer access tokens)"
    )
    agents = answers["/agents"]
    count = f"{len(agents)} agent(s)" if isinstance(agents, list) else "agents"
    return True, f"Connected to HelpDesk account {account} with {how}: {count}, teams and tickets are readable."


def account_name(conn: HelpDeskConnection, token_account_id: str | None, licenses: Any) -> str:
    account = conn.login if conn.auth_type == "token" else (token_account_id or "")
    license_id = _license_id(licenses)
    if license_id and license_id != account:
        return f"{account} (license {license_id})" if account else f"with license {license_id}"
    return account or "(account id not reported)"


def _looks_like_token(value: str) -> bool:
    """Personal access tokens carry a region prefix: `dal:...`, `fra:...`, `us-south1:...`."""
    head, sep, tail = value.partition(":")
    return bool(sep and tail and head and head.replace("-", "").isalnum() and len(head) <= 20)


def _looks_like_jwt(value: str) -> bool:
    parts = value.strip().split(".")
    return len(parts) == 3 and parts[0].startswith("eyJ") and all(parts)


def _server_mentions_bearer(response: requests.Response) -> bool:
    challenge = response.headers.get("WWW-Authenticate", "")
    return "bearer" in challenge.lower() or "bearer" in (response.text or "").lower()


def _server_message(response: requests.Response) -> str:
    """The human part of an error body: `message`, `error.message` or `error_description`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return " ".join((response.text or "").split())[:300]
    if isinstance(body, dict):
        error = body.get("error")
        for value in (
            body.get("message"),
            error.get("message") if isinstance(error, dict) else None,
            body.get("error_description"),
            error if isinstance(error, str) else None,
        ):
            if isinstance(value, str) and value.strip():
                return value.strip()
    return ""


def _license_id(licenses: Any) -> str:
    """A license or account id from `/v1/licenses`, whose exact shape is not documented."""
    items = licenses if isinstance(licenses, list) else [licenses]
    for item in items:
        if isinstance(item, dict):
            for key in ("ID", "id", "licenseID", "license_id", "accountID", "account_id"):
                if item.get(key) not in (None, ""):
                    return str(item[key])
        elif isinstance(item, str | int) and not isinstance(item, bool):
            return str(item)
    return ""
