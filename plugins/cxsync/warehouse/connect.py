"""Where the warehouse lives: the `cxsync_warehouse` Airflow connection, else the embedded SQLite file."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from cxsync import settings

log = logging.getLogger(__name__)

_POSTGRES_TYPES = {"postgres", "postgresql"}
# Extras of Airflow's postgres connection that are Airflow's own, not libpq's (PostgresHook skips them too);
# every other extra (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslcrl`, `sslpassword`, `target_session_attrs`,
# `application_name`, `connect_timeout`, `keepalives*`, `options`...) is a libpq connection parameter.
_AIRFLOW_ONLY_EXTRAS = frozenset(
    {
        "iam",
        "redshift",
        "redshift-serverless",
        "cursor",
        "cluster-identifier",
        "workgroup-name",
        "aws_conn_id",
        "azure_conn_id",
        "sqlalchemy_scheme",
        "sqlalchemy_query",
        "description",
    }
)


def default_sqlite_path() -> Path:
    """`CXSYNC_WAREHOUSE_PATH`, else `$AIRFLOW_HOME/cxsync.db` (docs/architecture.md, "Warehouse")."""
    env = os.environ.get(settings.WAREHOUSE_PATH_ENV)
    if env:
        return Path(env)
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / settings.WAREHOUSE_FILE_NAME


def url_from_connection(conn) -> URL | str:
    """An SQLAlchemy URL for an Airflow connection of type postgres or sqlite (or any with a hook URL)."""
    conn_type = (conn.conn_type or "").lower()
    if conn_type in _POSTGRES_TYPES:
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
            query=_libpq_parameters(conn),
        )
    if conn_type == "sqlite":
        # Airflow's sqlite connection keeps the file path in `host`.
        return URL.create("sqlite", database=conn.host or conn.schema)
    hook = conn.get_hook()
    url = getattr(hook, "sqlalchemy_url", None)
    if url is None:
        raise ValueError(
            f"connection {conn.conn_id!r} of type {conn.conn_type!r} cannot serve as the cxsync warehouse: "
            "use a postgres or sqlite connection"
        )
    return url


def _libpq_parameters(conn) -> dict[str, str]:
    """The connection's extras that libpq reads (TLS above all: `sslmode`, `sslrootcert`, `sslcert`, `sslkey`),
    as Airflow's own PostgresHook passes them; dropping them would let libpq skip verifying the server."""
    try:
        extra = conn.extra_dejson or {}
    except (TypeError, ValueError):
        extra = {}
    params: dict[str, str] = {}
    for key, value in extra.items():
        if key in _AIRFLOW_ONLY_EXTRAS or value is None or value == "":
            continue
        if isinstance(value, dict | list):
            raise ValueError(
                f"connection {conn.conn_id!r}: extra `{key}` must be a single value (a libpq connection "
                f"parameter), not {type(value).__name__}"
            )
        params[str(key)] = str(int(value)) if isinstance(value, bool) else str(value)
    query = extra.get("sqlalchemy_query")
    if isinstance(query, dict):
        params.update({str(k): str(v) for k, v in query.items()})
    return params


def _connection_or_none(conn_id: str):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def resolve_url(conn_id: str | None = None) -> URL | str:
    conn_id = conn_id or settings.DEFAULT_WAREHOUSE_CONN_ID
    conn = _connection_or_none(conn_id)
    if conn is not None:
        log.info("warehouse: Airflow connection %r (%s)", conn_id, conn.conn_type)
        return url_from_connection(conn)
    path = default_sqlite_path()
    log.info("warehouse: no connection %r, using the embedded SQLite file %s", conn_id, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return URL.create("sqlite", database=str(path))


def _switch_to_wal(cursor, attempts: int = 200) -> None:
    """Turning a new file to WAL needs a moment alone with it, and SQLite answers "database is locked" at once
    (no busy wait) when another process is doing the same: try again shortly."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def make_engine(url: URL | str) -> sa.Engine:
    url = sa.make_url(url)
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets mapped tasks in several processes read while one writes; busy_timeout makes
            # writers wait for each other instead of failing with "database is locked".
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA busy_timeout=60000")
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)
