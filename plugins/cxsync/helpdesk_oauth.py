"""Connect a HelpDesk OAuth 2 connection, once: the authorization-code flow (with PKCE), shared by this
terminal command and the Airflow UI's "Connect HelpDesk" page (`cxsync.ui`). `begin` draws the `state` and
PKCE verifier, `read_callback` checks the redirect (`state` first), `finish` exchanges the code and stores
the refresh token. The terminal command:

    python -m cxsync.helpdesk_oauth --conn-id helpdesk_oauth [--port 8976] [--no-browser]

1. reads the `helpdesk` connection (login = client_id, password = client_secret, extra `accounts_url`);
2. prints the authorize URL (and opens it in a browser unless `--no-browser`); you sign in to HelpDesk
   and approve the app;
3. the browser is sent back to `http://127.0.0.1:<port>/callback`, where this command listens for that
   one request: it checks `state`, then exchanges the code for tokens at `{accounts_url}/v2/token`;
4. stores the refresh token in the connection's extra (`refresh_token`, `auth_type: oauth2`) in
   Airflow's metadata database. A connection defined by an `AIRFLOW_CONN_<ID>` environment variable (or
   a secrets backend) cannot be changed from here: the command then prints the connection JSON to put
   there, the one place it ever shows the secret, because you asked for it.

Register `http://127.0.0.1:<port>/callback` as the app's redirect URI in the Developers Console; the port
must match (`--port 0` picks a free one, for tests against the sandbox).

A sign-in the accounts server refuses (an unknown client_id, a redirect URI that is not registered, a PKCE
method it does not take) never comes back to the redirect URI: LiveChat's docs say every authorization error
lands on its error page `{accounts_url}/ooops`, the reason in the `oauth_exception` parameter. So the command
says where to look before it waits, and Enter (or Ctrl-C) cancels the wait.

PKCE: LiveChat documents `code_challenge_method` as `s256` (lower case; RFC 7636 spells `S256`). cxsync sends
the documented spelling; the connection's extra `pkce_method` (`s256` or `S256`) changes it.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from oauthlib.oauth2 import WebApplicationClient

from cxsync import settings
from cxsync.errors import AuthenticationError, CxsyncError
from cxsync.hooks.helpdesk import AUTH_OAUTH2, token_grant
from cxsync.http import ApiClient, RetryPolicy
from cxsync.http.client import mask_secret
from cxsync.http.endpoints import check_helpdesk_accounts_url
from cxsync.http.oauth2 import authorize_url, code_challenge

DEFAULT_PORT = 8976
DEFAULT_TIMEOUT_SECONDS = 300.0
CALLBACK_PATH = "/callback"
# Seconds one connection to the loopback listener may take from accept to answer, however it sends: an idle or
# dribbling client (one byte every 2 s) is cut at this deadline. Connections are handled side by side, so a
# few of them cannot delay the real callback either.
REQUEST_TIMEOUT_SECONDS = 10.0
ERROR_PAGE_PATH = "/ooops"  # where LiveChat's accounts server shows a refused authorization (`oauth_exception`)
PKCE_METHOD_EXTRA = "pkce_method"
# LiveChat's docs spell the SHA-256 method `s256`; RFC 7636 (and most servers) `S256`. Both mean the same hash.
PKCE_METHODS = ("s256", "S256")
DEFAULT_PKCE_METHOD = "s256"
DEFAULT_ACCOUNTS_URL = "https://accounts.livechat.com"
# C0 and C1 control characters (ESC starts terminal escape sequences): provider text never reaches a terminal
# or a page with them.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_PROVIDER_TEXT = 300


class ConnectError(CxsyncError):
    """The connect flow cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Callback:
    code: str
    state: str


@dataclass
class ConnectResult:
    conn_id: str
    account_id: str | None
    stored_in: str  # "metadata database" or "environment variable" / "secrets backend" (printed JSON)
    connection_json: str | None = None


