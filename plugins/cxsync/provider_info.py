"""Airflow provider registration, read by Airflow through the `apache_airflow_provider` entry point.

Connection form fields are declared as data (`conn-fields`, `ui-field-behaviour`), the Airflow 3.2+
way, so the UI shows them without importing the hooks.
"""

from __future__ import annotations

from typing import Any

from cxsync import __version__


def _text(label: str, description: str, default: str | None = None, enum: list[str] | None = None) -> dict:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    if enum:
        schema["enum"] = enum
    return {"label": label, "description": description, "schema": schema}


def _secret(label: str, description: str) -> dict:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], "format": "password"}}


def _number(label: str, description: str, default: float, minimum: float) -> dict:
    return {
        "label": label,
        "description": description,
        "schema": {"type": ["number", "null"], "default": default, "minimum": minimum},
    }


# The request layer's tunables (cxsync.http.tunables), the same for every provider.
_REQUEST_TUNABLES = {
    "requests_per_second": _number("Requests per second", "Client-side rate limit; 0 turns it off.", 5, 0),
    "timeout": _number("Read timeout (s)", "Seconds to wait for an answer before retrying.", 60, 1),
    "max_attempts": _number("Attempts per request", "Tries per request on 429, 5xx, resets and timeouts.", 6, 1),
    "max_in_flight": _number(
        "Requests in flight", "Most requests one task keeps in flight (fewer when the rate limit needs fewer).", 16, 1
    ),
}


LIVEPERSON_CONNECTION = {
    "connection-type": "liveperson",
    "hook-class-name": "cxsync.hooks.liveperson.LivePersonHook",
    "hook-name": "LivePerson",
    "ui-field-behaviour": {
        "hidden-fields": ["extra"],
        "relabeling": {
            "host": "CSDS host",
            "schema": "Scheme",
            "login": "App Key / Client ID",
            "password": "App Secret / Client Secret",
        },
        "placeholders": {
            "host": "api.liveperson.net",
            "schema": "https",
            "login": "OAuth 1.0 App Key, or OAuth 2.0 client_id",
            "password": "OAuth 1.0 App Secret, or OAuth 2.0 client_secret",
        },
    },
    "conn-fields": {
        "account_id": _text("Account number", "Your LivePerson account (site) number. Required."),
        "auth_type": _text(
            "Authentication",
            "oauth1: app keys (four values); oauth2: client credentials.",
            "oauth1",
            ["oauth1", "oauth2"],
        ),
        # LivePerson issues all four app-key values as credentials: the token is masked like its secret.
        "access_token": _secret("Access Token", "OAuth 1.0 only: the app key's Access Token."),
        "access_token_secret": _secret("Access Token Secret", "OAuth 1.0 only: the app key's Access Token Secret."),
        "source": _text("Source", "Caller id sent to the Messaging History API (at most 20 characters).", "cxsync"),
        "users_api_version": _text(
            "Users API version", "The version the Users API is asked for (its v parameter).", "4.0"
        ),
        **_REQUEST_TUNABLES,
    },
}

HELPDESK_CONNECTION = {
    "connection-type": "helpdesk",
    "hook-class-name": "cxsync.hooks.helpdesk.HelpDeskHook",
    "hook-name": "HelpDesk",
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
        "auth_type": _text(
            "Authentication",
            "token: personal access token (Basic); oauth2: authorization code.",
            "token",
            ["token", "oauth2"],
        ),
        "refresh_token": _secret(
            "Refresh token",
            "OAuth 2 only: leave empty; cxsync stores it when you connect the app "
            "(python -m cxsync.helpdesk_oauth --conn-id <connection id>).",
        ),
        # No default: a default is saved into every connection's extras, token ones too.
        "accounts_url": _text(
            "Accounts URL", "OAuth 2 only: the token server; empty means https://accounts.livechat.com."
        ),
        **_REQUEST_TUNABLES,
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "cxsync",
        "name": "cxsync",
        "description": "Contact-center QA integrations: LivePerson and HelpDesk conversations into a warehouse.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "LivePerson",
                "external-doc-url": "https://developers.liveperson.com/",
                "tags": ["service"],
            },
            {"integration-name": "HelpDesk", "external-doc-url": "https://api.helpdesk.com/docs", "tags": ["service"]},
        ],
        "hooks": [
            {"integration-name": "LivePerson", "python-modules": ["cxsync.hooks.liveperson"]},
            {"integration-name": "HelpDesk", "python-modules": ["cxsync.hooks.helpdesk"]},
        ],
        "connection-types": [LIVEPERSON_CONNECTION, HELPDESK_CONNECTION],
    }
