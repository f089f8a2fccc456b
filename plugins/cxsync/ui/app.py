"""The FastAPI app the api-server mounts under /cxsync/: server-rendered pages (Jinja2 templates and one CSS
file shipped in the package, nothing from a CDN) and a JSON API.

Its lifespan runs when the api-server starts (Airflow enters the lifespan of every mounted plugin app): that
is where cxsync's pools are created, since the api-server is the one component every deployment runs that
has Airflow's database at hand.

Every route depends on `require(Access...)` (cxsync.ui.security): Airflow's login and auth manager decide.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates

from cxsync import helpdesk_oauth, settings
from cxsync.config import ConfigError
from cxsync.pools import ensure_pools
from cxsync.ui import connect_state, matching, qa_lists, status
from cxsync.ui.security import (
    CSRF_FIELD,
    Access,
    Connector,
    LoginRequired,
    MatchManager,
    Reader,
    csrf_token,
    require_connection_edit,
    set_csrf_cookie,
    user_name,
    wants_html,
)
from cxsync.ui.warehouse_reads import warehouse_engine

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
FLASH_COOKIE = "cxsync_flash"


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    try:
        ensure_pools()
    except Exception:
        # The pages still serve; the status page names the missing pool and the command that creates it.
        log.exception("cxsync: could not create the Airflow pools")
    yield


app = FastAPI(title="cxsync", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
# Where the api-server mounts this app (cxsync.ui.plugin): the OAuth redirect URI is built from it.
CONNECT_PREFIX = "/cxsync"
CALLBACK_QUERY_SCOPE_KEY = "cxsync.callback_query"


class HideAuthorizationCode:
    """The OAuth callback's query carries the authorization code: the api-server's access log (Airflow's
    `HttpAccessLogMiddleware`, around every mounted app) logs each request's query after the answer. This
    middleware hands the callback its parameters under its own scope key and leaves the code out of the
    query string everyone after it (the access log among them) reads."""

    def __init__(self, asgi: Any) -> None:
        self.app = asgi

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path", "").endswith("/connect/helpdesk/callback"):
            from urllib.parse import parse_qs

            raw = scope.get("query_string", b"").decode("latin-1")
            query = parse_qs(raw, keep_blank_values=True)
            scope[CALLBACK_QUERY_SCOPE_KEY] = query
            shown = [(name, "[redacted]" if name == "code" else values[0][:200]) for name, values in query.items()]
            scope["query_string"] = urlencode(shown).encode()  # the same dict the outer access log reads
        await self.app(scope, receive, send)


app.add_middleware(HideAuthorizationCode)
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _when(value: Any) -> str:
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


templates.env.filters["when"] = _when
templates.env.filters["ago"] = _ago
templates.env.filters["thousands"] = lambda n: f"{n:,}" if isinstance(n, int) else ("" if n is None else str(n))


def airflow_root(request: Request) -> str:
    """Airflow's own UI prefix (the api-server's root path): this app's root path without /cxsync."""
    root = request.scope.get("root_path", "")
    return root[: -len("/cxsync")] if root.endswith("/cxsync") else root


def render(request: Request, user: Any, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    flash = _read_flash(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "base": root,
            "airflow": airflow_root(request),
            "user": user_name(user) if user is not None else None,
            "csrf": csrf_token(request),
            "csrf_field": CSRF_FIELD,
            "flash": flash,
            **context,
        },
        status_code=status_code,
    )
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=root or "/")
    set_csrf_cookie(request, response)
    return response


def redirect_with_flash(request: Request, url: str, kind: str, text: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    root = request.scope.get("root_path", "") or "/"
    value = quote(json.dumps({"kind": kind, "text": text}))
    response.set_cookie(FLASH_COOKIE, value, path=root, max_age=120, httponly=True, samesite="lax")
    return response


def _read_flash(request: Request) -> dict | None:
    from urllib.parse import unquote

    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        flash = json.loads(unquote(raw))
    except ValueError:
        return None
    return flash if isinstance(flash, dict) and flash.get("kind") in ("ok", "error") else None


@app.exception_handler(LoginRequired)
async def _to_login(request: Request, _: LoginRequired) -> RedirectResponse:
    from airflow.api_fastapi.app import get_auth_manager

    return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)


