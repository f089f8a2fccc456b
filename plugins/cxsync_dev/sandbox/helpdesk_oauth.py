"""The HelpDesk sandbox's stand-in for `accounts.livechat.com`: authorize page, `/v2/token`, bearer tokens.

- `GET /?response_type=code&client_id=..&redirect_uri=..&state=..[&code_challenge=..&code_challenge_method=..]`
  shows a sign-in-and-approve form; posting it (`decision=approve`) redirects 302 to
  `redirect_uri?code=dal%3A...&state=...` (`decision=deny` -> `?error=access_denied&state=...`). Codes are
  single use and expire after `code_ttl` seconds on the sandbox clock.
- A request the accounts server refuses (unknown client_id, a redirect URI it will not send codes to, a PKCE
  method it does not know) never reaches the redirect URI: as LiveChat documents, it redirects to the error
  page `/ooops?oauth_exception=<reason>`, which shows the reason.
- PKCE as LiveChat documents it: `code_challenge_method` is `s256` or `plain` (lower case; `plain` when a
  challenge comes without a method); RFC 7636's `S256` spelling is refused (the trap a client reading the RFC
  falls into). A code issued with a challenge is exchanged only with the matching `code_verifier`: a
  missing or wrong one is `invalid_grant`.
- `POST /v2/token` takes form fields (client credentials in the form, as the notes say; HTTP Basic client
  authentication is not accepted): `authorization_code` (code, client_id, client_secret, redirect_uri) or
  `refresh_token` (refresh_token, client_id, client_secret). Answers
  `{access_token, refresh_token, expires_in, token_type: "Bearer", account_id, organization_id, scope}`;
  the refresh token never rotates (the refresh grant returns the same one). Errors are
  `{error, error_description}`: 400 invalid_request / invalid_grant / unsupported_grant_type,
  401 invalid_client.
- Access and refresh tokens are stateless and signed with a key derived from the seed, so they survive a
  sandbox restart with the same seed. Access tokens expire on the sandbox clock (`token_ttl` seconds).
  `expire_access_tokens()` / `revoke_refresh_tokens()` invalidate every token issued so far.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from cxsync.http.endpoints import is_loopback
from cxsync_dev.sandbox.helpdesk_data import HelpDeskWorld

SCOPE = "accounts--my:ro helpdesk--all:ro"
PKCE_METHODS = ("s256", "plain")  # as LiveChat's docs spell them
ERROR_PAGE = "/ooops"
AUTHORIZE_FIELDS = ("response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method")
ACCESS, REFRESH = "a", "r"


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    expires_at: int
    challenge: str = ""
    challenge_method: str = ""
    used: bool = False


class TokenError(Exception):
    """An OAuth error answer: HTTP status and `{error, error_description}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


class OAuthServer:
    def __init__(self, world: HelpDeskWorld) -> None:
        self.world = world
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()
        self.access_generation = 0
        self.refresh_generation = 0
        self.last_refresh_token: str | None = None

    # ------------------------------------------------------------------------------ signed tokens
    def _sign(self, payload: str) -> str:
        mac = hmac.new(self.world.signing_key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def _make(self, kind: str, generation: int, expires_at: int) -> str:
        payload = f"{kind}.{self.world.client_id}.{generation}.{expires_at}.{secrets.token_hex(6)}"
        packed = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"dal:{packed}.{self._sign(payload)}"

    def _open(self, token: str, kind: str) -> tuple[int, int] | None:
        """(generation, expires_at) of a well-signed token of `kind`, else None."""
        if not token.startswith("dal:") or "." not in token:
            return None
        packed, _, signature = token[4:].rpartition(".")
        try:
            payload = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)).decode()
            got_kind, client_id, generation, expires_at, _ = payload.split(".")
            values = int(generation), int(expires_at)
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        if got_kind != kind or client_id != self.world.client_id:
            return None
        return values

    def access_token_state(self, token: str, now: int) -> str:
        """ "valid", "expired" or "invalid" for a bearer token presented to /v1."""
        opened = self._open(token, ACCESS)
        if opened is None:
            return "invalid"
        generation, expires_at = opened
        if generation != self.access_generation or now >= expires_at:
            return "expired"
        return "valid"

    def issue_refresh_token(self) -> str:
        """A refresh token as if the owner had approved the app (for tests and the demo)."""
        token = self._make(REFRESH, self.refresh_generation, 0)
        self.last_refresh_token = token
        return token

    def expire_access_tokens(self) -> None:
        self.access_generation += 1

    def revoke_refresh_tokens(self) -> None:
        self.refresh_generation += 1
        self.access_generation += 1
        self.last_refresh_token = None

    def _grant(self, refresh_token: str, now: int) -> dict[str, Any]:
        ttl = self.world.settings.token_ttl
        return {
            "access_token": self._make(ACCESS, self.access_generation, now + ttl),
            "refresh_token": refresh_token,
            "expires_in": ttl,
            "token_type": "Bearer",
            "account_id": self.world.account_id,
            "organization_id": self.world.organization_id,
            "scope": SCOPE,
        }

    # ------------------------------------------------------------------------------- token URL
    def token(self, form: dict[str, str], now: int) -> dict[str, Any]:
        """The answer of `POST /v2/token`; raises TokenError for the error answers."""
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise TokenError(400, "invalid_request", "grant_type is required")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise TokenError(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not client_secret:
            raise TokenError(401, "invalid_client", "client_id and client_secret are required form fields")
        if not (
            hmac.compare_digest(client_id, self.world.client_id)
            and hmac.compare_digest(client_secret, self.world.client_secret)
        ):
            raise TokenError(401, "invalid_client", "client authentication failed")
        if grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            if not refresh:
                raise TokenError(400, "invalid_request", "refresh_token is required")
            opened = self._open(refresh, REFRESH)
            if opened is None or opened[0] != self.refresh_generation:
                raise TokenError(400, "invalid_grant", "refresh token is invalid or revoked")
            return self._grant(refresh, now)
        code_value = form.get("code", "")
        if not code_value:
            raise TokenError(400, "invalid_request", "code is required")
        with self._lock:
            code = self._codes.get(code_value)
            if code is None:
                raise TokenError(400, "invalid_grant", "authorization code not found")
            if code.used:
                raise TokenError(400, "invalid_grant", "authorization code already used")
            if now >= code.expires_at:
                raise TokenError(400, "invalid_grant", "authorization code expired")
            if code.client_id != client_id:
                raise TokenError(400, "invalid_grant", "authorization code was issued to another client")
            if form.get("redirect_uri", "") != code.redirect_uri:
                raise TokenError(400, "invalid_grant", "redirect_uri does not match the authorization request")
            if code.challenge:
                verifier = form.get("code_verifier", "")
                if not verifier:
                    raise TokenError(400, "invalid_grant", "code_verifier is required: the code was issued with PKCE")
                if not hmac.compare_digest(pkce_challenge(verifier, code.challenge_method), code.challenge):
                    raise TokenError(400, "invalid_grant", "code_verifier does not match the code_challenge")
            code.used = True
        return self._grant(self.issue_refresh_token(), now)

    # ---------------------------------------------------------------------------- authorize page
    def check_authorize(self, params: dict[str, str]) -> str | None:
        """A problem with an authorize request (shown on the page, never redirected), else None."""
        if params.get("response_type") != "code":
            return "response_type must be 'code'"
        if params.get("client_id") != self.world.client_id:
            return "unknown client_id: this app is not registered with the account"
        uri = params.get("redirect_uri", "")
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "redirect_uri must be an absolute http(s) URL"
        if parts.username is not None or not is_loopback(parts.hostname or ""):
            # The sandbox hands out codes for test credentials only to a listener on this machine (the connect
            # command's): a page elsewhere must not collect them.
            return "redirect_uri must point at a loopback address (127.0.0.1, ::1 or localhost) in the sandbox"
        if params.get("code_challenge_method") and not params.get("code_challenge"):
            return "code_challenge_method without code_challenge"
        if params.get("code_challenge") and (params.get("code_challenge_method") or "plain") not in PKCE_METHODS:
            return (
                f"invalid code_challenge_method {params.get('code_challenge_method', '')[:20]!r}: "
                f"use {' or '.join(PKCE_METHODS)}"
            )
        return None

    def authorize_form(self, params: dict[str, str]) -> str:
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""), quote=True)}">'
            for name in AUTHORIZE_FIELDS
        )
        target = html.escape(params.get("redirect_uri", ""))
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>HelpDesk sandbox: authorize app</title></head>"
            "<body><h1>HelpDesk sandbox</h1>"
            f"<p>Signed in as the owner of account <code>{self.world.account_id}</code>.</p>"
            f"<p>An application wants read access to your HelpDesk tickets and agents ({SCOPE}). "
            f"You will be sent back to <code>{target}</code>.</p>"
            f'<form method="post" action="/">{hidden}'
            '<button type="submit" name="decision" value="approve">Approve</button> '
            '<button type="submit" name="decision" value="deny">Deny</button>'
            "</form></body></html>"
        )

    def approve(self, params: dict[str, str], now: int) -> str:
        """The redirect URL after the form is posted: with a fresh code, or `error=access_denied`."""
        uri = params["redirect_uri"]
        query: dict[str, str]
        if params.get("decision", "approve") == "deny":
            query = {"error": "access_denied", "error_description": "the user denied access"}
        else:
            code = f"dal:{secrets.token_urlsafe(18)}"
            with self._lock:
                self._codes = {k: c for k, c in self._codes.items() if c.expires_at > now and not c.used}
                self._codes[code] = _Code(
                    params["client_id"],
                    uri,
                    now + self.world.settings.code_ttl,
                    challenge=params.get("code_challenge", ""),
                    challenge_method=params.get("code_challenge_method") or "plain",
                )
            query = {"code": code}
        if params.get("state"):
            query["state"] = params["state"]
        return uri + ("&" if urlsplit(uri).query else "?") + urlencode(query)


def pkce_challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def error_redirect(problem: str) -> str:
    """Where a refused authorize request goes: the error page, never the redirect URI."""
    return f"{ERROR_PAGE}?{urlencode({'oauth_exception': problem})}"


def error_page(problem: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Authorization error</title></head>"
        f"<body><h1>Authorization error</h1><p>{html.escape(problem)}</p></body></html>"
    )
