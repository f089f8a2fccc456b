"""The base of every provider hook: Airflow's `HttpHook`, with cxsync's request layer mounted in it.

From `HttpHook` (apache-airflow-providers-http) a provider hook takes its shape: a connection id, the
connection turned into a base URL (`base_url`, `url_from_endpoint`), the client built in small private steps
(`get_conn` = `_set_base_url`, `_configure_session_from_auth`, `_configure_session_from_extra`,
`_configure_session_from_mount_adapters`), `check_response`, `run` and `run_with_advanced_retry`.

What `get_conn` answers is cxsync's `ApiClient` (a `requests.Session` inside), because the session
`HttpHook` builds and the way `run_and_check` reads an answer lack what the request layer must keep:
- `HttpHook._configure_session_from_extra` copies every extra into the request headers: a connection's
  `refresh_token` or `access_token_secret` would travel as a header. Here extras are read into settings and
  tunables; none becomes a header.
- `run_and_check` follows redirects, reads the body unbounded and raises `AirflowException` for any status;
  `ApiClient` caps the body and the time of one try, follows no redirect with credentials, and sorts the
  answer into cxsync's errors (fatal at once, or retried by the one retry driver, tenacity).
- the adaptive rate limiter (`cxsync.http.ratelimit`) and msgspec decoding are parts of that client.

A provider hook gives only what differs: its connection settings (`connection_class`), its auth strategy
(`_auth`), the cheap request that reads the provider's clock (`_touch`), its calls, and the words of its
diagnostics (`explain`, in `hooks/<provider>_diagnostics.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar

import requests
from airflow.providers.http.hooks.http import HttpHook

from cxsync import settings
from cxsync.errors import ProviderRequestError
from cxsync.http import ApiClient, AuthStrategy, BearerAuth, ClientTunables, Token, TokenCache
from cxsync.http.client import RequestStats, mask_secret
from cxsync.http.ratelimit import limiter_for
from cxsync.http.retry import RetryPolicy, Verdict, sort_answer
from cxsync.http.tunables import ConnectionSettingError


@dataclass(frozen=True, repr=False)
class ConnectionSettings:
    """What every provider connection holds, read and checked once. Secrets are never printed."""

    conn_id: str
    scheme: str
    host: str
    port: int | None
    login: str
    secret: str
    tunables: ClientTunables

    # Fields `repr` shows, and fields that hold secrets (masked in logs, shown as *** by `repr`).
    shown_fields: ClassVar[tuple[str, ...]] = ("conn_id", "scheme", "host", "login")
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    def secrets(self) -> list[str]:
        """Values Airflow's masker hides in every log."""
        return [value for value in (getattr(self, name) for name in self.secret_fields) if value]

    @property
    def origin(self) -> str:
        """`scheme://host[:port]` of the connection's host."""
        return origin(self.scheme, self.host, self.port)

    def __repr__(self) -> str:
        # Secrets stay out of tracebacks, logs and debugger output.
        shown = [f"{name}={getattr(self, name)!r}" for name in self.shown_fields]
        return f"{type(self).__name__}({', '.join(shown + [f'{name}=***' for name in self.secret_fields])})"


