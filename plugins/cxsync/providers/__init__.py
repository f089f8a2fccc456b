"""Each provider's declarations, as plain data: its connection form (what Airflow's connection page shows) and
its integration options (`cxsync.options`). The registry names them; Airflow's provider info and the
integrations file's check read them without importing the provider's hook or source.

The helpers below spell connection form fields the Airflow 3.2+ way (`conn-fields`: a label, a description and
a JSON schema per extra).
"""

from __future__ import annotations

from typing import Any


def text_field(label: str, description: str, default: str | None = None, enum: list[str] | None = None) -> dict:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    if enum:
        schema["enum"] = enum
    return {"label": label, "description": description, "schema": schema}


def secret_field(label: str, description: str) -> dict:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], "format": "password"}}


def number_field(label: str, description: str, default: float, minimum: float) -> dict:
    return {
        "label": label,
        "description": description,
        "schema": {"type": ["number", "null"], "default": default, "minimum": minimum},
    }


# The request layer's tunables (cxsync.http.tunables), the same for every provider.
REQUEST_TUNABLES = {
    "requests_per_second": number_field("Requests per second", "Client-side rate limit; 0 turns it off.", 5, 0),
    "timeout": number_field("Read timeout (s)", "Seconds to wait for an answer before retrying.", 60, 1),
    "max_attempts": number_field("Attempts per request", "Tries per request on 429, 5xx, resets and timeouts.", 6, 1),
    "max_in_flight": number_field(
        "Requests in flight", "Most requests one task keeps in flight (fewer when the rate limit needs fewer).", 16, 1
    ),
}
