"""The sandbox's provider-agnostic core: its clock, fault settings, counters, and the fault middleware.

The sandbox is deterministic: its clock is frozen and moves only when told (an admin call or a test),
its data derives from a seed, and its random faults come from a seeded generator. Provider modules
(`ProviderSpec.sandbox` in the registry) attach their worlds to a `Sandbox` and read faults and switches here;
each declares the paths it serves (`PATH_PREFIXES`, `PATHS`) and its injected error bodies (`FAULT_BODIES`, or
`fault_body(status, path)`), which the core reads through the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import math
import random
import re
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import ModuleType
from typing import Any


def provider_names() -> tuple[str, ...]:
    """The providers with a stand-in here: those whose `ProviderSpec.sandbox` names a module (cxsync.registry)."""
    from cxsync.registry import PROVIDERS

    return tuple(name for name, spec in PROVIDERS.items() if spec.sandbox)


# Fault kinds, as counted in `Counters` and named in admin answers.
FAULT_RATE_LIMIT = "rate_limit"
FAULT_429 = "429"
FAULT_5XX = "5xx"
FAULT_RESET = "reset"
FAULT_SLOW = "slow"
FAULT_TRUNCATE = "truncate"
FAULT_PARTIAL = "partial"
FAULT_IS_PARTIAL = "is_partial"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --------------------------------------------------------------------------------------------- clock
def utc(dt: datetime) -> datetime:
    """An aware UTC datetime; naive input is taken as UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_instant(value: str | datetime) -> datetime:
    """ISO 8601 (a trailing Z allowed) to aware UTC."""
    if isinstance(value, datetime):
        return utc(value)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return utc(datetime.fromisoformat(text))


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms]?)", re.IGNORECASE)
_DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}


def parse_duration(value: str | int | float) -> timedelta:
    """`"1d"`, `"3h"`, `"1d6h30m"`, `"90s"`, `"2w"` or a number of seconds."""
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"not a duration: {value!r} (use e.g. 1d, 3h, 1d6h, 90m, 30s or seconds)")
    return timedelta(seconds=total)


