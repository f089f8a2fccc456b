"""The sandbox's admin API under `/_sandbox` (never rate limited or faulted).

- `GET  /_sandbox`                              seed, start time, clock, options, providers
- `GET  /_sandbox/clock`                        `{"now": iso}`
- `POST /_sandbox/clock`                        `{"advance": "1d" | "3h" | "1d6h" | seconds}` or `{"set": iso}`
- `GET|DELETE /_sandbox/counters`               requests served and faults injected (DELETE resets)
- `GET|PUT /_sandbox/faults/{provider}`         the provider's FaultSettings (PUT merges the fields given)
- `GET  /_sandbox/truth/{provider}?at=iso`      ground truth at `at` (default: now), see below
- `GET  /_sandbox/switches[/{provider}]`        per-credential switches
- `PUT|DELETE /_sandbox/switches/{provider}/{credential}`  merge `{name: value}` / drop all switches of it

Every state-changing admin call (anything but GET/HEAD/OPTIONS under `/_sandbox`) must come from a program,
not from a web page elsewhere: `SameSiteOnly` refuses one whose `Origin` is another site or whose
`Sec-Fetch-Site` says cross-site (403), and one whose body is of a type an HTML form or a no-CORS `fetch` can send
without a preflight (`text/plain`, form encodings: 415; the admin API takes JSON). A page on any site could
otherwise post `text/plain` JSON to `http://127.0.0.1:<port>/_sandbox/clock` and change the sandbox under a run.

Ground truth answer: `{"provider", "at", "interactions": [...], "count"}`; each interaction is the world's
neutral shape (LivePerson: see `liveperson_world.LivePersonWorld.ground_truth`). Worlds that offer
`iter_ground_truth(at)` are streamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from cxsync_dev.sandbox.core import Sandbox, parse_duration, parse_instant, provider_names

# Body types a browser sends cross-site without asking the server first (CORS "simple" requests).
SIMPLE_BODY_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class SameSiteOnly:
    """Pure ASGI middleware: state-changing `/_sandbox` calls from other sites are refused (see above)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path", "").startswith("/_sandbox"):
            problem = _cross_site_problem(scope)
            if problem is not None:
                status, detail = problem
                await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _cross_site_problem(scope: dict) -> tuple[int, str] | None:
    if scope.get("method", "GET") in SAFE_METHODS:
        return None
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    origin = headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()):
        return 403, f"cross-site admin call refused (Origin {origin[:80]}): the sandbox admin API is for programs"
    if headers.get("sec-fetch-site", "") in ("cross-site", "same-site"):
        return 403, "cross-site admin call refused (Sec-Fetch-Site): the sandbox admin API is for programs"
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in SIMPLE_BODY_TYPES:
        return 415, f"the sandbox admin API takes JSON bodies (Content-Type: application/json), not {media_type}"
    return None


def _provider(name: str) -> str:
    if name not in provider_names():
        raise HTTPException(404, detail=f"unknown provider {name!r}; known: {list(provider_names())}")
    return name


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise HTTPException(400, detail="the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, detail="the body must be a JSON object")
    return body


def build_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])

    @router.get("")
    def sandbox_info() -> dict[str, Any]:
        return {
            "seed": sandbox.seed,
            "genesis": sandbox.genesis.isoformat(),
            "now": sandbox.clock.now().isoformat(),
            "options": {k: v for k, v in sandbox.options.items() if _jsonable(v)},
            "providers": [name for name in provider_names() if sandbox.world(name) is not None],
        }

    @router.get("/clock")
    def clock_get() -> dict[str, str]:
        return {"now": sandbox.clock.now().isoformat()}

    @router.post("/clock")
    async def clock_post(request: Request) -> dict[str, str]:
        body = await _json_object(request)
        try:
            if "advance" in body:
                sandbox.clock.advance(parse_duration(body["advance"]))
            elif "set" in body:
                sandbox.clock.set(parse_instant(body["set"]))
            else:
                raise ValueError('send {"advance": "1d"} (or "3h", seconds) or {"set": "2025-01-31T02:00:00Z"}')
        except (ValueError, TypeError) as exc:
            raise HTTPException(400, detail=str(exc)) from exc
        return {"now": sandbox.clock.now().isoformat()}

    @router.get("/counters")
    def counters_get() -> dict[str, Any]:
        return sandbox.counters.snapshot()

    @router.delete("/counters")
    def counters_reset() -> dict[str, Any]:
        sandbox.counters.reset()
        return sandbox.counters.snapshot()

    @router.get("/faults/{provider}")
    def faults_get(provider: str) -> dict[str, Any]:
        return sandbox.faults[_provider(provider)].to_dict()

    @router.put("/faults/{provider}")
    async def faults_put(provider: str, request: Request) -> dict[str, Any]:
        name = _provider(provider)
        body = await _json_object(request)
        try:
            settings = sandbox.faults[name].update(body)
        except (ValueError, TypeError) as exc:
            raise HTTPException(400, detail=str(exc)) from exc
        sandbox.set_faults(name, settings)
        return settings.to_dict()

    @router.get("/truth/{provider}")
    def truth(provider: str, at: str | None = None) -> Response:
        name = _provider(provider)
        world = sandbox.world(name)
        if world is None:
            raise HTTPException(404, detail=f"provider {name!r} is not running in this sandbox")
        try:
            when: datetime = parse_instant(at) if at else sandbox.clock.now()
        except ValueError as exc:
            raise HTTPException(400, detail=f"at: {exc}") from exc
        iterate = getattr(world, "iter_ground_truth", None)
        if iterate is None:
            interactions = world.ground_truth(when)
            return JSONResponse(
                {"provider": name, "at": when.isoformat(), "count": len(interactions), "interactions": interactions}
            )

        def stream() -> Iterator[bytes]:
            # Streamed, so 100,000 conversations of truth never sit in memory as one document.
            yield b'{"provider":' + json.dumps(name).encode() + b',"at":"' + when.isoformat().encode() + b'"'
            yield b',"interactions":['
            count = 0
            for item in iterate(when):
                yield (b"," if count else b"") + json.dumps(item, separators=(",", ":")).encode()
                count += 1
            yield b'],"count":' + str(count).encode() + b"}"

        return StreamingResponse(stream(), media_type="application/json")

    @router.get("/switches")
    def switches_all() -> dict[str, Any]:
        return sandbox.switches

    @router.get("/switches/{provider}")
    def switches_provider(provider: str) -> dict[str, Any]:
        return sandbox.switches.get(_provider(provider), {})

    @router.put("/switches/{provider}/{credential}")
    async def switches_put(provider: str, credential: str, request: Request) -> dict[str, Any]:
        name = _provider(provider)
        body = await _json_object(request)
        for key, value in body.items():
            sandbox.set_switch(name, credential, key, value)
        return sandbox.switches[name].get(credential, {})

    @router.delete("/switches/{provider}/{credential}")
    def switches_delete(provider: str, credential: str) -> dict[str, Any]:
        sandbox.switches.get(_provider(provider), {}).pop(credential, None)
        return {}

    return router


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict | type(None))
