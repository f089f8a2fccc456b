"""`create_app(sandbox)`: one FastAPI app serving the admin API and every provider on one port."""

from __future__ import annotations

from types import ModuleType

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from cxsync_dev.sandbox.core import FaultMiddleware, Sandbox, stand_ins

# Host headers the sandbox answers. A web page elsewhere can point its own DNS name at 127.0.0.1 (DNS
# rebinding) and reach the admin API, which mints refresh tokens; its requests carry that name as Host.
LOOPBACK_HOST_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def allowed_host_names(sandbox: Sandbox) -> list[str]:
    """Loopback names, plus the `--host` the sandbox was explicitly allowed to listen on (any name when that is
    the wildcard address: whoever passed `--allow-non-loopback 0.0.0.0` chose to be reachable by every name)."""
    names = list(LOOPBACK_HOST_NAMES)
    host = str(sandbox.options.get("host") or "")
    if host in ("0.0.0.0", "::"):
        return ["*"]
    if host and host not in names:
        names.append(host)
    return names


def provider_modules() -> dict[str, ModuleType]:
    """The providers' stand-in modules that exist (`core.stand_ins`)."""
    return stand_ins()


def init_worlds(sandbox: Sandbox) -> dict[str, ModuleType]:
    """Create each provider's world once per sandbox."""
    modules = provider_modules()
    for name, module in modules.items():
        if getattr(sandbox, name, None) is None:
            module.init_world(sandbox)
    return modules


def create_app(sandbox: Sandbox) -> FastAPI:
    from cxsync_dev.sandbox import admin

    app = FastAPI(
        title="cxsync sandbox providers",
        description="Local stand-ins for LivePerson and HelpDesk, plus the /_sandbox admin API.",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    app.state.sandbox = sandbox
    modules = init_worlds(sandbox)
    app.include_router(admin.build_router(sandbox))
    for module in modules.values():
        app.include_router(module.build_router(sandbox))
    app.add_middleware(FaultMiddleware, sandbox=sandbox)
    app.add_middleware(admin.SameSiteOnly)
    # Outermost: a request with a foreign Host header is refused before anything else sees it.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_host_names(sandbox))
    return app
