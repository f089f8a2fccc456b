"""`ApiClient`: one place that sends a request and decides what a failure means.

- 2xx (and 304 when asked for) is returned;
- 401 gets one retry after the auth strategy refreshes its credentials, then `AuthenticationError`;
- 403 is `PermissionDenied`; any other 4xx but 429 is `ProviderRequestError`: fatal at once, with
  status and body in the message;
- 429 waits (`Retry-After`, at least 1 s) and slows the rate limiter down (AIMD); 5xx / resets /
  timeouts / truncated JSON back off exponentially with jitter; bounded, then `RetriesExhausted`
  (Airflow's task retry takes over).

Answers are bounded: the body is streamed and refused beyond `max_response_bytes` (counted after
decompression, which is done chunk by chunk, so a gzip bomb never inflates in memory), each try must
finish within `deadline` seconds however slowly the server dribbles, and JSON nested too deeply to parse
is a `ProviderRequestError`, not a crash.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import msgspec
import requests
from requests.utils import get_environ_proxies
from urllib3.exceptions import HTTPError as Urllib3Error

from cxsync.errors import AuthenticationError, PermissionDenied, ProviderRequestError, RetriesExhausted
from cxsync.http import deadline as header_deadline
from cxsync.http.auth import AuthStrategy, NoAuth
from cxsync.http.ratelimit import RateLimiter
from cxsync.http.retry import RETRIABLE_EXCEPTIONS, RETRIABLE_STATUS, RetryPolicy

log = logging.getLogger(__name__)

BODY_EXCERPT = 500
DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read
# The largest answer read (after decompression). A LivePerson page of 100 whole conversations is a few MB.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# The longest one try of a request may take, body included: a read timeout alone bounds only each pause.
DEFAULT_DEADLINE_SECONDS = 300.0
_READ_CHUNK = 256 * 1024


class ResponseTooLarge(ProviderRequestError):
    """The answer is larger than the connection allows (`max_response_mb`); reading it again would not help."""


class DeadlineExceeded(requests.Timeout):
    """One try took longer than the per-request deadline (a server sending its answer a byte at a time)."""


def mask_secret(value: str | None) -> None:
    """Register a value with Airflow's secret masker, so it is redacted from every task log."""
    if not value:
        return
    try:
        from airflow.sdk.log import mask_secret as _mask
    except ImportError:  # pragma: no cover - outside Airflow
        return
    _mask(value)


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    by_status: dict[int, int] = field(default_factory=dict)


