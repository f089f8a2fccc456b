"""What the status page and `/api/status` say about the warehouse connection: host, port, database and TLS mode
to viewers; to admins of that connection also which other options are set, never a value."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from airflow.models.connection import Connection
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.ui.test_connect_flow import BASE_URL, PerConnectionAuthManager, User

from cxsync.ui import security, status
from cxsync.ui.app import app

SECRETS = ("s3cret-key-pass", "pg-password-never-shown", "/secret/path/client.key")


def test_a_warehouse_is_described_by_host_port_database_and_tls_mode_only():
    url = sa.URL.create(
        "postgresql+psycopg2", username="loader", password=SECRETS[1], host="db.example", port=5433,
        database="cx", query={"sslmode": "verify-full", "sslpassword": SECRETS[0], "sslkey": SECRETS[2]},
    )  # fmt: skip
    viewer = status.describe_warehouse(url)
    assert viewer["text"] == "postgresql://db.example:5433/cx (TLS: sslmode=verify-full)"
    assert "options_set" not in viewer and "loader" not in json.dumps(viewer)
    admin = status.describe_warehouse(url, show_option_names=True)
    assert admin["options_set"] == ["password", "sslkey", "sslpassword"]
    assert not any(secret in json.dumps(admin) for secret in SECRETS)
    plain = status.describe_warehouse(sa.URL.create("postgresql+psycopg2", host="db", database="cx"))
    assert "sslmode not set" in plain["text"]


@pytest.mark.postgres
def test_viewers_never_see_the_warehouse_connections_options(monkeypatch, tmp_path):
    conn = {
        "conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "schema": "postgres", "login": "postgres",
        "password": SECRETS[1], "extra": {"sslmode": "disable", "sslpassword": SECRETS[0], "sslkey": SECRETS[2]},
    }  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_CXSYNC_WAREHOUSE", json.dumps(conn))
    (tmp_path / "integrations.yaml").write_text("integrations: []\n")
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(tmp_path / "integrations.yaml"))
    monkeypatch.setattr(status.AirflowFacts, "read", classmethod(lambda cls, *_: cls(set(), {}, {})))
    monkeypatch.setattr(Connection, "get_team_name", staticmethod(lambda conn_id, **_: None))
    manager = PerConnectionAuthManager()
    monkeypatch.setattr("airflow.api_fastapi.app.get_auth_manager", lambda: manager)
    current = {"user": User("viewer")}
    app.dependency_overrides[security.current_user] = lambda: current["user"]
    server = FastAPI()
    server.mount("/cxsync", app)
    client = TestClient(server, base_url=BASE_URL)
    try:
        for user, sees_names in ((User("viewer"), False), (User("admin", {("cxsync_warehouse", None)}), True)):
            current["user"] = user
            api = client.get("/cxsync/api/status")
            page = client.get("/cxsync/", headers={"Accept": "text/html"})
            assert api.status_code == page.status_code == 200
            warehouse = api.json()["warehouse"]
            assert warehouse["text"] == "postgresql://127.0.0.1:5432/postgres (TLS: sslmode=disable)"
            assert warehouse["text"] in page.text
            for text in (api.text, page.text):
                assert not any(secret in text for secret in SECRETS), user.name
                assert ("sslpassword" in text) is sees_names, user.name
            if sees_names:
                assert warehouse["options_set"] == ["password", "sslkey", "sslpassword"]
                assert 'id="warehouse-options"' in page.text
    finally:
        app.dependency_overrides.pop(security.current_user, None)
