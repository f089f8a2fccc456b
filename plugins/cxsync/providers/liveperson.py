"""LivePerson's declarations: its connection form and its integration options (plain data, see the package)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cxsync.options import option
from cxsync.providers import REQUEST_TUNABLES, secret_field, text_field

CONNECTION_FORM = {
    "ui-field-behaviour": {
        "hidden-fields": ["extra"],
        "relabeling": {
            "host": "CSDS host",
            "schema": "Scheme",
            "login": "Client ID",
            "password": "Client Secret",
        },
        "placeholders": {
            "host": "api.liveperson.net",
            "schema": "https",
            "login": "OAuth 2.0 client_id (or, legacy OAuth 1.0: the App Key)",
            "password": "OAuth 2.0 client_secret (or, legacy OAuth 1.0: the App Secret)",
        },
    },
    "conn-fields": {
        "account_id": text_field("Account number", "Your LivePerson account (site) number. Required."),
        "auth_type": text_field(
            "Authentication",
            "oauth2: client credentials (the default). oauth1: legacy app keys, ended by LivePerson "
            "(read-only since 30 Sep 2025, end of life 31 May 2026).",
            "oauth2",
            ["oauth2", "oauth1"],
        ),
        # LivePerson issues all four app-key values as credentials: the token is masked like its secret.
        "access_token": secret_field(
            "Access Token (OAuth 1.0, legacy)", "Only for an old OAuth 1.0 app key: its Access Token."
        ),
        "access_token_secret": secret_field(
            "Access Token Secret (OAuth 1.0, legacy)", "Only for an old OAuth 1.0 app key: its Access Token Secret."
        ),
        "source": text_field(
            "Source", "Caller id sent to the Messaging History API (at most 20 characters).", "cxsync"
        ),
        "users_api_version": text_field(
            "Users API version", "The version the Users API is asked for (its v parameter).", "4.0"
        ),
        **REQUEST_TUNABLES,
    },
}

# LivePerson accepts a `start` range of at most 3 months and rounds both ends outwards by up to 10 minutes;
# 88 days stays inside every reading of "3 months" (the shortest, Feb-May, is 89 days).
MAX_RANGE_DAYS = 88
# Offset paging: the most pages one search may take (100 conversations each), so an answer whose `count` never
# ends cannot page forever.
MAX_SEARCH_PAGES = 20_000
CONTENT_TO_RETRIEVE = (
    "messageRecords",
    "agentParticipants",
    "consumerParticipants",
    "transfers",
    "interactions",
    "dialogs",
    "conversationSurveys",
    "summary",
    "sdes",
)


def _has_transcripts(sections: list[str] | tuple[str, ...]) -> str | None:
    if "messageRecords" not in sections:
        return "must include messageRecords (the transcripts)"
    return None


@dataclass(frozen=True)
class LivePersonOptions:
    """The LivePerson source's options (cxsync.sources.liveperson says what each one changes)."""

    # Changes are read from the last watermark minus this (LivePerson rounds to 10 minutes, data arrives late).
    incremental_overlap_minutes: int = option(30, minimum=10, maximum=24 * 60)
    # How far back a conversation may have started and still change (the look-back of a change scan).
    open_conversation_days: int = option(30, minimum=1, maximum=MAX_RANGE_DAYS)
    # How often an answer marked partial (or a by-id answer leaving a record truncated) is asked again before the
    # task fails. The request layer's retry driver asks again; the connection's `max_attempts` bounds each
    # request's tries in all (5xx, resets and partial answers together), so the lower of the two applies.
    partial_retries: int = option(5, minimum=0, maximum=20)
    # How often a search whose result set moved while paging is paged again.
    repage_limit: int = option(3, minimum=0, maximum=20)
    # The sections asked for (`contentToRetrieve`).
    content_to_retrieve: tuple[str, ...] = option(
        CONTENT_TO_RETRIEVE, check=_has_transcripts, help="section names, e.g. messageRecords"
    )

    @property
    def overlap(self) -> timedelta:
        return timedelta(minutes=self.incremental_overlap_minutes)

    @property
    def open_window(self) -> timedelta:
        return timedelta(days=self.open_conversation_days)
