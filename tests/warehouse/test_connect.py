"""Where the warehouse lives: the `cxsync_warehouse` Airflow connection, else the embedded SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from cxsync.records import AgentRecord
from cxsync.warehouse import Warehouse
from cxsync.warehouse.connect import default_sqlite_path, make_engine, resolve_url


@pytest.fixture(autouse=True)
def _no_warehouse_env(monkeypatch, tmp_path):
    for name in ("AIRFLOW_CONN_CXSYNC_WAREHOUSE", "AIRFLOW_CONN_QA_DW", "CXSYNC_WAREHOUSE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))


def test_postgres_uri_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", "postgresql://qa:s3cr%2Ft%40x@db.internal:6543/cxsync")
    url = sa.make_url(resolve_url())
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "qa",
        "s3cr/t@x",
        "db.internal",
        6543,
        "cxsync",
    )


def test_postgres_json_connection_with_a_custom_conn_id(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_QA_DW",
        json.dumps(
            {"conn_type": "postgres", "host": "pg", "login": "u", "password": "p:w", "schema": "qa", "port": 5432}
        ),
    )
    url = sa.make_url(resolve_url("qa_dw"))
    assert (url.drivername, url.host, url.database, url.password) == ("postgresql+psycopg2", "pg", "qa", "p:w")


def test_sqlite_uri_connection(monkeypatch, tmp_path):
    target = tmp_path / "dw" / "qa.db"
    monkeypatch.setenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", f"sqlite:///{target}")
    url = sa.make_url(resolve_url())
    assert url.get_backend_name() == "sqlite"
    assert Path(url.database) == target


def test_connection_type_that_cannot_hold_a_warehouse(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", json.dumps({"conn_type": "http", "host": "example.com"}))
    with pytest.raises(ValueError, match="use a postgres or sqlite connection"):
        resolve_url()


def test_fallback_to_the_file_named_by_cxsync_warehouse_path(monkeypatch, tmp_path):
    target = tmp_path / "somewhere" / "cx.db"
    monkeypatch.setenv("CXSYNC_WAREHOUSE_PATH", str(target))
    assert default_sqlite_path() == target
    url = sa.make_url(resolve_url())
    assert url.get_backend_name() == "sqlite" and Path(url.database) == target
    assert target.parent.is_dir()  # created, so SQLite can create the file


def test_fallback_to_airflow_home(tmp_path):
    url = sa.make_url(resolve_url())
    assert Path(url.database) == tmp_path / "home" / "cxsync.db"


def test_from_airflow_uses_the_postgres_connection_end_to_end(monkeypatch, pg_url):
    # An Airflow connection URI uses the plain `postgresql://` scheme.
    plain = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    monkeypatch.setenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", plain)
    wh = Warehouse.from_airflow()
    try:
        assert wh.dialect == "postgresql"
        wh.ensure_schema()
        wh.sync_agents("lp", [AgentRecord("a1")])
        assert wh.table_counts()["cx_agents"] == 1
    finally:
        wh.dispose()


def test_from_airflow_without_connection_builds_the_embedded_sqlite_file(tmp_path):
    wh = Warehouse.from_airflow()
    try:
        assert wh.dialect == "sqlite"
        wh.ensure_schema()
        assert (tmp_path / "home" / "cxsync.db").is_file()
    finally:
        wh.dispose()


def test_sqlite_engine_uses_wal_and_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
    finally:
        engine.dispose()


def test_a_warehouse_other_than_postgres_or_sqlite_is_refused_plainly():
    import types

    fake_driver = types.SimpleNamespace(paramstyle="pyformat", version_info=(1, 0, 0), Error=Exception)
    engine = sa.create_engine("mysql+pymysql://qa@db/cx", module=fake_driver)
    with pytest.raises(ValueError, match="runs on PostgreSQL or SQLite, not mysql"):
        Warehouse(engine)


def test_postgres_tls_extras_reach_libpq(monkeypatch):
    extra = {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "sslcert": "/c.pem", "sslkey": "/k.pem"}
    extra |= {"keepalives": True, "sqlalchemy_scheme": "postgresql", "cursor": "dictcursor"}  # last two: Airflow's
    conn = {"conn_type": "postgres", "host": "db.internal", "login": "u", "password": "p", "schema": "qa"}
    monkeypatch.setenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", json.dumps({**conn, "extra": extra}))
    query = dict(sa.make_url(resolve_url()).query)
    assert query == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "sslcert": "/c.pem",
        "sslkey": "/k.pem",
        "keepalives": "1",
    }


def test_sslmode_require_refuses_a_server_without_tls_before_sending_the_login(monkeypatch):
    from support.hostile import NoTlsPostgres

    server = NoTlsPostgres()
    try:
        conn = {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": server.port,
            "login": "qa_user",
            "password": "warehouse-password",
            "schema": "qa",
            "extra": {"sslmode": "require", "connect_timeout": "5"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", json.dumps(conn))
        engine = make_engine(resolve_url())
        with pytest.raises(sa.exc.OperationalError, match="SSL"), engine.connect():
            pass
        engine.dispose()
        assert server.ssl_requests >= 1
        assert server.startup_messages == [], "the user name went out in clear text to a server without TLS"
    finally:
        server.stop()
