"""Redaction in a task: the integration's redactor (with its pseudonym key from Airflow), pages redacted before
they are prepared for the warehouse, and the run's `cx_redaction_stats` row."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from cxsync.errors import FatalError
from cxsync.redaction.engine import Redactor
from cxsync.redaction.options import RedactionPolicy

if TYPE_CHECKING:
    from cxsync.config import Integration
    from cxsync.sources.base import Page, Source
    from cxsync.warehouse import Warehouse

log = logging.getLogger(__name__)


def pseudonym_key(conn_id: str) -> bytes:
    """The password of the Airflow connection `conn_id`: the HMAC key of pseudonyms (never logged)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        conn = None
    password = getattr(conn, "password", None)
    if not password:
        raise FatalError(
            f"pii_redaction.pseudonym_key_conn_id: Airflow connection {conn_id!r} "
            f"{'has no password' if conn is not None else 'does not exist'}; create it with the pseudonym key as "
            "its password (a long random string; changing it changes every pseudonym)"
        )
    return password.encode()


def redactor_for(integration: Integration) -> Redactor | None:
    """The integration's redactor, or None when `pii_redaction` is off."""
    policy: RedactionPolicy | None = integration.pii_redaction
    if policy is None:
        return None
    key = pseudonym_key(policy.pseudonym_key_conn_id) if policy.pseudonym_key_conn_id else None
    return Redactor(policy, key)


def redacted(pages: Iterable[Page], redactor: Redactor | None, source: Source) -> Iterator[Page]:
    """The same pages, every record redacted in place before anything else sees it."""
    for page in pages:
        if redactor is not None:
            redactor.records(page.records, page.rejected, identity_reader(source))
        yield page


def identity_reader(source: Source):
    """`source.customer_identity`, never raising."""

    def identity(raw: Any):
        try:
            return source.customer_identity(raw)
        except Exception:  # a malformed raw record: the detectors still run, only the customer's name is unknown
            return None

    return identity


def record_stats(
    integration: Integration, warehouse: Warehouse, redactor: Redactor | None, task: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Store the run's tally (one `cx_redaction_stats` row) and return it for the task's result; counts only."""
    if redactor is None:
        return None
    tally = redactor.tally.as_dict()
    try:
        warehouse.record_redaction_stats(
            integration.id, tally, version=redactor.version, mode=redactor.policy.mode, task=task
        )
    except Exception:  # the evidence never fails a task whose redacted rows are committed
        log.warning("could not record the redaction statistics of %s", integration.id, exc_info=True)
    log.info(
        "redaction %s (%s): %d messages scanned, %d redacted; replaced %s",
        integration.id,
        redactor.version,
        tally["messages_scanned"],
        tally["messages_redacted"],
        ", ".join(f"{n} {entity}" for entity, n in tally["by_entity"].items()) or "nothing",
    )
    return {"version": redactor.version, **tally}