@dataclass(frozen=True)
class Authorization:
    """One sign-in under way: what the authorize URL carried and what the code exchange must repeat.
    `code_verifier` is the PKCE secret; it never leaves cxsync until the token request."""

    conn_id: str
    accounts_url: str
    client_id: str
    redirect_uri: str
    state: str
    code_verifier: str
    pkce_method: str = DEFAULT_PKCE_METHOD

    @property
    def url(self) -> str:
        return authorize_url(
            self.accounts_url,
            self.client_id,
            self.redirect_uri,
            self.state,
            code_challenge(self.code_verifier),
            self.pkce_method,
        )

    @property
    def error_page(self) -> str:
        """Where the accounts server shows why it refused this sign-in (it never comes back to the callback)."""
        return self.accounts_url + ERROR_PAGE_PATH

    def refusal_hint(self) -> str:
        """What to tell the user before the wait: where a refusal shows, and what this sign-in sent."""
        return (
            f"If HelpDesk refuses the sign-in, it does not come back here: its error page {self.error_page} shows "
            f"the reason (the `oauth_exception` in its address). This sign-in sends PKCE code_challenge_method="
            f"{self.pkce_method} (the connection's extra `{PKCE_METHOD_EXTRA}`; the other accepted spelling is "
            f"{_other_pkce_method(self.pkce_method)}) and the redirect URI {self.redirect_uri}, which must be "
            "registered in the app exactly"
        )

    def __repr__(self) -> str:  # the verifier is a secret
        return f"Authorization(conn_id={self.conn_id!r}, redirect_uri={self.redirect_uri!r})"


# ---- the flow, shared by this command and the Airflow UI's "Connect HelpDesk" page --------------------------


def clean_text(value: object, limit: int = _MAX_PROVIDER_TEXT) -> str:
    """Provider-supplied text made safe to print: control characters (terminal escapes) removed, cut short."""
    text = _CONTROL_CHARS.sub("", str(value))
    return text if len(text) <= limit else text[:limit] + "..."


def oauth_connection(conn_id: str) -> tuple[Any, str, str, str]:
    """The helpdesk connection checked for the flow: (connection, client_id, client_secret, accounts_url)."""
    airflow_conn = read_connection(conn_id)
    if (airflow_conn.conn_type or "") != "helpdesk":
        raise ConnectError(f"connection {conn_id!r} is of type {airflow_conn.conn_type!r}, not helpdesk")
    extra = dict(airflow_conn.extra_dejson or {})
    client_id, client_secret = (airflow_conn.login or "").strip(), airflow_conn.password or ""
    if not client_id or not client_secret:
        raise ConnectError(
            f"connection {conn_id!r} needs the OAuth app's client_id as login and client_secret as "
            "password (Developers Console > Apps > your app)"
        )
    if str(extra.get("auth_type") or "token").lower() != AUTH_OAUTH2:
        raise ConnectError(
            f"connection {conn_id!r} has auth_type {extra.get('auth_type') or 'token'!r}: set its "
            "extra `auth_type` to `oauth2` first, with the app's client_id and client_secret"
        )
    mask_secret(client_secret)
    accounts_url = str(extra.get("accounts_url") or DEFAULT_ACCOUNTS_URL).rstrip("/")
    # the client secret and the code go to this host: only the provider's own (or one the connection trusts)
    check_helpdesk_accounts_url(accounts_url, extra, conn_id=conn_id)
    return airflow_conn, client_id, client_secret, accounts_url


def pkce_method(extra: Mapping[str, Any], conn_id: str) -> str:
    """The connection's PKCE method spelling (extra `pkce_method`), `s256` as LiveChat documents by default."""
    value = str(extra.get(PKCE_METHOD_EXTRA) or DEFAULT_PKCE_METHOD).strip()
    if value not in PKCE_METHODS:
        raise ConnectError(
            f"connection {conn_id!r}: extra `{PKCE_METHOD_EXTRA}` is {clean_text(value, 40)!r}; use "
            f"{' or '.join(PKCE_METHODS)} (SHA-256; `s256` is LiveChat's documented spelling)"
        )
    return value


def _other_pkce_method(method: str) -> str:
    return next(m for m in PKCE_METHODS if m != method)


