"""ToyDesk's connection form and options: plain data, read without importing its hook or source."""

from __future__ import annotations

from dataclasses import dataclass

from cxsync.options import option
from cxsync.providers import REQUEST_TUNABLES, text_field

CONNECTION_FORM = {
    "ui-field-behaviour": {"hidden-fields": ["extra"], "relabeling": {"password": "API token"}},
    "conn-fields": {
        "team": text_field("Team", "The ToyDesk team whose tickets are loaded.", "support"),
        **REQUEST_TUNABLES,
    },
}


@dataclass(frozen=True)
class ToyDeskOptions:
    page_size: int = option(50, minimum=1, maximum=200)
    channel: str = option("email")
