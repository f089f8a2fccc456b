"""The request layer both providers share: auth strategies, rate limit, retries, error sorting.

Written once (singer-sdk style: auth, paging and retry are separate, swappable parts):
- `auth.py`      how a request is authenticated, and how it recovers from one 401;
- `ratelimit.py` a client-side requests/s limit, and how many requests a task keeps in flight;
- `shared_limit.py` one limit per provider account across tasks, through a store (Redis);
- `retry.py`     which failures are retried, and how long to wait;
- `client.py`    `ApiClient`, which ties them together around a `requests.Session`;
- `tunables.py`  rate limit, timeouts and retry policy from a connection's extras (same keys for every provider).
"""

from cxsync.http.auth import AuthStrategy, BasicAuth, BearerAuth, NoAuth, OAuth1Auth, Token, TokenCache
from cxsync.http.client import ApiClient
from cxsync.http.ratelimit import RateLimiter
from cxsync.http.retry import RetryPolicy
from cxsync.http.tunables import ClientTunables, ConnectionSettingError

__all__ = [
    "ApiClient",
    "AuthStrategy",
    "BasicAuth",
    "BearerAuth",
    "ClientTunables",
    "ConnectionSettingError",
    "NoAuth",
    "OAuth1Auth",
    "RateLimiter",
    "RetryPolicy",
    "Token",
    "TokenCache",
]
