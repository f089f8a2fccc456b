"""`python -m cxsync.helpdesk_oauth`: the OAuth connect command, end to end against the sandbox's authorize page.

The test plays the browser: it opens the printed authorize URL, presses Approve on the sandbox's page and
follows the redirect to the command's loopback listener, which exchanges the code and stores the token.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cxsync import helpdesk_oauth
from cxsync.helpdesk_oauth import ConnectError, authorize_url, connect
from cxsync.hooks.helpdesk import HelpDeskHook
from support.helpdesk import HelpDeskAdmin, play_browser
from support.http_stub import Answer, Stub

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hd(hd_sandbox) -> HelpDeskAdmin:
    return hd_sandbox()


def start_command(conn_id: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, list[str]]:
    """Run the command; return it, the authorize URL it printed, and the lines printed so far."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cxsync.helpdesk_oauth",
            "--conn-id",
            conn_id,
            "--port",
            "0",
            "--no-browser",
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
    )
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("http"):
            return process, line.strip(), lines
    process.kill()
    raise AssertionError(f"no authorize URL printed: {lines} {process.stderr.read()}")


def finish(process: subprocess.Popen, lines: list[str]) -> list[str]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return lines + out.splitlines()


def test_connect_command_with_an_env_var_connection_prints_the_json_to_store(hd):
    conn = hd.connection("sandbox_helpdesk_oauth")
    process, url, lines = start_command("sandbox_helpdesk_oauth", dict(os.environ))
    assert url.startswith(f"{conn['extra']['accounts_url']}/?response_type=code&client_id={conn['login']}")
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url and "%2Fcallback" in url and "&state=" in url

    landing = play_browser(url)
    assert landing.status_code == 200 and "HelpDesk authorized" in landing.text  # the command's own page
    output = finish(process, lines)

    assert any("comes from the environment variable AIRFLOW_CONN_SANDBOX_HELPDESK_OAUTH" in line for line in output)
    stored = json.loads(output[-1])
    assert stored["extra"]["auth_type"] == "oauth2" and stored["extra"]["refresh_token"].startswith("dal:")
    assert stored["login"] == conn["login"] and stored["port"] == conn["port"]
    # The printed connection works: the refresh token it holds gets access tokens.
    hd.set_connection("sandbox_helpdesk_oauth", stored)
    ok, message = HelpDeskHook("sandbox_helpdesk_oauth").test_connection()
    assert ok, message


def test_connect_command_stores_the_refresh_token_in_the_metadata_database(hd, tmp_path):
    """A connection kept in Airflow's database is updated in place."""
    conn = hd.connection("sandbox_helpdesk_oauth")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    run_python(SETUP_DB, env, json.dumps(conn))
    process, url, lines = start_command("hd_db_oauth", env)
    play_browser(url)
    output = finish(process, lines)
    assert any("stored in connection 'hd_db_oauth' (metadata database)" in line for line in output)
    assert not any("refresh_token" in line for line in output)  # no secret printed when it could be stored

    extra = json.loads(run_python(READ_EXTRA, env))
    assert extra["refresh_token"].startswith("dal:") and extra["auth_type"] == "oauth2"
    assert extra["accounts_url"] == conn["extra"]["accounts_url"]  # the rest of the extra is kept
    hd.derive("hd_from_db", base="sandbox_helpdesk_oauth", extra={"refresh_token": extra["refresh_token"]})
    assert len(HelpDeskHook("hd_from_db").agents()) == 8


# One interpreter each (the airflow CLI costs seconds per call): a fresh metadata database with the
# connection in it, and the connection's extra as the database holds it afterwards.
SETUP_DB = """
import json, sys
from airflow.models.connection import Connection
from airflow.utils.db import initdb
from airflow.utils.session import create_session
initdb()
conn = json.loads(sys.argv[1])
with create_session() as session:
    session.add(Connection(conn_id="hd_db_oauth", conn_type=conn["conn_type"], host=conn["host"],
                           schema=conn["schema"], port=conn["port"], login=conn["login"],
                           password=conn["password"], extra=json.dumps(conn["extra"])))
"""
READ_EXTRA = """
from airflow.models.connection import Connection
from airflow.utils.session import create_session
with create_session() as session:
    print(session.query(Connection).filter(Connection.conn_id == "hd_db_oauth").one().extra)
"""