def begin(conn_id: str, redirect_uri: str, state: str | None = None) -> Authorization:
    """Start a sign-in: check the connection, draw a fresh PKCE verifier and (unless given one) `state`."""
    airflow_conn, client_id, _, accounts_url = oauth_connection(conn_id)
    return Authorization(
        conn_id=conn_id,
        accounts_url=accounts_url,
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state or secrets.token_urlsafe(24),
        code_verifier=WebApplicationClient(client_id).create_code_verifier(64),
        pkce_method=pkce_method(dict(airflow_conn.extra_dejson or {}), conn_id),
    )


def read_callback(query: Mapping[str, Any], expected_state: str) -> Callback:
    """The redirect's parameters checked, `state` first: a request that does not carry this sign-in's state
    is not an answer to it, whatever else it says (so a stray `?error=` cannot end a sign-in)."""

    def one(name: str) -> str:
        value = query.get(name) or ""
        if isinstance(value, list):
            value = value[0] if value else ""
        return str(value)

    if not state_matches(one("state"), expected_state):
        raise StateMismatch(
            "the redirect's `state` does not match the one this sign-in sent: the answer does not belong to "
            "this sign-in (an old tab, or a forged request); nothing was stored"
        )
    if one("error"):
        message = f"HelpDesk did not authorize the app: {clean_text(one('error'), 80)}"
        if one("error_description"):
            message += f" ({clean_text(one('error_description'))})"
        raise ConnectError(message)
    if not one("code"):
        raise ConnectError("the redirect carries no authorization `code`")
    return Callback(code=one("code"), state=one("state"))


class StateMismatch(ConnectError):
    """A callback that is not the answer to this sign-in."""


