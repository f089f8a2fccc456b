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
import threading
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
from cxsync.http.retry import RETRIABLE_EXCEPTIONS, AskAgain, RetryPolicy, Verdict, retrying, sort_answer

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
    """What a client's requests cost. Requests in flight count from several threads: every change goes through
    `add`, under the lock."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    by_status: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self,
        *,
        requests: int = 0,
        retries: int = 0,
        rate_limited: int = 0,
        waited_seconds: float = 0.0,
        status: int | None = None,
    ) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.rate_limited += rate_limited
            self.waited_seconds += waited_seconds
            if status is not None:
                self.by_status[status] = self.by_status.get(status, 0) + 1


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
        # One kept-alive connection per request in flight (the limiter's cap), and a list request beside them.
        pool = max(8, self.rate_limiter.max_in_flight + 1)
        adapter = header_deadline.DeadlineAdapter(pool_connections=4, pool_maxsize=pool)
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
        return self._send(
            method,
            url,
            params=params,
            json_body=json_body,
            data=data,
            headers=headers,
            auth=auth,
            ok_status=ok_status,
            allow_redirects=allow_redirects,
        )

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.request_json("GET", url, **kwargs)

    def post_json(self, url: str, **kwargs: Any) -> Any:
        return self.request_json("POST", url, **kwargs)

    def request_json(
        self,
        method: str,
        url: str,
        *,
        body_check: Callable[[Any], str | None] | None = None,
        body_retries: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Like `request`, parsing the body (None for 204, 304 or an empty body). A body cut short is asked
        again like a reset, and so is one `body_check` calls incomplete (it returns why, else None): at most
        `body_retries` times (None: as often as the connection's `max_attempts` allows), then
        `RetriesExhausted`. Every re-ask counts towards `max_attempts` too."""
        return self._send(method, url, parse=True, body_check=body_check, body_retries=body_retries, **kwargs)

    # ---- the one request loop: a try, the sorter's verdict, the retry driver ---------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        parse: bool = False,
        body_check: Callable[[Any], str | None] | None = None,
        body_retries: int | None = None,
        auth: AuthStrategy | None = None,
        ok_status: Collection[int] = (),
        **request_kwargs: Any,
    ) -> Any:
        strategy = auth or self.auth
        what = f"{method} {_path(url)}"
        tries = {"counted": 0, "refreshed": False, "incomplete": 0}

        def one_try() -> Any:
            tries["counted"] += 1
            try:
                response = self._try_once(method, url, strategy, request_kwargs)
            except RETRIABLE_EXCEPTIONS as exc:
                kind = f"{type(exc).__name__}: {exc}" if isinstance(exc, DeadlineExceeded) else type(exc).__name__
                raise AskAgain(f"{what}: {kind}") from None
            verdict = sort_answer(response.status_code, ok_status)
            if verdict is Verdict.OK:
                self.rate_limiter.on_success()
                if not parse:
                    return response
                answer, incomplete = self._parsed(response, what, body_check)
                if incomplete is None:
                    return answer
                tries["incomplete"] += 1
                if body_retries is not None and tries["incomplete"] > body_retries:
                    raise RetriesExhausted(f"{self.name}: {incomplete}; gave up after {tries['counted']} attempts")
                raise AskAgain(incomplete)
            if verdict is Verdict.REFRESH and not tries["refreshed"] and strategy.refresh():
                tries["refreshed"] = True
                tries["counted"] -= 1
                log.info("%s: 401 on %s; credentials refreshed, trying once more", self.name, what)
                raise AskAgain(f"{what}: HTTP 401", counts=False)
            if verdict is Verdict.RATE_LIMITED:
                self.stats.add(rate_limited=1)
                self.rate_limiter.on_rate_limited()  # pace below the server's limit from now on
                wait = self.retry.rate_limit_wait(tries["counted"], response.headers.get("Retry-After"), self._rng)
                raise AskAgain(f"{what}: HTTP 429", wait=wait)
            if verdict is Verdict.RETRY:
                raise AskAgain(f"{what}: HTTP {response.status_code}")
            raise self._fatal(method, url, response)

        def before_sleep(state: Any, wait: float) -> None:
            exc = state.outcome.exception()
            if isinstance(exc, AskAgain) and not exc.counts:
                return
            self.stats.add(retries=1, waited_seconds=wait)
            log.warning(
                "%s: %s; retry %d of %d in %.1f s", self.name, exc, tries["counted"], self.retry.max_attempts - 1, wait
            )

        driver = retrying(self.retry, sleep=self._sleep, rng=self._rng, before_sleep=before_sleep)
        try:
            return driver(one_try)
        except AskAgain as exc:
            raise RetriesExhausted(f"{self.name}: {exc}; gave up after {tries['counted']} attempts") from None

    def _try_once(
        self, method: str, url: str, strategy: AuthStrategy, request_kwargs: dict[str, Any]
    ) -> requests.Response:
        """One request on the wire, paced by the rate limiter, its body read within the bounds."""
        given = dict(request_kwargs)
        kwargs: dict[str, Any] = {
            "params": given.pop("params", None),
            "headers": dict(given.pop("headers", None) or {}),
            "timeout": self.timeout,
            "proxies": self._proxies_for(url),
            "verify": self._verify,
            "allow_redirects": given.pop("allow_redirects", False),
            "stream": True,  # the body is read below, bounded in size and time
            "auth": strategy,  # a requests AuthBase: it signs the prepared request
        }
        for ours, theirs in (("json_body", "json"), ("data", "data")):
            if given.get(ours) is not None:
                kwargs[theirs] = given.pop(ours)
        waited = self.rate_limiter.acquire()
        self.stats.add(requests=1, waited_seconds=waited)
        sent_at = time.monotonic()
        deadline = sent_at + self.deadline
        with header_deadline.deadline(deadline):
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.ConnectionError:
                if header_deadline.passed():  # the timer cut a server still sending its headers
                    raise self._deadline_exceeded("the headers") from None
                raise
        self._read_body(response, deadline, method, url)
        self.rate_limiter.on_answer(time.monotonic() - sent_at)  # the latency sets how many requests go in flight
        self._note(response)
        return response

    def _parsed(
        self, response: requests.Response, what: str, body_check: Callable[[Any], str | None] | None
    ) -> tuple[Any, str | None]:
        """The parsed body, and why `body_check` calls it incomplete (None: usable)."""
        if response.status_code in (204, 304) or not response.content:
            return None, None
        try:
            answer = _parse_json(response)
        except (json.JSONDecodeError, ValueError):
            raise AskAgain(f"{what}: truncated or invalid JSON body") from None
        reason = body_check(answer) if body_check else None
        return answer, (f"{what}: {reason}" if reason else None)

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
        self.stats.add(status=response.status_code)
        date = response.headers.get("Date")
        if date:
            try:
                moment = parsedate_to_datetime(date)
            except (TypeError, ValueError):
                return
            self.server_time = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            self.server_time_seen_at = time.monotonic()

    def fatal(self, response: requests.Response) -> Exception:
        """The error a failed answer becomes: status, body excerpt and the provider's hint."""
        return self._fatal(response.request.method or "GET", response.url or "", response)

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