def run_python(script: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def run_connect_in_background(conn_id: str, timeout: float = 20) -> tuple[threading.Thread, queue.Queue, dict]:
    urls: queue.Queue = queue.Queue()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = connect(
                conn_id, port=0, open_browser=False, timeout=timeout, out=io.StringIO(), on_authorize_url=urls.put
            )
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, urls, outcome


def url_param(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query)[name][0]


def test_callbacks_without_the_state_are_refused_and_cannot_end_the_sign_in(hd):
    """A forged code, a forged `?error=` and a non-ASCII `state` each get 400 (no crash); the real answer
    still completes the sign-in."""
    thread, urls, outcome = run_connect_in_background("sandbox_helpdesk_oauth")
    url = urls.get(timeout=30)
    redirect_uri = url_param(url, "redirect_uri")
    forged_code = requests.get(redirect_uri, params={"code": "dal:stolen", "state": "not-the-state"}, timeout=10)
    forged_error = requests.get(redirect_uri, params={"error": "access_denied"}, timeout=10)
    non_ascii = requests.get(redirect_uri, params={"code": "x", "state": "\u00e9t\u00e9"}, timeout=10)
    assert [r.status_code for r in (forged_code, forged_error, non_ascii)] == [400, 400, 400]
    assert "`state` does not match" in forged_error.text and "still waiting" in forged_error.text
    assert thread.is_alive() and "refresh_token" not in hd.connection("sandbox_helpdesk_oauth")["extra"]

    landing = play_browser(url)
    thread.join(30)
    assert landing.status_code == 200, landing.text
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].account_id == hd.info()["account_id"]


def test_without_the_right_state_the_command_times_out_and_stores_nothing(hd):
    thread, urls, outcome = run_connect_in_background("sandbox_helpdesk_oauth", timeout=2)
    redirect_uri = url_param(urls.get(timeout=30), "redirect_uri")
    requests.get(redirect_uri, params={"code": "dal:stolen", "state": "not-the-state"}, timeout=10)
    thread.join(30)
    assert isinstance(outcome["error"], ConnectError)
    assert "1 request(s) with another `state` were refused" in str(outcome["error"])
    assert "refresh_token" not in hd.connection("sandbox_helpdesk_oauth")["extra"]


def test_an_idle_connection_does_not_block_the_listener(hd, monkeypatch):
    monkeypatch.setattr(helpdesk_oauth, "REQUEST_TIMEOUT_SECONDS", 0.5)
    thread, urls, outcome = run_connect_in_background("sandbox_helpdesk_oauth")
    url = urls.get(timeout=30)
    parts = urlsplit(url_param(url, "redirect_uri"))
    with socket.create_connection((parts.hostname, parts.port), timeout=5):  # connects, never sends a byte
        landing = play_browser(url)
    thread.join(30)
    assert landing.status_code == 200 and "error" not in outcome, outcome.get("error")


def test_provider_text_is_printed_without_control_characters(hd):
    thread, urls, outcome = run_connect_in_background("sandbox_helpdesk_oauth")
    url = urls.get(timeout=30)
    answer = requests.get(
        url_param(url, "redirect_uri"),
        params={
            "state": url_param(url, "state"),
            "error": "access_denied\x1b[2J",
            "error_description": "\x1b]0;pwned\x07gone\r\nfake: ok\x9b" + "x" * 5000,
        },
        timeout=10,
    )
    thread.join(30)
    message = str(outcome["error"])
    assert answer.status_code == 400
    assert message.startswith("HelpDesk did not authorize the app: access_denied[2J (]0;pwnedgonefake: ok")
    assert not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in message)
    assert len(message) < 500


@pytest.mark.parametrize(("extra", "method"), [({}, "s256"), ({"pkce_method": "S256"}, "S256")])
def test_pkce_challenge_in_the_authorize_url_and_verifier_in_the_code_exchange(hd, extra, method):
    """LiveChat documents `code_challenge_method=s256` (lower case): sent by default; the extra `pkce_method`
    switches to RFC 7636's `S256`. Either way the challenge is the SHA-256 of the verifier sent at the exchange."""
    stub = Stub().add(Answer(body={"access_token": "at-1", "refresh_token": "rt-1", "account_id": "acc-9"}))
    try:
        hd.derive("hd_pkce", base="sandbox_helpdesk_oauth", extra={"accounts_url": stub.url(""), **extra})
        thread, urls, outcome = run_connect_in_background("hd_pkce")
        url = urls.get(timeout=30)
        assert url_param(url, "code_challenge_method") == method
        requests.get(
            url_param(url, "redirect_uri"), params={"state": url_param(url, "state"), "code": "c1"}, timeout=10
        )
        thread.join(30)
        assert "error" not in outcome, outcome.get("error")
        form = parse_qs(stub.received[0].body.decode())
        verifier = form["code_verifier"][0]
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        assert digest == url_param(url, "code_challenge") and 43 <= len(verifier) <= 128
        assert form["code"] == ["c1"] and stub.received[0].path == "/v2/token"
    finally:
        stub.stop()


def test_an_unknown_pkce_method_is_refused_naming_the_extra(hd):
    hd.derive("hd_pkce_bad", base="sandbox_helpdesk_oauth", extra={"pkce_method": "plain"})
    with pytest.raises(ConnectError, match="extra `pkce_method` is 'plain'; use s256 or S256"):
        connect("hd_pkce_bad", port=0, open_browser=False, timeout=1, out=io.StringIO())