class ApiClient:
    """A `requests.Session` with auth, a rate limit, retries and the error sorting above."""

    def __init__(
        self,
        *,
        name: str,
        auth: AuthStrategy | None = None,
        user_agent: str,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        default_headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        explain: Callable[[requests.Response], str | None] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
    ):
        self.name = name
        self.max_response_bytes = max_response_bytes
        self.deadline = deadline
        self.auth = auth or NoAuth()
        self.rate_limiter = rate_limiter or RateLimiter(None)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.stats = RequestStats()
        self.server_time: datetime | None = None
        # When (monotonic) `server_time` was read, so `server_clock()` can run the provider's clock forward.
        self.server_time_seen_at: float | None = None
        self._sleep = sleep
        self._rng = random.Random()
        # A provider-specific hint added to fatal errors (e.g. "enable Users on this App Key").
        self._explain = explain
        self.session = requests.Session()
        # requests reads proxies and CA bundles from the environment on every request when `trust_env` is on
        # (scanning every variable twice: about a tenth of a small request's cost). The environment is read
        # once here instead, per host for proxies; what it says is applied to every request just the same.
        # (`.netrc` is not read: credentials come from the Airflow connection.)
        self.session.trust_env = False
        self._verify: bool | str = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._proxies: dict[str, dict[str, str]] = {}
        adapter = header_deadline.DeadlineAdapter(pool_connections=4, pool_maxsize=8)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
        if default_headers:
            self.session.headers.update(default_headers)
        for secret in self.auth.secrets():
            mask_secret(secret)

    def close(self) -> None:
        """Close the session and log what it cost: the task log's account of requests, retries and waits."""
        stats = self.stats
        if stats.requests:
            log.info(
                "%s: %d request(s), %d retried, %d answered 429, %.1f s waited (rate limit and backoff); "
                "answers by status %s",
                self.name,
                stats.requests,
                stats.retries,
                stats.rate_limited,
                stats.waited_seconds,
                dict(sorted(stats.by_status.items())),
            )
        self.session.close()

    # ---- public ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: AuthStrategy | None = None,
        ok_status: Collection[int] = (),
        allow_redirects: bool = False,
    ) -> requests.Response:
        """Send with retries; return a 2xx response (or one whose status is in `ok_status`), its body read.

        Redirects are not followed unless asked for: neither provider's API redirects, and a 307 would forward
        a token request's form (secrets included), or a signed request's query, to wherever it points. A
        redirect answer is fatal and names the target."""
        strategy = auth or self.auth
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            kwargs: dict[str, Any] = {
                "params": params,
                "headers": dict(headers or {}),
                "timeout": self.timeout,
                "proxies": self._proxies_for(url),
                "verify": self._verify,
                "allow_redirects": allow_redirects,
                "stream": True,  # the body is read below, bounded in size and time
            }
            if json_body is not None:
                kwargs["json"] = json_body
            if data is not None:
                kwargs["data"] = data
            strategy.prepare(kwargs)
            self.stats.waited_seconds += self.rate_limiter.acquire()
            self.stats.requests += 1
            deadline = time.monotonic() + self.deadline
            try:
                with header_deadline.deadline(deadline):
                    try:
                        response = self.session.request(method, url, **kwargs)
                    except requests.ConnectionError:
                        if header_deadline.passed():  # the timer cut a server still sending its headers
                            raise self._deadline_exceeded("the headers") from None
                        raise
                self._read_body(response, deadline, method, url)
            except RETRIABLE_EXCEPTIONS as exc:
                what = f"{type(exc).__name__}: {exc}" if isinstance(exc, DeadlineExceeded) else type(exc).__name__
                self._retry_or_raise(attempt, f"{method} {_path(url)}: {what}", self.retry.backoff)
                continue
            self._note(response)
            status = response.status_code
            if 200 <= status < 300 or status in ok_status:
                self.rate_limiter.on_success()
                return response
            if status == 401 and not refreshed and strategy.refresh():
                refreshed = True
                log.info("%s: 401 on %s %s; credentials refreshed, trying once more", self.name, method, _path(url))
                continue
            if status in RETRIABLE_STATUS:
                if status == 429:
                    self.stats.rate_limited += 1
                    self.rate_limiter.on_rate_limited()  # pace below the server's limit from now on
                    retry_after = response.headers.get("Retry-After")

                    def wait(n, rng=None, _ra=retry_after):
                        return self.retry.rate_limit_wait(n, _ra, rng)
                else:
                    wait = self.retry.backoff
                self._retry_or_raise(attempt, f"{method} {_path(url)}: HTTP {status}", wait)
                continue
            raise self._fatal(method, url, response)

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.request_json("GET", url, **kwargs)

    def post_json(self, url: str, **kwargs: Any) -> Any:
        return self.request_json("POST", url, **kwargs)

    def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Like `request`, parsing the body; a body cut short is retried like a reset."""
        attempt = 0
        while True:
            attempt += 1
            response = self.request(method, url, **kwargs)
            if response.status_code in (204, 304) or not response.content:
                return None
            try:
                return _parse_json(response)
            except (json.JSONDecodeError, ValueError):
                self._retry_or_raise(
                    attempt, f"{method} {_path(url)}: truncated or invalid JSON body", self.retry.backoff
                )

    # ---- private steps --------------------------------------------------------------------------

    def _read_body(self, response: requests.Response, deadline: float, method: str, url: str) -> None:
        """Read the streamed body into `response.content`, within the size cap and the deadline.

        `read1` returns what has arrived (one byte from a dribbling server, not a full chunk), so the
        deadline is checked between arrivals; it also decompresses at most one chunk at a time."""
        limit = self.max_response_bytes
        try:
            declared = int(response.headers.get("Content-Length") or 0)
        except ValueError:
            declared = 0
        if declared > limit and not response.headers.get("Content-Encoding"):
            response.close()
            raise self._too_large(method, url, f"it declares {declared:,} bytes")
        raw = response.raw
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = raw.read1(_READ_CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise self._too_large(method, url, f"more than {limit:,} bytes arrived")
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise self._deadline_exceeded("the whole answer")
        except Urllib3Error as exc:  # cut short, reset, undecodable: what requests would have raised
            response.close()
            raise requests.exceptions.ChunkedEncodingError(str(exc)) from None
        except BaseException:
            response.close()
            raise
        response._content = b"".join(chunks)
        response._content_consumed = True

    def _deadline_exceeded(self, what: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{what} did not arrive within the {self.deadline:g} s deadline (extra `request_deadline`)"
        )

    def _too_large(self, method: str, url: str, why: str) -> ResponseTooLarge:
        limit_mb = self.max_response_bytes / (1024 * 1024)
        return ResponseTooLarge(
            f"{self.name}: the answer to {method} {_path(url)} is larger than {limit_mb:g} MiB ({why}); cxsync "
            "refuses it rather than exhaust the worker's memory. If such answers are expected, raise the "
            "connection's extra `max_response_mb`",
            status=None,
        )

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for this URL's origin (`HTTPS_PROXY`, `NO_PROXY`...), read once per origin."""
        key = "/".join(url.split("/", 3)[:3])  # scheme://host[:port]
        proxies = self._proxies.get(key)
        if proxies is None:
            proxies = self._proxies[key] = get_environ_proxies(key + "/")
        return proxies

    def _note(self, response: requests.Response) -> None:
        self.stats.by_status[response.status_code] = self.stats.by_status.get(response.status_code, 0) + 1
        date = response.headers.get("Date")
        if date:
            try:
                moment = parsedate_to_datetime(date)
            except (TypeError, ValueError):
                return
            self.server_time = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            self.server_time_seen_at = time.monotonic()

    def _retry_or_raise(self, attempt: int, what: str, wait_for: Callable[..., float]) -> None:
        if attempt >= self.retry.max_attempts:
            raise RetriesExhausted(f"{self.name}: {what}; gave up after {attempt} attempts")
        wait = wait_for(attempt, self._rng)
        self.stats.retries += 1
        self.stats.waited_seconds += wait
        log.warning("%s: %s; retry %d of %d in %.1f s", self.name, what, attempt, self.retry.max_attempts - 1, wait)
        self._sleep(wait)

    def _fatal(self, method: str, url: str, response: requests.Response) -> Exception:
        status = response.status_code
        body = _excerpt(response)
        hint = self._explain(response) if self._explain else None
        if 300 <= status < 400:
            target = _path(response.headers.get("Location") or "(no Location)")
            hint = (
                f"The server redirected to {target}; cxsync does not follow redirects here (they would carry "
                "credentials elsewhere): point the connection at the final address."
            )
        message = f"{self.name}: HTTP {status} from {method} {_path(url)}: {body}"
        if hint:
            message = f"{message}\n{hint}"
        if status == 401:
            return AuthenticationError(message)
        if status == 403:
            return PermissionDenied(message)
        return ProviderRequestError(message, status=status, body=body)

    def server_now(self) -> datetime:
        """The provider's time from the latest `Date` header; local UTC time if none was seen."""
        return self.server_time or datetime.now(UTC)

    def server_clock(self) -> float:
        """Epoch seconds on the provider's clock: the latest `Date` plus the time elapsed here since.

        Token lifetimes (`expires_in`, a JWT's `exp`) are on the provider's clock; comparing them with
        ours breaks when the two disagree (skew, or a sandbox whose clock is frozen in the past).
        """
        if self.server_time is None or self.server_time_seen_at is None:
            return time.time()
        return self.server_time.timestamp() + max(0.0, time.monotonic() - self.server_time_seen_at)


_decode = msgspec.json.decode


def _parse_json(response: requests.Response) -> Any:
    """The body as JSON: msgspec (about three times faster on a 1 MB page), else `response.json()`, which
    also reads what msgspec refuses (a non-UTF-8 charset, NaN) and raises on a body that is not JSON.
    JSON nested deeper than the parsers go is a fatal `ProviderRequestError` (no retry makes it shallower)."""
    try:
        try:
            return _decode(response.content)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return response.json()
    except RecursionError:
        raise ProviderRequestError(
            f"the answer of {_path(response.url or '')} (HTTP {response.status_code}) is JSON nested too deeply "
            "to read; this is not an answer the provider's API gives",
            status=response.status_code,
        ) from None


def _path(url: str) -> str:
    """Scheme, host and path, without the query string (which may carry ids, never secrets, but is long)."""
    return url.split("?", 1)[0]


def _excerpt(response: requests.Response) -> str:
    text = response.text or ""
    text = " ".join(text.split())
    if len(text) > BODY_EXCERPT:
        text = text[:BODY_EXCERPT] + "..."
    return text or "(empty body)"