@app.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> Any:
    if wants_html(request):
        title = {403: "Not allowed", 404: "Not found"}.get(exc.status_code, "Cannot do that")
        return render(request, None, "message.html", exc.status_code, title=title, message=exc.detail)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


# ---- pages and API -------------------------------------------------------------------------------------------


@app.get("/", response_class=HTMLResponse, name="status_page")
def status_page(request: Request, user: Reader) -> HTMLResponse:
    data = status.collect(airflow_root=airflow_root(request), show_option_names=_may_edit_warehouse(user))
    return render(
        request, user, "status.html", data=data, now=data["generated_at"], refresh_seconds=settings.UI_REFRESH_SECONDS
    )


@app.get("/api/status", name="status_api")
def status_api(request: Request, user: Reader) -> JSONResponse:
    data = status.collect(airflow_root=airflow_root(request), show_option_names=_may_edit_warehouse(user))
    return JSONResponse(jsonable_encoder(data))


def _may_edit_warehouse(user: Any) -> bool:
    """Admins of the warehouse connection (edit access to it) see which of its options are set."""
    from cxsync.ui.security import is_allowed

    try:
        conn_id = status.integrations_config().warehouse_conn_id
    except ConfigError:
        conn_id = settings.DEFAULT_WAREHOUSE_CONN_ID
    return is_allowed(user, Access.CONNECT, conn_id)


@app.get("/static/cxsync.css", name="stylesheet")
def stylesheet(user: Reader) -> FileResponse:
    return FileResponse(HERE / "static" / "cxsync.css", media_type="text/css")


@app.get("/static/cxsync.js", name="script")
def script(user: Reader) -> FileResponse:
    return FileResponse(HERE / "static" / "cxsync.js", media_type="text/javascript")


def _warehouse():
    try:
        conn_id = status.integrations_config().warehouse_conn_id
    except ConfigError:
        conn_id = None
    return warehouse_engine(conn_id)


def _integration_ids() -> list[str]:
    try:
        return [i.id for i in status.integrations_config().integrations]
    except ConfigError:
        return []


@app.get("/agents", response_class=HTMLResponse, name="agents_page")
def agents_page(
    request: Request, user: Reader, integration: str | None = None, method: str | None = None
) -> HTMLResponse:
    from cxsync.ui.security import is_allowed

    rows, facts = matching.agent_rows(_warehouse(), integration or None, method or None)
    return render(
        request,
        user,
        "agents.html",
        rows=rows,
        facts=facts,
        integrations=_integration_ids(),
        methods=matching.METHODS,
        selected={"integration": integration or "", "method": method or ""},
        can_edit=is_allowed(user, Access.MANAGE_MATCHES),
        staff_names=matching.staff_names(facts),
    )


@app.post("/agents/override", name="agents_override")
async def agents_override(request: Request, user: MatchManager) -> RedirectResponse:
    form = await request.form()
    integration_id, agent_id = str(form.get("integration_id") or ""), str(form.get("agent_id") or "")
    action, note = str(form.get("action") or ""), str(form.get("note") or "").strip()[:500]
    staff_id = str(form.get("staff_id") or "").strip()
    back = (
        request.url_for("agents_page").path
        + "?"
        + urlencode({k: str(form.get(f"back_{k}") or "") for k in ("integration", "method")})
    )
    who = f"{integration_id}/{agent_id}"
    try:
        engine = _warehouse()
        if action == "clear":
            done = matching.clear_override(engine, integration_id, agent_id)
            text = f"Override of {who} cleared." if done else f"{who} had no override."
        elif action == "never":
            matching.set_override(engine, integration_id, agent_id, None, note, user_name(user))
            text = f"{who} will never be matched (override set by {user_name(user)})."
        elif action == "set" and staff_id:
            matching.set_override(engine, integration_id, agent_id, staff_id, note, user_name(user))
            text = f"{who} is matched to staff {staff_id} (override set by {user_name(user)})."
        else:
            raise matching.OverrideError("choose a staff member, or 'never match', or 'clear'")
    except matching.OverrideError as exc:
        return redirect_with_flash(request, back + _row_anchor(integration_id, agent_id), "error",
                                   f"Override of {who} not saved: {exc}.")  # fmt: skip
    method = matching.apply_now(engine, integration_id, agent_id)
    applied = f" Applied now: the agent's match is {method}." if method else ""
    return redirect_with_flash(request, back + _row_anchor(integration_id, agent_id), "ok", text + applied)


