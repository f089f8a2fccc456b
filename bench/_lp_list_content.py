"""What LivePerson's reconciliation list costs with an empty `contentToRetrieve` (which the sandbox, like one
reading of the docs, answers with every section) and with `LIST_CONTENT`, over the same sandbox world.

    PYTHONPATH=plugins:.:tests python -m bench._lp_list_content

Prints one line per setting; the figures are in docs/benchmarks.md (LivePerson list sections).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cxsync.config import Integration
from cxsync.sources import liveperson as lp
from support.liveperson import export_connections, start_lp_sandbox

LOOKBACK = timedelta(hours=48)
SETTINGS = (("before: contentToRetrieve []", ()), ('after: contentToRetrieve ["dialogs"]', lp.LIST_CONTENT))


def main() -> None:
    patch = pytest.MonkeyPatch()
    sandbox = start_lp_sandbox(lp_conversations_per_day=250, lp_days=7)
    export_connections(sandbox, patch)
    try:
        for label, sections in SETTINGS:
            patch.setattr(lp, "LIST_CONTENT", sections)
            integration = Integration(
                id="bench", provider="liveperson", conn_id="sandbox_liveperson_main", label="bench", options={}
            )
            source = lp.LivePersonSource(integration)
            now = source.server_now()
            sandbox.reset_counters()
            listed = len(list(source.listing(now - LOOKBACK, now)))
            served = sandbox.counters()["requests"]["liveperson"]
            searches = sum(served["by_endpoint"]["conversations_search"].values())
            size = served["bytes_by_endpoint"]["conversations_search"]
            print(f"{label}: {listed} conversations listed in {searches} searches, {size:,} bytes")
    finally:
        sandbox.server.stop()
        patch.undo()


if __name__ == "__main__":
    main()
