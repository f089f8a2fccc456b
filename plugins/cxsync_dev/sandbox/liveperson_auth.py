"""LivePerson authentication in the sandbox: OAuth 1.0 app keys (signatures checked with oauthlib's server
side) and OAuth 2.0 client-credentials tokens from the sentinel token endpoint, expiring on the sandbox clock.

Built-in credentials (the CLI prints them as Airflow connections):
- `main`: an OAuth 2.0 client with every privilege (OAuth 2.0 is what new LivePerson connections use);
- `oauth2`: a second OAuth 2.0 client with every privilege (`auth_type` spelt out);
- `oauth1`: a legacy OAuth 1.0 app key with every privilege (LivePerson ended OAuth 1.0);
- `nousers`: an OAuth 1.0 key without the "Users" privilege (Users API -> 403, msgHist works);
- `guide`: an OAuth 2.0 client made as LivePerson's guide says, Users + Conversation History only: 403 on
  Agent Groups, Skills and Profiles (privileges are per API).
Per-credential switches live in `sandbox.switches["liveperson"][<app key or client id>]`:
`users_permission: false` (403 on Users, and on agent groups, skills and profiles as well),
`agent_groups_permission`, `skills_permission`, `profiles_permission: false` (403 on that API alone) and
`msghist_permission: false` (403 on msgHist).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import string
import threading
from dataclasses import dataclass
from typing import Any

from oauthlib.oauth1 import RequestValidator, ResourceEndpoint


@dataclass(frozen=True)
class OAuth1Key:
    app_key: str
    app_secret: str
    access_token: str
    access_token_secret: str


@dataclass(frozen=True)
class OAuth2Client:
    client_id: str
    client_secret: str


MAIN_KEY = OAuth1Key("sandbox-lp-app-key", "sandbox-lp-app-secret", "sandbox-lp-token", "sandbox-lp-token-secret")
NOUSERS_KEY = OAuth1Key(
    "sandbox-lp-nousers-key", "sandbox-lp-nousers-secret", "sandbox-lp-nousers-token", "sandbox-lp-nousers-token-secret"
)
OAUTH2_CLIENT = OAuth2Client("sandbox-lp-client", "sandbox-lp-client-secret")
MAIN_CLIENT = OAuth2Client("sandbox-lp-main-client", "sandbox-lp-main-client-secret")
GUIDE_CLIENT = OAuth2Client("sandbox-lp-guide-client", "sandbox-lp-guide-client-secret")
# The per-API privileges LivePerson's guide leaves out (it grants Users and Conversation History only).
GUIDE_MISSING = ("agent_groups_permission", "skills_permission", "profiles_permission")


class AuthFailure(Exception):
    """Why a request was not authenticated; the router answers 401 with the message (never a secret)."""


@dataclass(frozen=True)
class Principal:
    """Who made an authenticated request: the app key (OAuth 1.0) or client id (OAuth 2.0)."""

    credential: str
    method: str  # "oauth1" | "oauth2"


class _Validator(RequestValidator):
    """oauthlib's server-side validator over the sandbox's keys.

    Nonces and timestamps are not stored: a client that resends an identical signed request (a transport
    retry) is accepted, as LivePerson's docs say nothing of replay checks. oauthlib still rejects timestamps
    more than 10 minutes from real time.
    """

    enforce_ssl = False
    safe_characters = frozenset(string.ascii_letters + string.digits + "-_.~")
    client_key_length = (1, 200)
    access_token_length = (1, 200)
    nonce_length = (1, 200)
    dummy_client = "sandbox-dummy-client"
    dummy_access_token = "sandbox-dummy-token"

    def __init__(self, keys: dict[str, OAuth1Key]) -> None:
        super().__init__()
        self.keys = keys

    def get_client_secret(self, client_key: str, request: Any) -> str:
        key = self.keys.get(client_key)
        return key.app_secret if key else "sandbox-dummy-secret"

    def get_access_token_secret(self, client_key: str, token: str, request: Any) -> str:
        key = self.keys.get(client_key)
        return key.access_token_secret if key and key.access_token == token else "sandbox-dummy-token-secret"

    def validate_client_key(self, client_key: str, request: Any) -> bool:
        request.sandbox_client_key = client_key
        return client_key in self.keys

    def validate_access_token(self, client_key: str, token: str, request: Any) -> bool:
        key = self.keys.get(client_key)
        return bool(key and key.access_token == token)

    def validate_timestamp_and_nonce(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def validate_realms(self, *args: Any, **kwargs: Any) -> bool:
        return True


class LivePersonAuth:
    def __init__(self, clock: Any, token_ttl_seconds: int, secret_seed: str) -> None:
        self.clock = clock
        self.token_ttl_ms = token_ttl_seconds * 1000
        self.keys: dict[str, OAuth1Key] = {k.app_key: k for k in (MAIN_KEY, NOUSERS_KEY)}
        self.clients: dict[str, OAuth2Client] = {c.client_id: c for c in (OAUTH2_CLIENT, MAIN_CLIENT, GUIDE_CLIENT)}
        self._validator = _Validator(self.keys)
        self._endpoint = ResourceEndpoint(self._validator)
        self._tokens: dict[str, tuple[str, int]] = {}  # token -> (client id, expiry ms on the sandbox clock)
        self._lock = threading.Lock()
        self._jti = itertools.count(1)
        self._signing_key = hashlib.sha256(f"{secret_seed}:lp:sentinel".encode()).digest()

    # ---------------------------------------------------------------------------------- OAuth 2.0
    def issue_token(self, client_id: str, client_secret: str, account_id: str) -> dict[str, Any]:
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(client.client_secret, client_secret):
            raise AuthFailure("invalid_client")
        now_ms = self.clock.now_ms()
        expires_ms = now_ms + self.token_ttl_ms
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {
            "iss": "sentinel",
            "sub": client_id,
            "aud": account_id,
            "iat": now_ms // 1000,
            "exp": expires_ms // 1000,
            "jti": next(self._jti),
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
        signature = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64(signature)}"
        with self._lock:
            self._tokens[token] = (client_id, expires_ms)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl_ms // 1000}

    def _bearer(self, token: str) -> Principal:
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None:
            raise AuthFailure("the bearer token is unknown or malformed")
        client_id, expires_ms = entry
        if self.clock.now_ms() >= expires_ms:
            raise AuthFailure("the bearer token has expired; request a new one from the sentinel token endpoint")
        return Principal(client_id, "oauth2")

    # ---------------------------------------------------------------------------------- OAuth 1.0
    def _oauth1(self, uri: str, method: str, body: bytes | None, headers: dict[str, str]) -> Principal:
        valid, request = self._endpoint.validate_protected_resource_request(
            uri, http_method=method, body=body, headers=headers
        )
        if valid and request is not None:
            return Principal(request.sandbox_client_key, "oauth1")
        if request is None:
            raise AuthFailure("the OAuth 1.0 Authorization header is malformed")
        log = getattr(request, "validator_log", {})
        if log.get("client") is False:
            raise AuthFailure("unknown app key")
        if log.get("resource_owner") is False:
            raise AuthFailure("unknown access token for this app key")
        if log.get("signature") is False:
            raise AuthFailure("the OAuth 1.0 signature does not match (check the app secret and token secret)")
        raise AuthFailure("the OAuth 1.0 request is invalid (missing parameters or a timestamp too far from now)")

    # --------------------------------------------------------------------------------------- both
    def authenticate(self, uri: str, method: str, body: bytes | None, headers: dict[str, str]) -> Principal:
        authorization = headers.get("authorization", "")
        scheme = authorization.split(" ", 1)[0].lower()
        if scheme == "bearer":
            return self._bearer(authorization.split(" ", 1)[1].strip() if " " in authorization else "")
        if scheme == "oauth":
            return self._oauth1(uri, method, body, headers)
        raise AuthFailure("no credentials: send an OAuth 1.0 signature or an OAuth 2.0 bearer token")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
