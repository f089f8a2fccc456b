"""The providers cxsync serves: the one list. Everything provider-specific that the rest of cxsync needs (config,
provider info, pools, the DAG factory, the UI, the demo and the sandbox) is read from a provider's `ProviderSpec`.

A provider is one hook, one source, one declaration module (its connection form and options, plain data) and one
`register(ProviderSpec(...))` call (docs/architecture.md, "Adding a provider"). Names are import paths, resolved
only when needed: DAG parsing and the api-server's provider info never import a hook or a source.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProviderSpec:
    name: str  # the provider's id: `provider:` in the integrations file, its connection type, DAG tags
    display_name: str
    source: str  # "module:Class", a `cxsync.sources.base.Source`
    hook: str  # "module:Class", the Airflow hook of its connection type
    # "module:NAME": the connection type's form as Airflow's provider info declares it (a dict, plain data: the
    # api-server reads it without importing the hook).
    connection_form: str = ""
    # "module:Class": the dataclass of the source's integration options (`cxsync.options`), checked when the
    # integrations file is loaded. Empty: the provider takes only the options every provider takes.
    options: str = ""
    pool_slots: int = 2  # default size of its Airflow pool (`pool`), created by the plugin when missing
    # The `auth_type` a connection without that extra uses (shown on the status page).
    default_auth_type: str = ""
    # Defaults of the analytics thresholds (cxsync.analytics.options) for this provider's conversations.
    analytics_thresholds: Mapping[str, int] = field(default_factory=dict, hash=False)
    # "module:function": reads a stored raw record (JSON text) and says whether the provider's own history shows the
    # conversation closed and opened again (analytics' `reopened`); empty: its conversations never reopen.
    reopened: str = ""
    doc_url: str = ""  # the provider's API documentation (provider info's `external-doc-url`)
    # The module of the provider's stand-in in the development sandbox (`cxsync_dev.sandbox`), and the short
    # prefix of its fault flags on the sandbox's command line (`--lp-p-429`); empty: no stand-in.
    sandbox: str = ""
    sandbox_prefix: str = ""

    @property
    def conn_type(self) -> str:
        return self.name

    @property
    def pool(self) -> str:
        from cxsync import settings

        return settings.pool_name(self.name)

    @property
    def hook_class_name(self) -> str:
        """The hook as Airflow's provider info names it (dotted, not "module:Class")."""
        return self.hook.replace(":", ".")

    @property
    def hook_module(self) -> str:
        return self.hook.partition(":")[0]


PROVIDERS: dict[str, ProviderSpec] = {}


def register(spec: ProviderSpec) -> ProviderSpec:
    """Add a provider (or replace the one of that name). Call it at import time of a module that the process
    imports before it reads the integrations file (a plugin's module, a test's fixture)."""
    if not spec.name or not spec.name.replace("_", "").isalnum() or not spec.name.islower():
        raise ValueError(f"provider name {spec.name!r} must be lower-case letters, digits and underscores")
    PROVIDERS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    PROVIDERS.pop(name, None)


def get(name: str) -> ProviderSpec:
    return PROVIDERS[name]


register(
    ProviderSpec(
        "liveperson",
        "LivePerson",
        "cxsync.sources.liveperson:LivePersonSource",
        "cxsync.hooks.liveperson:LivePersonHook",
        connection_form="cxsync.providers.liveperson:CONNECTION_FORM",
        options="cxsync.providers.liveperson:LivePersonOptions",
        pool_slots=4,
        default_auth_type="oauth2",
        analytics_thresholds={"long_first_response_seconds": 120, "long_wait_seconds": 300, "many_agents": 3},
        doc_url="https://developers.liveperson.com/",
        sandbox="cxsync_dev.sandbox.liveperson",
        sandbox_prefix="lp",
    )
)
register(
    ProviderSpec(
        "helpdesk",
        "HelpDesk",
        "cxsync.sources.helpdesk:HelpDeskSource",
        "cxsync.hooks.helpdesk:HelpDeskHook",
        connection_form="cxsync.providers.helpdesk:CONNECTION_FORM",
        options="cxsync.providers.helpdesk:HelpDeskOptions",
        pool_slots=2,
        default_auth_type="token",
        # Chats are answered in minutes, tickets in hours.
        analytics_thresholds={
            "long_first_response_seconds": 8 * 3600,
            "long_wait_seconds": 24 * 3600,
            "many_agents": 3,
        },
        reopened="cxsync.sources.helpdesk_history:reopened",
        doc_url="https://api.helpdesk.com/docs",
        sandbox="cxsync_dev.sandbox.helpdesk",
        sandbox_prefix="hd",
    )
)


class NotImplementedYet(RuntimeError):
    """The provider's pipeline is not built yet."""


def load(path: str):
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise NotImplementedYet(path) from None
        raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise NotImplementedYet(path) from None


def source_class(provider: str):
    spec = PROVIDERS[provider]
    try:
        return load(spec.source)
    except NotImplementedYet:
        raise NotImplementedYet(
            f"not implemented yet for {spec.name}: the {spec.display_name} source ({spec.source}) is not built"
        ) from None


def options_schema(provider: str) -> type | None:
    """The provider's options dataclass (imports its declaration module, plain data; never the source)."""
    path = PROVIDERS[provider].options
    return load(path) if path else None


def connection_form(provider: str) -> dict[str, Any] | None:
    """The provider's connection type as provider info declares it (plain data; never imports the hook)."""
    path = PROVIDERS[provider].connection_form
    return load(path) if path else None
