"""Which source and hook serve each provider. A third provider is one hook, one source and one line here.

Names are import paths, resolved only when a task runs: DAG parsing never imports provider code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    display_name: str
    source: str  # "module:Class"
    hook: str  # "module:Class"


PROVIDERS: dict[str, ProviderSpec] = {
    "liveperson": ProviderSpec(
        "liveperson",
        "LivePerson",
        "cxsync.sources.liveperson:LivePersonSource",
        "cxsync.hooks.liveperson:LivePersonHook",
    ),
    "helpdesk": ProviderSpec(
        "helpdesk", "HelpDesk", "cxsync.sources.helpdesk:HelpDeskSource", "cxsync.hooks.helpdesk:HelpDeskHook"
    ),
}


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