def _row_anchor(integration_id: str, agent_id: str) -> str:
    """The edited row's anchor: the page comes back scrolled to it, wherever its new match sorts it."""
    return "#" + quote(f"agent-{integration_id}-{agent_id}", safe="")


@app.get("/lists", response_class=HTMLResponse, name="lists_page")
def lists_page(request: Request, user: Reader, list_id: str | None = None) -> HTMLResponse:
    runs, exists = qa_lists.list_runs(_warehouse(), list_id or None)
    defined, errors = qa_lists.defined_lists(runs, _next_runs())
    return render(
        request, user, "lists.html", runs=runs, tables_exist=exists, list_id=list_id or "", defined=defined,
        list_errors=errors,
    )  # fmt: skip


def _next_runs() -> dict[str, Any]:
    from cxsync.qa.lists_config import load_qa_lists

    try:
        return qa_lists.next_runs([settings.qa_list_dag_id(q.id) for q in load_qa_lists().lists])
    except Exception:  # Airflow's database unreachable: the lists still show, without their next run
        log.warning("cxsync: could not read the QA lists' next runs", exc_info=True)
        return {}


@app.get("/lists/run/{list_run_id}", response_class=HTMLResponse, name="list_run_page")
def list_run_page(request: Request, user: Reader, list_run_id: str) -> HTMLResponse:
    runs, _ = qa_lists.list_runs(_warehouse())
    run = next((r for r in runs if r["list_run_id"] == list_run_id), None)
    if run is None:
        raise HTTPException(404, f"No QA list run {list_run_id!r}.")
    return render(request, user, "list_run.html", run=run, items=qa_lists.run_items(_warehouse(), list_run_id))


@app.get("/interactions/{integration_id}/{interaction_id}", response_class=HTMLResponse, name="transcript_page")
def transcript_page(request: Request, user: Reader, integration_id: str, interaction_id: str) -> HTMLResponse:
    found = qa_lists.transcript(_warehouse(), integration_id, interaction_id)
    if found is None:
        raise HTTPException(404, f"No interaction {interaction_id!r} of {integration_id!r} in the warehouse.")
    return render(request, user, "transcript.html", interaction=found)


@app.get("/lists/{list_run_id}.csv", name="list_csv")
def list_csv(user: Reader, list_run_id: str) -> StreamingResponse:
    chunks = qa_lists.list_csv(_warehouse(), list_run_id)
    if chunks is None:
        raise HTTPException(404, f"No QA list run {list_run_id!r}.")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in list_run_id)
    return StreamingResponse(
        chunks, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="qa_list_{safe}.csv"'}
    )


# ---- Connect HelpDesk (OAuth 2 authorization code, the flow of cxsync.helpdesk_oauth) ---------------------
#
# The connect page lives inside Airflow's sandboxed iframe, and real sign-in pages refuse to be framed: the
# page's form opens the provider in a top-level tab (connect.html). The connection to write travels in the
# signed `state` (cxsync.ui.connect_state), never in a cookie of its own: the callback checks edit access on
# exactly that connection, with its team, for the user who started the sign-in. The redirect URI is built from
# Airflow's configured `[api] base_url`, never from the request's Host header.

CONNECT_COOKIES = (settings.UI_CONNECT_COOKIE_STATE, settings.UI_CONNECT_COOKIE_VERIFIER)


def _connect_cookie_path(request: Request) -> str:
    return request.scope.get("root_path", "") + "/connect/helpdesk"


