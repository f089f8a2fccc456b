"""The integrations status: one dict per integration (what the status page shows and `/cxsync/api/status`
returns), with its warnings in plain words. Airflow's metadata (DAG runs, pools, connections) and the
warehouse are each read with a few queries for all integrations at once, never one scan per integration."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cxsync import failure, registry, settings
from cxsync.config import ConfigError, Integration, IntegrationsConfig, integrations_path, load_integrations
from cxsync.pools import wanted_pools
from cxsync.ui import freshness as fresh
from cxsync.ui import warehouse_reads as reads
from cxsync.warehouse import parse_watermark
from cxsync.warehouse.store import ROSTER_WARNINGS_STREAM

log = logging.getLogger(__name__)
_config_cache: dict[str, tuple[tuple[int, int], IntegrationsConfig]] = {}
_config_lock = threading.Lock()

DAG_KINDS = ("roster_sync", "backfill", "incremental", "retention", "analytics", "redact")


def integrations_config() -> IntegrationsConfig:
    """The integrations file, parsed again only when it changed (every page asks for it)."""
    path = integrations_path()
    try:
        stat = path.stat()
    except OSError:
        return load_integrations(path)  # raises the plain "not found" ConfigError
    key, stamp = str(path), (stat.st_mtime_ns, stat.st_size)
    with _config_lock:
        cached = _config_cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
    config = load_integrations(path)
    with _config_lock:
        _config_cache[key] = (stamp, config)
    return config


BACKFILL_DAY_TASK = "load_window"  # the backfill DAG's mapped task, one per day window


def dag_kinds(integration: Integration) -> list[str]:
    optional = {"analytics": integration.conversation_analytics, "redact": integration.pii_redaction is not None}
    return [k for k in DAG_KINDS if optional.get(k, True)]


def describe_warehouse(url: sa.URL | str, *, show_option_names: bool = False) -> dict[str, Any]:
    """What the pages say about the warehouse: its host, port, database and TLS mode, nothing else (no user,
    password or other libpq option: `sslpassword` is one). `show_option_names` (for users who may edit the
    warehouse connection) adds which other options are set, never their values."""
    parsed = sa.make_url(url)
    query = dict(parsed.query)
    tls = query.pop("sslmode", None)
    tls = tls[0] if isinstance(tls, tuple) else tls
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        where = f"sqlite:///{parsed.database or ''}"
    else:
        host = parsed.host or "localhost"
        where = f"{backend}://{host}{f':{parsed.port}' if parsed.port else ''}/{parsed.database or ''}"
    described: dict[str, Any] = {"text": where, "backend": backend, "host": parsed.host, "port": parsed.port,
                                 "database": parsed.database, "tls_mode": tls}  # fmt: skip
    if backend != "sqlite":
        described["text"] += f" (TLS: sslmode={tls})" if tls else " (TLS: sslmode not set, libpq's default 'prefer')"
    if show_option_names:
        described["options_set"] = sorted([*query, *(["password"] if parsed.password else [])])
    return described


def collect(now: datetime | None = None, airflow_root: str = "", *, show_option_names: bool = False) -> dict[str, Any]:
    """Everything the status page shows, as JSON-able values. The warehouse is described for viewers
    (`describe_warehouse`); `show_option_names` adds which connection options are set (never their values)."""
    now = now or datetime.now(UTC)
    try:
        config = integrations_config()
    except ConfigError as exc:
        return {"generated_at": now, "config_errors": [str(exc)], "integrations": [], "warnings": [str(exc)]}
    integrations = config.integrations
    ids = [i.id for i in integrations]
    facts = AirflowFacts.read(
        [settings.dag_id(i.id, kind) for i in integrations for kind in dag_kinds(i)],
        sorted({i.conn_id for i in integrations}),
    )
    engine = reads.warehouse_engine(config.warehouse_conn_id)
    with engine.connect() as conn:
        present = reads.existing_tables(conn)
        counts = reads.integration_counts(conn, ids, now, present)
        marks = reads.watermarks(conn, ids, present)
        retention = reads.last_retention(conn, ids, present)
        completeness = reads.reconciliation(conn, ids, present)
        requests = reads.request_stats(conn, ids, now, present)
        redactions = reads.redaction_stats(conn, ids, now, present)
        analytics = reads.agent_analytics(conn, [i.id for i in integrations if i.conversation_analytics], now, present)
        newest = fresh.newest_changes(conn, ids, present)

    warnings = [f"Integrations file: {error}" for error in config.errors]
    pools = [{"name": p.name, "slots": p.slots, "exists": p.name in facts.pools} for p in wanted_pools()]
    for pool in pools:
        if not pool["exists"]:
            warnings.append(
                f"The Airflow pool {pool['name']} is missing: its tasks will never be scheduled. Restart the "
                f"api-server (cxsync creates it) or run: airflow pools set {pool['name']} {pool['slots']} cxsync"
            )
    if t_missing := sorted({"cx_interactions", "cx_agents"} - present):
        warnings.append(
            f"The warehouse has no {', '.join(t_missing)} table yet: run a roster sync or backfill DAG once."
        )
    rows = [
        _integration_row(
            integration,
            now,
            facts,
            counts[integration.id],
            marks[integration.id],
            retention[integration.id],
            completeness[integration.id],
            requests[integration.id],
            airflow_root,
            redactions[integration.id],
            newest_change=newest[integration.id],
        )
        for integration in integrations
    ]
    for row, integration in zip(rows, integrations, strict=True):
        row["analytics"] = analytics.get(integration.id) if integration.conversation_analytics else None
        row["day_scale"] = axis_ticks(max((d["interactions"] for d in row["per_day"]), default=0))
        row["analytics_scale"] = axis_ticks(max((a["conversations"] for a in row["analytics"] or []), default=0))
    return {
        "generated_at": now,
        # the page reloads itself while a run is under way (progress, then the outcome)
        "running": any(d["last_running"] for row in rows for d in row["dags"]),
        "integrations_file": str(config.path),
        "warehouse": describe_warehouse(engine.url, show_option_names=show_option_names),
        "config_errors": config.errors,
        "pools": pools,
        "warnings": warnings,
        "integrations": rows,
    }


def _integration_row(
    integration: Integration,
    now: datetime,
    facts: AirflowFacts,
    counts: dict,
    marks: list[dict],
    retention: dict | None,
    completeness: list[dict],
    requests: dict | None,
    airflow_root: str,
    redacted: dict | None = None,
    newest_change: datetime | None = None,
) -> dict[str, Any]:
    warnings: list[str] = []
    fixes: list[dict] = []  # actions the card offers as buttons, from the failures
    connection = facts.connections.get(integration.conn_id) or {"found": False}
    if not connection["found"]:
        warnings.append(
            f"Connection {integration.conn_id!r} is missing: create it (Admin > Connections, type "
            f"{integration.provider}) or set AIRFLOW_CONN_{integration.conn_id.upper()}."
        )
    dags = []
    for kind in dag_kinds(integration):
        dag_id = settings.dag_id(integration.id, kind)
        runs = facts.runs.get(dag_id, {})
        dag = {"kind": kind, "dag_id": dag_id, "url": f"{airflow_root}/dags/{dag_id}"}
        for state in ("success", "failed", "running"):
            run = runs.get(state)
            dag[f"last_{state}"] = (
                None if run is None else {**run, "url": f"{airflow_root}/dags/{dag_id}/runs/{run['run_id']}"}
            )
        if dag["last_running"] is not None:
            dag["last_running"]["progress_text"] = progress_text(
                dag["last_running"].get("progress"), dag["last_running"]["at"], now
            )
        dags.append(dag)
        failed, success = dag["last_failed"], dag["last_success"]
        if failed and (success is None or failed["at"] > success["at"]):
            if known := failed.get("failure"):
                # the error's first line and its fix, as the failed task kept them (cxsync.failure)
                warnings.append(
                    f"The last {kind.replace('_', ' ')} run failed at {_when(failed['at'])}: "
                    f"{known['message'].rstrip('.')}. {known['action']}"
                )
                if known.get("button") == failure.RECONNECT_HELPDESK:
                    fixes.append({"button": known["button"], "conn_id": known.get("conn_id") or integration.conn_id})
            else:
                hint = " (check the connection's credentials and the task log)" if kind == "roster_sync" else ""
                warnings.append(f"The last {kind.replace('_', ' ')} run failed at {_when(failed['at'])}{hint}.")

    interval = schedule_interval(integration.schedule, now)
    watermark_rows = []
    incremental_mark = None
    for mark in marks:
        if mark["stream"] == ROSTER_WARNINGS_STREAM:  # not a watermark: what the last roster sync lacked
            warnings.extend(f"Roster sync: {w}" for w in _roster_warnings(mark["watermark"]))
            continue
        moment = _parse(mark["watermark"])
        age = (now - moment).total_seconds() if moment else None
        watermark_rows.append({**mark, "age_seconds": age, "at": moment})  # `at`: shown, not the raw string
        if mark["stream"] == "interactions":
            incremental_mark = (moment, age)
    if incremental_mark is None:
        warnings.append("No incremental watermark yet: run the backfill DAG once, then the incremental loads follow.")
    freshness = fresh.freshness(
        integration,
        now,
        loaded_through=incremental_mark[0] if incremental_mark else None,
        newest_change=newest_change,
        interval=interval,
    )
    if freshness["warning"]:
        warnings.append(freshness["warning"])
    if counts["rejected_last_24h"]:
        warnings.append(
            f"Rejected records are growing: {counts['rejected_last_24h']} new in the last 24 hours "
            f"({counts['rejected']} in all); see cx_rejected_records for the reasons."
        )
    if counts["unmatched_agents"]:
        warnings.append(
            f"{counts['unmatched_agents']} agent(s) without a staff match (unmatched or ambiguous): see Manage Users."
        )
    if outstanding := [r for r in completeness if r["differs"] and not _repaired(r)]:
        days = ", ".join(reads.day_text(r["day"]) for r in outstanding)
        warnings.append(
            f"The warehouse differs from the provider on {len(outstanding)} checked day(s) ({days}), not "
            f"repaired: see Completeness."
        )
    if requests and requests["rate_limited"] > settings.UI_RATE_LIMITED_SHARE * requests["requests"]:
        warnings.append(
            f"The provider answered {requests['rate_limited']} of {requests['requests']} requests of the last 24 "
            f"hours with 429 (rate limited): lower the connection's requests_per_second or the pool's slots."
        )
    policy = integration.pii_redaction
    redaction = {"on": policy is not None, "rules": policy.describe() if policy else None, "stats": redacted}
    if policy is not None and redacted is not None and redacted.get("version") != policy.version:
        warnings.append(
            f"PII redaction rules changed (now {policy.version}, last load {redacted.get('version')}): rows stored "
            f"earlier are redacted under the old rules until the {settings.dag_id(integration.id, 'redact')} DAG "
            "re-redacts them."
        )
    per_day = [
        {"day": day, "interactions": counts["per_day"].get(day, 0)}
        for day in ((now - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(settings.UI_CHART_DAYS - 1, -1, -1))
    ]
    return {
        "id": integration.id,
        "provider": integration.provider,
        "label": integration.label,
        "description": integration.description,
        "conn_id": integration.conn_id,
        "auth_type": connection.get("auth_type") or _default_auth_type(integration.provider),
        "connection": connection,
        "schedule": integration.schedule,
        "schedule_interval_seconds": interval.total_seconds() if interval else None,
        "retention_policy": str(integration.retention),
        "dags": dags,
        "watermarks": watermark_rows,
        "freshness": freshness,
        "rows": {k: v for k, v in counts.items() if k != "per_day"},
        "per_day": per_day,
        "last_retention": retention,
        "reconciliation": completeness,
        "requests": requests,
        "redaction": redaction,
        "warnings": warnings,
        "fixes": fixes,
    }


class AirflowFacts:
    """Pools, connections and the newest runs per DAG and state, from Airflow's metadata database."""

    def __init__(self, pools: set[str], connections: dict[str, dict], runs: dict[str, dict[str, dict]]):
        self.pools = pools
        self.connections = connections
        self.runs = runs

    @classmethod
    def read(cls, dag_ids: list[str], conn_ids: list[str]) -> AirflowFacts:
        from airflow.models.connection import Connection
        from airflow.models.dagrun import DagRun
        from airflow.models.pool import Pool
        from airflow.utils.session import create_session

        runs: dict[str, dict[str, dict]] = {}
        with create_session() as session:
            pools = {name for (name,) in session.execute(sa.select(Pool.pool))}
            in_db = {
                row.conn_id: row
                for row in session.execute(sa.select(Connection).where(Connection.conn_id.in_(conn_ids))).scalars()
            }
            if dag_ids:
                at = sa.func.coalesce(DagRun.end_date, DagRun.start_date, DagRun.run_after)
                newest = sa.func.row_number().over(partition_by=(DagRun.dag_id, DagRun.state), order_by=at.desc())
                ranked = (
                    sa.select(DagRun.dag_id, DagRun.run_id, DagRun.state, at.label("at"), newest.label("n"))
                    .where(DagRun.dag_id.in_(dag_ids), DagRun.state.in_(("success", "failed", "running")))
                    .subquery()
                )
                for row in session.execute(sa.select(ranked).where(ranked.c.n == 1)):
                    moment = row.at if row.at is None or row.at.tzinfo else row.at.replace(tzinfo=UTC)
                    runs.setdefault(row.dag_id, {})[str(row.state)] = {"run_id": row.run_id, "at": moment}
                _add_failures(session, runs)
                _add_progress(session, runs)
            connections = {conn_id: _connection_facts(conn_id, in_db.get(conn_id)) for conn_id in conn_ids}
        return cls(pools, connections, runs)


