"""Authentication strategies: `requests.auth.AuthBase` objects (singer-sdk style), one per way in.

Each strategy signs a prepared request when requests calls it (`strategy(request)`), says whether a 401 is
worth one more try (`refresh`), and names the values Airflow's masker must hide (`secrets`). Any of them can
be handed to `requests` directly, or to `ApiClient` (which adds the retry and the one refresh after a 401).

OAuth 2 access tokens live in a `TokenCache`: its expiry is read on the provider's clock (the `Date` of the
answers), which oauthlib's own expiry bookkeeping (the worker's clock) cannot do; the grants themselves are
built and read by oauthlib's clients (`cxsync.http.oauth2`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from requests import PreparedRequest
from requests.auth import AuthBase, HTTPBasicAuth

# Refresh this long before a token's expiry, so a long page loop never sends a token that dies mid-flight.
DEFAULT_REFRESH_MARGIN_SECONDS = 300.0


class AuthStrategy(AuthBase):
    """How requests are authenticated. Subclasses sign the prepared request in `__call__`."""

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        return request

    def refresh(self) -> bool:
        """Called once after a 401. True when new credentials were obtained and a retry makes sense."""
        return False

    def secrets(self) -> list[str]:
        """Values to register with Airflow's secret masker."""
        return []

    def __repr__(self) -> str:  # never the credentials
        return f"{type(self).__name__}()"


class NoAuth(AuthStrategy):
    """No credentials (LivePerson's CSDS; token endpoints that take them in the body)."""


class OAuth1Auth(AuthStrategy):
    """OAuth Core 1.0, HMAC-SHA1, `Authorization: OAuth ...` header (LivePerson app keys)."""

    def __init__(self, client_key: str, client_secret: str, resource_owner_key: str, resource_owner_secret: str):
        from requests_oauthlib import OAuth1

        self._auth = OAuth1(
            client_key,
            client_secret=client_secret,
            resource_owner_key=resource_owner_key,
            resource_owner_secret=resource_owner_secret,
            signature_type="auth_header",
        )
        self._secrets = [client_secret, resource_owner_secret]

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        return self._auth(request)

    def secrets(self) -> list[str]:
        return [s for s in self._secrets if s]


class BasicAuth(AuthStrategy):
    """HTTP Basic. The password is used whole, colons included (HelpDesk tokens look like `dal:...`)."""

    def __init__(self, username: str, password: str):
        self._auth = HTTPBasicAuth(username, password)
        self._password = password

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        return self._auth(request)

    def secrets(self) -> list[str]:
        return [self._password] if self._password else []


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float | None  # epoch seconds; None: unknown, kept until a 401

    def __repr__(self) -> str:
        return f"Token(access_token=***, expires_at={self.expires_at!r})"

    @classmethod
    def from_response(cls, payload: dict[str, Any], now: float | None = None) -> Token:
        """Read `expires_in` (seconds), else the JWT `exp` claim, else unknown."""
        now = time.time() if now is None else now
        access_token = payload["access_token"]
        expires_in = payload.get("expires_in")
        if isinstance(expires_in, int | float) or (isinstance(expires_in, str) and expires_in.isdigit()):
            return cls(access_token, now + float(expires_in))
        exp = jwt_expiry(access_token)
        return cls(access_token, exp)


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it (we only need to know when to refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, json.JSONDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class TokenCache:
    """Holds one access token: reused until shortly before expiry, fetched again on demand."""

    def __init__(
        self,
        fetch: Callable[[], Token],
        refresh_margin: float = DEFAULT_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
        on_new_token: Callable[[Token], None] | None = None,
    ):
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        self._on_new_token = on_new_token
        self._token: Token | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self) -> str:
        with self._lock:
            token = self._token
            if token is None or (token.expires_at is not None and token.expires_at - self._margin <= self._clock()):
                token = self._fetch()
                self.fetches += 1
                self._token = token
                if self._on_new_token:
                    self._on_new_token(token)
            return token.access_token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


class BearerAuth(AuthStrategy):
    """`Authorization: Bearer <token>` from a `TokenCache`; a 401 fetches a new token once."""

    def __init__(self, tokens: TokenCache):
        self.tokens = tokens

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.tokens.get()}"
        return request

    def refresh(self) -> bool:
        self.tokens.invalidate()
        return True
