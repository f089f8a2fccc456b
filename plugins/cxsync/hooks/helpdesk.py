"""HelpDesk hook (connection type `helpdesk`): auth, the shared request layer, keyset paging.

Two ways in (docs/architecture.md, "Connections"):
- `auth_type: token` (default): HTTP Basic with the account ID as user name and the personal access
  token as password. Tokens carry a region prefix (`dal:...`): the password is used whole, colons included.
- `auth_type: oauth2`: the refresh token kept in the connection's extra (stored once by
  `python -m cxsync.helpdesk_oauth`) is exchanged at `{accounts_url}/v2/token` for 8-hour access tokens,
  sent as Bearer, reused until shortly before expiry and fetched again once on a 401.

Retries, rate limit and error sorting are the shared `ApiClient`'s; this hook adds HelpDesk's words
to 401/403 failures (`explain`), so a task log and the UI's Test button say what to fix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from airflow.sdk import BaseHook

from cxsync import settings
from cxsync.errors import AuthenticationError, CxsyncError, FatalError
from cxsync.hooks.test_button import speaks_to_the_form
from cxsync.http import ApiClient, BasicAuth, BearerAuth, ClientTunables, NoAuth, Token, TokenCache
from cxsync.http.client import RequestStats, mask_secret
from cxsync.http.endpoints import check_helpdesk_accounts_url, warn_if_plain_http
from cxsync.http.ratelimit import limiter_for
from cxsync.http.tunables import ConnectionSettingError

log = logging.getLogger(__name__)

AUTH_TOKEN = "token"
AUTH_OAUTH2 = "oauth2"
AUTH_TYPES = (AUTH_TOKEN, AUTH_OAUTH2)
TICKET_SILOS = ("tickets", "archive", "spam", "trash")
MAX_PAGE_SIZE = 100
PAT_SCOPE = "accounts--my:ro"
DEFAULT_API_HOST = "api.helpdesk.com"
DEFAULT_ACCOUNTS_URL = "https://accounts.livechat.com"
# No published limit; production clients pace themselves at about 5 requests/s (docs/provider-apis.md).
DEFAULT_REQUESTS_PER_SECOND = 5.0


class PagingStalled(FatalError):
    """The ticket list answered a page whose keyset cursor was already used: paging would never end."""


class NotATicket(FatalError):
    """`GET /v1/tickets/{ID}` answered something that is not a ticket object; `answer` holds it. A source
    rejects that one ticket (its rejected record keeps the answer) rather than failing every run on it."""

    def __init__(self, message: str, answer: Any):
        super().__init__(message)
        self.answer = answer


@dataclass(frozen=True)
class HelpDeskConnection:
    """A `helpdesk` Airflow connection, read and checked once."""

    conn_id: str
    auth_type: str
    api_url: str  # scheme://host[:port]/v1
    login: str  # account ID (token) or client_id (oauth2)
    secret: str = ""  # personal access token (token) or client_secret (oauth2)
    refresh_token: str = ""
    accounts_url: str = DEFAULT_ACCOUNTS_URL
    tunables: ClientTunables | None = None

    @property
    def token_url(self) -> str:
        return f"{self.accounts_url}/v2/token"

    def secrets(self) -> list[str]:
        return [s for s in (self.secret, self.refresh_token) if s]

    def __repr__(self) -> str:
        # The password and refresh token stay out of tracebacks, logs and debugger output.
        return (
            f"HelpDeskConnection(conn_id={self.conn_id!r}, auth_type={self.auth_type!r}, api_url={self.api_url!r}, "
            f"login={self.login!r}, accounts_url={self.accounts_url!r}, secret=***, refresh_token=***)"
        )

    @classmethod
    def from_airflow(cls, conn: Any) -> HelpDeskConnection:
        conn_id = conn.conn_id
        extra = _extras(conn)
        auth_type = str(extra.get("auth_type") or AUTH_TOKEN).strip().lower()
        if auth_type not in AUTH_TYPES:
            raise ConnectionSettingError(
                f"connection {conn_id!r}: extra `auth_type` is {auth_type!r}; use `token` (account ID and personal "
                "access token, Basic auth) or `oauth2` (client ID and secret with a refresh token)"
            )
        login = (conn.login or "").strip()
        secret = conn.password or ""
        refresh_token = str(extra.get("refresh_token") or "").strip()
        accounts_url = str(extra.get("accounts_url") or DEFAULT_ACCOUNTS_URL).strip().rstrip("/")
        for value in (secret, refresh_token):
            mask_secret(value)
        if auth_type == AUTH_TOKEN:
            _require(conn_id, login, "login", "the HelpDesk account ID (the user name of Basic auth)")
            _require(conn_id, secret, "password", "the personal access token (e.g. `dal:...`), used whole")
        else:
            _require(conn_id, login, "login", "the OAuth app's client_id")
            _require(conn_id, secret, "password", "the OAuth app's client_secret")
            check_helpdesk_accounts_url(accounts_url, extra, conn_id=conn_id)
        tunables = ClientTunables.from_extras(
            extra, conn_id=conn_id, default_requests_per_second=DEFAULT_REQUESTS_PER_SECOND
        )
        return cls(
            conn_id=conn_id,
            auth_type=auth_type,
            api_url=_api_url(conn),
            login=login,
            secret=secret,
            refresh_token=refresh_token,
            accounts_url=accounts_url,
            tunables=tunables,
        )


class HelpDeskHook(BaseHook):
    """Talks to the HelpDesk API v1 for one `helpdesk` connection."""

    conn_name_attr = "helpdesk_conn_id"
    default_conn_name = "helpdesk_default"
    conn_type = "helpdesk"
    hook_name = "HelpDesk"

    def __init__(self, helpdesk_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.helpdesk_conn_id = helpdesk_conn_id
        self._client: ApiClient | None = None
        self._tokens: TokenCache | None = None
        self._token_account_id: str | None = None

    # ---- connection and client ------------------------------------------------------------------

    @cached_property
    def connection(self) -> HelpDeskConnection:
        return HelpDeskConnection.from_airflow(self.get_connection(self.helpdesk_conn_id))

    def get_conn(self) -> ApiClient:
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def request_stats(self) -> RequestStats | None:
        """What this hook's requests cost so far; None before its first request."""
        return self._client.stats if self._client is not None else None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._tokens = None

    def _build_client(self) -> ApiClient:
        conn = self.connection
        tunables = conn.tunables or ClientTunables.from_extras(
            {}, conn_id=conn.conn_id, default_requests_per_second=None
        )
        client = ApiClient(
            name="HelpDesk",
            user_agent=settings.USER_AGENT,
            rate_limiter=limiter_for(tunables, provider="helpdesk", account=f"{conn.api_url} {conn.login}"),
            retry=tunables.retry,
            timeout=tunables.timeout,
            explain=self._explain,
            max_response_bytes=tunables.max_response_bytes,
            deadline=tunables.deadline,
        )
        if conn.auth_type == AUTH_TOKEN:
            client.auth = BasicAuth(conn.login, conn.secret)
        else:
            self._tokens = TokenCache(
                lambda: self._fetch_access_token(client),
                clock=client.server_clock,
                on_new_token=lambda token: mask_secret(token.access_token),
            )
            client.auth = BearerAuth(self._tokens)
        for secret in conn.secrets():
            mask_secret(secret)
        return client

    def _fetch_access_token(self, client: ApiClient) -> Token:
        """The refresh-token grant. Errors of the token URL become `AuthenticationError` in plain words."""
        conn = self.connection
        if not conn.refresh_token:
            raise AuthenticationError(
                f"connection {conn.conn_id!r} uses OAuth 2 but has no refresh token yet: run "
                f"`python -m cxsync.helpdesk_oauth --conn-id {conn.conn_id}` once to authorize the app"
            )
        payload = request_token(
            client,
            conn.token_url,
            {
                "grant_type": "refresh_token",
                "refresh_token": conn.refresh_token,
                "client_id": conn.login,
                "client_secret": conn.secret,
            },
            conn_id=conn.conn_id,
        )
        new_refresh = payload.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh and new_refresh != conn.refresh_token:
            # Server-side apps keep their refresh token; if the server rotates it anyway, use the new one
            # for the rest of this run and tell the operator, as the stored one may stop working.
            mask_secret(new_refresh)
            self.connection = replace(conn, refresh_token=new_refresh)
            log.warning(
                "HelpDesk: the token server issued a new refresh token for connection %r; run "
                "`python -m cxsync.helpdesk_oauth --conn-id %s` if later runs fail to authenticate",
                conn.conn_id,
                conn.conn_id,
            )
        if payload.get("account_id"):
            self._token_account_id = str(payload["account_id"])
        token = Token.from_response(payload, now=client.server_clock())
        log.info(
            "HelpDesk: new OAuth access token for connection %r%s",
            conn.conn_id,
            f", account {self._token_account_id}" if self._token_account_id else "",
        )
        return token

    # ---- API calls --------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `{api_url}{path}` and parse the JSON answer."""
        return self.get_conn().get_json(f"{self.connection.api_url}{path}", params=dict(params or {}))

    def agents(self) -> list[dict[str, Any]]:
        return _bare_list(self.get("/agents"), "agents")

    def teams(self) -> list[dict[str, Any]]:
        return _bare_list(self.get("/teams"), "teams")

    def licenses(self) -> Any:
        return self.get("/licenses")

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        """One ticket with its full `events[]` history (by its UUID `ID`, not `shortID`)."""
        answer = self.get(f"/tickets/{quote(str(ticket_id), safe='')}")
        if isinstance(answer, dict) and "ID" not in answer and isinstance(answer.get("ticket"), dict):
            answer = answer["ticket"]
        if not isinstance(answer, dict):
            raise NotATicket(
                f"HelpDesk: GET /v1/tickets/{ticket_id} answered {type(answer).__name__}, not a ticket", answer
            )
        return answer

    def ticket_pages(
        self,
        *,
        silo: str,
        sort_by: str,
        order: str,
        page_size: int = MAX_PAGE_SIZE,
        filters: Mapping[str, Any] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of `GET /v1/tickets`, following the keyset cursor (`next.value`, `next.ID`: the sort
        field and ID of the last row) until an empty or short page. A cursor seen before means the
        server is not advancing: `PagingStalled` instead of an endless loop. Stop early by not asking
        for the next page."""
        if silo not in TICKET_SILOS:
            raise ValueError(f"silo must be one of {TICKET_SILOS}")
        page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        base = {"silo": silo, "sortBy": sort_by, "order": order, "pageSize": page_size, **(filters or {})}
        used: set[tuple[str, str]] = set()
        cursor: tuple[str, str] | None = None
        page_no = 0
        while True:
            params = dict(base)
            if cursor is not None:
                params["next.value"], params["next.ID"] = cursor
            rows = _bare_list(self.get("/tickets", params), "tickets")
            page_no += 1
            if not rows:
                return
            yield rows
            if len(rows) < page_size:
                return
            cursor = _cursor(rows[-1], sort_by, silo, page_no)
            if cursor in used:
                raise PagingStalled(
                    f"HelpDesk: the ticket list (silo {silo}, sorted by {sort_by} {order}) answered page "
                    f"{page_no} ending at the same row as an earlier page "
                    f"(next.value={cursor[0]}, next.ID={cursor[1]}): the keyset cursor does not advance, "
                    "so paging would never end. This is a provider-side problem; retry later or report it."
                )
            used.add(cursor)

    def server_now(self) -> datetime:
        """The provider's time now: the `Date` of a fresh cheap request (`/v1/licenses`), not a cached one,
        so a window end or watermark is never behind the provider's clock by the age of an old answer."""
        self.licenses()
        return self.get_conn().server_now()

    # ---- connection test ----------------------------------------------------------------------------

    @speaks_to_the_form("helpdesk")
    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: the credentials, then each endpoint the pipelines read, in plain words."""
        steps: list[tuple[str, str, dict[str, Any]]] = [
            ("checking the credentials", "/licenses", {}),
            ("reading the agent roster", "/agents", {}),
            ("reading teams", "/teams", {}),
            ("reading tickets", "/tickets", {"silo": "tickets", "pageSize": 1}),
        ]
        answers: dict[str, Any] = {}
        try:
            conn = self.connection
            for what, path, params in steps:
                try:
                    answers[path] = self.get(path, params)
                except CxsyncError as exc:
                    return False, f"HelpDesk connection {conn.conn_id!r}: {what} (GET /v1{path}) failed. {exc}"
        except CxsyncError as exc:  # the connection itself is unusable (missing login, bad extra)
            return False, str(exc)
        finally:
            self.close()
        account = self._account_name(answers["/licenses"])
        how = (
            "a personal access token (Basic auth)"
            if conn.auth_type == AUTH_TOKEN
            else "OAuth 2 (refresh token, Bearer access tokens)"
        )
        agents = answers["/agents"]
        count = f"{len(agents)} agent(s)" if isinstance(agents, list) else "agents"
        return True, f"Connected to HelpDesk account {account} with {how}: {count}, teams and tickets are readable."

    def _account_name(self, licenses: Any) -> str:
        conn = self.connection
        account = conn.login if conn.auth_type == AUTH_TOKEN else (self._token_account_id or "")
        license_id = _license_id(licenses)
        if license_id and license_id != account:
            return f"{account} (license {license_id})" if account else f"with license {license_id}"
        return account or "(account id not reported)"

    # ---- error hints --------------------------------------------------------------------------------

    def _explain(self, response: requests.Response) -> str | None:
        if response.status_code == 401:
            return self._explain_401(response)
        if response.status_code == 403:
            return _explain_403(response)
        return None

    def _explain_401(self, response: requests.Response) -> str:
        conn = self.connection
        if conn.auth_type == AUTH_OAUTH2:
            return (
                "HelpDesk refused the OAuth access token even after fetching a new one. The app's "
                f"authorization may have been revoked: run `python -m cxsync.helpdesk_oauth --conn-id "
                f"{conn.conn_id}` again, or switch the connection to a personal access token."
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


# ---- token URL ----------------------------------------------------------------------------------------


def request_token(client: ApiClient, token_url: str, form: dict[str, str], *, conn_id: str) -> dict[str, Any]:
    """POST a grant to the token URL; `{error, error_description}` answers become `AuthenticationError`
    with those words (never the secrets we sent). 429 and 5xx are retried by the client."""
    response = client.request(
        "POST", token_url, data=form, auth=NoAuth(), ok_status=(400, 401, 403), allow_redirects=False
    )
    try:
        payload = response.json()
    except (ValueError, RecursionError):
        payload = None
    if response.status_code >= 400 or not isinstance(payload, dict) or not payload.get("access_token"):
        error, description = _token_error(payload)
        what = "refused the grant" if response.status_code >= 400 else "answered without an access token"
        detail = f"{error}: {description}" if description else error
        hint = {
            "invalid_grant": "the refresh token or code is no longer valid: authorize again with "
            f"`python -m cxsync.helpdesk_oauth --conn-id {conn_id}`",
            "invalid_client": "the client_id (login) or client_secret (password) of the connection is wrong",
            "unauthorized_client": "this app may not use this grant type; check the app in the Developers Console",
        }.get(error)
        message = f"HelpDesk token server {token_url} {what} (HTTP {response.status_code}) for connection {conn_id!r}"
        message += f": {detail}" if detail else ""
        if hint:
            message += f"; {hint}"
        raise AuthenticationError(message)
    return payload


def _token_error(payload: Any) -> tuple[str, str]:
    if not isinstance(payload, dict):
        return "unexpected answer", ""
    error = str(payload.get("error") or payload.get("code") or "unknown_error")
    description = str(payload.get("error_description") or payload.get("message") or "")
    return error, description


# ---- small private steps ------------------------------------------------------------------------------


def _extras(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except (ValueError, TypeError):  # pragma: no cover - Airflow already parses it
        extra = {}
    return dict(extra or {})


def _require(conn_id: str, value: str, field: str, what: str) -> None:
    if not value:
        raise ConnectionSettingError(f"connection {conn_id!r}: field `{field}` is empty; it must hold {what}")


def _api_url(conn: Any) -> str:
    """`{schema}://{host}[:{port}]/v1`; a host typed as a URL (`https://api.helpdesk.com/v1`) works too."""
    host = (conn.host or DEFAULT_API_HOST).strip().rstrip("/")
    scheme = (conn.schema or "https").strip().lower()
    if "://" in host:
        parts = urlsplit(host)
        scheme, host = parts.scheme or scheme, parts.netloc
    else:
        host = host.split("/", 1)[0]
    if scheme not in ("http", "https"):
        raise ConnectionSettingError(
            f"connection {conn.conn_id!r}: field `schema` must be https or http, got {scheme!r}"
        )
    port = f":{conn.port}" if conn.port and ":" not in host else ""
    warn_if_plain_http(scheme, host, conn_id=conn.conn_id)
    return f"{scheme}://{host}{port}/v1"


def _bare_list(answer: Any, what: str) -> list[dict[str, Any]]:
    """List endpoints answer a bare JSON array; tolerate a wrapper object holding one list."""
    if isinstance(answer, list):
        return answer
    if answer is None:
        return []
    if isinstance(answer, dict):
        for key in (what, "data", "items", "results"):
            if isinstance(answer.get(key), list):
                return answer[key]
    raise FatalError(f"HelpDesk: the {what} list answered {type(answer).__name__}, not a JSON array")


def _cursor(row: Any, sort_by: str, silo: str, page_no: int) -> tuple[str, str]:
    value = row.get(sort_by) if isinstance(row, dict) else None
    ident = row.get("ID") if isinstance(row, dict) else None
    if value in (None, "") or ident in (None, ""):
        raise FatalError(
            f"HelpDesk: the last row of ticket page {page_no} (silo {silo}) has no `{sort_by}` or `ID`, "
            "so the next page cannot be asked for"
        )
    return str(value), str(ident)


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


def _explain_403(response: requests.Response) -> str:
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
