"""The `state` of a browser sign-in, signed: it names the connection the sign-in will write and the Airflow user
who started it, so the callback writes exactly the connection whose permission was checked, for that user.

`state` = `<nonce>.<conn id>.<user>.<issued at>.<signature>` (each part base64url), the signature an HMAC-SHA256
over the rest with the api-server's `[api] secret_key` (every api-server of a deployment shares it). The
browser's cookie holds the same state, so a callback must carry both: the cookie proves it is this browser's
sign-in, the signature that cxsync minted it. Nothing in it is secret (the PKCE verifier is in its own cookie).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from cxsync import settings


class BadState(Exception):
    """The state was not minted here for this user, or it expired; the message says which, never a secret."""


@dataclass(frozen=True)
class SignInState:
    conn_id: str
    user: str
    issued_at: int
    value: str


def _key() -> bytes:
    from airflow.configuration import conf

    secret = conf.get("api", "secret_key", fallback=None) or ""
    if not secret:
        raise BadState("the api-server has no [api] secret_key to sign the sign-in with: set AIRFLOW__API__SECRET_KEY")
    return hashlib.sha256(b"cxsync connect state\0" + secret.encode()).digest()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(part: str) -> str:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def _sign(payload: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(_key(), payload.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def mint(conn_id: str, user: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    payload = ".".join((secrets.token_urlsafe(18), _b64(conn_id), _b64(user), str(issued)))
    return f"{payload}.{_sign(payload)}"


def read(value: str, user: str, now: float | None = None) -> SignInState:
    """The connection and user a state names, once its signature, user and age are checked."""
    payload, _, signature = value.rpartition(".")
    parts = payload.split(".")
    if len(parts) != 4 or not hmac.compare_digest(signature.encode(), _sign(payload).encode()):
        raise BadState("the sign-in's `state` was not issued by this Airflow (or was altered)")
    try:
        conn_id, signed_user, issued = _unb64(parts[1]), _unb64(parts[2]), int(parts[3])
    except (ValueError, UnicodeDecodeError):
        raise BadState("the sign-in's `state` is malformed") from None
    if not hmac.compare_digest(signed_user.encode(), user.encode()):
        raise BadState("this sign-in was started by another Airflow user: start it again yourself")
    age = (time.time() if now is None else now) - issued
    if age > settings.UI_CONNECT_MAX_AGE_SECONDS or age < -60:
        raise BadState(f"the sign-in expired (after {settings.UI_CONNECT_MAX_AGE_SECONDS // 60} minutes): start again")
    return SignInState(conn_id=conn_id, user=signed_user, issued_at=issued, value=value)
