"""Re-redaction of rows already stored: after redaction is turned on or its rules change (a new
`RedactionPolicy.version`), every interaction of the integration not redacted under the current rules is
redacted in place, with its messages, then its rejected records.

Batches of interactions in id order, one transaction each, the checkpoint (the last id done, per rules version,
in `cx_sync_state`) committed with the batch: a run that stops resumes after the last committed batch. Nothing
else changes: no provider request, `loaded_at` and every other column stay; the content hash becomes what a load
under the same rules computes, so the next load of an unchanged interaction writes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cxsync.records import InteractionRecord, MessageRecord, RejectedRecord
from cxsync.redaction.engine import Redactor
from cxsync.redaction.identity import CustomerIdentity
from cxsync.warehouse import Warehouse
from cxsync.warehouse import schema as t
from cxsync.warehouse.store import _interaction_row, storable, to_json

log = logging.getLogger(__name__)

INTERACTIONS_DONE = "redaction:{version}:interactions"
REJECTED_DONE = "redaction:{version}:rejected"
DEFAULT_BATCH = 200


def reredact(
    integration_id: str,
    warehouse: Warehouse,
    redactor: Redactor,
    identity_of: Callable[[Any], CustomerIdentity | None],
    *,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
) -> dict[str, Any]:
    """Redact the integration's stored rows under `redactor`'s rules; returns what it did. `max_batches`: stop
    after that many batches (the rest is for the next run)."""
    version = redactor.version
    done = {"interactions": 0, "messages": 0, "rejected": 0, "batches": 0, "complete": False}
    it = t.interactions
    checkpoint = warehouse.get_watermark(integration_id, INTERACTIONS_DONE.format(version=version)) or ""
    while max_batches is None or done["batches"] < max_batches:
        with warehouse.engine.begin() as conn:
            rows = (
                conn.execute(
                    sa.select(it)
                    .where(
                        it.c.integration_id == integration_id,
                        it.c.interaction_id > checkpoint,
                        sa.or_(it.c.redaction_version.is_(None), it.c.redaction_version != version),
                    )
                    .order_by(it.c.interaction_id)
                    .limit(batch_size)
                )
                .mappings()
                .all()
            )
            if not rows:
                break
            done["messages"] += _redact_interactions(conn, integration_id, rows, redactor, identity_of)
            checkpoint = rows[-1]["interaction_id"]
            warehouse._set_watermark(
                conn, integration_id, INTERACTIONS_DONE.format(version=version), checkpoint, datetime.now(UTC)
            )
        done["interactions"] += len(rows)
        done["batches"] += 1
        log.info("re-redaction %s: %d interactions done (up to %s)", integration_id, done["interactions"], checkpoint)
    else:
        return done

    rj = t.rejected_records
    last = int(warehouse.get_watermark(integration_id, REJECTED_DONE.format(version=version)) or 0)
    while max_batches is None or done["batches"] < max_batches:
        with warehouse.engine.begin() as conn:
            rows = (
                conn.execute(
                    sa.select(rj)
                    .where(rj.c.integration_id == integration_id, rj.c.id > last)
                    .order_by(rj.c.id)
                    .limit(batch_size)
                )
                .mappings()
                .all()
            )
            if not rows:
                done["complete"] = True
                break
            _redact_rejected(conn, integration_id, rows, redactor, identity_of)
            last = rows[-1]["id"]
            # Fixed width, so the text watermark (which only moves forward) compares as the number.
            warehouse._set_watermark(
                conn, integration_id, REJECTED_DONE.format(version=version), f"{last:020d}", datetime.now(UTC)
            )
        done["rejected"] += len(rows)
        done["batches"] += 1
    return done


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # stored as text (a rejected record's raw that was not JSON): redacted as text


def _redact_interactions(conn, integration_id: str, rows, redactor: Redactor, identity_of) -> int:
    m = t.messages
    ids = [r["interaction_id"] for r in rows]
    by_interaction: dict[str, list[dict]] = {i: [] for i in ids}
    for message in conn.execute(
        sa.select(m).where(m.c.integration_id == integration_id, m.c.interaction_id.in_(ids)).order_by(m.c.seq)
    ).mappings():
        by_interaction[message["interaction_id"]].append(dict(message))
    interaction_updates, message_updates = [], []
    for row in rows:
        messages = by_interaction[row["interaction_id"]]
        record = _record(row, messages)
        redactor.interaction(record, identity_of(record.raw))
        raws = [to_json(mr.raw) for mr in record.messages]
        new = _interaction_row(integration_id, record, row["loaded_at"], raws)
        interaction_updates.append(
            {
                "k_integration": integration_id,
                "k_interaction": row["interaction_id"],
                **{c: new[c] for c in ("subject", "customer_id", "tags", "raw", "redaction_version", "content_hash")},
            }
        )
        for stored, mr, raw in zip(messages, record.messages, raws, strict=True):
            message_updates.append(
                {
                    "k_integration": integration_id,
                    "k_interaction": row["interaction_id"],
                    "k_message": stored["message_id"],
                    "text": storable(mr.text),
                    "sender_id": storable(mr.sender_id),
                    "attachments": to_json(mr.attachments) if mr.attachments else None,
                    "raw": raw,
                    "pii_counts": to_json(mr.pii_counts),
                }
            )
    it = t.interactions
    conn.execute(
        it.update()
        .where(
            it.c.integration_id == sa.bindparam("k_integration"), it.c.interaction_id == sa.bindparam("k_interaction")
        )
        .values(
            {c: sa.bindparam(c) for c in ("subject", "customer_id", "tags", "raw", "redaction_version", "content_hash")}
        ),
        interaction_updates,
    )
    if message_updates:
        conn.execute(
            m.update()
            .where(
                m.c.integration_id == sa.bindparam("k_integration"),
                m.c.interaction_id == sa.bindparam("k_interaction"),
                m.c.message_id == sa.bindparam("k_message"),
            )
            .values({c: sa.bindparam(c) for c in ("text", "sender_id", "attachments", "raw", "pii_counts")}),
            message_updates,
        )
    return len(message_updates)


def _record(row, messages: list[dict]) -> InteractionRecord:
    """The stored interaction as the record a load wrote it from: the same row and hash come out of it."""
    tags = _loads(row["tags"]) or []
    return InteractionRecord(
        interaction_id=row["interaction_id"],
        provider=row["provider"],
        status=row["status"],
        started_at=row["started_at"],
        channel=row["channel"],
        provider_status=row["provider_status"],
        subject=row["subject"],
        ended_at=row["ended_at"],
        updated_at=row["updated_at"],
        agent_id=row["agent_id"],
        customer_id=row["customer_id"],
        raw=_loads(row["raw"]),
        csat_score=row["csat_score"],
        sentiment_score=row["sentiment_score"],
        close_reason=row["close_reason"],
        skill=row["skill"],
        agent_group=row["agent_group"],
        tags=list(tags) if isinstance(tags, list) else [],
        priority=row["priority"],
        display_id=row["display_id"],
        messages=[
            MessageRecord(
                message_id=mr["message_id"],
                seq=mr["seq"],
                sent_at=mr["sent_at"],
                sender_type=mr["sender_type"],
                sender_id=mr["sender_id"],
                text=mr["text"],
                is_private=bool(mr["is_private"]),
                message_type=mr["message_type"],
                dialog_type=mr["dialog_type"],
                attachments=_loads(mr["attachments"]) or [],
                raw=_loads(mr["raw"]),
            )
            for mr in messages
        ],
    )


def _redact_rejected(conn, integration_id: str, rows, redactor: Redactor, identity_of) -> None:
    rj = t.rejected_records
    for row in rows:
        raw = _loads(row["raw"])
        item = RejectedRecord(row["stream"], row["record_key"], row["reason"], raw)
        redactor.rejected(item, identity_of(raw))
        record_key, reason = storable(item.record_key), storable(item.reason)
        new_raw = storable(item.raw) if isinstance(item.raw, str) or item.raw is None else to_json(item.raw)
        record_hash = t.rejected_record_hash(row["stream"], record_key, reason, new_raw)
        if record_hash != row["record_hash"]:
            twin = conn.execute(
                sa.select(rj.c.id).where(
                    rj.c.integration_id == integration_id, rj.c.stream == row["stream"], rj.c.record_hash == record_hash
                )
            ).first()
            if twin is not None:  # redacted, it is the same record as one already stored: one row of it
                conn.execute(rj.delete().where(rj.c.id == row["id"]))
                continue
        conn.execute(
            rj.update()
            .where(rj.c.id == row["id"])
            .values(record_key=record_key, reason=reason, raw=new_raw, record_hash=record_hash)
        )
