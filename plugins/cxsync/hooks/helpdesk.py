"""HelpDesk hook (connection type `helpdesk`): auth, the API calls cxsync makes, keyset paging.

Two ways in (docs/architecture.md, "Connections"):
- `auth_type: token` (default): HTTP Basic with the account ID as user name and the personal access
  token as password. Tokens carry a region prefix (`dal:...`): the password is used whole, colons included.
- `auth_type: oauth2`: the refresh token kept in the connection's extra (stored once by
  `python -m cxsync.helpdesk_oauth`) is exchanged at `{accounts_url}/v2/token` for 8-hour access tokens,
  sent as Bearer, reused until shortly before expiry and fetched again once on a 401.

The request layer (rate limit, retries, error sorting) comes with the base hook (`cxsync.hooks.base`); the
words for 401/403 failures and the Test button are in `cxsync.hooks.helpdesk_diagnostics`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from oauthlib.oauth2 import WebApplicationClient

from cxsync.errors import AuthenticationError, FatalError
from cxsync.hooks import helpdesk_diagnostics as diagnostics
from cxsync.hooks.base import ConnectionSettings, ProviderHook, extra_text, list_answer, reading
from cxsync.hooks.paginators import KeysetPaginator, PagingRunaway, PagingStalled
from cxsync.hooks.test_button import speaks_to_the_form
from cxsync.http import ApiClient, AuthStrategy, BasicAuth, ClientTunables, Token
from cxsync.http.endpoints import check_helpdesk_accounts_url, warn_if_plain_http
from cxsync.http.oauth2 import OAuth2Grant
from cxsync.providers.helpdesk import MAX_PAGE_SIZE as MAX_PAGE_SIZE  # the ticket list's largest pageSize

__all__ = ["HelpDeskConnection", "HelpDeskHook", "NotATicket", "PagingRunaway", "PagingStalled", "token_grant"]

log = logging.getLogger(__name__)

AUTH_TOKEN = "token"
AUTH_OAUTH2 = "oauth2"
AUTH_TYPES = (AUTH_TOKEN, AUTH_OAUTH2)
TICKET_SILOS = ("tickets", "archive", "spam", "trash")
DEFAULT_API_HOST = "api.helpdesk.com"
DEFAULT_ACCOUNTS_URL = "https://accounts.livechat.com"
# No published limit; production clients pace themselves at about 5 requests/s (docs/provider-apis.md).
DEFAULT_REQUESTS_PER_SECOND = 5.0
# A listing with no far end in its order (the trash silo) holds at most this span of tickets: HelpDesk purges
# trash after about 30 days.
UNBOUNDED_SPAN = timedelta(days=31)


class NotATicket(FatalError):
    """`GET /v1/tickets/{ID}` answered something that is not a ticket object; `answer` holds it. A source
    rejects that one ticket (its rejected record keeps the answer) rather than failing every run on it."""

    def __init__(self, message: str, answer: Any):
        super().__init__(message)
        self.answer = answer


@dataclass(frozen=True, repr=False)
class HelpDeskConnection(ConnectionSettings):
    """A `helpdesk` connection, read and checked once: login is the account ID (token) or client_id (oauth2),
    secret the personal access token or client_secret."""

    auth_type: str = AUTH_TOKEN
    refresh_token: str = ""
    accounts_url: str = DEFAULT_ACCOUNTS_URL

    @property
    def api_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def token_url(self) -> str:
        return f"{self.accounts_url}/v2/token"

    shown_fields = ("conn_id", "auth_type", "api_url", "login", "accounts_url")
    secret_fields = ("secret", "refresh_token")

    @classmethod
    def from_connection(cls, conn: Any) -> HelpDeskConnection:
        conn_id, extra, fail = reading(conn)
        auth_type = extra_text(extra, "auth_type", AUTH_TOKEN).lower()
        if auth_type not in AUTH_TYPES:
            raise fail(
                f"extra `auth_type` is {auth_type!r}; use `token` (account ID and personal access token, Basic "
                "auth) or `oauth2` (client ID and secret with a refresh token)"
            )
        login = (conn.login or "").strip()
        secret = conn.password or ""
        accounts_url = extra_text(extra, "accounts_url", DEFAULT_ACCOUNTS_URL).rstrip("/")
        names = (
            (
                "the HelpDesk account ID (the user name of Basic auth)",
                "the personal access token (e.g. `dal:...`), used whole",
            )
            if auth_type == AUTH_TOKEN
            else ("the OAuth app's client_id", "the OAuth app's client_secret")
        )
        for field, value, what in (("login", login, names[0]), ("password", secret, names[1])):
            if not value:
                raise fail(f"field `{field}` is empty; it must hold {what}")
        if auth_type == AUTH_OAUTH2:
            check_helpdesk_accounts_url(accounts_url, extra, conn_id=conn_id)
        scheme, host, port = _api_host(conn, fail)
        return cls(
            conn_id=conn_id,
            scheme=scheme,
            host=host,
            port=port,
            login=login,
            secret=secret,
            tunables=ClientTunables.from_extras(
                extra, conn_id=conn_id, default_requests_per_second=DEFAULT_REQUESTS_PER_SECOND
            ),
            auth_type=auth_type,
            refresh_token=extra_text(extra, "refresh_token"),
            accounts_url=accounts_url,
        )


class HelpDeskHook(ProviderHook):
    """Talks to the HelpDesk API v1 for one `helpdesk` connection."""

    conn_type = "helpdesk"
    provider_name = "HelpDesk"
    default_host = DEFAULT_API_HOST
    connection_class = HelpDeskConnection
    token_account_id: str | None = None  # the account the OAuth token server named, once it did

    def base_url_of(self, connection: HelpDeskConnection) -> str:
        return connection.api_url

    def _auth(self, api: ApiClient, conn: HelpDeskConnection) -> AuthStrategy:
        if conn.auth_type == AUTH_TOKEN:
            return BasicAuth(conn.login, conn.secret)
        return self._bearer(api, self._fetch_access_token)

    def _fetch_access_token(self) -> Token:
        """The refresh-token grant. A refusal is an `AuthenticationError` in the token server's words."""
        conn = self.connection
        if not conn.refresh_token:
            raise AuthenticationError(
                f"connection {conn.conn_id!r} uses OAuth 2 but has no refresh token yet: run "
                f"{diagnostics.connect_command(conn.conn_id)} once to authorize the app"
            )
        grant = token_grant(self.get_conn(), conn.conn_id, conn.token_url, conn.login, conn.secret)
        answer = grant.refresh(conn.refresh_token)
        new_refresh = answer.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh and new_refresh != conn.refresh_token:
            # Server-side apps keep their refresh token; if the server rotates it anyway, use the new one
            # for the rest of this run and tell the operator, as the stored one may stop working.
            self.connection = replace(conn, refresh_token=new_refresh)
            log.warning(
                "HelpDesk: the token server issued a new refresh token for connection %r; run %s if later runs "
                "fail to authenticate",
                conn.conn_id,
                diagnostics.connect_command(conn.conn_id),
            )
        if answer.get("account_id"):
            self.token_account_id = str(answer["account_id"])
        log.info(
            "HelpDesk: new OAuth access token for connection %r%s",
            conn.conn_id,
            f", account {self.token_account_id}" if self.token_account_id else "",
        )
        return grant.token(answer)

    def explain(self, response: Any) -> str | None:
        return diagnostics.explain(self.connection, response)

    # ---- API calls ------------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `{api_url}{path}` and parse the JSON answer."""
        return self.get_json(path, params)

    def _list(self, path: str, what: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return list_answer(
            self.get(path, params), (what, "data", "items", "results"), what=f"HelpDesk: the {what} list"
        )

    def agents(self) -> list[dict[str, Any]]:
        return self._list("/agents", "agents")

    def teams(self) -> list[dict[str, Any]]:
        return self._list("/teams", "teams")

    def tags(self) -> list[dict[str, Any]]:
        """The account's tags, `{ID, name}` each: what a ticket's `tagIDs` mean."""
        return self._list("/tags", "tags")

    def licenses(self) -> Any:
        return self.get("/licenses")

    def _touch(self) -> None:
        self.licenses()

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
        bound: datetime | None = None,
        max_tickets_per_hour: float | None = None,
        scope: str = "the listing",
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of `GET /v1/tickets`, following the keyset cursor (`next.value`, `next.ID`: the sort field and
        ID of the last row) until an empty or short page. A cursor seen before means the server is not
        advancing: `PagingStalled` instead of an endless loop. Stop early by not asking for the next page.

        With `max_tickets_per_hour`, a listing whose cursor keeps moving but never ends is stopped too
        (`PagingRunaway`): the rows from the first one to `bound` (where the caller stops reading in this order:
        a window's end, a scan's floor; None: `UNBOUNDED_SPAN`) can be no more tickets than that span holds at
        that rate, so more full pages than that (plus two: the first page and the last) mean a broken cursor.
        `scope` names the window in the error."""
        if silo not in TICKET_SILOS:
            raise ValueError(f"silo must be one of {TICKET_SILOS}")
        page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        base = {"silo": silo, "sortBy": sort_by, "order": order, "pageSize": page_size, **(filters or {})}
        held: dict[str, Any] = {}

        def limit(first: tuple[str, str]) -> int:
            start = _instant(first[0])
            span = abs(bound - start) if bound is not None and start is not None else UNBOUNDED_SPAN
            held.update(first=first[0], span=span, tickets=math.ceil(span.total_seconds() / 3600 * rate))
            return math.ceil(held["tickets"] / page_size) + 2

        def runaway(pages_read: int, most: int) -> str:
            return (
                f"HelpDesk: the ticket list of {scope} (silo {silo}, sorted by {sort_by} {order}) answered "
                f"{pages_read} full pages of {page_size} ({pages_read * page_size} tickets), each with a new "
                f"cursor, and still did not end. From the first row ({sort_by} {held['first']}) to "
                f"{bound.isoformat() if bound is not None else 'the end of the silo'} ({held['span']}) there can "
                f"be at most {held['tickets']} tickets at {rate:g} tickets per hour, i.e. {most} pages, so paging "
                "stopped here. If the account really creates or changes more tickets per hour than that, raise "
                "`max_tickets_per_hour` in this integration's `options:` in the integrations file; otherwise the "
                "provider's cursor is broken: report it to HelpDesk. Retrying does not help."
            )

        rate = max_tickets_per_hour or 0.0

        def stalled(cursor: tuple[str, str], page_no: int) -> str:
            return (
                f"HelpDesk: the ticket list (silo {silo}, sorted by {sort_by} {order}) answered page {page_no} "
                f"ending at the same row as an earlier page (next.value={cursor[0]}, next.ID={cursor[1]}): the "
                "keyset cursor does not advance, so paging would never end. This is a provider-side problem; "
                "retry later or report it."
            )

        pages = KeysetPaginator(
            page_size,
            lambda row: _cursor(row, sort_by, silo, pages.pages),
            stalled,
            limit=limit if rate > 0 else None,
            runaway=runaway,
        )
        while not pages.finished:
            params = dict(base)
            if pages.cursor is not None:
                params["next.value"], params["next.ID"] = pages.cursor
            rows = self._list("/tickets", "tickets", params)
            if rows:
                yield rows
            pages.advance(rows)

    @speaks_to_the_form("helpdesk")
    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: the credentials, then each endpoint the pipelines read, in plain words."""
        return diagnostics.connection_test(self)


def token_grant(api: ApiClient, conn_id: str, token_url: str, client_id: str, client_secret: str) -> OAuth2Grant:
    """HelpDesk's token endpoint (authorization code with PKCE, refresh token), refusals in HelpDesk's words.
    The caller has checked `token_url` (`check_helpdesk_accounts_url`) before any secret goes there."""
    return OAuth2Grant(
        api,
        token_url,
        client_id=client_id,
        client_secret=client_secret,
        oauth_client=WebApplicationClient(client_id),
        describe=lambda refusal: diagnostics.token_refusal(token_url, conn_id, refusal),
    )


def _api_host(conn: Any, fail: Any) -> tuple[str, str, int | None]:
    """Scheme, host and port of the API; a host typed as a URL (`https://api.helpdesk.com/v1`) works too."""
    host = (conn.host or DEFAULT_API_HOST).strip().rstrip("/")
    scheme = (conn.schema or "https").strip().lower()
    if "://" in host:
        parts = urlsplit(host)
        scheme, host = parts.scheme or scheme, parts.netloc
    else:
        host = host.split("/", 1)[0]
    if scheme not in ("http", "https"):
        raise fail(f"field `schema` must be https or http, got {scheme!r}")
    warn_if_plain_http(scheme, host, conn_id=conn.conn_id)
    return scheme, host, (int(conn.port) if conn.port and ":" not in host else None)


def _cursor(row: Any, sort_by: str, silo: str, page_no: int) -> tuple[str, str]:
    value = row.get(sort_by) if isinstance(row, dict) else None
    ident = row.get("ID") if isinstance(row, dict) else None
    if value in (None, "") or ident in (None, ""):
        raise FatalError(
            f"HelpDesk: the last row of ticket page {page_no} (silo {silo}) has no `{sort_by}` or `ID`, "
            "so the next page cannot be asked for"
        )
    return str(value), str(ident)


def _instant(value: str) -> datetime | None:
    """An ISO 8601 cursor value as aware UTC (naive is UTC); None when it is not one."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
