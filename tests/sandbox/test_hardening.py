"""The sandbox cannot be mistaken for production, nor reached from a web page: loopback by default, Host header
checked (DNS rebinding), authorize page redirecting only to loopback, connection ids and banner that say sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def client_id(server) -> str:
    return json.loads(server.connection_uris()["sandbox_helpdesk_oauth"])["login"]


def test_every_printed_connection_id_says_sandbox(sandbox_server):
    ids = set(sandbox_server.connection_uris())
    assert ids and all(conn_id.startswith("sandbox_") for conn_id in ids), ids


def test_a_non_loopback_host_needs_an_explicit_flag():
    refused = subprocess.run(
        [sys.executable, "-m", "cxsync_dev.sandbox", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    assert refused.returncode == 2
    assert "--host 0.0.0.0 is not a loopback address" in refused.stderr and "--allow-non-loopback" in refused.stderr
    assert "AIRFLOW_CONN" not in refused.stdout


def test_a_foreign_host_header_is_refused(sandbox_server, resolve_to_loopback):
    # DNS rebinding: a page on rebind.evil.example re-points its name at 127.0.0.1 and calls the admin API,
    # which mints refresh tokens. Its requests carry its own name in the Host header.
    resolve_to_loopback("rebind.evil.example")
    mint = "/_sandbox/helpdesk/oauth/refresh-token"
    rebound = requests.post(f"http://rebind.evil.example:{sandbox_server.port}{mint}", timeout=10)
    assert rebound.status_code == 400 and "refresh_token" not in rebound.text
    assert requests.post(sandbox_server.base_url + mint, timeout=10).status_code == 200
    assert requests.post(f"http://localhost:{sandbox_server.port}{mint}", timeout=10).status_code == 200


def test_the_authorize_page_only_redirects_to_loopback(sandbox_server):
    params = {"response_type": "code", "client_id": client_id(sandbox_server), "state": "s"}
    evil = {**params, "redirect_uri": "https://collector.evil.example/callback"}
    page = requests.get(sandbox_server.base_url + "/", params=evil, timeout=10)
    assert page.url.startswith(sandbox_server.base_url + "/ooops?") and "loopback" in page.text  # the error page
    approve = requests.post(
        sandbox_server.base_url + "/", data={**evil, "decision": "approve"}, allow_redirects=False, timeout=10
    )
    assert approve.status_code == 302 and approve.headers["location"].startswith("/ooops?"), (
        "a code was sent off the machine"
    )
    ok = {**params, "redirect_uri": "http://127.0.0.1:9/callback"}
    assert requests.get(sandbox_server.base_url + "/", params=ok, timeout=10).status_code == 200


def test_the_admin_api_refuses_calls_a_web_page_elsewhere_can_make(sandbox_server):
    """A page on any site can POST `text/plain` (or a form) to 127.0.0.1 without a preflight: the admin API
    must not act on it. Programs (JSON bodies, no foreign Origin) still can."""
    clock = sandbox_server.base_url + "/_sandbox/clock"
    before = requests.get(clock, timeout=10).json()["now"]
    body = '{"advance": "1d"}'
    plain = requests.post(clock, data=body, headers={"Content-Type": "text/plain"}, timeout=10)
    form = requests.post(clock, data={"advance": "1d"}, timeout=10)
    foreign = requests.post(clock, json={"advance": "1d"}, headers={"Origin": "https://evil.example"}, timeout=10)
    fetch_site = requests.post(clock, json={"advance": "1d"}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=10)
    mint = requests.post(
        sandbox_server.base_url + "/_sandbox/helpdesk/oauth/refresh-token",
        headers={"Origin": "null", "Content-Type": "text/plain"},
        timeout=10,
    )
    assert [r.status_code for r in (plain, form, foreign, fetch_site, mint)] == [415, 415, 403, 403, 403]
    assert "refresh_token" not in mint.text
    assert requests.get(clock, timeout=10).json()["now"] == before
    assert requests.post(clock, json={"advance": "1d"}, timeout=10).status_code == 200
    same = requests.post(clock, json={"advance": "1h"}, headers={"Origin": sandbox_server.base_url}, timeout=10)
    assert same.status_code == 200


def test_the_sandbox_connections_carry_the_loopback_opt_in(sandbox_server):
    """The sandbox serves plain http on loopback: the connections it prints opt in, so users need not."""
    for conn_id, text in sandbox_server.connection_uris().items():
        conn = json.loads(text)
        if "accounts_url" in conn["extra"] or conn["conn_type"] == "liveperson":
            assert conn["extra"]["allow_plain_http_loopback"] is True, conn_id
