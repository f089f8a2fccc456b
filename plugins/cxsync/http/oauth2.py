"""OAuth 2 grants: oauthlib builds the token request and reads the answer, `ApiClient` carries it.

The grant types are oauthlib's clients, the ones requests-oauthlib's `OAuth2Session` drives:
`BackendApplicationClient` (client credentials: LivePerson's sentinel) and `WebApplicationClient`
(authorization code with PKCE, and the refresh-token grant: HelpDesk). `OAuth2Session.fetch_token` itself
is not the transport, because cxsync's token requests must keep properties it does not have:

- the token URL is checked before a secret goes there (`cxsync.http.endpoints`), and it may be plain http
  only on loopback (the sandbox); `OAuth2Session` refuses every http URL unless the process-wide
  `OAUTHLIB_INSECURE_TRANSPORT` is set, which would lift its check for every other caller too;
- no redirect is followed (a 307 would forward the client secret), the answer is bounded in size and time,
  429 and 5xx are retried by the one retry driver: `ApiClient.request` does all of that;
- `OAuth2Session.fetch_token` logs the request body (the client secret) and the answer (the tokens) at
  debug level before anything could mask them.

The access token's lifetime is kept by `cxsync.http.auth.TokenCache` on the provider's clock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error, WebApplicationClient

from cxsync.errors import AuthenticationError
from cxsync.http.auth import NoAuth, Token
from cxsync.http.client import ApiClient, mask_secret

log = logging.getLogger(__name__)

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
# Token endpoints answer an OAuth error body with these statuses; oauthlib reads its `error` field.
ERROR_STATUSES = (400, 401, 403)
CUT_ANSWER_TRIES = 3  # a 2xx token answer whose body is not JSON is asked for again this often in all


class TokenRequestRefused(AuthenticationError):
    """The token endpoint refused the grant (or answered without an access token). `error` is the OAuth error
    code (`invalid_grant`, `invalid_client`, ...) and `description` the server's words; never a secret."""

    def __init__(self, message: str, *, error: str = "", description: str = "", status: int | None = None):
        super().__init__(message)
        self.error = error
        self.description = description
        self.status = status


