"""Request-layer tunables read from a connection's extras: rate limit, timeouts and retry policy.

Both providers' connections accept the same optional extras, so a data engineer tunes them alike:

| extra                      | meaning                                                  | default |
|----------------------------|----------------------------------------------------------|---------|
| `requests_per_second`      | client-side rate limit; 0 turns it off                   | per hook |
| `timeout`                  | read timeout, seconds                                    | 60      |
| `connect_timeout`          | connect timeout, seconds                                 | 10      |
| `max_attempts`             | tries per request (1 = no retry)                         | 6 (7)   |
| `retry_base_seconds`       | first backoff after a 5xx / reset / timeout (LP: 5, 10, 15 s, then 2, 4, 8 min) | 2 (5) |
| `retry_max_seconds`        | ceiling of one backoff wait                              | 60 (480) |
| `rate_limit_min_wait`      | least wait after a 429 (providers ask for 1 s)           | 1       |
| `max_response_mb`          | largest answer read (MiB, after decompression); beyond it the request fails | 64 |
| `request_deadline`         | seconds one try of a request may take, body included     | 300     |
| `max_in_flight`            | most requests one task keeps in flight (1: one at a time) | 16      |

Values in brackets are LivePerson's (its retry advice); no wait passes the running task's deadline.
Extras arrive as JSON values or, from a connection URI (the UI's Test button), as strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cxsync.errors import FatalError
from cxsync.http.client import DEFAULT_DEADLINE_SECONDS, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT
from cxsync.http.retry import RetryPolicy

# Requests one task keeps in flight at most: the rate limit times a slow provider's latency (5/s x 1.5 s is 7.5;
# with the jitter of real answers and the time to build a page, 10 to 12), with room. Fewer are kept when the
# pace and the latency need fewer; more threads than needed buy nothing but memory.
DEFAULT_MAX_IN_FLIGHT = 16


class ConnectionSettingError(FatalError):
    """A connection field is missing or has a value we cannot use; the message names the connection and field."""


@dataclass(frozen=True)
class ClientTunables:
    requests_per_second: float | None
    timeout: tuple[float, float]
    retry: RetryPolicy
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    deadline: float = DEFAULT_DEADLINE_SECONDS
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    @classmethod
    def from_extras(
        cls,
        extra: Mapping[str, Any],
        *,
        conn_id: str,
        default_requests_per_second: float | None,
        retry_defaults: RetryPolicy | None = None,
    ) -> ClientTunables:
        """The tunables of one connection; `retry_defaults` is the provider's own retry advice."""
        defaults = retry_defaults or RetryPolicy()

        def number(key: str, default: float | None, *, minimum: float = 0.0, integer: bool = False) -> float | None:
            return extra_number(extra, key, default, conn_id=conn_id, minimum=minimum, integer=integer)

        rps = number("requests_per_second", default_requests_per_second)
        retry = RetryPolicy(
            max_attempts=int(number("max_attempts", defaults.max_attempts, minimum=1, integer=True)),
            base_seconds=number("retry_base_seconds", defaults.base_seconds),
            max_seconds=number("retry_max_seconds", defaults.max_seconds),
            min_rate_limit_wait=number("rate_limit_min_wait", defaults.min_rate_limit_wait),
            linear_steps=defaults.linear_steps,
            then_seconds=defaults.then_seconds,
            retry_after_max=defaults.retry_after_max,
        )
        connect_default, read_default = DEFAULT_TIMEOUT
        timeout = (
            number("connect_timeout", connect_default, minimum=0.001),
            number("timeout", read_default, minimum=0.001),
        )
        max_mb = number("max_response_mb", DEFAULT_MAX_RESPONSE_BYTES / (1024 * 1024), minimum=0.001)
        deadline = number("request_deadline", DEFAULT_DEADLINE_SECONDS, minimum=0.001)
        in_flight = number("max_in_flight", DEFAULT_MAX_IN_FLIGHT, minimum=1, integer=True)
        return cls(
            requests_per_second=rps or None,
            timeout=timeout,
            retry=retry,
            max_response_bytes=int(max_mb * 1024 * 1024),
            deadline=deadline,
            max_in_flight=int(in_flight),
        )


def extra_number(
    extra: Mapping[str, Any],
    key: str,
    default: float | None,
    *,
    conn_id: str,
    minimum: float = 0.0,
    integer: bool = False,
) -> float | None:
    """A number from the extras (JSON number or numeric string); blank means the default."""
    value = extra.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise ConnectionSettingError(f"connection {conn_id!r}: extra `{key}` must be a number, got {value!r}") from None
    if number < minimum or (integer and number != int(number)):
        kind = "a whole number" if integer else "a number"
        raise ConnectionSettingError(
            f"connection {conn_id!r}: extra `{key}` must be {kind} >= {minimum:g}, got {value!r}"
        )
    return number
