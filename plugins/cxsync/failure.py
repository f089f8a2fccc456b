"""Why a task failed, in one plain line with the action that fixes it, where a person looks.

A failed task's log ends with Airflow's traceback, and cxsync's own message (which says what to fix) sits above
it. So every cxsync task gets `on_failure` as its failure callback: it logs that plain line last, after the
traceback, and keeps it as the task's XCom `cxsync_failure`, which the status page shows on the integration's
card next to the failed run ("Reconnect HelpDesk" as a button where the fix is that page).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from cxsync.errors import AuthenticationError, PermissionDenied

log = logging.getLogger(__name__)
XCOM_KEY = "cxsync_failure"
LOG_PREFIX = "cxsync: this task failed: "

# Actions a card can offer as a button (the status page knows their pages).
RECONNECT_HELPDESK = "Reconnect HelpDesk"


@dataclass(frozen=True)
class Failure:
    message: str  # the error's first line
    action: str  # what fixes it, in words
    button: str | None = None  # RECONNECT_HELPDESK when that page is the fix
    conn_id: str | None = None

    @property
    def line(self) -> str:
        return f"{self.message.rstrip('.')}. {self.action}"


def first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def describe(exc: BaseException, provider: str | None = None, auth_type: str | None = None,
             conn_id: str | None = None) -> Failure:  # fmt: skip
    """The plain line for `exc`: its first line, and what a person does about it."""
    from cxsync.config import ConfigError

    cause = exc.__cause__ if exc.__cause__ is not None and type(exc).__name__ == "AirflowFailException" else exc
    message = first_line(cause)
    where = f"connection {conn_id!r}" if conn_id else "the connection"
    if isinstance(cause, AuthenticationError):
        if provider == "helpdesk" and auth_type == "oauth2":
            # the hook's message ends with the terminal's way ("run `python -m cxsync.helpdesk_oauth ...`"); in
            # the UI the fix is the button
            message = message.split(": run ", 1)[0]
            action = f"Reconnect HelpDesk: cxsync in Airflow's navigation, the card's {RECONNECT_HELPDESK} button."
            return Failure(message, action, RECONNECT_HELPDESK, conn_id)
        return Failure(message, f"Check the credentials of {where} (Admin > Connections, Test).", None, conn_id)
    if isinstance(cause, PermissionDenied):
        return Failure(message, f"Give the account of {where} the permission named above.", None, conn_id)
    if isinstance(cause, ConfigError):
        return Failure(message, "Fix the integrations file as said; the DAGs pick it up on the next parse.")
    return Failure(message, "Airflow retries it; if it keeps failing, the task log above says more.")


def on_failure(context: dict[str, Any]) -> None:
    """Airflow's on_failure_callback of every cxsync task: the plain line last in the log, and as an XCom."""
    exc = context.get("exception")
    if not isinstance(exc, BaseException):
        return
    facts = _integration_facts(context)
    failure = describe(exc, **facts)
    log.error("%s%s", LOG_PREFIX, failure.line)
    try:
        context["ti"].xcom_push(XCOM_KEY, asdict(failure))
    except Exception:  # the card then shows the failure without its line; the log still has it
        log.debug("could not keep the failure as an XCom", exc_info=True)


def _integration_facts(context: dict[str, Any]) -> dict[str, str | None]:
    """Provider, auth type and connection of the task's integration (its `integration_id` argument)."""
    task = context.get("task")
    integration_id = (getattr(task, "op_kwargs", None) or {}).get("integration_id")
    if not integration_id:
        return {}
    try:
        from airflow.sdk import BaseHook

        from cxsync.config import load_integrations

        integration = load_integrations().get(integration_id)
    except Exception:
        return {}
    try:
        auth_type = str(BaseHook.get_connection(integration.conn_id).extra_dejson.get("auth_type") or "") or None
    except Exception:  # a missing connection: the message says so already
        auth_type = None
    return {"provider": integration.provider, "auth_type": auth_type, "conn_id": integration.conn_id}