class OAuth2Grant:
    """One token endpoint of one connection: `fetch(**grant)` posts a grant and answers the token fields.

    `describe(refusal)` words a refusal for the user (which field to fix, which command to run)."""

    def __init__(
        self,
        api: ApiClient,
        token_url: str,
        *,
        client_id: str,
        client_secret: str,
        oauth_client: BackendApplicationClient | WebApplicationClient | None = None,
        describe: Callable[[TokenRequestRefused], str] | None = None,
    ):
        self.api = api
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.oauth_client = oauth_client or BackendApplicationClient(client_id)
        self._describe = describe
        mask_secret(client_secret)

    def __repr__(self) -> str:
        return f"OAuth2Grant(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def client_credentials(self) -> dict[str, Any]:
        return self.fetch(grant_type="client_credentials")

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        mask_secret(refresh_token)
        return self.fetch(grant_type="refresh_token", refresh_token=refresh_token)

    def authorization_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        mask_secret(code_verifier)
        return self.fetch(
            grant_type="authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )

    def fetch(self, **grant: str) -> dict[str, Any]:
        """POST the grant (client id and secret in the form, as both providers want them); answer the token
        fields, each token registered with the masker; a refusal is `TokenRequestRefused` in plain words."""
        form = self._form(grant)
        for attempt in range(1, CUT_ANSWER_TRIES + 1):
            response = self.api.request(
                "POST",
                self.token_url,
                data=form,
                headers=FORM_HEADERS,
                auth=NoAuth(),
                ok_status=ERROR_STATUSES,
                allow_redirects=False,  # a redirect would forward the client secret to wherever it points
            )
            # A 2xx whose body is not JSON was cut short on the way (a reset, a proxy): the grant was not
            # refused, so it is asked again like any cut answer, never reported as wrong credentials.
            if response.status_code >= 400 or _is_json(response.text) or attempt == CUT_ANSWER_TRIES:
                break
            log.info("token answer from %s cut short or not JSON; asking again (%d of %d)", self.token_url,
                     attempt, CUT_ANSWER_TRIES)  # fmt: skip
        try:
            token = dict(self.oauth_client.parse_request_body_response(response.text))
        except OAuth2Error as exc:
            raise self._refused(response, exc.error, exc.description) from None
        except (ValueError, TypeError, RecursionError):
            raise self._refused(response, "unexpected answer", "") from None
        if response.status_code >= 400 or not token.get("access_token"):
            raise self._refused(response, *_error_fields(token))
        for key in ("access_token", "refresh_token", "id_token"):
            if isinstance(token.get(key), str):
                mask_secret(token[key])
        return token

    def token(self, answer: Mapping[str, Any]) -> Token:
        """The access token of an answer, its expiry on the provider's clock."""
        return Token.from_response(dict(answer), now=self.api.server_clock())

    def _form(self, grant: Mapping[str, str]) -> dict[str, str]:
        grant = dict(grant)
        grant_type = grant.pop("grant_type")
        if grant_type == "refresh_token":
            body = self.oauth_client.prepare_refresh_body(
                refresh_token=grant.pop("refresh_token"), client_id=self.client_id, **grant
            )
        else:
            client = self.oauth_client
            if grant_type == "authorization_code" and not isinstance(client, WebApplicationClient):
                client = WebApplicationClient(self.client_id)
            body = client.prepare_request_body(include_client_id=True, **grant)
        form = dict(_form_pairs(body))
        form["client_secret"] = self._client_secret
        return form

    def _refused(self, response: Any, error: str, description: str) -> TokenRequestRefused:
        error, description = _server_words(response, error, description)
        refusal = TokenRequestRefused(
            "", error=error, description=description, status=getattr(response, "status_code", None)
        )
        refusal.args = (self._describe(refusal) if self._describe else _default_words(self.token_url, refusal),)
        return refusal


def authorize_url(
    accounts_url: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    challenge: str | None,
    challenge_method: str = "S256",
) -> str:
    """The authorization-code grant's first step: where the user's browser signs in (PKCE SHA-256 when a
    challenge is given). `challenge_method` is the spelling the provider documents: RFC 7636 says `S256`,
    LiveChat's docs `s256`."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state}
    if challenge:
        # Providers without PKCE ignore unknown authorize parameters, so sending it is harmless there.
        params.update(code_challenge=challenge, code_challenge_method=challenge_method)
    return f"{accounts_url.rstrip('/')}/?{urlencode(params)}"


def code_challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636) of a verifier, as oauthlib computes it."""
    return WebApplicationClient("").create_code_challenge(verifier, "S256")


def _form_pairs(body: str) -> list[tuple[str, str]]:
    return parse_qsl(body, keep_blank_values=True)


def _error_fields(payload: Mapping[str, Any]) -> tuple[str, str]:
    error = str(payload.get("error") or payload.get("code") or "unknown_error")
    description = str(payload.get("error_description") or payload.get("message") or "")
    return error, description


def _server_words(response: Any, error: str, description: str) -> tuple[str, str]:
    """oauthlib reads standard error bodies; a body in another shape (`code`, `message`) is read here."""
    if error and error not in ("missing_token", "unknown_error", "unexpected answer"):
        return error, description or ""
    try:
        payload = json.loads(response.text or "")
    except (ValueError, RecursionError):
        return "unexpected answer", ""
    if not isinstance(payload, dict):
        return "unexpected answer", ""
    if payload.get("access_token") and response.status_code < 400:
        return error, description
    return _error_fields(payload)


def _default_words(token_url: str, refusal: TokenRequestRefused) -> str:
    detail = f"{refusal.error}: {refusal.description}" if refusal.description else refusal.error
    return f"the token server {token_url} refused the grant (HTTP {refusal.status}): {detail}"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