def _add_failures(session: Any, runs: dict[str, dict[str, dict]]) -> None:
    """The plain failure line (cxsync.failure's XCom) of each DAG's newest failed run, when a task kept one."""
    from airflow.models.xcom import XComModel

    failed = {
        (dag_id, states["failed"]["run_id"]): states["failed"] for dag_id, states in runs.items() if "failed" in states
    }
    if not failed:
        return
    query = (
        sa.select(XComModel.dag_id, XComModel.run_id, XComModel.task_id, XComModel.value)
        .where(XComModel.key == failure.XCOM_KEY, XComModel.dag_id.in_({dag_id for dag_id, _ in failed}))
        .order_by(XComModel.timestamp)
    )
    for row in session.execute(query):
        run = failed.get((row.dag_id, row.run_id))
        value = XComModel.deserialize_value(row) if run is not None else None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        if isinstance(value, dict) and value.get("message"):
            run["failure"] = {**value, "task_id": row.task_id}  # the newest last: it wins


def _add_progress(session: Any, runs: dict[str, dict[str, dict]]) -> None:
    """Days done of days planned of each running backfill (its mapped `load_window` tasks, one per day)."""
    from airflow.models.taskinstance import TaskInstance as TI

    running = {
        (dag_id, states["running"]["run_id"]): states["running"]
        for dag_id, states in runs.items()
        if "running" in states and dag_id.endswith("_backfill")
    }
    if not running:
        return
    query = (
        sa.select(TI.dag_id, TI.run_id, TI.state, sa.func.count())
        .where(TI.dag_id.in_({d for d, _ in running}), TI.task_id == BACKFILL_DAY_TASK, TI.map_index >= 0)
        .group_by(TI.dag_id, TI.run_id, TI.state)
    )
    for dag_id, run_id, state, count in session.execute(query):
        if (run := running.get((dag_id, run_id))) is not None:
            progress = run.setdefault("progress", {"done": 0, "total": 0})
            progress["total"] += count
            if str(state) in ("success", "skipped"):
                progress["done"] += count


