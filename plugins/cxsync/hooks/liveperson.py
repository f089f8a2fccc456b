"""LivePerson hook (connection type `liveperson`): discovery, auth, and the API calls cxsync makes.

The hook owns *how to talk* to LivePerson: CSDS service discovery (cached per hook), OAuth 1.0
signatures or OAuth 2.0 client-credential tokens from `sentinel`, the shared request layer's rate
limit, retries and error sorting, the `source` caller id on every Messaging History request.
What to ask and how to map the answers is the source's business (`cxsync.sources.liveperson`).

Connection fields (docs/architecture.md): host = CSDS host, schema = https|http, port (CSDS and resolved hosts),
login/password = App Key/App Secret (oauth1) or client_id/client_secret (oauth2); extras `account_id`
(required), `auth_type`, `access_token`, `access_token_secret`, `source`, `users_api_version`,
`requests_per_second`, and the request-layer tunables of `cxsync.http.tunables`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from airflow.sdk import BaseHook

from cxsync import settings
from cxsync.errors import AuthenticationError, CxsyncError, PermissionDenied, ProviderRequestError
from cxsync.hooks.test_button import speaks_to_the_form
from cxsync.http import (
    ApiClient,
    AuthStrategy,
    BearerAuth,
    ClientTunables,
    ConnectionSettingError,
    NoAuth,
    OAuth1Auth,
    Token,
    TokenCache,
)
from cxsync.http.client import RequestStats, mask_secret
from cxsync.http.endpoints import LIVEPERSON_DOMAIN, check_csds_host, check_endpoint, trusted_hosts, warn_if_plain_http
from cxsync.http.ratelimit import limiter_for

log = logging.getLogger(__name__)

DEFAULT_CSDS_HOST = "api.liveperson.net"
DEFAULT_SOURCE = "cxsync"
MAX_SOURCE_LENGTH = 20
DEFAULT_USERS_API_VERSION = "4.0"
DEFAULT_REQUESTS_PER_SECOND = 5.0
AUTH_TYPES = ("oauth1", "oauth2")

# CSDS service names (case-sensitive).
MSG_HIST = "msgHist"
ACCOUNT_CONFIG = "accountConfigReadOnly"
SENTINEL = "sentinel"

SEARCH_PAGE_LIMIT = 100
BY_ID_BATCH = 100
# LivePerson's own clients cache CSDS answers 60-600 s; a run is shorter than that in most cases.
CSDS_CACHE_SECONDS = 600.0


def users_permission_message(conn_id: str, detail: str = "") -> str:
    """The one plain answer for the most common first-setup failure (Test button and roster sync alike)."""
    text = (
        f"LivePerson connection {conn_id!r}: the Users API refused these credentials, while conversation "
        'history (Messaging Interactions) works. The App Key / API client lacks the "Users" permission. '
        "Fix: in LivePerson Conversational Cloud, edit the same App Key / API client this connection uses "
        'and enable "Users" (Administration > Users), then run the roster sync (or the Test button) again.'
    )
    return f"{text} [{detail}]" if detail else text


class TokenRefused(AuthenticationError):
    """sentinel refused the OAuth 2.0 client credentials: no other call can succeed either."""


@dataclass(frozen=True)
class LivePersonSettings:
    """A `liveperson` connection, validated. Secrets are held here but never printed (see `__repr__`)."""

    conn_id: str
    account_id: str
    scheme: str
    csds_host: str
    port: int | None
    auth_type: str
    key: str
    secret: str
    access_token: str | None
    access_token_secret: str | None
    source: str
    users_api_version: str
    tunables: ClientTunables
    trusted_hosts: frozenset[str] = frozenset()  # extra `trusted_hosts`: non-LivePerson hosts allowed anyway

    def __repr__(self) -> str:
        return (
            f"LivePersonSettings(conn_id={self.conn_id!r}, account_id={self.account_id!r}, "
            f"csds={self.scheme}://{self.csds_host}, auth_type={self.auth_type!r})"
        )

    @classmethod
    def from_connection(cls, conn: Any) -> LivePersonSettings:
        conn_id = conn.conn_id
        extra: Mapping[str, Any] = conn.extra_dejson or {}

        def fail(what: str) -> ConnectionSettingError:
            return ConnectionSettingError(f"LivePerson connection {conn_id!r}: {what}")

        def text(key: str, default: str | None = None) -> str | None:
            value = extra.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                return default
            return str(value).strip()

        account_id = text("account_id")
        if not account_id:
            raise fail("extra `account_id` is required: set it to your LivePerson account (site) number")
        scheme = (conn.schema or "https").strip().lower() or "https"
        if scheme not in ("https", "http"):
            raise fail(f"field `schema` must be https or http, got {conn.schema!r}")
        auth_type = (text("auth_type", "oauth1") or "oauth1").lower()
        if auth_type not in AUTH_TYPES:
            raise fail(f"extra `auth_type` must be oauth1 or oauth2, got {auth_type!r}")
        key, secret = conn.login or "", conn.password or ""
        names = ("App Key", "App Secret") if auth_type == "oauth1" else ("client_id", "client_secret")
        if not key:
            raise fail(f"field `login` must hold the {names[0]}")
        if not secret:
            raise fail(f"field `password` must hold the {names[1]}")
        access_token = text("access_token")
        access_token_secret = text("access_token_secret")
        if auth_type == "oauth1" and not (access_token and access_token_secret):
            missing = [
                n for n, v in (("access_token", access_token), ("access_token_secret", access_token_secret)) if not v
            ]
            raise fail(
                f"OAuth 1.0 needs the extra(s) {', '.join('`' + m + '`' for m in missing)} of the App Key "
                "(or set extra `auth_type` to oauth2 for client credentials)"
            )
        source = text("source", DEFAULT_SOURCE) or DEFAULT_SOURCE
        if len(source) > MAX_SOURCE_LENGTH:
            raise fail(f"extra `source` must be at most {MAX_SOURCE_LENGTH} characters, got {len(source)}")
        csds_host = (conn.host or "").strip() or DEFAULT_CSDS_HOST
        warn_if_plain_http(scheme, csds_host, conn_id=conn_id)
        port = conn.port
        if port is not None:
            try:
                port = int(port)
            except (TypeError, ValueError):
                raise fail(f"field `port` must be a number, got {port!r}") from None
        return cls(
            conn_id=conn_id,
            account_id=account_id,
            scheme=scheme,
            csds_host=csds_host,
            port=port or None,
            auth_type=auth_type,
            key=key,
            secret=secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            source=source,
            users_api_version=text("users_api_version", DEFAULT_USERS_API_VERSION) or DEFAULT_USERS_API_VERSION,
            tunables=ClientTunables.from_extras(
                extra, conn_id=conn_id, default_requests_per_second=DEFAULT_REQUESTS_PER_SECOND
            ),
            trusted_hosts=trusted_hosts(extra, conn_id=conn_id),
        )


class LivePersonHook(BaseHook):
    """Talks to one LivePerson account through one Airflow connection."""

    conn_name_attr = "liveperson_conn_id"
    default_conn_name = "liveperson_default"
    conn_type = "liveperson"
    hook_name = "LivePerson"

    def __init__(
        self,
        liveperson_conn_id: str = default_conn_name,
        *,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.liveperson_conn_id = liveperson_conn_id
        self._sleep = sleep
        self._settings: LivePersonSettings | None = None
        self._api: ApiClient | None = None
        self._token_cache: TokenCache | None = None
        self._hosts: dict[str, str] = {}
        self._hosts_resolved_at: float | None = None
        self._checked_origins: set[str] = set()

    # ---- building the client, in small steps -----------------------------------------------------

    def _conn(self) -> LivePersonSettings:
        """The connection's settings, read and validated once per hook."""
        if self._settings is None:
            conn = self.get_connection(self.liveperson_conn_id)
            self._settings = LivePersonSettings.from_connection(conn)
            for secret in (self._settings.secret, self._settings.access_token, self._settings.access_token_secret):
                mask_secret(secret)
        return self._settings

    def _auth(self) -> AuthStrategy:
        s = self._conn()
        if s.auth_type == "oauth1":
            return OAuth1Auth(s.key, s.secret, s.access_token or "", s.access_token_secret or "")
        self._token_cache = TokenCache(
            self._fetch_token,
            clock=lambda: self._client().server_clock(),
            on_new_token=lambda token: mask_secret(token.access_token),
        )
        return BearerAuth(self._token_cache)

    def _client(self) -> ApiClient:
        if self._api is None:
            s = self._conn()
            self._api = ApiClient(
                name=f"LivePerson {s.conn_id!r}",
                auth=NoAuth(),  # set right below: the OAuth 2.0 token cache reads this client's clock
                user_agent=settings.USER_AGENT,
                rate_limiter=limiter_for(s.tunables, provider="liveperson", account=s.account_id),
                retry=s.tunables.retry,
                timeout=s.tunables.timeout,
                sleep=self._sleep,
                explain=self._explain,
                max_response_bytes=s.tunables.max_response_bytes,
                deadline=s.tunables.deadline,
            )
            self._api.auth = self._auth()
            for secret in self._api.auth.secrets():
                mask_secret(secret)
        return self._api

    def get_conn(self) -> ApiClient:
        """The request client (Airflow's hook convention); its limiter also says how many requests to keep in flight."""
        return self._client()

    @property
    def account_id(self) -> str:
        return self._conn().account_id

    @property
    def stats(self) -> RequestStats:
        """Request counts of this hook (requests, retries, rate-limited, by status)."""
        return self._client().stats

    def request_stats(self) -> RequestStats | None:
        """What this hook's requests cost so far; None before its first request."""
        return self._api.stats if self._api is not None else None

    def backoff(self, attempt: int) -> float:
        """Wait before asking again after an incomplete answer (the connection's retry tunables apply)."""
        wait = self._client().retry.backoff(attempt)
        self._sleep(wait)
        return wait

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    # ---- discovery -------------------------------------------------------------------------------

    def _csds_url(self, service: str | None = None) -> str:
        s = self._conn()
        path = f"/api/account/{s.account_id}/service/" + (f"{service}/" if service else "") + "baseURI.json"
        return self._origin(s.csds_host) + path

    def _origin(self, host: str) -> str:
        """`scheme://host[:port]`: a host that carries its own port keeps it, else the connection's port."""
        s = self._conn()
        if "://" in host:  # a CSDS answer is a bare host, but never build `https://https://...`
            host = host.split("://", 1)[1]
        host = host.strip().rstrip("/")
        if ":" not in host.rsplit("]", 1)[-1] and s.port:
            host = f"{host}:{s.port}"
        return f"{s.scheme}://{host}"

    def resolve(self, service: str) -> str:
        """The origin (`scheme://host[:port]`) of one LivePerson service, from CSDS; cached per hook."""
        fresh = self._hosts_resolved_at is not None and time.monotonic() - self._hosts_resolved_at < CSDS_CACHE_SECONDS
        if not fresh:
            self._hosts = {}
            self._resolve_all()
        if service not in self._hosts:
            self._resolve_one(service)
        origin = self._origin(self._hosts[service])
        if origin not in self._checked_origins:
            self._check_service_host(service, origin)
            self._checked_origins.add(origin)
        return origin

    def _check_service_host(self, service: str, origin: str) -> None:
        """A resolved host gets signed requests, bearer tokens and (sentinel) the client secret: it must be a
        bare host of LivePerson's (or one the connection trusts), reached over https unless on loopback."""
        s = self._conn()
        check_csds_host(self._hosts[service], service=service, conn_id=s.conn_id)
        check_endpoint(
            origin,
            provider_domain=LIVEPERSON_DOMAIN,
            trusted=s.trusted_hosts,
            conn_id=s.conn_id,
            what=f"LivePerson service {service!r} (resolved by CSDS at {s.csds_host})",
        )

    def _resolve_all(self) -> None:
        """All services in one request; a CSDS that only answers per service is asked per service later."""
        try:
            answer = self._client().get_json(self._csds_url(), params={"version": "1.0"}, auth=NoAuth())
        except ProviderRequestError as exc:
            log.info("CSDS answered the all-services lookup with HTTP %s; asking per service", exc.status)
            answer = None
        entries = answer.get("baseURIs") if isinstance(answer, dict) else answer
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("service") and entry.get("baseURI"):
                self._hosts.setdefault(str(entry["service"]), str(entry["baseURI"]))
        self._hosts_resolved_at = time.monotonic()

    def _resolve_one(self, service: str) -> None:
        s = self._conn()
        try:
            answer = self._client().get_json(self._csds_url(service), params={"version": "1.0"}, auth=NoAuth())
        except ProviderRequestError as exc:
            raise ProviderRequestError(
                f"LivePerson CSDS at {s.csds_host} does not know service {service!r} for account "
                f"{s.account_id!r} (HTTP {exc.status}): check the extra `account_id` and the CSDS host of "
                f"connection {s.conn_id!r}. {exc}",
                status=exc.status,
                body=exc.body,
            ) from None
        base = answer.get("baseURI") if isinstance(answer, dict) else None
        if not base:
            raise ProviderRequestError(
                f"LivePerson CSDS at {s.csds_host} returned no baseURI for service {service!r} of account "
                f"{s.account_id!r}: check the extra `account_id` of connection {s.conn_id!r}"
            )
        self._hosts[service] = str(base)

    def services(self) -> dict[str, str]:
        """Every service CSDS resolved so far (name -> host), after at least one lookup."""
        self.resolve(MSG_HIST)
        return dict(self._hosts)

    def server_now(self) -> datetime:
        """LivePerson's current time (UTC), from the `Date` header of a fresh CSDS lookup.

        One cheap request (it renews the service cache too, which the run needs anyway): the pipeline
        asks once per run, and an answer remembered from earlier could lag behind the provider's clock.
        """
        self._hosts_resolved_at = None
        self.resolve(MSG_HIST)
        return self._client().server_now()

    # ---- OAuth 2.0 -------------------------------------------------------------------------------

    def _fetch_token(self) -> Token:
        s = self._conn()
        client = self._client()
        url = f"{self.resolve(SENTINEL)}/sentinel/api/v2/account/{s.account_id}/app/token"
        form = {"client_id": s.key, "client_secret": s.secret, "grant_type": "client_credentials"}
        try:
            response = client.request(
                "POST",
                url,
                data=form,
                auth=NoAuth(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                allow_redirects=False,  # a redirect would forward the client secret to wherever it points
            )
        except (AuthenticationError, PermissionDenied, ProviderRequestError) as exc:
            raise TokenRefused(
                f"LivePerson sentinel refused the OAuth 2.0 client credentials of connection {s.conn_id!r} "
                f"(client_id {s.key!r}): the client secret (or client_id) was refused. Check `login` (client_id) "
                f"and `password` (client_secret), and that the API client belongs to account {s.account_id!r}. "
                f"[{exc}]"
            ) from None
        try:
            payload = response.json()
            token = Token.from_response(payload, now=client.server_clock())
        except (ValueError, KeyError, TypeError, RecursionError):
            raise TokenRefused(
                f"LivePerson sentinel answered connection {s.conn_id!r} without an access_token "
                f"(HTTP {response.status_code}); the client credentials could not be exchanged for a token"
            ) from None
        mask_secret(token.access_token)
        log.info(
            "LivePerson %r: new OAuth 2.0 token from sentinel%s",
            s.conn_id,
            ""
            if token.expires_at is None
            else f", valid until {datetime.fromtimestamp(token.expires_at, UTC).isoformat()} (provider clock)",
        )
        return token

    # ---- error hints -----------------------------------------------------------------------------

    def _explain(self, response: requests.Response) -> str | None:
        s = self._conn()
        status = response.status_code
        path = response.url or ""
        if status == 401 and "/le-users/" not in path:
            if s.auth_type == "oauth1":
                return (
                    f"LivePerson refused the OAuth 1.0 signature of connection {s.conn_id!r}: check the App Key "
                    "(login), App Secret (password), `access_token` and `access_token_secret`: all four must "
                    "belong to the same App Key of this account."
                )
            return (
                f"LivePerson refused the OAuth 2.0 token of connection {s.conn_id!r} even after fetching a "
                "new one: check the API client's permissions and that it belongs to this account."
            )
        if status == 403 and "/messaging_history/" in path:
            return (
                f"The credentials of connection {s.conn_id!r} lack the conversation history permission: enable "
                '"Data > Conversation History / Messaging Interactions" on the same App Key / API client.'
            )
        return None

    # ---- Users API (accountConfigReadOnly) --------------------------------------------------------

    def _account_config(self, resource: str) -> list[dict[str, Any]]:
        s = self._conn()
        url = f"{self.resolve(ACCOUNT_CONFIG)}/api/account/{s.account_id}/configuration/le-users/{resource}"
        answer = self._client().get_json(url, params={"v": s.users_api_version, "include_deleted": "true"})
        if isinstance(answer, dict):  # a bare array is documented; tolerate a wrapper object
            for key in (resource, "users", "items", "data"):
                if isinstance(answer.get(key), list):
                    answer = answer[key]
                    break
        if not isinstance(answer, list):
            raise ProviderRequestError(
                f"LivePerson {resource} answer of connection {s.conn_id!r} is not a list: {str(answer)[:200]}"
            )
        return answer

    def users(self) -> list[dict[str, Any]]:
        """Every user, deleted ones included. A refusal says plainly whether the Users permission is missing."""
        try:
            return self._account_config("users")
        except TokenRefused:
            raise
        except (AuthenticationError, PermissionDenied) as exc:
            raise self._users_refused(exc) from None

    def agent_groups(self) -> list[dict[str, Any]]:
        return self._account_config("agentGroups")

    def skills(self) -> list[dict[str, Any]]:
        return self._account_config("skills")

    def _users_refused(self, exc: CxsyncError) -> CxsyncError:
        """A 401/403 on Users: a missing permission when msgHist accepts the same credentials, else bad auth."""
        s = self._conn()
        try:
            self.probe_history()
        except AuthenticationError as probe:
            return AuthenticationError(f"{_one_line(probe)} (The Users API refused them too: {_first_line(exc)})")
        except PermissionDenied:
            return PermissionDenied(
                f'LivePerson connection {s.conn_id!r}: the credentials are accepted but lack both the "Users" '
                '(Administration > Users) and the "Conversation History" (Data) permissions: enable both on '
                f"the same App Key / API client. [{_first_line(exc)}]"
            )
        except CxsyncError:
            pass  # msgHist unreachable: say what the Users API said
        else:
            return PermissionDenied(users_permission_message(s.conn_id, _first_line(exc)))
        return exc

    # ---- Messaging Interactions (msgHist) --------------------------------------------------------

    def _history_url(self, path: str) -> str:
        return f"{self.resolve(MSG_HIST)}/messaging_history/api/account/{self._conn().account_id}/{path}"

    def search_conversations(
        self, body: Mapping[str, Any], *, offset: int = 0, limit: int = SEARCH_PAGE_LIMIT
    ) -> dict[str, Any]:
        """One page of `conversations/search`, sorted by start time ascending."""
        params = {"offset": offset, "limit": limit, "sort": "start:asc", "v": "2", "source": self._conn().source}
        return self._answer(
            self._client().post_json(self._history_url("conversations/search"), params=params, json_body=dict(body))
        )

    def conversations_by_id(
        self, conversation_ids: Sequence[str], content_to_retrieve: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """`conversations/conversation/search` for up to 100 ids."""
        ids = [str(i) for i in conversation_ids]
        if not ids or len(ids) > BY_ID_BATCH:
            raise ValueError(f"ask for 1 to {BY_ID_BATCH} conversation ids at once, not {len(ids)}")
        body: dict[str, Any] = {"conversationIds": ids}
        if content_to_retrieve:
            body["contentToRetrieve"] = list(content_to_retrieve)
        params = {"source": self._conn().source}
        return self._answer(
            self._client().post_json(
                self._history_url("conversations/conversation/search"), params=params, json_body=body
            )
        )

    def _answer(self, answer: Any) -> dict[str, Any]:
        if answer is None:  # 204: nothing found
            return {"_metadata": {"count": 0}, "conversationHistoryRecords": []}
        if not isinstance(answer, dict):
            raise ProviderRequestError(
                f"LivePerson msgHist answer of connection {self._conn().conn_id!r} is not "
                f"an object: {str(answer)[:200]}"
            )
        return answer

    def probe_history(self) -> dict[str, Any]:
        """The smallest msgHist question: one conversation of the last hour."""
        now = self.server_now()
        start = {"from": _ms(now - timedelta(hours=1)), "to": _ms(now)}
        return self.search_conversations({"start": start}, offset=0, limit=1)

    # ---- the UI's Test button --------------------------------------------------------------------

    @speaks_to_the_form("liveperson")
    def test_connection(self) -> tuple[bool, str]:
        """Checks CSDS, authentication, Users and msgHist in that order; answers in plain words."""
        done: list[str] = []
        try:
            s = self._conn()
        except CxsyncError as exc:
            return False, str(exc)
        except Exception as exc:  # e.g. the connection does not exist
            return False, f"LivePerson connection {self.liveperson_conn_id!r}: {exc}"
        auth_name = "OAuth 1.0 (App Key)" if s.auth_type == "oauth1" else "OAuth 2.0 (client credentials)"

        # 1. CSDS
        try:
            self.resolve(MSG_HIST)
            self.resolve(ACCOUNT_CONFIG)
            if s.auth_type == "oauth2":
                self.resolve(SENTINEL)
        except CxsyncError as exc:
            return False, (
                f"Step 1 of 4, service discovery (CSDS at {s.scheme}://{s.csds_host}) failed for account "
                f"{s.account_id!r}: {exc}"
            )
        except Exception as exc:  # the UI must get an answer, not a stack trace
            return False, f"Step 1 of 4, service discovery (CSDS) failed: {type(exc).__name__}: {exc}"
        done.append(f"CSDS resolved account {s.account_id}")

        # 2. authentication (OAuth 2.0 has its own step; OAuth 1.0 signatures are proven by the next calls)
        if s.auth_type == "oauth2":
            try:
                assert self._token_cache is not None
                self._token_cache.get()
            except CxsyncError as exc:
                return False, f"Step 2 of 4, authentication failed: {exc}"
            done.append("sentinel issued an OAuth 2.0 token")

        # 3. Users, 4. msgHist
        users_error: CxsyncError | None = None
        users: list[dict[str, Any]] = []
        try:
            users = self._account_config("users")
        except TokenRefused as exc:
            return False, f"Step 2 of 4, authentication failed: {exc}"
        except (AuthenticationError, PermissionDenied) as exc:
            users_error = exc
        except CxsyncError as exc:
            return False, f"Step 3 of 4, Users API failed: {exc}"
        try:
            answer = self.probe_history()
        except AuthenticationError as exc:
            step = "Step 2 of 4, authentication" if s.auth_type == "oauth1" else "Step 4 of 4, conversation history"
            return False, f"{step} failed: {_one_line(exc)}"
        except CxsyncError as exc:
            prefix = "; ".join(done)
            return False, f"{prefix}; but step 4 of 4, conversation history (msgHist), failed: {exc}"
        if s.auth_type == "oauth1":
            done.append("the OAuth 1.0 signature was accepted")
        if users_error is not None:
            return False, users_permission_message(s.conn_id, _first_line(users_error))
        count = (answer.get("_metadata") or {}).get("count")
        history = "conversation history answered" + (
            f" ({count} conversation(s) in the last hour)" if isinstance(count, int) else ""
        )
        done.append(f"the Users API (v{s.users_api_version}) listed {len(users)} user(s)")
        done.append(history)
        return True, f"LivePerson connection {s.conn_id!r} works with {auth_name}: " + "; ".join(done) + "."


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