def test_a_refused_sign_in_says_where_the_reason_is_and_can_be_cancelled_at_once(hd):
    """With RFC 7636's `S256` the sandbox (as LiveChat documents) refuses on its error page, and nothing ever
    reaches the callback: before waiting, the command says where the reason is shown and which PKCE method it
    sent; cancelling ends the wait at once instead of after the timeout."""
    hd.derive("hd_refused", base="sandbox_helpdesk_oauth", extra={"pkce_method": "S256"})
    cancel = threading.Event()
    out = io.StringIO()
    urls: queue.Queue = queue.Queue()
    outcome: dict = {}

    def run() -> None:
        try:
            connect("hd_refused", port=0, open_browser=False, timeout=300, out=out, on_authorize_url=urls.put,
                    cancel=cancel)  # fmt: skip
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = urls.get(timeout=30)
    landing = requests.get(url, timeout=30)  # the browser: the authorize page sends it to the error page
    assert urlsplit(landing.url).path == "/ooops" and "code_challenge_method" in landing.text
    accounts_url = hd.connection("hd_refused")["extra"]["accounts_url"]
    for _ in range(50):
        if "Enter or Ctrl-C cancels" in out.getvalue():
            break
        threading.Event().wait(0.1)
    printed = out.getvalue()
    assert f"its error page {accounts_url}/ooops shows the reason" in printed
    assert "code_challenge_method=S256 (the connection's extra `pkce_method`" in printed and "s256" in printed
    started = time.monotonic()
    cancel.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert "sign-in cancelled; nothing was stored" in str(outcome["error"])
    assert "refresh_token" not in hd.connection("hd_refused")["extra"]


def test_dribbling_and_idle_connections_neither_hold_nor_delay_the_listener(monkeypatch):
    """Four idle connections and one sending a byte every 2 s: the real callback is answered at once, and the
    dribbler is cut at the per-connection deadline although it never pauses long enough for a read timeout."""
    monkeypatch.setattr(helpdesk_oauth, "REQUEST_TIMEOUT_SECONDS", 3.0)
    listener = helpdesk_oauth.CallbackListener(0, "the-state")
    waited: dict = {}
    waiter = threading.Thread(target=lambda: waited.update(callback=listener.wait(30)), daemon=True)
    waiter.start()
    idle = [socket.create_connection(("127.0.0.1", listener.port), timeout=10) for _ in range(4)]
    dribbler = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
    cut = threading.Event()

    def dribble() -> None:
        started = time.monotonic()
        for byte in b"GET /callback?state=the-state&code=slow HTTP/1.1\r\n":
            try:
                dribbler.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(2)  # below the read timeout (3 s here): only a whole-connection deadline cuts it
            try:
                if dribbler.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                    break  # the listener closed it
            except BlockingIOError:
                continue
            except OSError:
                break
        waited["dribble_seconds"] = time.monotonic() - started
        cut.set()

    try:
        threading.Thread(target=dribble, daemon=True).start()
        time.sleep(0.5)
        started = time.monotonic()
        answer = requests.get(listener.redirect_uri, params={"state": "the-state", "code": "real"}, timeout=10)
        assert answer.status_code == 200 and time.monotonic() - started < 1.5
        waiter.join(10)
        assert waited["callback"].code == "real"
    finally:
        for sock in idle:
            sock.close()
    assert cut.wait(20), "the dribbling connection was never cut"
    assert waited["dribble_seconds"] < 10
    dribbler.close()


def test_denied_authorization_ends_the_command_in_plain_words(hd):
    thread, urls, outcome = run_connect_in_background("sandbox_helpdesk_oauth")
    landing = play_browser(urls.get(timeout=30), decision="deny")
    thread.join(30)
    assert landing.status_code == 400
    assert "HelpDesk did not authorize the app: access_denied" in str(outcome["error"])


def test_other_requests_to_the_listener_do_not_end_the_wait(hd):
    thread, urls, outcome = run_connect_in_background("sandbox_helpdesk_oauth")
    url = urls.get(timeout=30)
    base = requests.utils.unquote(url.split("redirect_uri=")[1].split("&")[0]).rsplit("/", 1)[0]
    assert requests.get(base + "/favicon.ico", timeout=10).status_code == 404
    play_browser(url)
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].account_id == hd.info()["account_id"]


def test_a_token_connection_is_refused_before_anything_starts(hd):
    with pytest.raises(ConnectError, match="set its extra `auth_type` to `oauth2`"):
        connect("sandbox_helpdesk_main", port=0, open_browser=False, timeout=1, out=io.StringIO())


def test_authorize_url_shape():
    url = authorize_url("https://accounts.livechat.com/", "abc", "http://127.0.0.1:8976/callback", "s1", "ch")
    assert url == (
        "https://accounts.livechat.com/?response_type=code&client_id=abc"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8976%2Fcallback&state=s1"
        "&code_challenge=ch&code_challenge_method=S256"
    )