def axis_ticks(peak: int, steps: int = 4) -> list[int]:
    """Round tick values from 0 to at least `peak` (1, 2 or 5 times a power of ten apart): a chart's scale."""
    if peak <= 0:
        return [0, 1]
    raw = peak / steps
    power = 10 ** max(0, len(str(int(raw))) - 1)
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    top = -(-peak // step) * step
    return list(range(0, top + 1, step))


def progress_text(progress: dict | None, started: datetime | None, now: datetime) -> str | None:
    """ "5 of 28 days done, about 12 min left" (the estimate: the pace so far), or None before the days exist."""
    if not progress or not progress.get("total"):
        return None
    done, total = progress["done"], progress["total"]
    text = f"{done} of {total} day{'s' if total != 1 else ''} done"
    if done and started is not None and done < total:
        left = (now - started).total_seconds() / done * (total - done)
        text += f", about {fresh.duration(left)} left"
    return text


def _default_auth_type(provider: str) -> str | None:
    spec = registry.PROVIDERS.get(provider)
    return spec.default_auth_type or None if spec else None


def _connection_facts(conn_id: str, row: Any) -> dict[str, Any]:
    """Where the connection comes from, in Airflow's search order: environment variable, then a custom
    secrets backend, then the metadata database (`row`, already read for all connections at once)."""
    from airflow.configuration import ensure_secrets_loaded
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend
    from airflow.secrets.metastore import MetastoreBackend

    conn, source = None, ""
    for backend in ensure_secrets_loaded():
        if isinstance(backend, MetastoreBackend):
            conn, source = row, "metadata database"
        elif isinstance(backend, EnvironmentVariablesBackend):
            conn, source = backend.get_connection(conn_id), "environment variable"
        else:
            try:
                conn, source = backend.get_connection(conn_id), "secrets backend"
            except Exception:  # an unreachable backend: Airflow's lookup goes on to the next one too
                log.debug("secrets backend %s failed for %s", type(backend).__name__, conn_id, exc_info=True)
        if conn is not None:
            break
    if conn is None:
        return {"found": False}
    try:
        extra = conn.extra_dejson or {}
    except Exception:
        extra = {}
    return {
        "found": True,
        "source": source,
        "conn_type": conn.conn_type,
        "auth_type": str(extra.get("auth_type") or "") or _implied_auth_type(conn.conn_type, extra),
        "has_refresh_token": bool(extra.get("refresh_token")),
    }


def schedule_interval(schedule: str, now: datetime) -> timedelta | None:
    """The time between two runs of a cron schedule (presets included), around now (to the hour)."""
    return _interval(schedule, now.replace(minute=0, second=0, microsecond=0))


@functools.lru_cache(maxsize=512)
def _interval(schedule: str, now: datetime) -> timedelta | None:
    from croniter import croniter

    try:
        it = croniter(schedule, now)
        first = it.get_next(datetime)
        return it.get_next(datetime) - first
    except (ValueError, KeyError):
        return None


def _implied_auth_type(conn_type: str | None, extra: dict) -> str | None:
    """A LivePerson connection without `auth_type` is OAuth 1.0 when it carries both token values (the hook's rule)."""
    if conn_type == "liveperson" and extra.get("access_token") and extra.get("access_token_secret"):
        return "oauth1"
    return None


def _roster_warnings(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(w) for w in value] if isinstance(value, list) else []


def _parse(watermark: str | None) -> datetime | None:
    if not watermark:
        return None
    try:
        return parse_watermark(watermark)
    except ValueError:
        return None


def _repaired(record: dict) -> bool:
    """Every missing, stale or deleted record of a checked day was repaired (counts the check made before)."""
    found = sum(record.get(k) or 0 for k in ("missing", "stale", "deleted"))
    return found > 0 and (record.get("repaired") or 0) >= found


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "an unknown time"
