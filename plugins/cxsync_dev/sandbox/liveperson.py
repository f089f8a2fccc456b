"""The sandbox's LivePerson: CSDS, sentinel OAuth 2.0 tokens, the Users API and msgHist, per
docs/provider-apis.md (LivePerson). Data comes from `liveperson_world`, credentials from `liveperson_auth`.

Endpoints (every service resolves to the sandbox's own host; clients add the connection's port):
- `GET  /api/account/{id}/service/{name}/baseURI.json?version=1.0` and `.../service/baseURI.json?version=1.0`
- `POST /sentinel/api/v2/account/{id}/app/token` (form: client_id, client_secret, grant_type=client_credentials)
- `GET  /api/account/{id}/configuration/le-users/{users|agentGroups|skills|profiles}?v=4.0[&include_deleted=true]`
  (`[&select=]` too)
- `POST /messaging_history/api/account/{id}/conversations/search?offset&limit&sort&v&source`
- `POST /messaging_history/api/account/{id}/conversations/conversation/search?source`
Choices where the notes leave room: `sort` defaults to `start:asc`; `start.to` of -1 means "now"; the
3-month cap is calendar months after `from` as sent (before rounding); an empty result is a 200 with count 0; the Users
API returns every field unless `select` names some (`$all` = every field).
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import parse_qs

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cxsync_dev.sandbox.core import FAULT_IS_PARTIAL, FAULT_PARTIAL, Sandbox, from_ms, to_ms
from cxsync_dev.sandbox.liveperson_auth import (
    GUIDE_CLIENT,
    GUIDE_MISSING,
    MAIN_CLIENT,
    MAIN_KEY,
    NOUSERS_KEY,
    OAUTH2_CLIENT,
    AuthFailure,
    LivePersonAuth,
    Principal,
)
from cxsync_dev.sandbox.liveperson_world import (
    ALL_SECTIONS,
    DEFAULT_OPTIONS,
    KNOWN_SECTIONS,
    Header,
    LivePersonWorld,
    parse_count_spec,
    ten_minutes_down,
    ten_minutes_up,
    three_months_after,
)

PROVIDER = "liveperson"
# What the sandbox core reads of this stand-in (through the registry's `ProviderSpec.sandbox`): the request paths
# it serves (faults are injected there) and the bodies of injected 429 and 5xx answers.
PATH_PREFIXES = ("/api/account/", "/messaging_history/", "/sentinel/")
FAULT_BODIES = {
    429: {"error": "Too Many Requests", "message": "Rate limit exceeded, slow down", "code": 429},
    500: {"error": "Internal Server Error", "message": "internal error", "internalCode": "0007"},
    503: {"error": "Service Unavailable", "message": "service temporarily unavailable", "internalCode": "0008"},
}
SERVICES = ("msgHist", "accountConfigReadOnly", "sentinel", "rtbf", "agentVep", "asyncMessagingEnt", "leDataReporting")
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
MAX_IDS = 100
SORTS = {"start:asc", "start:desc", "end:asc", "end:desc"}

# Small volumes the test fixtures use by default.
TEST_OPTIONS: dict[str, Any] = {
    "lp_agents": 6,
    "lp_bots": 1,
    "lp_deleted_agents": 2,
    "lp_conversations_per_day": 12,
    "lp_days": 7,
    "lp_messages": "3:12",
}

_encode = msgspec.json.Encoder().encode


class LPError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json", headers=headers)


def _raw_json(status: int, raw: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(raw, status_code=status, media_type="application/json", headers=headers)


def _error(exc: LPError) -> Response:
    return _json(exc.status, {"error": exc.error, "message": exc.message, "status": exc.status})


def bad_request(message: str) -> LPError:
    return LPError(400, "Bad Request", message)


# ------------------------------------------------------------------------------------- provider hooks
def init_world(sandbox: Sandbox) -> None:
    world = LivePersonWorld(sandbox)
    world.auth = LivePersonAuth(sandbox.clock, world.token_ttl, str(sandbox.seed))
    sandbox.liveperson = world
    # The built-in key without "Administration > Users": the most common first-setup failure.
    sandbox.set_switch(PROVIDER, NOUSERS_KEY.app_key, "users_permission", False)
    # The client made by LivePerson's guide (Users + Conversation History): refused on the other account APIs.
    for switch in GUIDE_MISSING:
        sandbox.set_switch(PROVIDER, GUIDE_CLIENT.client_id, switch, False)


def connection_uris(sandbox: Sandbox, host: str, port: int) -> dict[str, dict[str, Any]]:
    account = str(sandbox.options.get("lp_account_id", DEFAULT_OPTIONS["lp_account_id"]))

    def oauth1(key: Any, description: str) -> dict[str, Any]:
        # No `auth_type`: the two token values make it an OAuth 1.0 connection, as for a user's old key.
        return {
            "conn_type": "liveperson",
            "description": description,
            "host": host,
            "schema": "http",
            "port": port,
            "login": key.app_key,
            "password": key.app_secret,
            "extra": {
                "account_id": account,
                "access_token": key.access_token,
                "access_token_secret": key.access_token_secret,
                "source": "cxsync",
                "allow_plain_http_loopback": True,  # the sandbox serves plain http on loopback
            },
        }

    def oauth2(client: Any, description: str, **extra: Any) -> dict[str, Any]:
        return {
            "conn_type": "liveperson",
            "description": description,
            "host": host,
            "schema": "http",
            "port": port,
            "login": client.client_id,
            "password": client.client_secret,
            "extra": {"account_id": account, **extra, "source": "cxsync", "allow_plain_http_loopback": True},
        }

    return {
        "sandbox_liveperson_main": oauth2(MAIN_CLIENT, "Sandbox LivePerson, OAuth 2.0 client with every privilege"),
        "sandbox_liveperson_oauth2": oauth2(
            OAUTH2_CLIENT, "Sandbox LivePerson, OAuth 2.0 client credentials", auth_type="oauth2"
        ),
        "sandbox_liveperson_oauth1": oauth1(MAIN_KEY, "Sandbox LivePerson, legacy OAuth 1.0 key with every privilege"),
        "sandbox_liveperson_guide": oauth2(
            GUIDE_CLIENT,
            "Sandbox LivePerson, OAuth 2.0 client with only Users + Conversation History, as the vendor guide says",
        ),
        "sandbox_liveperson_nousers": oauth1(
            NOUSERS_KEY, "Sandbox LivePerson, OAuth 1.0 key WITHOUT the Users permission"
        ),
    }


def add_cli_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("LivePerson data")
    d = DEFAULT_OPTIONS
    group.add_argument("--lp-account-id", default=d["lp_account_id"], help="account number (default %(default)s)")
    group.add_argument("--lp-agents", type=int, default=d["lp_agents"], help="human agents (default %(default)s)")
    group.add_argument(
        "--lp-bots", type=int, default=d["lp_bots"], help="bot users, userTypeId 2 (default %(default)s)"
    )
    group.add_argument(
        "--lp-deleted-agents",
        type=int,
        default=d["lp_deleted_agents"],
        help="agents deleted over time: alternately before the start time and 0.5-2 days after it "
        "(default %(default)s)",
    )
    group.add_argument(
        "--lp-conversations-per-day",
        type=int,
        default=d["lp_conversations_per_day"],
        help="conversations started per day, history and future alike (default %(default)s)",
    )
    group.add_argument(
        "--lp-days", type=int, default=d["lp_days"], help="days of history before the start time (default %(default)s)"
    )
    group.add_argument(
        "--lp-messages",
        default=d["lp_messages"],
        type=_count_spec,
        help="messages per conversation: N, MIN:MAX (uniform) or MEAN/SD (normal) (default %(default)s)",
    )
    group.add_argument(
        "--lp-token-ttl",
        type=int,
        default=d["lp_token_ttl"],
        help="OAuth 2.0 token lifetime in seconds of the sandbox clock (default %(default)s)",
    )
    group.add_argument(
        "--lp-latest-update-time",
        choices=("both", "object", "number"),
        default=d["lp_latest_update_time"],
        help='the latestUpdateTime reading accepted: {"from": ms} (object), a bare number, or both '
        "(default %(default)s)",
    )
    group.add_argument(
        "--lp-day-cache",
        type=int,
        default=d["lp_day_cache"],
        help="days of conversation headers kept in memory (default %(default)s)",
    )


def _count_spec(text: str) -> str:
    try:
        parse_count_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# ------------------------------------------------------------------------------------------- router
def build_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(tags=["LivePerson"])

    def world() -> LivePersonWorld:
        return sandbox.liveperson

    def check_account(account_id: str) -> None:
        if account_id != world().account_id:
            raise LPError(404, "Not Found", f"account {account_id} does not exist")

    async def authenticate(request: Request) -> Principal:
        body = None
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = (await request.body()).decode("utf-8", "replace")
        scope = request.scope
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        host = request.headers.get("host") or f"{scope['server'][0]}:{scope['server'][1]}"
        # The signed URL as the client saw it: scheme, Host header (with port), raw path and query.
        uri = f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")
        try:
            return world().auth.authenticate(uri, request.method, body, dict(request.headers))
        except AuthFailure as exc:
            raise LPError(401, "Not Authenticated", str(exc)) from None

    def require(principal: Principal, switch: str, what: str) -> None:
        if sandbox.switch(PROVIDER, principal.credential, switch, True) is False:
            raise LPError(403, "Not Authorized", f"this API key lacks the {what} permission")

    # ----------------------------------------------------------------------------------- CSDS
    def host_of(request: Request) -> str:
        host = request.headers.get("host", "127.0.0.1")
        return host.rsplit(":", 1)[0] if not host.endswith("]") else host

    def check_version(request: Request) -> None:
        if not request.query_params.get("version"):
            raise bad_request("the query parameter version is required (version=1.0)")

    @router.get("/api/account/{account_id}/service/baseURI.json")
    async def csds_all(account_id: str, request: Request) -> Response:
        try:
            check_account(account_id)
            check_version(request)
        except LPError as exc:
            return _error(exc)
        host = host_of(request)
        return _json(200, {"baseURIs": [{"service": s, "account": account_id, "baseURI": host} for s in SERVICES]})

    @router.get("/api/account/{account_id}/service/{service}/baseURI.json")
    async def csds_one(account_id: str, service: str, request: Request) -> Response:
        try:
            check_account(account_id)
            check_version(request)
            if service not in SERVICES:  # names are case-sensitive
                raise LPError(404, "Not Found", f"unknown service {service!r} (names are case-sensitive)")
        except LPError as exc:
            return _error(exc)
        return _json(200, {"service": service, "account": account_id, "baseURI": host_of(request)})

    # -------------------------------------------------------------------------------- sentinel
    @router.post("/sentinel/api/v2/account/{account_id}/app/token")
    async def sentinel_token(account_id: str, request: Request) -> Response:
        try:
            check_account(account_id)
        except LPError as exc:
            return _error(exc)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type", "error_description": "use client_credentials"})
        if not form.get("client_id") or not form.get("client_secret"):
            return _json(400, {"error": "invalid_request", "error_description": "client_id and client_secret required"})
        try:
            token = world().auth.issue_token(form["client_id"], form["client_secret"], account_id)
        except AuthFailure:
            return _json(401, {"error": "invalid_client", "error_description": "unknown client or wrong secret"})
        return _json(200, token, headers={"cache-control": "no-store"})

    # ------------------------------------------------------------------------------ Users API
    async def config_call(
        account_id: str, request: Request, privilege: tuple[str, str] | None = None
    ) -> tuple[Principal, bool]:
        check_account(account_id)
        principal = await authenticate(request)
        require(principal, "users_permission", "Administration > Users")
        if privilege is not None:  # privileges are per API: Agent Groups, Skills and Profiles each have theirs
            require(principal, *privilege)
        if not request.query_params.get("v"):
            raise bad_request("the query parameter v is required (e.g. v=4.0)")
        return principal, request.query_params.get("include_deleted", "false").lower() == "true"

    def config_answer(request: Request, items: list[dict[str, Any]], include_deleted: bool) -> Response:
        revision = world().revision(world().now_ms())
        if request.headers.get("if-match") == revision:
            return Response(status_code=304, headers={"ac-revision": revision})
        select = request.query_params.get("select")
        if not include_deleted:
            items = [i for i in items if not i.get("deleted")]
        if select and select != "$all":
            fields = [f.strip() for f in select.split(",") if f.strip()]
            items = [{f: i.get(f) for f in fields} for i in items]
        return _json(200, items, headers={"ac-revision": revision})

    @router.get("/api/account/{account_id}/configuration/le-users/users")
    async def users(account_id: str, request: Request) -> Response:
        try:
            _, include_deleted = await config_call(account_id, request)
        except LPError as exc:
            return _error(exc)
        return config_answer(request, world().users(world().now_ms(), include_deleted=True), include_deleted)

    @router.get("/api/account/{account_id}/configuration/le-users/agentGroups")
    async def agent_groups(account_id: str, request: Request) -> Response:
        try:
            _, include_deleted = await config_call(
                account_id, request, ("agent_groups_permission", "Agent Groups API Read")
            )
        except LPError as exc:
            return _error(exc)
        return config_answer(request, world().agent_groups(world().now_ms()), include_deleted)

    @router.get("/api/account/{account_id}/configuration/le-users/profiles")
    async def profiles(account_id: str, request: Request) -> Response:
        try:
            _, include_deleted = await config_call(account_id, request, ("profiles_permission", "Profiles API Read"))
        except LPError as exc:
            return _error(exc)
        return config_answer(request, world().profiles(world().now_ms()), include_deleted)

    @router.get("/api/account/{account_id}/configuration/le-users/skills")
    async def skills(account_id: str, request: Request) -> Response:
        try:
            _, include_deleted = await config_call(account_id, request, ("skills_permission", "Skills API Read"))
        except LPError as exc:
            return _error(exc)
        return config_answer(request, world().skills(world().now_ms()), include_deleted)

    # --------------------------------------------------------------------------------- msgHist
    async def msghist_call(account_id: str, request: Request) -> dict[str, Any]:
        check_account(account_id)
        principal = await authenticate(request)
        require(principal, "msghist_permission", "Data > Conversation History")
        source = request.query_params.get("source")
        if not source:
            raise bad_request("the query parameter source is required (your caller id, at most 20 characters)")
        if len(source) > 20:
            raise bad_request("source must be at most 20 characters")
        try:
            body = msgspec.json.decode(await request.body() or b"null")
        except msgspec.DecodeError:
            raise bad_request("the body must be JSON") from None
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        return body

    def sections_of(body: dict[str, Any]) -> tuple[str, ...]:
        wanted = body.get("contentToRetrieve")
        # Left out, or empty: the docs leave an empty list open ("the default sections" is one reading, and
        # those carry every message), so the sandbox takes the costly reading and a client must never send one.
        if wanted is None or wanted == []:
            return ALL_SECTIONS
        if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
            raise bad_request("contentToRetrieve must be a list of section names")
        unknown = [w for w in wanted if w not in KNOWN_SECTIONS]
        if unknown:
            raise bad_request(f"contentToRetrieve: unknown content types {unknown}")
        return tuple(s for s in ALL_SECTIONS if s in wanted)

    def render(header: Header, now_ms: int, sections: tuple[str, ...], allow_partial: bool) -> bytes:
        w = world()
        if allow_partial and sandbox.roll(PROVIDER, FAULT_IS_PARTIAL):
            return w.record(header, now_ms, sections, partial=True)
        closed = header.close_ms <= now_ms
        state = ("C", w.deletion_epoch(now_ms)) if closed else ("O", now_ms, w.deletion_epoch(now_ms))
        key = (header.conversation_id, sections, state)
        cached = w.rendered.get(key)
        if cached is None:
            cached = w.rendered.put(key, w.record(header, now_ms, sections))
        return cached

    def view_ms() -> int:
        return to_ms(sandbox.view_time(PROVIDER))

    def backlog_held() -> bool:
        window = sandbox.faults[PROVIDER].backlog_window()
        return window is not None and sandbox.in_backlog(PROVIDER, window[0])

    def visible(header: Header) -> bool:
        """False while the one-off backlog holds the conversation back (it started inside the backlog)."""
        return not sandbox.in_backlog(PROVIDER, from_ms(header.start_ms))

    def page_body(meta: dict[str, Any], parts: list[bytes]) -> bytes:
        return b'{"_metadata":' + _encode(meta) + b',"conversationHistoryRecords":[' + b",".join(parts) + b"]}"

    @router.post("/messaging_history/api/account/{account_id}/conversations/search")
    async def conversations_search(account_id: str, request: Request) -> Response:
        try:
            body = await msghist_call(account_id, request)
            q = request.query_params
            offset = _int_param(q.get("offset"), 0, "offset")
            limit = _int_param(q.get("limit"), DEFAULT_LIMIT, "limit")
            if offset < 0:
                raise bad_request("offset must be >= 0")
            if not 1 <= limit <= MAX_LIMIT:
                raise bad_request(f"limit must be between 1 and {MAX_LIMIT}")
            sort = q.get("sort", "start:asc")
            if sort not in SORTS:
                raise bad_request(f"sort must be one of {sorted(SORTS)}")
            now_ms = view_ms()  # with a visibility lag, the search sees the world as it was that long ago
            query = _search_filters(body, now_ms, world().latest_update_time)
            sections = sections_of(body)
        except LPError as exc:
            return _error(exc)
        w = world()
        held = backlog_held()
        key = (*query, sort, now_ms, held)
        matches = w.searches.get_or_create(key, lambda: [h for h in _search(w, query, sort, now_ms) if visible(h)])
        count = len(matches)
        page = matches[offset : offset + limit]
        partial = sandbox.roll(PROVIDER, FAULT_PARTIAL)
        if partial and page:
            # Some shards did not answer: records are missing from this page.
            page = [h for i, h in enumerate(page) if i % 3 != 1]
        parts = [render(h, now_ms, sections, allow_partial=True) for h in page]
        base = str(request.url.remove_query_params(["offset", "limit"]))
        sep = "&" if "?" in base else "?"
        meta: dict[str, Any] = {
            "count": count,
            "self": {"rel": "self", "href": f"{base}{sep}offset={offset}&limit={limit}"},
        }
        if offset + limit < count:
            meta["next"] = {"rel": "next", "href": f"{base}{sep}offset={offset + limit}&limit={limit}"}
        if offset > 0:
            meta["prev"] = {"rel": "prev", "href": f"{base}{sep}offset={max(0, offset - limit)}&limit={limit}"}
        meta["shardsStatusResult"] = {"partialResult": partial}
        return _raw_json(200, page_body(meta, parts))

    @router.post("/messaging_history/api/account/{account_id}/conversations/conversation/search")
    async def conversation_by_id(account_id: str, request: Request) -> Response:
        try:
            body = await msghist_call(account_id, request)
            if "conversationIds" in body:
                ids = body["conversationIds"]
                if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                    raise bad_request("conversationIds must be a non-empty list of conversation id strings")
                if len(ids) > MAX_IDS:
                    raise bad_request(f"at most {MAX_IDS} conversationIds per request, got {len(ids)}")
            elif isinstance(body.get("conversationId"), str) and body["conversationId"]:
                ids = [body["conversationId"]]
            else:
                raise bad_request("send conversationId (a string) or conversationIds (a list of up to 100)")
            sections = sections_of(body)
        except LPError as exc:
            return _error(exc)
        w = world()
        now_ms = view_ms()
        headers = [h for h in (w.find(i, now_ms) for i in dict.fromkeys(ids)) if h is not None and visible(h)]
        parts = [render(h, now_ms, sections, allow_partial=False) for h in headers]
        meta = {"count": len(parts), "self": {"rel": "self", "href": str(request.url)}}
        meta["shardsStatusResult"] = {"partialResult": False}
        return _raw_json(200, page_body(meta, parts))

    return router


def _int_param(value: str | None, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {value!r}") from None


def _epoch(value: Any, name: str) -> int:
    # Epoch ms arrive as numbers, and as strings in LivePerson's own examples.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad_request(f"{name} must be epoch milliseconds")
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{name} must be epoch milliseconds, got {value!r}") from None


def _range(body: dict[str, Any], name: str, now_ms: int) -> tuple[int, int]:
    value = body.get(name)
    if not isinstance(value, dict) or "from" not in value or "to" not in value:
        raise bad_request(f"{name} must be an object with from and to (epoch milliseconds)")
    raw_low = _epoch(value["from"], f"{name}.from")
    raw_high = _epoch(value["to"], f"{name}.to")
    if raw_high == -1:
        raw_high = now_ms
    if raw_low > raw_high:
        raise bad_request(f"{name}.from is after {name}.to")
    # The cap applies to the range as sent, so an exact 3-month window is not refused for its rounding.
    if raw_high > three_months_after(raw_low):
        raise bad_request(f"the {name} range may span at most three months")
    return ten_minutes_down(raw_low), ten_minutes_up(raw_high)


def _search_filters(body: dict[str, Any], now_ms: int, reading: str = "both") -> tuple[Any, ...]:
    if "start" not in body:
        raise bad_request("start {from, to} is required")
    start = _range(body, "start", now_ms)
    end = _range(body, "end", now_ms) if "end" in body else None
    statuses = body.get("status")
    if statuses is not None:
        if not isinstance(statuses, list) or not statuses or any(s not in ("OPEN", "CLOSE") for s in statuses):
            raise bad_request('status must be a list of "OPEN" and/or "CLOSE"')
        statuses = frozenset(statuses)
    updated_from = None
    if "latestUpdateTime" in body:
        lut = body["latestUpdateTime"]
        # The docs leave its shape open ({"from": ms} in one public client, a bare number in another): the
        # sandbox takes the reading it is set to (`lp_latest_update_time`), and names the field when refusing.
        if isinstance(lut, dict) and reading in ("both", "object"):
            if "from" not in lut:
                raise bad_request("latestUpdateTime must be an object with from (epoch milliseconds)")
            updated_from = ten_minutes_down(_epoch(lut["from"], "latestUpdateTime.from"))
        elif not isinstance(lut, dict | list) and reading in ("both", "number"):
            updated_from = ten_minutes_down(_epoch(lut, "latestUpdateTime"))
        elif reading == "object":
            raise bad_request("latestUpdateTime must be an object with from (epoch milliseconds)")
        else:
            raise bad_request("latestUpdateTime must be epoch milliseconds (a number)")
    return start, end, statuses, updated_from


def _search(w: LivePersonWorld, query: tuple[Any, ...], sort: str, now_ms: int) -> list[Header]:
    (start_from, start_to), end, statuses, updated_from = query
    out: list[Header] = []
    for h in w.headers_between(start_from, start_to, now_ms):
        closed = h.close_ms <= now_ms
        if statuses is not None and ("CLOSE" if closed else "OPEN") not in statuses:
            continue
        if end is not None and not (closed and end[0] <= h.close_ms <= end[1]):
            continue
        if updated_from is not None and h.updated_at(now_ms) < updated_from:
            continue
        out.append(h)
    field, order = sort.split(":")
    if field == "end":
        # Open conversations have no end yet: they sort after every closed one.
        out.sort(key=lambda h: (h.close_ms > now_ms, h.close_ms if h.close_ms <= now_ms else 0, h.start_ms))
    if order == "desc":
        out.reverse()
    return out
