"""What the demo reads back from the warehouse: snapshots, row counts, agent figures, the last retention run,
watermarks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cxsync.pipeline import INTERACTIONS_STREAM
from cxsync_dev.demo.state import Demo, Snapshot

if TYPE_CHECKING:
    from cxsync.warehouse import Warehouse


def agent_figures(warehouse: Warehouse, integration_id: str) -> list[dict[str, Any]]:
    """Per agent, over the whole period: conversations, median and p90 first response, mean handle time,
    flagged conversations, mean CSAT over the rated ones and how many, and mean MCS, from cx_interaction_metrics
    (the same figures cx_agent_daily_metrics holds per day)."""
    import pandas as pd
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    mt, ag = t.interaction_metrics, t.agents
    query = (
        sa.select(
            mt.c.agent_id,
            sa.func.coalesce(ag.c.display_name, ag.c.login_name, mt.c.agent_id).label("name"),
            mt.c.first_response_seconds,
            mt.c.handle_seconds,
            mt.c.flags,
            mt.c.csat_score,
            mt.c.sentiment_score,
        )
        .select_from(
            mt.outerjoin(ag, sa.and_(ag.c.integration_id == mt.c.integration_id, ag.c.agent_id == mt.c.agent_id))
        )
        .where(mt.c.integration_id == integration_id, mt.c.agent_id.is_not(None))
    )
    with warehouse.engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(query).all(), columns=["agent_id", "name", "first", "handle", "flags", "csat", "mcs"]
        )
    if frame.empty:
        return []
    frame["flagged"] = frame["flags"].ne("[]")
    numbers = {"first": "float64", "handle": "float64", "csat": "float64", "mcs": "float64"}
    grouped = frame.astype(numbers).groupby(["agent_id", "name"])
    figures = pd.DataFrame(
        {
            "conversations": grouped.size(),
            "median": grouped["first"].median(),
            "p90": grouped["first"].quantile(0.9),
            "handle": grouped["handle"].mean(),
            "flagged": grouped["flagged"].sum(),
            "csat": grouped["csat"].mean(),
            "rated": grouped["csat"].count(),
            "mcs": grouped["mcs"].mean(),
        }
    ).reset_index()
    figures = figures.sort_values(["conversations", "agent_id"], ascending=[False, True])
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in figures.to_dict("records")
    ]


def snapshot(warehouse: Warehouse, integration_id: str) -> Snapshot:
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    it = t.interactions
    query = sa.select(it.c.interaction_id, it.c.status, it.c.content_hash).where(it.c.integration_id == integration_id)
    with warehouse.engine.connect() as conn:
        return Snapshot({iid: (status, digest) for iid, status, digest in conn.execute(query)})


def diff(before: Snapshot, after: Snapshot) -> tuple[int, int, int]:
    """(new, closed since, otherwise changed) interactions between two snapshots."""
    new = closed = changed = 0
    for iid, (status, digest) in after.rows.items():
        old = before.rows.get(iid)
        if old is None:
            new += 1
        elif old[0] == "open" and status == "closed":
            closed += 1
        elif old[1] != digest:
            changed += 1
    return new, closed, changed


def count_rows(warehouse: Warehouse, integration_ids: Sequence[str]) -> list[tuple[str, dict[str, int]]]:
    """(label, {integration_id: rows}) for every figure of the demo's table."""
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    def per(table: sa.Table, *where: Any) -> dict[str, int]:
        query = (
            sa.select(table.c.integration_id, sa.func.count())
            .where(table.c.integration_id.in_(integration_ids), *where)
            .group_by(table.c.integration_id)
        )
        with warehouse.engine.connect() as conn:
            return {iid: n for iid, n in conn.execute(query)}

    return [
        ("agents", per(t.agents)),
        ("agents deleted", per(t.agents, t.agents.c.is_deleted.is_(True))),
        ("agent groups / teams", per(t.agent_groups)),
        ("skills", per(t.skills)),
        ("interactions open", per(t.interactions, t.interactions.c.status == "open")),
        ("interactions closed", per(t.interactions, t.interactions.c.status == "closed")),
        ("messages", per(t.messages)),
        ("private messages", per(t.messages, t.messages.c.is_private.is_(True))),
        ("rejected records", per(t.rejected_records)),
        ("retention log rows", per(t.retention_log)),
    ]


def redaction_totals(warehouse: Warehouse, integration_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per integration that redacted: messages scanned and redacted, replacements by entity (cx_redaction_stats)."""
    import json

    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    rs = t.redaction_stats
    out: dict[str, dict[str, Any]] = {}
    query = sa.select(rs.c.integration_id, rs.c.messages_scanned, rs.c.messages_redacted, rs.c.by_entity).where(
        rs.c.integration_id.in_(integration_ids)
    )
    with warehouse.engine.connect() as conn:
        for iid, scanned, redacted, by_entity in conn.execute(query):
            entry = out.setdefault(iid, {"scanned": 0, "redacted": 0, "by_entity": {}})
            entry["scanned"] += scanned
            entry["redacted"] += redacted
            for entity, n in json.loads(by_entity or "{}").items():
                entry["by_entity"][entity] = entry["by_entity"].get(entity, 0) + n
    return out


def latest_retention(warehouse: Warehouse, integration_id: str) -> Mapping[str, Any] | None:
    import sqlalchemy as sa

    from cxsync.warehouse import schema as t

    rl = t.retention_log
    query = sa.select(rl).where(rl.c.integration_id == integration_id).order_by(rl.c.id.desc()).limit(1)
    with warehouse.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def last_watermark(demo: Demo) -> datetime | None:
    """The latest incremental watermark of the integrations: the provider time the last demo reached."""
    from cxsync.warehouse import parse_watermark

    if demo.warehouse is None:
        return None
    marks = [demo.warehouse.get_watermark(i.id, INTERACTIONS_STREAM) for i in demo.config.integrations]
    return max((parse_watermark(m) for m in marks if m), default=None)
