"""HelpDesk's declarations: its connection form and its integration options (plain data, see the package)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cxsync.options import option
from cxsync.providers import REQUEST_TUNABLES, secret_field, text_field

CONNECTION_FORM = {
    "ui-field-behaviour": {
        "hidden-fields": ["extra"],
        "relabeling": {
            "host": "API host",
            "schema": "Scheme",
            "login": "Account ID / Client ID",
            "password": "Personal Access Token / Client Secret",
        },
        "placeholders": {
            "host": "api.helpdesk.com",
            "schema": "https",
            "login": "token: your account ID; oauth2: the app's client_id",
            "password": "token: the personal access token (e.g. dal:...); oauth2: client_secret",
        },
    },
    "conn-fields": {
        "auth_type": text_field(
            "Authentication",
            "token: personal access token (Basic); oauth2: authorization code.",
            "token",
            ["token", "oauth2"],
        ),
        "refresh_token": secret_field(
            "Refresh token",
            "OAuth 2 only: leave empty; cxsync stores it when you connect the app "
            "(python -m cxsync.helpdesk_oauth --conn-id <connection id>).",
        ),
        # No default: a default is saved into every connection's extras, token ones too.
        "accounts_url": text_field(
            "Accounts URL", "OAuth 2 only: the token server; empty means https://accounts.livechat.com."
        ),
        **REQUEST_TUNABLES,
    },
}

# The largest `pageSize` the ticket list takes.
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class HelpDeskOptions:
    """The HelpDesk source's options (cxsync.sources.helpdesk says what each one changes)."""

    # Changes are read from the last watermark minus this.
    overlap_minutes: float = option(10, minimum=0)
    # The first incremental run without a watermark reads this far back.
    first_run_lookback_hours: float = option(24, minimum=0)
    # Tickets per list page.
    page_size: int = option(MAX_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    # The most tickets the account creates or changes in one hour: a ticket list that pages on past what its
    # span can hold at this rate is stopped as broken (1 a second, far above any HelpDesk account we know of).
    max_tickets_per_hour: float = option(3600, minimum=1)

    @property
    def overlap(self) -> timedelta:
        return timedelta(minutes=self.overlap_minutes)

    @property
    def first_run_lookback(self) -> timedelta:
        return timedelta(hours=self.first_run_lookback_hours)
