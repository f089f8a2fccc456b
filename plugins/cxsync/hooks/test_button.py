"""Messages of the connection form's Test button, in the words of the form the user is looking at.

Airflow tests an unsaved form under a random temporary connection id, so a message that names "connection
'xw6gSZpL'" or advises a command with that id points nowhere. The form also shows the fields by their labels
(Account ID, Authentication, ...), not by the names the hooks use (login, extra `auth_type`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from cxsync import provider_info

_CONNECTION_TYPES = {spec["connection-type"]: spec for spec in provider_info.get_provider_info()["connection-types"]}


def form_labels(connection_type: str) -> dict[str, str]:
    """Field name (login, password, host, schema, port, or an extra) to the label the form shows."""
    spec = _CONNECTION_TYPES[connection_type]
    labels = {"host": "Host", "schema": "Schema", "login": "Login", "password": "Password", "port": "Port"}
    labels.update(spec["ui-field-behaviour"].get("relabeling", {}))
    labels.update({name: field["label"] for name, field in spec["conn-fields"].items()})
    return labels


def for_the_form(message: str, conn_id: str, labels: dict[str, str]) -> str:
    """`message` without the (temporary) connection id, ending with the form labels of the fields it names."""
    if conn_id:
        quoted = re.escape(conn_id)
        message = re.sub(rf"--conn-id\s+{quoted}(?![\w.-])", "--conn-id <the connection id, once saved>", message)
        message = re.sub(
            rf"(?:\b([A-Z]\w*)\s+)?[Cc]onnection\s+(['\"]){quoted}\2",
            lambda m: f"this {m.group(1)} connection" if m.group(1) else "this connection",
            message,
        )
        message = re.sub(rf"(['\"]){quoted}\1", "this connection", message)
        # "LivePerson connection 'x' works" became "this LivePerson connection works": a sentence's start
        message = re.sub(r"(^|[.!?]\s+)this ", lambda m: f"{m.group(1)}This ", message)
    named = [labels[name] for name in dict.fromkeys(re.findall(r"`(\w+)`", message)) if name in labels]
    if named:
        message = message.rstrip() + " In the form: " + ", ".join(f'"{label}"' for label in named) + "."
    return message


def speaks_to_the_form(connection_type: str) -> Callable:
    """Decorate a hook's `test_connection`: its message names fields as the form does, and no connection id."""
    labels = form_labels(connection_type)

    def decorate(test_connection: Callable[[Any], tuple[bool, str]]) -> Callable[[Any], tuple[bool, str]]:
        @functools.wraps(test_connection)
        def wrapper(hook: Any) -> tuple[bool, str]:
            ok, message = test_connection(hook)
            return ok, for_the_form(message, getattr(hook, hook.conn_name_attr, ""), labels)

        return wrapper

    return decorate