def state_matches(received: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str: compare the UTF-8 bytes, so any input is just "not equal".
    return bool(expected) and secrets.compare_digest(
        received.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def finish(authorization: Authorization, code: str) -> ConnectResult:
    """Exchange the code (with the PKCE verifier) for tokens and store the refresh token in the connection."""
    airflow_conn, client_id, client_secret, accounts_url = oauth_connection(authorization.conn_id)
    if client_id != authorization.client_id or accounts_url != authorization.accounts_url:
        raise ConnectError(
            f"connection {authorization.conn_id!r} changed during the sign-in (client_id or accounts_url): start again"
        )
    client = ApiClient(
        name="HelpDesk accounts",
        user_agent=settings.USER_AGENT,
        retry=RetryPolicy(max_attempts=3, base_seconds=1.0, max_seconds=5.0),
    )
    try:
        grant = token_grant(client, authorization.conn_id, f"{accounts_url}/v2/token", client_id, client_secret)
        tokens = grant.authorization_code(
            code,
            redirect_uri=authorization.redirect_uri,  # identical to the one in the authorize URL
            code_verifier=authorization.code_verifier,
        )
    except AuthenticationError as exc:
        raise ConnectError(clean_text(exc, 1000)) from None
    finally:
        client.close()
    refresh_token = tokens.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ConnectError("the token server answered without a refresh_token; is the app a server-side app?")
    mask_secret(refresh_token)
    mask_secret(str(tokens.get("access_token") or ""))
    result = store_refresh_token(authorization.conn_id, airflow_conn, refresh_token)
    result.account_id = clean_text(tokens["account_id"], 80) if tokens.get("account_id") else None
    return result


# ---- the loopback listener ---------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a connection still being cut never holds the command's exit
    block_on_close = False


class CallbackListener:
    """HTTP listener on 127.0.0.1 for the authorization redirect. Each connection is handled in its own thread
    under a deadline (`REQUEST_TIMEOUT_SECONDS` from accept, whatever the client sends), so idle or dribbling
    connections neither hold it nor delay the real callback. Other paths (a browser's favicon request) get 404,
    and callbacks without this sign-in's `state` get 400: the wait goes on. The first callback with the right
    state ends it."""

    def __init__(self, port: int, expected_state: str):
        self.expected_state = expected_state
        self.result: Callback | None = None
        self.error: str | None = None
        self.refused = 0
        self._done = threading.Event()
        self._lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_TIMEOUT_SECONDS  # each read; the timer below bounds the whole connection

            def setup(self) -> None:
                super().setup()
                # A client sending a byte every 2 s never trips a read timeout: shut its socket at the deadline.
                self._deadline = threading.Timer(REQUEST_TIMEOUT_SECONDS, self._cut)
                self._deadline.daemon = True
                self._deadline.start()

            def _cut(self) -> None:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def finish(self) -> None:
                self._deadline.cancel()
                with contextlib.suppress(OSError):
                    super().finish()

            def handle(self) -> None:
                with contextlib.suppress(OSError, ValueError):  # a connection cut at its deadline
                    super().handle()

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != CALLBACK_PATH:
                    self._answer(404, "Not the HelpDesk callback.")
                    return
                ok, message = listener._accept(parse_qs(parts.query, keep_blank_values=True))
                self._answer(200 if ok else 400, message)

            def _answer(self, status: int, message: str) -> None:
                body = (
                    f"<!doctype html><meta charset=utf-8><title>cxsync</title><p>{html.escape(message)}</p>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # the query holds the code: never log it
                return

        self._server = _Server(("127.0.0.1", port), Handler)
        self._server.timeout = 0.2

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def _accept(self, query: dict[str, list[str]]) -> tuple[bool, str]:
        with self._lock:  # connections are handled side by side: one callback ends the sign-in
            if self._done.is_set():
                return False, "This sign-in was already handled; you can close this tab."
            try:
                self.result = read_callback(query, self.expected_state)
            except StateMismatch as exc:
                self.refused += 1
                return False, f"cxsync: {exc}. This sign-in is still waiting for its own answer."
            except ConnectError as exc:
                self.error = str(exc)
            self._done.set()
        if self.error:
            return False, f"cxsync: {self.error}. Go back to the terminal."
        return True, "cxsync: HelpDesk authorized. You can close this tab and go back to the terminal."

    def wait(self, timeout: float, cancel: threading.Event | None = None) -> Callback:
        """Serve requests until the callback arrives, `timeout` seconds pass or `cancel` is set."""
        deadline = time.monotonic() + timeout
        try:
            while not self._done.is_set():
                if cancel is not None and cancel.is_set():
                    raise ConnectError("sign-in cancelled; nothing was stored")
                if time.monotonic() > deadline:
                    refused = f" ({self.refused} request(s) with another `state` were refused)" if self.refused else ""
                    raise ConnectError(
                        f"no answer on {self.redirect_uri} within {timeout:g} s{refused}; run the command again"
                    )
                self._server.handle_request()
        finally:
            self._server.server_close()
        if self.error:
            raise ConnectError(self.error)
        assert self.result is not None
        return self.result

    def close(self) -> None:
        self._server.server_close()


# ---- the terminal command ----------------------------------------------------------------------------------


def connect(
    conn_id: str,
    *,
    port: int = DEFAULT_PORT,
    open_browser: bool = True,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    out: TextIO = sys.stdout,
    on_authorize_url: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> ConnectResult:
    """The terminal flow. `cancel` (set by Enter or Ctrl-C in `main`) ends the wait at once: a refused
    sign-in never comes back, and nobody should have to sit out the timeout."""
    oauth_connection(conn_id)  # refuse a wrong connection before listening anywhere
    try:
        listener = CallbackListener(port, "")
    except OSError as exc:
        raise ConnectError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; pick another --port "
            "(and register that redirect URI in the app)"
        ) from None
    authorization = begin(conn_id, listener.redirect_uri)
    listener.expected_state = authorization.state
    url = authorization.url
    print(f"Redirect URI (must be registered in the app): {listener.redirect_uri}", file=out)
    print("Open this URL in a browser, sign in to HelpDesk and approve the app:", file=out)
    print(url, file=out, flush=True)
    if on_authorize_url:
        on_authorize_url(url)
    if open_browser:
        webbrowser.open(url)
    print(authorization.refusal_hint() + ".", file=out)
    print(
        f"Waiting up to {timeout:g} s for the redirect on {listener.redirect_uri} (Enter or Ctrl-C cancels) ...",
        file=out,
        flush=True,
    )
    callback = listener.wait(timeout, cancel)
    result = finish(authorization, callback.code)  # parse_qs already URL-decoded the code
    who = f"account {result.account_id}" if result.account_id else "the account"
    if result.connection_json is None:
        print(f"Connected {who}: the refresh token is stored in connection {conn_id!r} ({result.stored_in}).", file=out)
    else:
        var = f"AIRFLOW_CONN_{conn_id.upper()}"
        print(
            f"Connected {who}, but connection {conn_id!r} comes from the {result.stored_in} and cannot be "
            "changed from here.",
            file=out,
        )
        print(
            f"Put this JSON there instead (e.g. {var}='<json>'). It contains the client secret and the refresh "
            "token: keep it secret.",
            file=out,
        )
        print(result.connection_json, file=out)
    return result


def read_connection(conn_id: str) -> Any:
    """The connection from every place Airflow keeps them. Outside a task the SDK's lookup sees only
    environment variables, so a terminal command asks Airflow core, which also reads the metadata database."""
    try:
        from airflow.models.connection import Connection
    except ImportError:  # pragma: no cover - a worker with the task SDK only
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(conn_id)
    return Connection.get_connection_from_secrets(conn_id)


def store_refresh_token(conn_id: str, airflow_conn: Any, refresh_token: str) -> ConnectResult:
    """Update the metadata database's connection; for env-var or secrets-backend connections, hand back the
    JSON to store there."""
    changes = {"refresh_token": refresh_token, "auth_type": AUTH_OAUTH2}
    env_var = f"AIRFLOW_CONN_{conn_id.upper()}"
    if os.environ.get(env_var):
        return ConnectResult(conn_id, None, f"environment variable {env_var}", connection_json(airflow_conn, changes))
    if _update_in_metadata_db(conn_id, changes):
        return ConnectResult(conn_id, None, "metadata database")
    return ConnectResult(conn_id, None, "secrets backend", connection_json(airflow_conn, changes))


def _update_in_metadata_db(conn_id: str, changes: dict[str, Any]) -> bool:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        if row is None:
            return False
        extra = dict(row.extra_dejson or {})
        extra.update(changes)
        row.set_extra(json.dumps(extra))
    return True


def connection_json(conn: Any, extra_changes: dict[str, Any]) -> str:
    """The connection as `AIRFLOW_CONN_<ID>` JSON, with `extra_changes` merged into its extra."""
    extra = {**dict(conn.extra_dejson or {}), **extra_changes}
    fields = {
        "conn_type": conn.conn_type or "helpdesk",
        "host": conn.host,
        "schema": conn.schema,
        "port": conn.port,
        "login": conn.login,
        "password": conn.password,
        "extra": extra,
    }
    return json.dumps({k: v for k, v in fields.items() if v not in (None, "")}, sort_keys=True)


# ---- command line ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxsync.helpdesk_oauth",
        description="Authorize cxsync for HelpDesk with OAuth 2 (once) and store the refresh token in the "
        "Airflow connection.",
    )
    parser.add_argument("--conn-id", required=True, help="the helpdesk connection (auth_type oauth2)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"loopback port of the redirect URI (default {DEFAULT_PORT}; 0 = any free port)",
    )
    parser.add_argument("--no-browser", action="store_true", help="only print the URL, do not open a browser")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for the redirect (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    cancel = threading.Event()
    if sys.stdin is not None and sys.stdin.isatty():
        threading.Thread(target=_cancel_on_enter, args=(sys.stdin, cancel), daemon=True).start()
    try:
        connect(args.conn_id, port=args.port, open_browser=not args.no_browser, timeout=args.timeout, cancel=cancel)
    except KeyboardInterrupt:
        print("error: sign-in cancelled; nothing was stored", file=sys.stderr)
        return 1
    except CxsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from airflow.sdk.exceptions import AirflowNotFoundException

        if isinstance(exc, AirflowNotFoundException):
            print(
                f"error: connection {args.conn_id!r} not found: create it first (type helpdesk, auth_type oauth2)",
                file=sys.stderr,
            )
            return 1
        raise
    return 0


def _cancel_on_enter(stream: TextIO, cancel: threading.Event) -> None:
    """Enter on the terminal cancels the wait (a refused sign-in never reaches the callback)."""
    with contextlib.suppress(OSError, ValueError):
        stream.readline()
        cancel.set()


if __name__ == "__main__":
    sys.exit(main())