def http_date(dt: datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`."""
    return format_datetime(utc(dt).replace(microsecond=0), usegmt=True)


class SandboxClock:
    """A frozen UTC clock: the sandbox's time moves only through `advance` and `set`.

    Frozen time makes the sandbox deterministic: what it answers is a pure function of seed and clock.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime.now(UTC).replace(second=0, microsecond=0)
        self._now = utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def now_ms(self) -> int:
        return to_ms(self.now())

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward; use set() to go back")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> datetime:
        with self._lock:
            self._now = utc(when)
            return self._now


def to_ms(dt: datetime) -> int:
    return int(utc(dt).timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# -------------------------------------------------------------------------------------------- faults
@dataclasses.dataclass
class FaultSettings:
    """Limits, latency and random faults of one provider. Probabilities are 0..1, drawn from a seeded RNG."""

    rate_limit_rps: float | None = None  # requests per second before 429; None = unlimited
    retry_after: bool = True  # send Retry-After with a 429
    p_429: float = 0.0  # a 429 whatever the rate (a quota shared with other clients), for fault tests
    p_5xx: float = 0.0
    p_reset: float = 0.0  # abort the TCP connection without an answer
    p_slow: float = 0.0
    slow_seconds: float = 5.0  # how late a slow answer comes (set above the client's timeout)
    p_truncate: float = 0.0  # a JSON body cut in the middle
    p_partial: float = 0.0  # LivePerson: `shardsStatusResult.partialResult: true`
    p_is_partial: float = 0.0  # LivePerson: records with `info.isPartial: true`, messages cut
    # Late visibility (search indexes and replicas lag, imports, delayed e-mail): every read of records (lists,
    # searches, by id) shows the world as it was this many minutes ago, while answers carry the real time.
    visibility_lag_minutes: float = 0.0
    # A one-off backlog: records created in [backlog_from, backlog_until) stay invisible until `backlog_hours`
    # after backlog_until, then appear all at once with the times they carry.
    backlog_from: str | None = None
    backlog_until: str | None = None
    backlog_hours: float = 0.0
    # Every answer (429s and faults included) waits this long, plus or minus a uniform jitter, without holding
    # other answers up: a real API's latency, so benchmarks and tests see what a task sees against one. The rate
    # limit counts a request when it arrives, before the wait.
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, values: dict[str, Any]) -> FaultSettings:
        """Validated copy with `values` applied; unknown fields or bad values raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(known)}")
        merged = {**self.to_dict(), **values}
        new = FaultSettings(**merged)
        new.validate()
        return new

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.startswith("p_"):
                p = getattr(self, f.name)
                if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
                    raise ValueError(f"{f.name} must be a probability between 0 and 1, got {p!r}")
        if self.rate_limit_rps is not None and not (
            isinstance(self.rate_limit_rps, int | float) and self.rate_limit_rps > 0
        ):
            raise ValueError(f"rate_limit_rps must be a positive number or null, got {self.rate_limit_rps!r}")
        if not isinstance(self.slow_seconds, int | float) or self.slow_seconds < 0:
            raise ValueError(f"slow_seconds must be >= 0, got {self.slow_seconds!r}")
        if not isinstance(self.retry_after, bool):
            raise ValueError("retry_after must be true or false")
        for name in ("visibility_lag_minutes", "backlog_hours", "latency_ms", "latency_jitter_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if (self.backlog_from is None) != (self.backlog_until is None):
            raise ValueError("backlog_from and backlog_until go together (ISO 8601 times), or neither")
        if self.backlog_from is not None:
            low, high = self.backlog_window() or (None, None)
            if low is None or high is None or high <= low:
                raise ValueError("backlog_until must be after backlog_from")

    def answer_delay(self, draw: Callable[[], float]) -> float:
        """Seconds to hold an answer: `latency_ms` plus a jitter drawn uniformly within +-`latency_jitter_ms`
        (`draw` gives a number in [0, 1)), never below zero."""
        if not self.latency_ms and not self.latency_jitter_ms:
            return 0.0
        jitter = (2.0 * draw() - 1.0) * self.latency_jitter_ms
        return max(0.0, self.latency_ms + jitter) / 1000.0

    def backlog_window(self) -> tuple[datetime, datetime] | None:
        """(from, until) of the backlog, or None without one; ValueError when a time is not ISO 8601."""
        if self.backlog_from is None or self.backlog_until is None:
            return None
        try:
            return parse_instant(self.backlog_from), parse_instant(self.backlog_until)
        except (TypeError, ValueError, AttributeError):
            raise ValueError(
                f"backlog_from/backlog_until must be ISO 8601 times, got {self.backlog_from!r}, {self.backlog_until!r}"
            ) from None


class Counters:
    """Thread-safe counts of requests served and faults injected, for tests and benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
            self._faults: dict[tuple[str, str], int] = defaultdict(int)
            self._bytes: dict[tuple[str, str], int] = defaultdict(int)

    def count_request(self, provider: str, endpoint: str, status: int, body_bytes: int = 0) -> None:
        with self._lock:
            self._requests[(provider, endpoint, status)] += 1
            self._bytes[(provider, endpoint)] += body_bytes

    def count_fault(self, provider: str, kind: str) -> None:
        with self._lock:
            self._faults[(provider, kind)] += 1

    def snapshot(self) -> dict[str, Any]:
        """`{"requests": {provider: {"total", "by_status": {"200": n}, "by_endpoint": {name: {"200": n}}, "bytes",
        "bytes_by_endpoint": {name: n}}}, "faults": {provider: {kind: n}}}`; status codes are strings (JSON keys);
        bytes are response body bytes sent."""
        with self._lock:
            requests = dict(self._requests)
            faults = dict(self._faults)
            sent = dict(self._bytes)
        out: dict[str, Any] = {"requests": {}, "faults": {}}
        for (provider, endpoint, status), n in sorted(requests.items()):
            p = out["requests"].setdefault(
                provider, {"total": 0, "by_status": {}, "by_endpoint": {}, "bytes": 0, "bytes_by_endpoint": {}}
            )
            p["total"] += n
            p["by_status"][str(status)] = p["by_status"].get(str(status), 0) + n
            e = p["by_endpoint"].setdefault(endpoint, {})
            e[str(status)] = e.get(str(status), 0) + n
        for (provider, endpoint), n in sorted(sent.items()):
            p = out["requests"].get(provider)
            if p is not None:
                p["bytes"] += n
                p["bytes_by_endpoint"][endpoint] = p["bytes_by_endpoint"].get(endpoint, 0) + n
        for (provider, kind), n in sorted(faults.items()):
            out["faults"].setdefault(provider, {})[kind] = n
        return out


class TokenBucket:
    """Requests-per-second limiter on real (monotonic) time: rate limits are about load, not the sandbox clock."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0.0 when a request may pass, else the seconds until the next token."""
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


# ------------------------------------------------------------------------------------------- sandbox
class Sandbox:
    """Everything one sandbox instance holds. Each provider module sets its world as `sandbox.<provider>`.

    `options` carries volumes and provider settings by name (CLI option dests, e.g. `lp_agents`); each
    provider module owns its defaults. `switches` holds per-credential switches:
    `switches[provider][credential][name] = value` (e.g. LivePerson's `users_permission: False`).
    """

    def __init__(
        self,
        seed: int | str = 0,
        now: datetime | str | None = None,
        options: dict[str, Any] | None = None,
        faults: dict[str, FaultSettings] | None = None,
    ) -> None:
        self.seed = seed
        self.clock = SandboxClock(parse_instant(now) if now is not None else None)
        # Data is anchored at the start time ("genesis"), so the history a seed produces does not depend on
        # when the clock is later moved: days of history lie before it, new conversations arrive after it.
        self.genesis = self.clock.now()
        self.options: dict[str, Any] = dict(options or {})
        self.faults: dict[str, FaultSettings] = {name: FaultSettings() for name in provider_names()}
        for name, settings in (faults or {}).items():
            settings.validate()
            self.faults[name] = settings
        self.counters = Counters()
        self.switches: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in provider_names()}
        self._rng = random.Random(f"{seed}:faults")
        self._rng_lock = threading.Lock()
        # Latency jitter has its own generator: a latency setting never changes which requests a fault hits.
        self._latency_rng = random.Random(f"{seed}:latency")
        self._buckets: dict[str, TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        for name in provider_names():
            setattr(self, name, None)  # each provider's world, set by its module (`sandbox.<provider>`)

    # faults
    def set_faults(self, provider: str, settings: FaultSettings) -> None:
        settings.validate()
        self.faults[provider] = settings
        with self._buckets_lock:
            self._buckets.pop(provider, None)

    def roll(self, provider: str, kind: str, probability: float | None = None) -> bool:
        """Draw one fault decision from the seeded RNG; counts the fault when it fires.

        `probability` defaults to the provider's `p_<kind>` setting (e.g. kind "partial" -> `p_partial`).
        """
        if probability is None:
            probability = float(getattr(self.faults[provider], f"p_{kind}", 0.0))
        if probability <= 0.0:
            return False
        with self._rng_lock:
            fired = self._rng.random() < probability
        if fired:
            self.counters.count_fault(provider, kind)
        return fired

    def rng_random(self) -> float:
        """One draw from the seeded fault RNG (for providers that pick which records a fault hits)."""
        with self._rng_lock:
            return self._rng.random()

    def answer_delay(self, provider: str) -> float:
        """Seconds to hold this answer of the provider (its latency setting, with jitter)."""
        with self._rng_lock:
            return self.faults[provider].answer_delay(self._latency_rng.random)

    def rate_limit_wait(self, provider: str) -> float:
        """0.0 if the request passes the provider's rate limit, else seconds until it would."""
        rps = self.faults[provider].rate_limit_rps
        if rps is None:
            return 0.0
        with self._buckets_lock:
            bucket = self._buckets.get(provider)
            if bucket is None or bucket.rate != rps:
                bucket = self._buckets[provider] = TokenBucket(rps)
        return bucket.take()

    # late visibility
    def view_time(self, provider: str) -> datetime:
        """The instant whose state the provider's record reads show now (the clock minus the visibility lag)."""
        return self.clock.now() - timedelta(minutes=self.faults[provider].visibility_lag_minutes)

    def in_backlog(self, provider: str, created: datetime) -> bool:
        """Whether a record created at `created` is still held back by the provider's one-off backlog."""
        settings = self.faults[provider]
        window = settings.backlog_window()
        if window is None:
            return False
        low, high = window
        return low <= created < high and self.clock.now() < high + timedelta(hours=settings.backlog_hours)

    # switches
    def switch(self, provider: str, credential: str | None, name: str, default: Any = None) -> Any:
        if credential is None:
            return default
        return self.switches.get(provider, {}).get(credential, {}).get(name, default)

    def set_switch(self, provider: str, credential: str, name: str, value: Any) -> None:
        self.switches.setdefault(provider, {}).setdefault(credential, {})[name] = value

    def world(self, provider: str) -> Any:
        return getattr(self, provider, None) if provider in provider_names() else None


# ---------------------------------------------------------------------------------------- middleware
def stand_ins() -> dict[str, ModuleType]:
    """The providers' stand-in modules (`ProviderSpec.sandbox`) that exist, by provider name, in the registry's
    order. A missing module is skipped; a broken one raises (never hidden)."""
    from cxsync.registry import PROVIDERS

    found: dict[str, ModuleType] = {}
    for name, spec in PROVIDERS.items():
        qualified = spec.sandbox
        if not qualified:
            continue
        try:
            found[name] = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise
    return found


def provider_for_path(path: str) -> str | None:
    """Which provider a request path belongs to (its stand-in's `PATHS` and `PATH_PREFIXES`); None for the admin
    API and unknown paths (never faulted)."""
    if path.startswith("/_sandbox"):
        return None
    for name, module in stand_ins().items():
        if path in getattr(module, "PATHS", ()) or path.startswith(tuple(getattr(module, "PATH_PREFIXES", ()))):
            return name
    return None


# Live transports by (client host, client port, server port), registered by the server's protocol class so
# the middleware can reset a connection (ASGI itself offers no way to abort the TCP connection).
_TRANSPORTS: dict[tuple[Any, ...], asyncio.BaseTransport] = {}


def transport_key(client: Any, server: Any) -> tuple[Any, ...] | None:
    if not client or not server:
        return None
    return (client[0], client[1], server[1] if len(server) > 1 else None)


def register_transport(key: tuple[Any, ...] | None, transport: asyncio.BaseTransport | None) -> None:
    if key is None:
        return
    if transport is None:
        _TRANSPORTS.pop(key, None)
    else:
        _TRANSPORTS[key] = transport


def abort_connection(scope: Scope) -> bool:
    """Reset the request's TCP connection (RST, no answer). False when the server offers no transport."""
    key = transport_key(scope.get("client"), scope.get("server"))
    transport = _TRANSPORTS.get(key) if key else None
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger 0: close() sends RST instead of FIN, which clients see as "connection reset by peer".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]
    return True


# An injected 429 or 5xx of a stand-in that declares no `FAULT_BODIES` of its own.
DEFAULT_FAULT_BODIES = {
    429: {"error": "Too Many Requests"},
    500: {"error": "Internal Server Error"},
    503: {"error": "Service Unavailable"},
}


def fault_body(provider: str, status: int, path: str) -> dict:
    """The body of an injected 429 or 5xx in the provider's dialect: its stand-in's `fault_body(status, path)`
    when it has one (an endpoint with a dialect of its own), else its `FAULT_BODIES`."""
    module = stand_ins()[provider]
    own = getattr(module, "fault_body", None)
    if own is not None:
        return own(status, path)
    return getattr(module, "FAULT_BODIES", DEFAULT_FAULT_BODIES)[status]


def endpoint_name(scope: Scope) -> str:
    """The route's name (its function name) for counters; resolved by matching when the route did not run."""
    route = scope.get("route")
    if route is not None and getattr(route, "name", None):
        return route.name
    app = scope.get("app")
    router = getattr(app, "router", None)
    if router is not None:
        from starlette.routing import Match

        for candidate in router.routes:
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                return getattr(candidate, "name", None) or scope.get("path", "?")
    return "unknown"


class FaultMiddleware:
    """Pure ASGI middleware: rate limit and random faults before the route runs, counts every answer, and
    stamps `Date` with the sandbox clock (clients read the provider's time from `Date`)."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        provider = provider_for_path(scope.get("path", ""))
        status_seen: list[int] = []
        body_bytes = [0]

        async def stamped_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                body_bytes[0] += len(message.get("body", b""))
            if message["type"] == "http.response.start":
                status_seen.append(int(message["status"]))
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                headers.append((b"date", http_date(sandbox.clock.now()).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        def count() -> None:
            sandbox.counters.count_request(
                provider or "sandbox", endpoint_name(scope), status_seen[0] if status_seen else 0, body_bytes[0]
            )

        if provider is None:
            try:
                await self.app(scope, receive, stamped_send)
            finally:
                count()
            return

        settings = sandbox.faults[provider]
        wait = sandbox.rate_limit_wait(provider)  # counted on arrival, as a provider's gateway counts
        delay = sandbox.answer_delay(provider)
        if delay > 0.0:
            await asyncio.sleep(delay)  # the event loop serves other requests meanwhile
        if wait > 0.0:
            sandbox.counters.count_fault(provider, FAULT_RATE_LIMIT)
            extra = [(b"retry-after", str(max(1, math.ceil(wait))).encode())] if settings.retry_after else []
            await _send_json(stamped_send, 429, fault_body(provider, 429, scope.get("path", "")), extra)
            count()
            return
        if sandbox.roll(provider, FAULT_429):
            extra = [(b"retry-after", b"1")] if settings.retry_after else []
            await _send_json(stamped_send, 429, fault_body(provider, 429, scope.get("path", "")), extra)
            count()
            return
        if sandbox.roll(provider, FAULT_RESET) and abort_connection(scope):
            await asyncio.sleep(0)  # let the server see the connection lost, so it logs no "no response" error
            count()  # status 0: no answer
            return
        if sandbox.roll(provider, FAULT_5XX):
            status = 500 if sandbox.rng_random() < 0.5 else 503
            await _send_json(stamped_send, status, fault_body(provider, status, scope.get("path", "")))
            count()
            return
        if sandbox.roll(provider, FAULT_SLOW):
            await asyncio.sleep(settings.slow_seconds)
        if sandbox.roll(provider, FAULT_TRUNCATE):
            try:
                await self.app(scope, receive, _TruncatingSend(stamped_send))
            finally:
                count()
            return
        try:
            await self.app(scope, receive, stamped_send)
        finally:
            count()


class _TruncatingSend:
    """Buffers the answer and sends half of its body with a matching Content-Length: a complete HTTP
    response whose JSON is cut, as a client behind a misbehaving proxy sees it."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            return
        if message["type"] != "http.response.body" or self.start is None:
            await self.send(message)
            return
        self.body += message.get("body", b"")
        if message.get("more_body", False):
            return
        cut = bytes(self.body[: max(1, len(self.body) // 2)]) if self.body else b""
        headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": cut, "more_body": False})


async def _send_json(
    send: Send, status: int, body: Any, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw, "more_body": False})