class ProviderHook(HttpHook):
    """One provider account through one Airflow connection. Subclasses set the class attributes below."""

    conn_name_attr = "http_conn_id"
    provider_name: ClassVar[str] = ""
    default_host: ClassVar[str] = ""
    default_requests_per_second: ClassVar[float | None] = 5.0
    retry_defaults: ClassVar[RetryPolicy] = RetryPolicy()
    connection_class: ClassVar[type[ConnectionSettings]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Airflow's names for a provider hook, from its `conn_type` and `provider_name`: the keyword of its
        connection id (`<conn_type>_conn_id`), the default connection, the name the UI shows."""
        super().__init_subclass__(**kwargs)
        if "conn_type" in cls.__dict__:
            cls.conn_name_attr = f"{cls.conn_type}_conn_id"
            cls.default_conn_name = f"{cls.conn_type}_default"
            cls.hook_name = cls.provider_name

    def __init__(
        self, conn_id: str | None = None, *, sleep: Callable[[float], None] = time.sleep, **kwargs: Any
    ) -> None:
        # Airflow names the id by the hook's keyword (`liveperson_conn_id=`); positional works too.
        conn_id = conn_id or kwargs.pop(self.conn_name_attr, None) or self.default_conn_name
        super().__init__(method="GET", http_conn_id=conn_id, tcp_keep_alive=False, **kwargs)
        setattr(self, self.conn_name_attr, conn_id)  # e.g. `liveperson_conn_id`, Airflow's name for it
        self._sleep = sleep
        self._api: ApiClient | None = None
        self._tokens: TokenCache | None = None

    # ---- the connection ----------------------------------------------------------------------------------

    @cached_property
    def connection(self) -> Any:
        """The connection's settings (`<Provider>Connection.from_connection`), read and checked once."""
        settings_ = self.connection_class.from_connection(self.get_connection(self.http_conn_id))  # type: ignore[attr-defined]
        for secret in settings_.secrets():
            mask_secret(secret)
        return settings_

    @property
    def conn_id(self) -> str:
        return self.http_conn_id

    # ---- get_conn, in HttpHook's small steps ---------------------------------------------------------

    def get_conn(self, headers: dict[str, str] | None = None, extra_options: dict[str, Any] | None = None) -> ApiClient:
        """The hook's `ApiClient`, built once: base URL, auth, no extras as headers, the client's own adapter."""
        if self._api is None:
            conn = self.connection
            self._set_base_url(conn)
            api = self._new_client(conn)
            self._configure_session_from_auth(api, conn)
            self._configure_session_from_extra(api, conn, extra_options or {})
            self._configure_session_from_mount_adapters(api)
            self._api = api
        if headers:
            self._api.session.headers.update(headers)
        return self._api

    def _set_base_url(self, connection: Any) -> None:
        self.base_url = self.base_url_of(connection)
        self._base_url_initialized = True

    def base_url_of(self, connection: Any) -> str:
        """The URL endpoints are joined to; the connection's origin unless a provider says otherwise."""
        return connection.origin

    def _new_client(self, conn: ConnectionSettings) -> ApiClient:
        tunables = conn.tunables
        return ApiClient(
            name=f"{self.provider_name} {conn.conn_id!r}",
            user_agent=settings.USER_AGENT,
            rate_limiter=limiter_for(tunables, provider=self.conn_type, account=self.rate_limit_account(conn)),
            retry=tunables.retry,
            timeout=tunables.timeout,
            sleep=self._sleep,
            explain=self.explain,
            max_response_bytes=tunables.max_response_bytes,
            deadline=tunables.deadline,
        )

    def rate_limit_account(self, conn: ConnectionSettings) -> str:
        """The provider account whose rate limit the requests draw from, shared by its tasks when a store is set
        (`cxsync.http.shared_limit`): the account number where the connection has one, else host and login."""
        return getattr(conn, "account_id", "") or f"{conn.origin} {conn.login}"

    def _configure_session_from_auth(self, api: ApiClient, conn: Any) -> ApiClient:  # type: ignore[override]
        api.auth = self._auth(api, conn)
        for secret in api.auth.secrets():
            mask_secret(secret)
        return api

    def _configure_session_from_extra(self, api: ApiClient, conn: Any, extra_options: dict[str, Any]) -> ApiClient:  # type: ignore[override]
        """Nothing: extras were read into the settings and tunables; none becomes a header (see above)."""
        return api

    def _configure_session_from_mount_adapters(self, api: ApiClient) -> ApiClient:  # type: ignore[override]
        return api  # the client mounts its own pooled adapter

    def _auth(self, api: ApiClient, conn: Any) -> AuthStrategy:
        raise NotImplementedError

    def _bearer(self, api: ApiClient, fetch: Callable[[], Token]) -> BearerAuth:
        """OAuth 2 bearer tokens from `fetch`, reused until shortly before expiry on the provider's clock."""
        self._tokens = TokenCache(
            fetch, clock=api.server_clock, on_new_token=lambda token: mask_secret(token.access_token)
        )
        return BearerAuth(self._tokens)

    # ---- requests ------------------------------------------------------------------------------------

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """GET `endpoint` (a path joined to the base URL, or a whole URL) and parse the JSON answer."""
        return self.get_conn().get_json(self._url(endpoint), params=dict(params or {}), **kwargs)

    def post_json(self, endpoint: str, body: Any, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.get_conn().post_json(self._url(endpoint), params=dict(params or {}), json_body=body, **kwargs)

    def run(
        self,
        endpoint: str | None = None,
        data: dict[str, Any] | str | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> requests.Response:
        """`HttpHook.run` through the request layer: GET sends `data` as the query, other methods as the body."""
        api = self.get_conn()
        url = self._url(endpoint or "")
        query, body = (data, None) if self.method == "GET" else (None, data)
        ok = () if (extra_options or {}).get("check_response", True) else range(300, 600)
        return api.request(self.method, url, params=query, data=body, headers=headers, ok_status=ok, **request_kwargs)

    def check_response(self, response: requests.Response) -> None:
        """Raise cxsync's error for an answer that is not usable: the sorter's verdict, the provider's words."""
        if sort_answer(response.status_code) is not Verdict.OK:
            raise self.get_conn().fatal(response)

    def _url(self, endpoint: str) -> str:
        if "://" in endpoint:
            return endpoint
        self.get_conn()
        return self.url_from_endpoint(endpoint)

    # ---- what every hook answers ------------------------------------------------------------------------

    def explain(self, response: requests.Response) -> str | None:
        """The provider's words for a failed answer (which field or permission to fix); None: no hint."""
        return None

    def _touch(self) -> None:
        """The cheapest request that brings a fresh `Date` header (the provider's clock)."""
        raise NotImplementedError

    def server_now(self) -> datetime:
        """The provider's time now: the `Date` of a fresh cheap request, not a remembered one, so a window end
        or watermark is never behind the provider's clock by the age of an old answer."""
        self._touch()
        return self.get_conn().server_now()

    def request_stats(self) -> RequestStats | None:
        """What this hook's requests cost so far; None before its first request."""
        return self._api.stats if self._api is not None else None

    @property
    def stats(self) -> RequestStats:
        return self.get_conn().stats

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
            self._tokens = None


# ---- steps every provider's connection reading shares -----------------------------------------------------


def reading(conn: Any, provider: str = "") -> tuple[str, dict[str, Any], Callable[[str], ConnectionSettingError]]:
    """The first step of every `from_connection`: the id, the extras, and a maker of errors naming both."""
    prefix = f"{provider} connection" if provider else "connection"
    return conn.conn_id, extras(conn), setting_error(f"{prefix} {conn.conn_id!r}")


def extras(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except (ValueError, TypeError):  # pragma: no cover - Airflow already parses it
        extra = {}
    return dict(extra or {})


def extra_text(extra: Mapping[str, Any], key: str, default: str = "") -> str:
    """An extra as stripped text; missing or blank is `default`."""
    value = extra.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    return str(value).strip()


def scheme_of(value: str | None, fail: Callable[[str], Exception]) -> str:
    scheme = (value or "https").strip().lower() or "https"
    if scheme not in ("https", "http"):
        raise fail(f"field `schema` must be https or http, got {value!r}")
    return scheme


def port_of(value: Any, fail: Callable[[str], Exception]) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value) or None
    except (TypeError, ValueError):
        raise fail(f"field `port` must be a number, got {value!r}") from None


def origin(scheme: str, host: str, port: int | None) -> str:
    """`scheme://host[:port]`: a host that carries its own port keeps it, else `port` when given."""
    if "://" in host:  # never build `https://https://...`
        host = host.split("://", 1)[1]
    host = host.strip().rstrip("/")
    if ":" not in host.rsplit("]", 1)[-1] and port:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def setting_error(prefix: str) -> Callable[[str], ConnectionSettingError]:
    """A maker of `ConnectionSettingError`s that all start with `prefix` (which names the connection)."""
    return lambda what: ConnectionSettingError(f"{prefix}: {what}")


def list_answer(answer: Any, keys: Sequence[str], *, what: str) -> list[dict[str, Any]]:
    """A list endpoint's answer: a bare JSON array (None: empty), or a wrapper object holding one under one of
    `keys`; anything else is a `ProviderRequestError` naming `what`."""
    if isinstance(answer, list):
        return answer
    if answer is None:
        return []
    if isinstance(answer, dict):
        for key in keys:
            if isinstance(answer.get(key), list):
                return answer[key]
    raise ListExpected(f"{what} answered {type(answer).__name__}, not a JSON array: {str(answer)[:200]}")


class ListExpected(ProviderRequestError):
    """A list endpoint answered something else; no retry changes that."""
