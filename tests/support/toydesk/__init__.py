"""ToyDesk: a third provider that lives entirely in the tests (a hook, a source, its declarations and a stub of
its API), to show that adding a provider takes its own files and one `registry.register` call, nothing else."""

from __future__ import annotations

from cxsync.registry import ProviderSpec

NAME = "toydesk"

SPEC = ProviderSpec(
    NAME,
    "ToyDesk",
    "support.toydesk.source:ToyDeskSource",
    "support.toydesk.hook:ToyDeskHook",
    connection_form="support.toydesk.declarations:CONNECTION_FORM",
    options="support.toydesk.declarations:ToyDeskOptions",
    pool_slots=3,
    default_auth_type="token",
    analytics_thresholds={"long_first_response_seconds": 600, "long_wait_seconds": 900, "many_agents": 3},
    doc_url="https://toydesk.example/api",
)
