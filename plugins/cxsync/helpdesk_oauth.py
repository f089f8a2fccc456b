"""Connect a HelpDesk OAuth 2 connection, once, from a terminal.

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
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

from cxsync import settings
from cxsync.errors import CxsyncError
from cxsync.hooks.helpdesk import AUTH_OAUTH2, request_token
from cxsync.http import ApiClient, RetryPolicy
from cxsync.http.client import mask_secret
from cxsync.http.endpoints import check_helpdesk_accounts_url

DEFAULT_PORT = 8976
DEFAULT_TIMEOUT_SECONDS = 300.0
CALLBACK_PATH = "/callback"


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


# ---- the loopback listener ---------------------------------------------------------------------------------


class CallbackListener:
    """One-shot HTTP listener on 127.0.0.1 for the authorization redirect. Other paths (a browser's
    favicon request) get 404 and the wait goes on; the first request to the callback path ends it."""

    def __init__(self, port: int, expected_state: str):
        self.expected_state = expected_state
        self.result: Callback | None = None
        self.error: str | None = None
        self._done = threading.Event()
        listener = self

        class Handler(BaseHTTPRequestHandler):
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

        self._server = HTTPServer(("127.0.0.1", port), Handler)
        self._server.timeout = 0.2

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def _accept(self, query: dict[str, list[str]]) -> tuple[bool, str]:
        def one(name: str) -> str:
            values = query.get(name) or [""]
            return values[0]

        if self._done.is_set():
            return False, "This sign-in was already handled; you can close this tab."
        if one("error"):
            described = one("error_description")
            self.error = f"HelpDesk did not authorize the app: {one('error')}"
            if described:
                self.error += f" ({described})"
        elif not secrets.compare_digest(one("state"), self.expected_state):
            self.error = (
                "the redirect's `state` does not match the one this command sent: the answer does not "
                "belong to this sign-in (an old tab, or a forged request); nothing was stored"
            )
        elif not one("code"):
            self.error = "the redirect carries no authorization `code`"
        else:
            self.result = Callback(code=one("code"), state=one("state"))
        self._done.set()
        if self.error:
            return False, f"cxsync: {self.error}. Go back to the terminal."
        return True, "cxsync: HelpDesk authorized. You can close this tab and go back to the terminal."

    def wait(self, timeout: float) -> Callback:
        """Serve requests until the callback arrives or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        try:
            while not self._done.is_set():
                if time.monotonic() > deadline:
                    raise ConnectError(f"no answer on {self.redirect_uri} within {timeout:g} s; run the command again")
                self._server.handle_request()
        finally:
            self._server.server_close()
        if self.error:
            raise ConnectError(self.error)
        assert self.result is not None
        return self.result

    def close(self) -> None:
        self._server.server_close()


# ---- the flow ----------------------------------------------------------------------------------------------


def authorize_url(accounts_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{accounts_url.rstrip('/')}/?{query}"


def connect(
    conn_id: str,
    *,
    port: int = DEFAULT_PORT,
    open_browser: bool = True,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    out: TextIO = sys.stdout,
    on_authorize_url: Callable[[str], None] | None = None,
) -> ConnectResult:
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
    accounts_url = str(extra.get("accounts_url") or "https://accounts.livechat.com").rstrip("/")
    check_helpdesk_accounts_url(accounts_url, extra, conn_id=conn_id)

    state = secrets.token_urlsafe(24)
    try:
        listener = CallbackListener(port, state)
    except OSError as exc:
        raise ConnectError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; pick another --port "
            "(and register that redirect URI in the app)"
        ) from None
    url = authorize_url(accounts_url, client_id, listener.redirect_uri, state)
    print(f"Redirect URI (must be registered in the app): {listener.redirect_uri}", file=out)
    print("Open this URL in a browser, sign in to HelpDesk and approve the app:", file=out)
    print(url, file=out, flush=True)
    if on_authorize_url:
        on_authorize_url(url)
    if open_browser:
        webbrowser.open(url)
    print(f"Waiting up to {timeout:g} s for the redirect on {listener.redirect_uri} ...", file=out, flush=True)
    callback = listener.wait(timeout)

    client = ApiClient(
        name="HelpDesk accounts",
        user_agent=settings.USER_AGENT,
        retry=RetryPolicy(max_attempts=3, base_seconds=1.0, max_seconds=5.0),
    )
    try:
        tokens = request_token(
            client,
            f"{accounts_url}/v2/token",
            {
                "grant_type": "authorization_code",
                "code": callback.code,  # parse_qs already URL-decoded it (`dal%3A...` -> `dal:...`)
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uri": listener.redirect_uri,  # identical to the one in the authorize URL
            },
            conn_id=conn_id,
        )
    finally:
        client.close()
    refresh_token = tokens.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ConnectError("the token server answered without a refresh_token; is the app a server-side app?")
    mask_secret(refresh_token)
    mask_secret(str(tokens.get("access_token") or ""))
    account_id = str(tokens["account_id"]) if tokens.get("account_id") else None
    result = store_refresh_token(conn_id, airflow_conn, refresh_token)
    result.account_id = account_id
    who = f"account {account_id}" if account_id else "the account"
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
    try:
        connect(args.conn_id, port=args.port, open_browser=not args.no_browser, timeout=args.timeout)
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


if __name__ == "__main__":
    sys.exit(main())
