"""LivePerson hook (connection type `liveperson`): discovery, auth, and the API calls cxsync makes.

The hook owns *how to talk* to LivePerson: CSDS service discovery (cached per hook), OAuth 1.0
signatures or OAuth 2.0 client-credential tokens from `sentinel`, the `source` caller id on every Messaging
History request. The request layer (rate limit, retries, error sorting) comes with the base hook
(`cxsync.hooks.base`); the words for failures are in `cxsync.hooks.liveperson_diagnostics`. What to ask
and how to map the answers is the source's business (`cxsync.sources.liveperson`).

Connection fields (docs/architecture.md): host = CSDS host, schema = https|http, port (CSDS and resolved hosts),
login/password = App Key/App Secret (oauth1) or client_id/client_secret (oauth2); extras `account_id`
(required), `auth_type`, `access_token`, `access_token_secret`, `source`, `users_api_version`,
`trusted_hosts`, and the request-layer tunables of `cxsync.http.tunables`.

Why CSDS stays here rather than in `HttpHook`'s base URL: LivePerson has no one API host. Each service
(msgHist, accountConfigReadOnly, sentinel) lives on a host CSDS names per account, and that answer must be
checked before a signature, token or client secret goes there. `HttpHook` carries one base URL per
connection (the CSDS host here); the per-service origins are `resolve()`'s, cached for `CSDS_CACHE_SECONDS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from oauthlib.oauth2 import BackendApplicationClient

from cxsync.errors import AuthenticationError, PermissionDenied, ProviderRequestError
from cxsync.hooks import liveperson_diagnostics as diagnostics
from cxsync.hooks.base import (
    ConnectionSettings,
    ProviderHook,
    extra_text,
    list_answer,
    origin,
    port_of,
    reading,
    scheme_of,
)
from cxsync.hooks.liveperson_diagnostics import TokenRefused, users_permission_message
from cxsync.hooks.test_button import speaks_to_the_form
from cxsync.http import ApiClient, AuthStrategy, ClientTunables, NoAuth, OAuth1Auth, Token
from cxsync.http.endpoints import (
    LIVEPERSON_DOMAIN,
    check_csds_host,
    check_endpoint,
    plain_http_loopback_allowed,
    trusted_hosts,
    warn_if_plain_http,
)
from cxsync.http.oauth2 import OAuth2Grant, TokenRequestRefused
from cxsync.http.retry import RetryPolicy

__all__ = ["LivePersonConnection", "LivePersonHook", "TokenRefused", "users_permission_message"]

log = logging.getLogger(__name__)

DEFAULT_CSDS_HOST = "api.liveperson.net"
DEFAULT_SOURCE = "cxsync"
MAX_SOURCE_LENGTH = 20
DEFAULT_USERS_API_VERSION = "4.0"
DEFAULT_REQUESTS_PER_SECOND = 5.0
AUTH_TYPES = ("oauth1", "oauth2")
# LivePerson's retry advice for a 5xx: again at 5, 10 and 15 s, then after 2, 4 and 8 minutes, so a long
# incident is ridden out (within the task's deadline). Its `Retry-After` is honoured up to an hour, not cut
# at a minute; the task's deadline, when nearer, ends the wait first (the try fails in words).
RETRY_ADVICE = RetryPolicy(
    max_attempts=7, base_seconds=5.0, linear_steps=3, then_seconds=120.0, max_seconds=480.0, retry_after_max=3600.0
)

# CSDS service names (case-sensitive).
MSG_HIST = "msgHist"
ACCOUNT_CONFIG = "accountConfigReadOnly"
SENTINEL = "sentinel"

SEARCH_PAGE_LIMIT = 100
BY_ID_BATCH = 100
# LivePerson's own clients cache CSDS answers 60-600 s; a run is shorter than that in most cases.
CSDS_CACHE_SECONDS = 600.0


@dataclass(frozen=True, repr=False)
class LivePersonConnection(ConnectionSettings):
    """A `liveperson` connection, validated: host is the CSDS host, login/secret the App Key or client."""

    account_id: str = ""
    auth_type: str = "oauth2"
    access_token: str | None = None
    access_token_secret: str | None = None
    source: str = DEFAULT_SOURCE
    users_api_version: str = DEFAULT_USERS_API_VERSION
    trusted_hosts: frozenset[str] = frozenset()  # extra `trusted_hosts`: non-LivePerson hosts allowed anyway
    plain_http_loopback: bool = False  # extra `allow_plain_http_loopback` (or its environment variable)

    @property
    def csds_host(self) -> str:
        return self.host

    shown_fields = ("conn_id", "account_id", "scheme", "csds_host", "auth_type")
    secret_fields = ("secret", "access_token", "access_token_secret")

    @classmethod
    def from_connection(cls, conn: Any) -> LivePersonConnection:
        conn_id, extra, fail = reading(conn, "LivePerson")
        account_id = extra_text(extra, "account_id")
        if not account_id:
            raise fail("extra `account_id` is required: set it to your LivePerson account (site) number")
        scheme = scheme_of(conn.schema, fail)
        access_token = extra_text(extra, "access_token") or None
        access_token_secret = extra_text(extra, "access_token_secret") or None
        # OAuth 2.0 is the default; a connection carrying both OAuth 1.0 token values is an old app key.
        inferred = "oauth1" if access_token and access_token_secret else "oauth2"
        auth_type = extra_text(extra, "auth_type", inferred).lower()
        if auth_type not in AUTH_TYPES:
            raise fail(
                f"extra `auth_type` must be oauth1 or oauth2 (client credentials, the default), got {auth_type!r}"
            )
        key, secret = conn.login or "", conn.password or ""
        names = ("App Key", "App Secret") if auth_type == "oauth1" else ("client_id", "client_secret")
        if not key:
            raise fail(f"field `login` must hold the {names[0]}")
        if not secret:
            raise fail(f"field `password` must hold the {names[1]}")
        if auth_type == "oauth1" and not (access_token and access_token_secret):
            missing = [
                n for n, v in (("access_token", access_token), ("access_token_secret", access_token_secret)) if not v
            ]
            raise fail(
                f"OAuth 1.0 needs the extra(s) {', '.join('`' + m + '`' for m in missing)} of the App Key "
                "(or set extra `auth_type` to oauth2 for client credentials)"
            )
        source = extra_text(extra, "source", DEFAULT_SOURCE)
        if len(source) > MAX_SOURCE_LENGTH:
            raise fail(f"extra `source` must be at most {MAX_SOURCE_LENGTH} characters, got {len(source)}")
        if auth_type == "oauth1":
            log.warning(diagnostics.oauth1_end_of_life(conn_id))
        csds_host = (conn.host or "").strip() or DEFAULT_CSDS_HOST
        warn_if_plain_http(scheme, csds_host, conn_id=conn_id)
        return cls(
            conn_id=conn_id,
            scheme=scheme,
            host=csds_host,
            port=port_of(conn.port, fail),
            login=key,
            secret=secret,
            tunables=ClientTunables.from_extras(
                extra,
                conn_id=conn_id,
                default_requests_per_second=DEFAULT_REQUESTS_PER_SECOND,
                retry_defaults=RETRY_ADVICE,
            ),
            account_id=account_id,
            auth_type=auth_type,
            access_token=access_token,
            access_token_secret=access_token_secret,
            source=source,
            users_api_version=extra_text(extra, "users_api_version", DEFAULT_USERS_API_VERSION),
            trusted_hosts=trusted_hosts(extra, conn_id=conn_id),
            plain_http_loopback=plain_http_loopback_allowed(extra),
        )


class LivePersonHook(ProviderHook):
    """Talks to one LivePerson account through one Airflow connection."""

    conn_type = "liveperson"
    provider_name = "LivePerson"
    default_host = DEFAULT_CSDS_HOST
    connection_class = LivePersonConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hosts: dict[str, str] = {}
        self._hosts_resolved_at: float | None = None
        self._checked_origins: set[str] = set()

    def _auth(self, api: ApiClient, conn: LivePersonConnection) -> AuthStrategy:
        if conn.auth_type == "oauth1":
            return OAuth1Auth(conn.login, conn.secret, conn.access_token or "", conn.access_token_secret or "")
        return self._bearer(api, self._fetch_token)

    @property
    def account_id(self) -> str:
        return self.connection.account_id

    # ---- discovery (CSDS) ---------------------------------------------------------------------------------

    def _csds_url(self, service: str | None = None) -> str:
        path = f"/api/account/{self.account_id}/service/" + (f"{service}/" if service else "") + "baseURI.json"
        return self.connection.origin + path

    def resolve(self, service: str) -> str:
        """The origin (`scheme://host[:port]`) of one LivePerson service, from CSDS; cached per hook."""
        fresh = self._hosts_resolved_at is not None and time.monotonic() - self._hosts_resolved_at < CSDS_CACHE_SECONDS
        if not fresh:
            self._hosts = {}
            self._resolve_all()
        if service not in self._hosts:
            self._resolve_one(service)
        conn = self.connection
        service_origin = origin(conn.scheme, self._hosts[service], conn.port)
        if service_origin not in self._checked_origins:
            # A resolved host gets signed requests, bearer tokens and (sentinel) the client secret: it must be a
            # bare host of LivePerson's (or one the connection trusts), reached over https unless on loopback.
            check_csds_host(self._hosts[service], service=service, conn_id=conn.conn_id)
            check_endpoint(
                service_origin,
                provider_domain=LIVEPERSON_DOMAIN,
                trusted=conn.trusted_hosts,
                plain_http_loopback=conn.plain_http_loopback,
                conn_id=conn.conn_id,
                what=f"LivePerson service {service!r} (resolved by CSDS at {conn.csds_host})",
            )
            self._checked_origins.add(service_origin)
        return service_origin

    def _resolve_all(self) -> None:
        """All services in one request; a CSDS that only answers per service is asked per service later."""
        try:
            answer = self.get_json(self._csds_url(), {"version": "1.0"}, auth=NoAuth())
        except ProviderRequestError as exc:
            log.info("CSDS answered the all-services lookup with HTTP %s; asking per service", exc.status)
            answer = None
        entries = answer.get("baseURIs") if isinstance(answer, dict) else answer
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("service") and entry.get("baseURI"):
                self._hosts.setdefault(str(entry["service"]), str(entry["baseURI"]))
        self._hosts_resolved_at = time.monotonic()

    def _resolve_one(self, service: str) -> None:
        conn = self.connection
        try:
            answer = self.get_json(self._csds_url(service), {"version": "1.0"}, auth=NoAuth())
        except ProviderRequestError as exc:
            raise ProviderRequestError(
                f"LivePerson CSDS at {conn.csds_host} does not know service {service!r} for account "
                f"{conn.account_id!r} (HTTP {exc.status}): check the extra `account_id` and the CSDS host of "
                f"connection {conn.conn_id!r}. {exc}",
                status=exc.status,
                body=exc.body,
            ) from None
        base = answer.get("baseURI") if isinstance(answer, dict) else None
        if not base:
            raise ProviderRequestError(
                f"LivePerson CSDS at {conn.csds_host} returned no baseURI for service {service!r} of account "
                f"{conn.account_id!r}: check the extra `account_id` of connection {conn.conn_id!r}"
            )
        self._hosts[service] = str(base)

    def services(self) -> dict[str, str]:
        """Every service CSDS resolved so far (name -> host), after at least one lookup."""
        self.resolve(MSG_HIST)
        return dict(self._hosts)

    def _touch(self) -> None:
        """A fresh CSDS lookup: one cheap request, which renews the service cache the run needs anyway."""
        self._hosts_resolved_at = None
        self.resolve(MSG_HIST)

    # ---- OAuth 2.0 (sentinel) ------------------------------------------------------------------------------

    def access_token(self) -> str:
        """The current OAuth 2.0 access token (fetched when there is none or it is about to expire)."""
        self.get_conn()
        assert self._tokens is not None, "only OAuth 2.0 connections have tokens"
        return self._tokens.get()

    def _fetch_token(self) -> Token:
        conn = self.connection
        grant = OAuth2Grant(
            self.get_conn(),
            f"{self.resolve(SENTINEL)}/sentinel/api/v2/account/{conn.account_id}/app/token",
            client_id=conn.login,
            client_secret=conn.secret,
            oauth_client=BackendApplicationClient(conn.login),
            describe=lambda refusal: str(diagnostics.token_refused(conn, _refusal_detail(refusal))),
        )
        try:
            token = grant.token(grant.client_credentials())
        except TokenRequestRefused as exc:
            raise TokenRefused(str(exc)) from None
        except (AuthenticationError, PermissionDenied, ProviderRequestError) as exc:  # a redirect, a 404
            raise diagnostics.token_refused(conn, str(exc)) from None
        log.info(
            "LivePerson %r: new OAuth 2.0 token from sentinel%s",
            conn.conn_id,
            ""
            if token.expires_at is None
            else f", valid until {datetime.fromtimestamp(token.expires_at, UTC).isoformat()} (provider clock)",
        )
        return token

    def explain(self, response: Any) -> str | None:
        return diagnostics.explain(self.connection, response)

    # ---- Users API (accountConfigReadOnly) ------------------------------------------------------------------

    def account_config(self, resource: str) -> list[dict[str, Any]]:
        conn = self.connection
        url = f"{self.resolve(ACCOUNT_CONFIG)}/api/account/{conn.account_id}/configuration/le-users/{resource}"
        answer = self.get_json(url, {"v": conn.users_api_version, "include_deleted": "true"})
        # a bare array is documented; tolerate a wrapper object
        return list_answer(
            answer if answer is not None else {}, (resource, "users", "items", "data"), what=self._what(resource)
        )

    def _what(self, resource: str) -> str:
        return f"LivePerson {resource} answer of connection {self.conn_id!r}"

    def users(self) -> list[dict[str, Any]]:
        """Every user, deleted ones included. A refusal says plainly whether the Users permission is missing."""
        try:
            return self.account_config("users")
        except TokenRefused:
            raise
        except (AuthenticationError, PermissionDenied) as exc:
            raise diagnostics.users_refused(self, exc) from None

    def agent_groups(self) -> list[dict[str, Any]]:
        return self.account_config("agentGroups")

    def skills(self) -> list[dict[str, Any]]:
        return self.account_config("skills")

    def profiles(self) -> list[dict[str, Any]]:
        """The Profiles API: each profile's `name` and `roleTypeId` (users carry only `profileIds`)."""
        return self.account_config("profiles")

    # ---- Messaging Interactions (msgHist) --------------------------------------------------------------------

    def _history_url(self, path: str) -> str:
        return f"{self.resolve(MSG_HIST)}/messaging_history/api/account/{self.account_id}/{path}"

    def search_conversations(
        self,
        body: Mapping[str, Any],
        *,
        offset: int = 0,
        limit: int = SEARCH_PAGE_LIMIT,
        retry_partial: bool = False,
        partial_retries: int | None = None,
    ) -> dict[str, Any]:
        """One page of `conversations/search`, sorted by start time ascending. With `retry_partial`, an answer
        flagged `partialResult` is asked again by the retry driver: at most `partial_retries` times (None: as
        often as the connection's `max_attempts` allows), and never more than `max_attempts` tries in all."""
        params = {"offset": offset, "limit": limit, "sort": "start:asc", "v": "2", "source": self.connection.source}
        url = self._history_url("conversations/search")
        checks = _partial_checks(retry_partial, partial_retries)
        sent = dict(body)
        if "latestUpdateTime" not in sent:
            return self._answer(self.post_json(url, sent, params, **checks))
        # The docs leave the shape of `latestUpdateTime` open ({"from": ms} or a bare number): send the reading
        # this connection last had accepted (first: the object), and on a 400 that names the field the other one.
        since = _latest_update_ms(sent["latestUpdateTime"])
        first = _LATEST_UPDATE_READINGS.get(self._reading_key, LATEST_UPDATE_OBJECT)
        sent["latestUpdateTime"] = _latest_update_time(since, first)
        try:
            answer = self.post_json(url, sent, params, **checks)
        except ProviderRequestError as exc:
            if exc.status != 400 or "latestupdatetime" not in f"{exc} {exc.body or ''}".lower():
                raise
            other = LATEST_UPDATE_NUMBER if first == LATEST_UPDATE_OBJECT else LATEST_UPDATE_OBJECT
            log.info(
                "LivePerson %r refused latestUpdateTime as %s (HTTP 400); sending it as %s from now on",
                self.conn_id,
                first,
                other,
            )
            sent["latestUpdateTime"] = _latest_update_time(since, other)
            answer = self.post_json(url, sent, params, **checks)
            first = other
        _LATEST_UPDATE_READINGS[self._reading_key] = first
        return self._answer(answer)

    @property
    def _reading_key(self) -> tuple[str, str, str]:
        conn = self.connection
        return (conn.conn_id, conn.origin, conn.account_id)

    def latest_update_reading(self) -> str | None:
        """The `latestUpdateTime` reading this connection's msgHist accepted (None: not asked yet)."""
        return _LATEST_UPDATE_READINGS.get(self._reading_key)

    def conversations_by_id(
        self,
        conversation_ids: Sequence[str],
        content_to_retrieve: Sequence[str] | None = None,
        *,
        retry_partial: bool = False,
        partial_retries: int | None = None,
        incomplete: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> dict[str, Any]:
        """`conversations/conversation/search` for up to 100 ids. `retry_partial` and `partial_retries` as for
        `search_conversations`; `incomplete` names what else makes an answer worth asking again (records
        still truncated, say), asked again the same way."""
        ids = [str(i) for i in conversation_ids]
        if not ids or len(ids) > BY_ID_BATCH:
            raise ValueError(f"ask for 1 to {BY_ID_BATCH} conversation ids at once, not {len(ids)}")
        body: dict[str, Any] = {"conversationIds": ids}
        if content_to_retrieve:
            body["contentToRetrieve"] = list(content_to_retrieve)
        checks = _partial_checks(retry_partial, partial_retries, incomplete)
        url = self._history_url("conversations/conversation/search")
        return self._answer(self.post_json(url, body, {"source": self.connection.source}, **checks))

    def _answer(self, answer: Any) -> dict[str, Any]:
        if answer is None:  # 204: nothing found
            return {"_metadata": {"count": 0}, "conversationHistoryRecords": []}
        if not isinstance(answer, dict):
            raise ProviderRequestError(
                f"LivePerson msgHist answer of connection {self.conn_id!r} is not an object: {str(answer)[:200]}"
            )
        return answer

    def probe_history(self) -> dict[str, Any]:
        """The smallest msgHist question: one conversation of the last hour."""
        now = self.server_now()
        start = {"from": _ms(now - timedelta(hours=1)), "to": _ms(now)}
        return self.search_conversations({"start": start}, offset=0, limit=1)

    @speaks_to_the_form("liveperson")
    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: CSDS, authentication, Users and msgHist in that order, in plain words."""
        return diagnostics.connection_test(self)


# The two readings of `latestUpdateTime` in the search body, and the one each connection had accepted (per
# process: one task per process, so each task finds it once at most, with one extra request).
LATEST_UPDATE_OBJECT = '{"from": ms}'
LATEST_UPDATE_NUMBER = "a bare number"
_LATEST_UPDATE_READINGS: dict[tuple[str, str, str], str] = {}


def _latest_update_ms(value: Any) -> int:
    """The epoch ms of a `latestUpdateTime` the source wrote in either reading."""
    return int(value["from"]) if isinstance(value, Mapping) else int(value)


def _latest_update_time(since_ms: int, reading: str) -> Any:
    return {"from": since_ms} if reading == LATEST_UPDATE_OBJECT else since_ms


def partial_result(answer: Any) -> str | None:
    """LivePerson's body-level signal of an incomplete answer (shards missing): ask again, never accept it."""
    metadata = answer.get("_metadata") if isinstance(answer, dict) else None
    shards = metadata.get("shardsStatusResult") if isinstance(metadata, dict) else None
    flag = shards.get("partialResult") if isinstance(shards, dict) else None
    if flag is True or (isinstance(flag, str) and flag.lower() == "true"):
        return "LivePerson answered only partially (partialResult: true)"
    return None


def _partial_checks(
    retry_partial: bool, partial_retries: int | None, incomplete: Callable[[Any], str | None] | None = None
) -> dict[str, Any]:
    """The request layer's `body_check` / `body_retries` for an msgHist request."""
    if not retry_partial:
        return {}
    if incomplete is None:
        return {"body_check": partial_result, "body_retries": partial_retries}

    def check(answer: Any) -> str | None:
        return partial_result(answer) or (incomplete(answer) if isinstance(answer, dict) else None)

    return {"body_check": check, "body_retries": partial_retries}


def _refusal_detail(refusal: TokenRequestRefused) -> str:
    detail = f"HTTP {refusal.status}: {refusal.error}"
    return f"{detail}: {refusal.description}" if refusal.description else detail


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
