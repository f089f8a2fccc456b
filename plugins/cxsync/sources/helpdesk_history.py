"""What analytics reads from a stored HelpDesk ticket's own history (`ProviderSpec.reopened`)."""

from __future__ import annotations

import json

CLOSED_STATUSES = frozenset({"solved", "closed"})  # statuses that close a ticket


def reopened(raw: str) -> bool:
    """Analytics' `reopened` (ProviderSpec.reopened): a `status` event in the stored ticket's events whose old
    status is solved/closed and whose new one is not."""
    if '"status"' not in raw:
        return False
    try:
        events = json.loads(raw).get("events") or []
    except (ValueError, AttributeError):
        return False
    for event in events:
        if not isinstance(event, dict) or event.get("type") != "status" or not isinstance(event.get("status"), dict):
            continue
        change = event["status"]
        old, new = str(change.get("old") or "").lower(), str(change.get("new") or "").lower()
        if old in CLOSED_STATUSES and new and new not in CLOSED_STATUSES:
            return True
    return False