def connect_callback_url() -> str:
    """The redirect URI registered with the app: Airflow's `[api] base_url` + this app's callback path."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback=None) or "").strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise helpdesk_oauth.ConnectError(
            "Airflow's [api] base_url is not set (AIRFLOW__API__BASE_URL, e.g. https://airflow.example.com): the "
            "redirect URI HelpDesk sends you back to is built from it, never from the request's Host header"
        )
    return base + CONNECT_PREFIX + "/connect/helpdesk/callback"


def _shown_callback_url() -> str:
    """The redirect URI to show beside a problem (a refused sign-in is often a redirect URI the app does not
    list); blank when `[api] base_url` is not set, which the problem itself then says."""
    try:
        return connect_callback_url()
    except helpdesk_oauth.ConnectError:
        return ""


def _signed_sign_in(request: Request, user: Any) -> connect_state.SignInState | None:
    """This browser's sign-in under way, when its state cookie was minted here for this user."""
    value = request.cookies.get(settings.UI_CONNECT_COOKIE_STATE) or ""
    if not value:
        return None
    try:
        return connect_state.read(value, user_name(user))
    except connect_state.BadState:
        return None


def _clear_connect_cookies(request: Request, response: Any) -> Any:
    """End this browser's sign-in: its cookies go, and the "done" marker changes (the connect page, left
    waiting in the other tab or frame, sees it and goes back to the status page)."""
    path = _connect_cookie_path(request)
    for name in (*CONNECT_COOKIES, settings.UI_CONNECT_COOKIE_CONN):  # the old unsigned cookie too
        response.delete_cookie(name, path=path)
    response.set_cookie(
        settings.UI_CONNECT_COOKIE_DONE,
        secrets.token_urlsafe(8),
        path=path,
        max_age=settings.UI_CONNECT_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@app.get("/connect/helpdesk", response_class=HTMLResponse, name="connect_helpdesk")
def connect_helpdesk(request: Request, user: Connector, conn_id: str = "") -> HTMLResponse:
    problem = _connect_problem(conn_id)
    hint, callback = "", ""
    if not problem:
        try:
            callback = connect_callback_url()
            hint = helpdesk_oauth.begin(conn_id, callback).refusal_hint()
        except helpdesk_oauth.ConnectError as exc:
            problem = f"{exc}."
    return render(
        request,
        user,
        "connect.html",
        status_code=400 if problem else 200,
        conn_id=conn_id,
        problem=problem,
        callback=callback,
        refusal_hint=hint,
        done_marker=request.cookies.get(settings.UI_CONNECT_COOKIE_DONE) or "",
    )


@app.post("/connect/helpdesk", name="connect_helpdesk_start")
def connect_helpdesk_start(request: Request, user: Connector, conn_id: str = "") -> Any:
    require_connection_edit(user, conn_id or None)
    problem = _connect_problem(conn_id)
    try:
        if problem:
            raise helpdesk_oauth.ConnectError(problem.rstrip("."))
        state = connect_state.mint(conn_id, user_name(user))
        authorization = helpdesk_oauth.begin(conn_id, connect_callback_url(), state)
    except (helpdesk_oauth.ConnectError, connect_state.BadState) as exc:
        return render(
            request, user, "connect.html", 400, conn_id=conn_id, problem=f"{exc}.", callback=_shown_callback_url()
        )
    response = RedirectResponse(authorization.url, status_code=303)
    for name, value in zip(CONNECT_COOKIES, (authorization.state, authorization.code_verifier), strict=True):
        # Lax: the provider's redirect back is a top-level navigation, which carries them; other sites'
        # requests do not, so nobody else can plant a state here.
        response.set_cookie(
            name,
            value,
            path=_connect_cookie_path(request),
            max_age=settings.UI_CONNECT_MAX_AGE_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
    log.info("cxsync: %s started the HelpDesk connect flow for connection %s", user_name(user), conn_id)
    return response


@app.get("/connect/helpdesk/pending", name="connect_helpdesk_pending")
def connect_helpdesk_pending(request: Request, user: Connector, conn_id: str = "") -> JSONResponse:
    """Whether this browser still has a sign-in under way (the connect page polls it to go back to the status
    page once the sign-in tab finished, or to say it was cancelled)."""
    sign_in = _signed_sign_in(request, user)
    require_connection_edit(user, sign_in.conn_id if sign_in else (conn_id or None))
    return JSONResponse(
        {
            "pending": sign_in is not None,
            "conn_id": sign_in.conn_id if sign_in else None,
            "done": request.cookies.get(settings.UI_CONNECT_COOKIE_DONE) or "",
        }
    )


@app.post("/connect/helpdesk/cancel", name="connect_helpdesk_cancel")
def connect_helpdesk_cancel(request: Request, user: Connector, conn_id: str = "") -> RedirectResponse:
    """Forget the sign-in under way: a late callback for it is refused (its state cookie is gone)."""
    sign_in = _signed_sign_in(request, user)
    require_connection_edit(user, sign_in.conn_id if sign_in else (conn_id or None))
    text = "HelpDesk sign-in cancelled; nothing was stored." if sign_in else "No HelpDesk sign-in was under way."
    response = redirect_with_flash(request, request.url_for("status_page").path, "ok", text)
    return _clear_connect_cookies(request, response)


@app.get("/connect/helpdesk/callback", response_class=HTMLResponse, name="connect_helpdesk_callback")
def connect_helpdesk_callback(request: Request, user: Connector) -> Any:
    state = request.cookies.get(settings.UI_CONNECT_COOKIE_STATE) or ""
    verifier = request.cookies.get(settings.UI_CONNECT_COOKIE_VERIFIER) or ""
    query = request.scope.get(CALLBACK_QUERY_SCOPE_KEY) or {}
    conn_id = ""

    def failed(message: str) -> HTMLResponse:
        response = render(
            request, user, "connect.html", 400, conn_id=conn_id, problem=message, callback=_shown_callback_url()
        )
        return _clear_connect_cookies(request, response)

    if not (state and verifier):  # nothing names a connection, and nothing is written
        return failed(
            "No HelpDesk sign-in is under way in this browser (it expires after "
            f"{settings.UI_CONNECT_MAX_AGE_SECONDS // 60} minutes, was cancelled, or cookies were blocked). Start "
            "again."
        )
    try:
        sign_in = connect_state.read(state, user_name(user))
    except connect_state.BadState as exc:  # names no connection it could be checked on; nothing is written
        return failed(f"Nothing was stored: {exc}.")
    conn_id = sign_in.conn_id
    require_connection_edit(user, conn_id)  # exactly the connection written below, with its team
    try:
        callback = helpdesk_oauth.read_callback(query, state)
        _, client_id, _, accounts_url = helpdesk_oauth.oauth_connection(conn_id)
        authorization = helpdesk_oauth.Authorization(
            conn_id=conn_id,
            accounts_url=accounts_url,
            client_id=client_id,
            redirect_uri=connect_callback_url(),
            state=state,
            code_verifier=verifier,
        )
        result = helpdesk_oauth.finish(authorization, callback.code)
    except helpdesk_oauth.ConnectError as exc:
        return failed(f"Nothing was stored: {exc}.")
    if result.connection_json is not None:
        return failed(
            f"HelpDesk authorized the app, but connection {conn_id!r} comes from the {result.stored_in}, which "
            f"cxsync cannot change: use `python -m cxsync.helpdesk_oauth --conn-id {conn_id}` in a terminal."
        )
    who = f"account {result.account_id}" if result.account_id else "the account"
    log.info("cxsync: %s connected HelpDesk %s to connection %s", user_name(user), who, conn_id)
    response = redirect_with_flash(
        request,
        request.url_for("status_page").path,
        "ok",
        f"HelpDesk connected: {who} authorized cxsync; the refresh token is stored in connection {conn_id!r}.",
    )
    return _clear_connect_cookies(request, response)


def _connect_problem(conn_id: str) -> str | None:
    """Why the browser flow cannot connect `conn_id` (None when it can)."""
    import os

    if not conn_id:
        return "Name the connection: /cxsync/connect/helpdesk?conn_id=<your helpdesk connection>."
    if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return (
            f"Connection {conn_id!r} is defined by the environment variable AIRFLOW_CONN_{conn_id.upper()}, which "
            f"the api-server cannot change: run `python -m cxsync.helpdesk_oauth --conn-id {conn_id}` where that "
            "variable is set; it prints the connection to store there."
        )
    try:
        helpdesk_oauth.oauth_connection(conn_id)
    except helpdesk_oauth.ConnectError as exc:
        return f"{exc}."
    except Exception as exc:  # AirflowNotFoundException and friends
        if type(exc).__name__ == "AirflowNotFoundException":
            return f"There is no connection {conn_id!r}: create it (type helpdesk, extra auth_type oauth2) first."
        raise
    return None
