"""The HelpDesk sandbox provider: `/v1` API, the accounts server (`/` authorize page, `/ooops` error page,
`/v2/token`), admin calls.

Data lives in `helpdesk_data.py` (tickets as pure functions of seed and clock), OAuth in `helpdesk_oauth.py`.

API (base `/v1`, as `api.helpdesk.com/v1`), checked in this order:
1. `User-Agent` must be specific: missing, empty or generic (`python-requests/..`, `curl/..`, `Wget`, `Go-http-client`,
   `python-urllib`, `okhttp`, `axios`, ...) -> 403 with a plain-text body (a firewall's answer, not JSON).
2. Credentials -> 401 when missing or bad:
   - `Basic base64(account_id:token)`; the decoded pair is split on its FIRST colon, so tokens like `dal:...`
     are whole passwords. Bad -> `{"error": "unauthorized", "message": ...}`.
   - `Bearer <OAuth access token>` from `/v2/token`; expired (on the sandbox clock), unknown, or a personal
     token sent as Bearer -> `{"error": {"type": "authentication", "message": ...}}` with `WWW-Authenticate`.
3. Role of the credential (switch `role` per credential: `owner` | `normal` | `viewer` | `none`, default from
   option `hd_role`; credential = the account id for the personal token, the client id for OAuth tokens):
   agents and teams need owner or normal; tickets need owner, normal or viewer; licenses any role.
   Lacking -> 403 `{"error": "forbidden", "message": "... requires the 'owner' or 'normal' role ..."}`.
4. Validation -> 422 `{"errors": [{"field": ..., "message": ...}]}`; unknown ticket -> 404
   `{"error": "not_found", "message": ...}`.

Endpoints:
- `GET /v1/agents`, `GET /v1/teams`, `GET /v1/licenses`, `GET /v1/tags` (`{ID, name}`: what `tagIDs` mean; any
  role that reads tickets): bare JSON arrays.
- `GET /v1/tickets`: `silo` (tickets|archive|spam|trash, default tickets), `pageSize` (default 20; outside
  1..100 -> 422, never clamped), `sortBy` (createdAt|updatedAt|lastMessageAt, default createdAt), `order`
  (asc|desc, default desc), keyset cursor `next.value` (ISO date of the sort field of the last row) + `next.ID`
  (its ID): the page holds rows strictly after (value, ID) in the order, where ties on the value are ordered
  by ID in the same direction; `next.value` alone means strictly after the value. `createdDateFrom` /
  `createdDateTo`: half-open `[from, to)`, ISO dates/date-times or relative to the sandbox clock (`-7d`,
  `-12h`, `-30m`, `-2w`). Answers a bare array; each row carries only its newest `hd_list_events` events
  (default 3: a ticket with more is cut short, one with fewer is whole; -1: every row whole), so both kinds of
  row a real account may send are served.
- Tickets carry `rating` (`good` | `bad` | null) and `ratingRequestSent` once first solved, `priority` (an
  integer), `shortID`, `tagIDs`; a message event with files carries `attachments.files[]` (`name`, `url`, `type`,
  `size`).
- `GET /v1/tickets/{ID}`: the ticket (any silo) with every event; by UUID only (a `shortID` is a 404).
- `DELETE /v1/tickets/{ID}`: moves the ticket to `trash` (204); needs owner or normal.

Admin, under `/_sandbox/helpdesk` (never faulted):
- `GET  /_sandbox/helpdesk`                      account, credentials, agent schedule, ticket counts per silo
- `POST /_sandbox/helpdesk/oauth/refresh-token`  issue a pre-approved refresh token `{"refresh_token"}`
- `POST /_sandbox/helpdesk/oauth/expire`         every access token issued so far answers 401 from now on
- `POST /_sandbox/helpdesk/oauth/revoke`         every refresh (and access) token issued so far is refused
- `PUT  /_sandbox/helpdesk/role`                 `{"credential": "token"|"oauth"|<login>, "role": ...}`
  (the same as `PUT /_sandbox/switches/helpdesk/<login>` with `{"role": ...}`)
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from cxsync_dev.sandbox.core import Sandbox, parse_instant
from cxsync_dev.sandbox.helpdesk_data import SILOS, SORT_FIELDS, HelpDeskSettings, HelpDeskWorld, epoch, iso
from cxsync_dev.sandbox.helpdesk_oauth import OAuthServer, TokenError, error_page, error_redirect

PROVIDER = "helpdesk"
# What the sandbox core reads of this stand-in (through the registry's `ProviderSpec.sandbox`): the request paths
# it serves (faults are injected there) and the bodies of injected 429 and 5xx answers (`fault_body`).
PATH_PREFIXES = ("/v1/", "/v2/token", "/helpdesk-authorize")
PATHS = ("/", "/v1", "/v2/token")
FAULT_BODIES = {
    429: {"error": "too_many_requests", "message": "Too many requests"},
    500: {"error": "internal_server_error", "message": "Internal server error"},
    503: {"error": "service_unavailable", "message": "Service unavailable"},
}
# The OAuth token URL answers in its own dialect (the accounts server's OAuth errors).
TOKEN_URL_429 = {"error": "temporarily_unavailable", "error_description": "Too many requests, try again later"}
ROLES = ("owner", "normal", "viewer", "none")
NEED_MANAGE = ("owner", "normal")
NEED_READ = ("owner", "normal", "viewer")
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

# First product token of a User-Agent that a generic HTTP library or tool sends by default.
GENERIC_AGENTS = {
    "python-requests", "python-urllib", "python-urllib3", "urllib3", "python-httpx", "httpx", "aiohttp",
    "curl", "wget", "go-http-client", "okhttp", "axios", "node-fetch", "undici", "java", "apache-httpclient",
    "libwww-perl", "postmanruntime", "insomnia", "httpie", "ruby", "faraday", "guzzlehttp", "dart", "reqwest",
}  # fmt: skip

TEST_OPTIONS: dict[str, Any] = {
    "hd_agents": 8,
    "hd_teams": 2,
    "hd_tickets_per_day": 6,
    "hd_days": 75,
    "hd_messages_mean": 5,
}


class WorldState:
    """What `sandbox.helpdesk` holds: the data world plus the OAuth server."""

    def __init__(self, world: HelpDeskWorld, oauth: OAuthServer) -> None:
        self.world = world
        self.oauth = oauth

    def ground_truth(self, at: datetime) -> list[dict[str, Any]]:
        return self.world.ground_truth(at)


def init_world(sandbox: Sandbox) -> None:
    settings = HelpDeskSettings.from_options(sandbox.options)
    world = HelpDeskWorld(sandbox.seed, sandbox.genesis, settings)
    sandbox.helpdesk = WorldState(world, OAuthServer(world))


def fault_body(status: int, path: str) -> dict:
    """An injected 429 or 5xx: the token URL's 429 is an OAuth error, every other one the API's."""
    if status == 429 and path.startswith("/v2/token"):
        return TOKEN_URL_429
    return FAULT_BODIES[status]


_CLI_HELP = {
    "agents": "agents in the account",
    "teams": "teams",
    "tickets_per_day": "new tickets per day, +-20%%",
    "days": "days of ticket history before the start",
    "messages_mean": "mean messages per ticket (exponential, at least 1)",
    "messages_max": "most messages in one ticket",
    "archive_idle_days": "days without events after which a ticket moves to the archive silo",
    "trash_purge_days": "days a deleted ticket stays in trash before it is purged",
    "deleted_agents": "share of agents deleted, some before the start and some after",
    "spam_rate": "share of spam tickets",
    "trash_rate": "share of tickets deleted into trash",
    "list_events": "events a ticket list row carries (the newest; the detail has all); -1: all of them",
    "token_ttl": "OAuth access token lifetime, seconds of the sandbox clock",
    "code_ttl": "OAuth authorization code lifetime, seconds of the sandbox clock",
    "role": "role of both credentials: viewer lacks agents/teams, none lacks tickets too",
}


def add_cli_options(parser: argparse.ArgumentParser) -> None:
    """`--hd-<field>` options; their values land in `sandbox.options["hd_<field>"]`."""
    defaults = HelpDeskSettings()
    group = parser.add_argument_group("HelpDesk", "volumes and behaviour of the HelpDesk sandbox")
    for field in dataclasses.fields(HelpDeskSettings):
        default = getattr(defaults, field.name)
        extra: dict[str, Any] = {"choices": ROLES} if field.name == "role" else {"type": type(default)}
        group.add_argument(
            f"--hd-{field.name.replace('_', '-')}",
            dest=f"hd_{field.name}",
            default=default,
            help=_CLI_HELP[field.name],
            **extra,
        )


def connection_uris(sandbox: Sandbox, host: str, port: int) -> dict[str, dict[str, Any]]:
    state: WorldState = sandbox.helpdesk
    world = state.world
    # The sandbox serves plain http on loopback: its connections say so (cxsync.http.endpoints).
    oauth_extra: dict[str, Any] = {
        "auth_type": "oauth2",
        "accounts_url": f"http://{host}:{port}",
        "allow_plain_http_loopback": True,
    }
    if state.oauth.last_refresh_token:
        oauth_extra["refresh_token"] = state.oauth.last_refresh_token
    return {
        "sandbox_helpdesk_main": {
            "conn_type": "helpdesk",
            "description": "Sandbox HelpDesk, personal access token (Basic auth)",
            "host": host,
            "schema": "http",
            "port": port,
            "login": world.account_id,
            "password": world.api_token,
            "extra": {"auth_type": "token"},
        },
        "sandbox_helpdesk_oauth": {
            "conn_type": "helpdesk",
            "description": "Sandbox HelpDesk, OAuth 2 app; approve it with the connect command (authorize page "
            "at accounts_url) or get a refresh token from POST /_sandbox/helpdesk/oauth/refresh-token",
            "host": host,
            "schema": "http",
            "port": port,
            "login": world.client_id,
            "password": world.client_secret,
            "extra": oauth_extra,
        },
    }


# ------------------------------------------------------------------------------------------- errors
class ApiError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _unauthorized_basic(message: str) -> ApiError:
    return ApiError(JSONResponse({"error": "unauthorized", "message": message}, status_code=401))


def _unauthorized_bearer(message: str) -> ApiError:
    return ApiError(
        JSONResponse(
            {"error": {"type": "authentication", "message": message}},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    )


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(JSONResponse({"errors": [{"field": field, "message": message}]}, status_code=422))


def _not_found(message: str) -> ApiError:
    return ApiError(JSONResponse({"error": "not_found", "message": message}, status_code=404))


def _role_phrase(roles: tuple[str, ...]) -> str:
    quoted = [f"'{r}'" for r in roles]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


# ----------------------------------------------------------------------------------------- checks
def _user_agent_problem(value: str | None) -> str | None:
    if value is None or not value.strip():
        return "a User-Agent header is required"
    product = value.strip().split("/", 1)[0].split(" ", 1)[0].lower()
    if product in GENERIC_AGENTS:
        return f"the generic User-Agent {value.strip()!r} is blocked"
    return None


def _authenticate(sandbox: Sandbox, request: Request) -> str:
    """The credential (a login) behind the request, or ApiError 401."""
    state: WorldState = sandbox.helpdesk
    world = state.world
    header = request.headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not header:
        raise _unauthorized_basic("missing credentials: send Basic account_id:token or a Bearer access token")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized_basic("malformed Basic credentials") from None
        account, sep, token = decoded.partition(":")  # the token itself contains colons
        if sep and account == world.account_id and token == world.api_token:
            return world.account_id
        raise _unauthorized_basic("invalid account id or personal access token")
    if scheme.lower() == "bearer":
        verdict = state.oauth.access_token_state(value, epoch(sandbox.clock.now()))
        if verdict == "valid":
            return world.client_id
        if verdict == "expired":
            raise _unauthorized_bearer("the access token has expired")
        raise _unauthorized_bearer("invalid access token")
    raise _unauthorized_basic(f"unsupported authorization scheme {scheme!r}")


def _guard(sandbox: Sandbox, request: Request, roles: tuple[str, ...] | None) -> str:
    problem = _user_agent_problem(request.headers.get("user-agent"))
    if problem is not None:
        raise ApiError(
            PlainTextResponse(
                f"403 Forbidden: {problem}. Send a specific User-Agent naming your application, "
                "e.g. 'my-integration/1.0'.",
                status_code=403,
            )
        )
    credential = _authenticate(sandbox, request)
    if roles is not None:
        role = sandbox.switch(PROVIDER, credential, "role", sandbox.helpdesk.world.settings.role)
        if role not in roles:
            raise ApiError(
                JSONResponse(
                    {
                        "error": "forbidden",
                        "message": f"This action requires the {_role_phrase(roles)} role; "
                        f"the credential has the {role!r} role.",
                    },
                    status_code=403,
                )
            )
    return credential


# ------------------------------------------------------------------------------------- parameters
_RELATIVE = re.compile(r"^-(\d+)([wdhm])$")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def _date_param(name: str, value: str, now: datetime) -> float:
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        return (now - int(match.group(1)) * _UNITS[match.group(2)]).timestamp()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
        return parse_instant(text).timestamp()
    except ValueError:
        raise _invalid(name, "must be an ISO 8601 date or date-time, or relative like -7d") from None


def _list_params(request: Request, now: datetime) -> dict[str, Any]:
    q = request.query_params
    silo = q.get("silo", "tickets")
    if silo not in SILOS:
        raise _invalid("silo", f"must be one of {', '.join(SILOS)}")
    raw_size = q.get("pageSize", str(DEFAULT_PAGE_SIZE))
    try:
        size = int(raw_size)
    except ValueError:
        raise _invalid("pageSize", "must be an integer") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _invalid("pageSize", f"must be between 1 and {MAX_PAGE_SIZE}")
    sort_by = q.get("sortBy", "createdAt")
    if sort_by not in SORT_FIELDS:
        raise _invalid("sortBy", f"must be one of {', '.join(SORT_FIELDS)}")
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise _invalid("order", "must be asc or desc")
    cursor_value = cursor_id = None
    if "next.value" in q:
        try:
            cursor_value = parse_instant(q["next.value"]).timestamp()
        except ValueError:
            raise _invalid("next.value", f"must be the {sort_by} date of the last row (ISO 8601)") from None
        cursor_id = q.get("next.ID") or None
    elif "next.ID" in q:
        raise _invalid("next.value", "next.ID needs next.value")
    lo = _date_param("createdDateFrom", q["createdDateFrom"], now) if q.get("createdDateFrom") else None
    hi = _date_param("createdDateTo", q["createdDateTo"], now) if q.get("createdDateTo") else None
    return {
        "silo": silo,
        "size": size,
        "sort_by": sort_by,
        "desc": order == "desc",
        "cursor_value": cursor_value,
        "cursor_id": cursor_id,
        "created_from": None if lo is None else -int(-lo // 1),  # ceil: [from, to) on whole seconds
        "created_to": None if hi is None else -int(-hi // 1),
    }


def _page(keys: list[tuple[int, str]], p: dict[str, Any]) -> range:
    """Indexes into the ascending order for one page, honouring the keyset cursor and the direction."""
    n, size, value, cid = len(keys), p["size"], p["cursor_value"], p["cursor_id"]
    if not p["desc"]:
        if value is None:
            start = 0
        elif cid is None:
            start = bisect.bisect_right(keys, (value, "\U0010ffff"))
        else:
            start = bisect.bisect_right(keys, (value, cid))
        return range(start, min(n, start + size))
    if value is None:
        end = n
    elif cid is None:
        end = bisect.bisect_left(keys, (value, ""))
    else:
        end = bisect.bisect_left(keys, (value, cid))
    return range(end - 1, max(-1, end - 1 - size), -1)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        import json

        try:
            data = json.loads(body or "{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(parse_qsl(body, keep_blank_values=True))


# ----------------------------------------------------------------------------------------- router
def build_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(tags=["helpdesk"])

    def state() -> WorldState:
        return sandbox.helpdesk

    def now_ts() -> int:
        return epoch(sandbox.clock.now())

    def _held_back(created: int) -> bool:
        return sandbox.in_backlog(PROVIDER, datetime.fromtimestamp(created, UTC))

    def guarded(request: Request, roles: tuple[str, ...] | None) -> Response | None:
        try:
            _guard(sandbox, request, roles)
        except ApiError as exc:
            return exc.response
        return None

    @router.get("/v1/licenses")
    def helpdesk_licenses(request: Request) -> Response:
        if (denied := guarded(request, None)) is not None:
            return denied
        world = state().world
        return JSONResponse(
            [
                {
                    "ID": world.organization_id,
                    "product": "helpdesk",
                    "plan": "team",
                    "seats": world.settings.agents,
                    "status": "active",
                    "expiresAt": iso(world.genesis + 365 * 86400),
                }
            ]
        )

    @router.get("/v1/agents")
    def helpdesk_agents(request: Request) -> Response:
        if (denied := guarded(request, NEED_MANAGE)) is not None:
            return denied
        return JSONResponse(state().world.agents_at(now_ts()))

    @router.get("/v1/teams")
    def helpdesk_teams(request: Request) -> Response:
        if (denied := guarded(request, NEED_MANAGE)) is not None:
            return denied
        return JSONResponse(state().world.teams_api())

    @router.get("/v1/tags")
    def helpdesk_tags(request: Request) -> Response:
        if (denied := guarded(request, NEED_READ)) is not None:
            return denied
        return JSONResponse(state().world.tags_api())

    @router.get("/v1/tickets")
    def helpdesk_tickets(request: Request) -> Response:
        if (denied := guarded(request, NEED_READ)) is not None:
            return denied
        now = sandbox.clock.now()
        try:
            p = _list_params(request, now)
        except ApiError as exc:
            return exc.response
        world = state().world
        at = epoch(sandbox.view_time(PROVIDER))  # with a visibility lag, lists show the world that long ago
        snap = world.snapshot(at)
        keys, rows = snap.order(p["silo"], p["sort_by"], p["created_from"], p["created_to"])
        backlog = sandbox.faults[PROVIDER].backlog_window()
        if backlog is not None and sandbox.in_backlog(PROVIDER, backlog[0]):  # held back now: filter rows
            kept = [i for i, row in enumerate(rows) if not _held_back(row[3])]
            keys, rows = [keys[i] for i in kept], [rows[i] for i in kept]
        limit = world.settings.list_events
        out = [world.as_of(rows[i][1], rows[i][2], at, last_events=limit) for i in _page(keys, p)]
        return JSONResponse(out)

    @router.get("/v1/tickets/{ticket_id}")
    def helpdesk_ticket(ticket_id: str, request: Request) -> Response:
        if (denied := guarded(request, NEED_READ)) is not None:
            return denied
        found = state().world.ticket(ticket_id, epoch(sandbox.view_time(PROVIDER)))
        if found is None or _held_back(epoch(parse_instant(found[0]["createdAt"]))):
            return _not_found(f"ticket {ticket_id!r} not found").response
        return JSONResponse(found[0])

    @router.delete("/v1/tickets/{ticket_id}")
    def helpdesk_ticket_delete(ticket_id: str, request: Request) -> Response:
        if (denied := guarded(request, NEED_MANAGE)) is not None:
            return denied
        world = state().world
        at = now_ts()
        if world.ticket(ticket_id, at) is None:
            return _not_found(f"ticket {ticket_id!r} not found").response
        world.delete_ticket(ticket_id.strip().lower(), at)
        return Response(status_code=204)

    # ------------------------------------------------------------------ accounts server (OAuth 2)
    @router.get("/", response_class=HTMLResponse)
    def helpdesk_authorize_page(request: Request) -> Response:
        params = dict(request.query_params)
        problem = state().oauth.check_authorize(params)
        if problem is not None:
            return RedirectResponse(error_redirect(problem), status_code=302)
        return HTMLResponse(state().oauth.authorize_form(params))

    @router.post("/")
    async def helpdesk_authorize_submit(request: Request) -> Response:
        params = await _form(request)
        problem = state().oauth.check_authorize(params)
        if problem is not None:
            return RedirectResponse(error_redirect(problem), status_code=302)
        return RedirectResponse(state().oauth.approve(params, now_ts()), status_code=302)

    @router.get("/ooops", response_class=HTMLResponse)
    def helpdesk_error_page(request: Request) -> Response:
        # LiveChat's error page answers 200 with the reason on the page; nothing goes back to the app.
        return HTMLResponse(error_page(request.query_params.get("oauth_exception") or "unknown error"))

    @router.post("/v2/token")
    async def helpdesk_token(request: Request) -> Response:
        form = await _form(request)
        try:
            body = state().oauth.token(form, now_ts())
        except TokenError as exc:
            return JSONResponse(exc.body, status_code=exc.status, headers={"Cache-Control": "no-store"})
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------------------------ admin
    @router.get("/_sandbox/helpdesk", tags=["sandbox admin"])
    def helpdesk_admin_info() -> dict[str, Any]:
        st = state()
        world = st.world
        at = now_ts()
        silos: dict[str, int] = dict.fromkeys(SILOS, 0)
        for row in world.snapshot(at).rows:
            silos[row[6]] += 1
        return {
            "account_id": world.account_id,
            "organization_id": world.organization_id,
            "api_token": world.api_token,
            "client_id": world.client_id,
            "client_secret": world.client_secret,
            "refresh_token": st.oauth.last_refresh_token,
            "settings": dataclasses.asdict(world.settings),
            "history_start": datetime.fromtimestamp(world.first_day * 86400, UTC).isoformat(),
            "tickets": silos,
            "agents": [
                {
                    **world.agent_api(a),
                    "deleted_at": None
                    if a.deleted_at is None
                    else datetime.fromtimestamp(a.deleted_at, UTC).isoformat(),
                }
                for a in world.agents
            ],
            "roles": {
                "token": sandbox.switch(PROVIDER, world.account_id, "role", world.settings.role),
                "oauth": sandbox.switch(PROVIDER, world.client_id, "role", world.settings.role),
            },
        }

    @router.post("/_sandbox/helpdesk/oauth/refresh-token", tags=["sandbox admin"])
    def helpdesk_admin_refresh_token() -> dict[str, str]:
        return {"refresh_token": state().oauth.issue_refresh_token()}

    @router.post("/_sandbox/helpdesk/oauth/expire", tags=["sandbox admin"])
    def helpdesk_admin_expire() -> dict[str, str]:
        state().oauth.expire_access_tokens()
        return {"expired": "every access token issued so far"}

    @router.post("/_sandbox/helpdesk/oauth/revoke", tags=["sandbox admin"])
    def helpdesk_admin_revoke() -> dict[str, str]:
        state().oauth.revoke_refresh_tokens()
        return {"revoked": "every refresh and access token issued so far"}

    @router.put("/_sandbox/helpdesk/role", tags=["sandbox admin"])
    async def helpdesk_admin_role(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("role") not in ROLES:
            return JSONResponse(
                {"detail": f'send {{"credential": "token"|"oauth", "role": one of {list(ROLES)}}}'}, status_code=400
            )
        world = state().world
        aliases = {"token": world.account_id, "oauth": world.client_id}
        credential = str(body.get("credential", "token"))
        credential = aliases.get(credential, credential)
        if credential not in aliases.values():
            return JSONResponse({"detail": "credential must be token, oauth, the account id or the client id"}, 400)
        sandbox.set_switch(PROVIDER, credential, "role", body["role"])
        return JSONResponse({"credential": credential, "role": body["role"]})

    return router
