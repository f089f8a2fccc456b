"""Who may do what on the cxsync pages. cxsync keeps no users of its own: Airflow's login (the JWT that the
Airflow UI's login puts in the `_token` cookie, or an `Authorization: Bearer` header) says who the user is,
and Airflow's auth manager says what they may do:

- read the pages and the status API: read access to DAGs (the pages describe what the cxsync DAGs did);
- set or clear an agent-match override: edit access to the `cxsync_agent_matching` DAG, whose next run
  applies it;
- connect HelpDesk: edit access to that connection, with its team (the refresh token is written into it). The
  connection is the one named in the sign-in's signed `state` (`cxsync.ui.connect_state`), so the check and
  the write are about the same connection; the route checks it (`require_connection_edit`) once it knows it;
- see which options the warehouse connection sets (never their values): edit access to that connection.

Every route declares one of these with `Depends(require(...))`; POSTs also check a CSRF token.
"""

from __future__ import annotations

import enum
import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cxsync import settings

CSRF_COOKIE = "cxsync_csrf"
CSRF_FIELD = "csrf_token"
_bearer = HTTPBearer(auto_error=False)


class Access(enum.Enum):
    READ = "read the cxsync pages (read access to DAGs)"
    MANAGE_MATCHES = f"set agent-match overrides (edit access to the DAG {settings.AGENT_MATCHING_DAG_ID})"
    CONNECT = "connect a HelpDesk account (edit access to that connection)"


class LoginRequired(Exception):
    """No valid Airflow login on a page request: the answer is a redirect to Airflow's login page."""


def wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


async def current_user(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Any:
    """The Airflow user of this request, exactly as Airflow's own API routes find it."""
    from airflow.api_fastapi.core_api.security import get_user

    try:
        return await get_user(request, None, bearer)
    except HTTPException as exc:
        if exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN) and wants_html(request):
            raise LoginRequired() from None
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"Sign in to Airflow first ({exc.detail})", {"WWW-Authenticate": "Bearer"}
        ) from None


def connection_team(conn_id: str | None) -> str | None:
    """The team a connection belongs to (multi-team Airflow), as Airflow's own connection routes look it up."""
    if not conn_id:
        return None
    from airflow.models.connection import Connection

    return Connection.get_team_name(conn_id)


def dag_team(dag_id: str) -> str | None:
    """The team a DAG belongs to (through its bundle, multi-team Airflow), as Airflow's own DAG routes look it up."""
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


def is_allowed(user: Any, access: Access, conn_id: str | None = None) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails, DagDetails

    manager = get_auth_manager()
    if access is Access.READ:
        return manager.is_authorized_dag(method="GET", user=user)
    if access is Access.MANAGE_MATCHES:
        dag_id = settings.AGENT_MATCHING_DAG_ID
        return manager.is_authorized_dag(
            method="PUT", details=DagDetails(id=dag_id, team_name=dag_team(dag_id)), user=user
        )
    details = ConnectionDetails(conn_id=conn_id, team_name=connection_team(conn_id))
    return manager.is_authorized_connection(method="PUT", details=details, user=user)


def require_connection_edit(user: Any, conn_id: str | None) -> None:
    """403 unless the user may edit exactly `conn_id` (with its team); None: edit connections in general."""
    if not is_allowed(user, Access.CONNECT, conn_id):
        what = f"connection {conn_id!r}" if conn_id else "connections"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{user_name(user)} may not {Access.CONNECT.value} (edit access to {what}): ask an Airflow admin for "
            "that permission.",
        )


def require(access: Access):
    """A route dependency: the signed-in user, when Airflow's auth manager grants them `access` (else 403);
    a POST must also carry this session's CSRF token and come from this site.

    `Access.CONNECT` is about one connection, which only the route knows for sure (the callback reads it from
    the signed `state`): the route calls `require_connection_edit` with it before doing anything else."""

    async def dependency(request: Request, user: Annotated[Any, Depends(current_user)]) -> Any:
        if access is Access.CONNECT:
            if "conn_id" in request.query_params:  # the page and its form name the connection they are about
                require_connection_edit(user, request.query_params.get("conn_id") or None)
        elif not is_allowed(user, access):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{user_name(user)} may not {access.value}: ask an Airflow admin for that permission.",
            )
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await check_csrf(request)
        return user

    return dependency


def user_name(user: Any) -> str:
    getter = getattr(user, "get_name", None)
    return str(getter() if getter else user)


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (double-submit: a cookie the pages echo in every form)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) >= 32:
        return token
    token = getattr(request.state, "cxsync_new_csrf", None) or secrets.token_urlsafe(32)
    request.state.cxsync_new_csrf = token
    return token


def set_csrf_cookie(request: Request, response: Any) -> None:
    new = getattr(request.state, "cxsync_new_csrf", None)
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            new,
            path=request.scope.get("root_path") or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


async def check_csrf(request: Request) -> None:
    """A state-changing request must come from this site (Origin, when the browser sends it) and carry the
    token of the cookie another site cannot read."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"Cross-site request refused (Origin {origin}).")
    form = await request.form()
    sent = str(form.get(CSRF_FIELD) or request.headers.get("x-csrf-token") or "")
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not cookie or not secrets.compare_digest(sent.encode(), cookie.encode()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "The form's CSRF token is missing or stale: reload the page and try again."
        )


# Route parameter types: the signed-in user, checked for one access.
Reader = Annotated[Any, Depends(require(Access.READ))]
MatchManager = Annotated[Any, Depends(require(Access.MANAGE_MATCHES))]
Connector = Annotated[Any, Depends(require(Access.CONNECT))]
