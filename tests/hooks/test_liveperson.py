"""LivePersonHook against the sandbox over real HTTP: discovery, both auth methods, the Test button,
the Users-permission message, secrets masking, and recovery from the sandbox's injected faults."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cxsync import settings
from cxsync.errors import AuthenticationError, PermissionDenied, ProviderRequestError
from cxsync.hooks.liveperson import LivePersonHook, users_permission_message
from cxsync.http import ConnectionSettingError
from support.liveperson import FAST_EXTRAS, LPSandbox, export_connections, set_connection, start_lp_sandbox


@pytest.fixture
def lp(monkeypatch) -> LPSandbox:
    sandbox = start_lp_sandbox()
    export_connections(sandbox, monkeypatch)
    yield sandbox
    sandbox.server.stop()


def recorded(hook: LivePersonHook) -> list:
    """Every request the hook puts on the wire (as sent), via a requests response hook."""
    sent: list = []
    hook.get_conn().session.hooks["response"].append(lambda response, *a, **k: sent.append(response.request))
    return sent


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def last_hour(now: datetime) -> dict:
    return {"start": {"from": int((now - timedelta(hours=1)).timestamp() * 1000), "to": int(now.timestamp() * 1000)}}


# ---- connection fields --------------------------------------------------------------------------------


def test_connection_defaults(monkeypatch):
    set_connection(
        monkeypatch,
        "lp_defaults",
        {
            "conn_type": "liveperson",
            "login": "key",
            "password": "secret-value-1",
            "extra": {"account_id": 123, "access_token": "tok-value", "access_token_secret": "tok-secret-1"},
        },
    )
    s = LivePersonHook("lp_defaults").connection
    assert (s.csds_host, s.scheme, s.port) == ("api.liveperson.net", "https", None)
    assert (s.account_id, s.auth_type, s.source, s.users_api_version) == ("123", "oauth1", "cxsync", "4.0")
    assert s.tunables.requests_per_second == 5.0
    assert "secret-value-1" not in repr(s) and "tok-secret-1" not in repr(s)


def test_client_credentials_without_auth_type_are_oauth2_and_old_keys_are_oauth1_with_a_warning(monkeypatch, caplog):
    base = {"conn_type": "liveperson", "login": "client", "password": "secret-value-2", "extra": {"account_id": "1"}}
    set_connection(monkeypatch, "lp_new", base)
    assert LivePersonHook("lp_new").connection.auth_type == "oauth2"
    old = {**base, "extra": {"account_id": "1", "access_token": "t", "access_token_secret": "ts"}}
    set_connection(monkeypatch, "lp_old", old)
    with caplog.at_level("WARNING", logger="cxsync.hooks.liveperson"):
        assert LivePersonHook("lp_old").connection.auth_type == "oauth1"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "read-only since 30 Sep 2025" in warned and "31 May 2026" in warned and "Move to OAuth 2.0" in warned


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["extra"].pop("account_id"), "extra `account_id` is required"),
        (lambda c: c["extra"].update(auth_type="saml"), "`auth_type` must be oauth1 or oauth2"),
        (lambda c: c["extra"].update(source="x" * 21), "`source` must be at most 20 characters"),
        # An OAuth 1.0 connection (said so) without both token values.
        (lambda c: c["extra"].update(auth_type="oauth1", access_token_secret=""), "`access_token_secret`"),
        # What Airflow's connection form saves for a field left empty: a null, never the text "None".
        (lambda c: c["extra"].update(auth_type="oauth1", access_token=None), "`access_token`"),
        (lambda c: c.update(schema="ftp"), "`schema` must be https or http"),
        (lambda c: c.update(password=""), "`password` must hold the App Secret"),
        (lambda c: c["extra"].update(requests_per_second="fast"), "`requests_per_second` must be a number"),
        (lambda c: c["extra"].update(max_attempts=0), "`max_attempts` must be a whole number >= 1"),
    ],
)
def test_bad_connection_fields_are_named_in_the_error(monkeypatch, change, message):
    conn = {
        "conn_type": "liveperson",
        "login": "key",
        "password": "secret",
        "extra": {"account_id": "1", "access_token": "t", "access_token_secret": "s"},
    }
    change(conn)
    set_connection(monkeypatch, "lp_bad", conn)
    with pytest.raises(ConnectionSettingError, match="'lp_bad'") as info:
        LivePersonHook("lp_bad").connection  # noqa: B018
    assert message in str(info.value)
    ok, answer = LivePersonHook("lp_bad").test_connection()
    assert not ok and message in answer


def test_oauth2_needs_no_access_token(monkeypatch):
    set_connection(
        monkeypatch,
        "lp_o2",
        {
            "conn_type": "liveperson",
            "login": "client",
            "password": "secret",
            # The form saves the OAuth 1.0 fields it showed as nulls.
            "extra": {"account_id": "1", "auth_type": "oauth2", "access_token": None, "access_token_secret": None},
        },
    )
    connection = LivePersonHook("lp_o2").connection
    assert connection.auth_type == "oauth2" and connection.access_token is None


# ---- CSDS -------------------------------------------------------------------------------------------------


def test_csds_is_asked_once_per_hook_and_every_service_uses_the_connection_port(lp):
    hook = LivePersonHook("sandbox_liveperson_main")
    sent = recorded(hook)
    hook.users()
    hook.search_conversations(last_hour(lp.now()), limit=1)
    hook.skills()
    assert lp.lp_requests("csds_all") == 1 and lp.lp_requests("csds_one") == 0
    assert hook.services()["msgHist"] == "127.0.0.1"  # a bare host: the connection's port is added
    assert all(r.url.startswith(f"http://127.0.0.1:{lp.server.port}/") for r in sent)


class _CsdsStub(BaseHTTPRequestHandler):
    """A CSDS that only answers per service (404 for the all-services form), with ports in its baseURIs."""

    target = ""

    def do_GET(self):
        if "/service/baseURI.json" in self.path:
            self._answer(404, {"error": "not found"})
        else:
            service = self.path.split("/service/", 1)[1].split("/", 1)[0]
            self._answer(200, {"service": service, "account": "12345678", "baseURI": self.target})

    def _answer(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


def test_a_base_uri_with_its_own_port_is_used_as_given_and_per_service_csds_works(lp, monkeypatch):
    handler = type("Handler", (_CsdsStub,), {"target": f"127.0.0.1:{lp.server.port}"})
    stub = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        conn = lp.connections()["sandbox_liveperson_main"]
        conn["port"] = stub.server_address[1]  # CSDS on the stub; services on the sandbox, by the baseURI's port
        set_connection(monkeypatch, "lp_stub_csds", conn)
        hook = LivePersonHook("lp_stub_csds")
        assert len(hook.users()) > 0
        assert hook.resolve("msgHist") == f"http://127.0.0.1:{lp.server.port}"
    finally:
        stub.shutdown()


def test_an_unknown_account_fails_with_a_plain_csds_message(lp, monkeypatch):
    conn = lp.connections()["sandbox_liveperson_main"]
    conn["extra"]["account_id"] = "999"
    set_connection(monkeypatch, "lp_wrong_account", conn)
    with pytest.raises(ProviderRequestError, match="does not know service 'accountConfigReadOnly' for account '999'"):
        LivePersonHook("lp_wrong_account").users()
    ok, message = LivePersonHook("lp_wrong_account").test_connection()
    assert not ok and "Step 1 of 4, service discovery" in message and "account '999'" in message


def test_an_unreachable_csds_answers_the_test_button_in_plain_words(monkeypatch):
    set_connection(
        monkeypatch,
        "lp_nowhere",
        {
            "conn_type": "liveperson",
            "host": "127.0.0.1",
            "port": 9,
            "schema": "http",
            "login": "k",
            "password": "s",
            "extra": {
                "account_id": "1",
                "access_token": "t",
                "access_token_secret": "s",
                **FAST_EXTRAS,
                "max_attempts": 2,
            },
        },
    )
    ok, message = LivePersonHook("lp_nowhere").test_connection()
    assert not ok
    assert message.startswith("Step 1 of 4, service discovery (CSDS at http://127.0.0.1) failed")
    assert "gave up after 2 attempts" in message


# ---- OAuth 1.0 ----------------------------------------------------------------------------------------------


def test_oauth1_requests_are_signed_and_carry_user_agent_and_source(lp):
    hook = LivePersonHook("sandbox_liveperson_oauth1")
    sent = recorded(hook)
    assert len(hook.users()) == 8  # deleted agents and the account admin included
    hook.search_conversations(last_hour(lp.now()), limit=1)
    hook.conversations_by_id(["00000000-0000-4000-8000-000000000000"])
    # requests-oauthlib hands signed headers on as bytes: compare the text
    assert all(_text(r.headers["User-Agent"]) == settings.USER_AGENT for r in sent)
    history = [r for r in sent if "/messaging_history/" in r.url]
    assert len(history) == 2 and all("source=cxsync" in r.url for r in history)
    api = [r for r in sent if "/baseURI.json" not in r.url]
    assert all(_text(r.headers["Authorization"]).startswith("OAuth ") for r in api)
    users_call = next(r for r in sent if "/le-users/users" in r.url)
    assert "v=4.0" in users_call.url and "include_deleted=true" in users_call.url


def test_a_wrong_app_secret_says_the_signature_was_refused(lp, monkeypatch):
    conn = lp.connections()["sandbox_liveperson_oauth1"]
    conn["password"] = "not-the-app-secret"
    set_connection(monkeypatch, "lp_bad_secret", conn)
    ok, message = LivePersonHook("lp_bad_secret").test_connection()
    assert not ok
    assert message.startswith("Step 2 of 4, authentication failed")
    assert "refused the OAuth 1.0 signature" in message and "not-the-app-secret" not in message
    with pytest.raises(AuthenticationError, match=r"refused the OAuth 1\.0 signature"):
        LivePersonHook("lp_bad_secret").users()  # not mistaken for a missing Users permission


# ---- OAuth 2.0 ----------------------------------------------------------------------------------------------


def test_oauth2_token_is_reused_and_renewed_shortly_before_expiry(lp):
    hook = LivePersonHook("sandbox_liveperson_oauth2")
    sent = recorded(hook)
    for _ in range(3):
        hook.search_conversations(last_hour(lp.now()), limit=1)
    hook.users()
    assert lp.lp_requests("sentinel_token") == 1
    first_token = sent[-1].headers["Authorization"]
    assert first_token.startswith("Bearer ")
    lp.advance("57m")  # the token (1 h) now has 3 minutes left: inside the refresh margin
    hook.users()  # still accepted; its Date header tells the hook how late it is
    hook.users()
    assert lp.lp_requests("sentinel_token") == 2
    assert lp.lp_requests(status=401) == 0
    assert sent[-1].headers["Authorization"] != first_token


def test_oauth2_expired_token_is_refreshed_once_on_401(lp):
    hook = LivePersonHook("sandbox_liveperson_oauth2")
    hook.users()
    lp.advance("2h")  # the sandbox clock moves past the token's expiry; the hook has not seen it yet
    assert len(hook.users()) == 8
    assert lp.lp_requests("users", 401) == 1
    assert lp.lp_requests("sentinel_token") == 2


def test_a_wrong_client_secret_says_the_client_secret_was_refused(lp, monkeypatch):
    conn = lp.connections()["sandbox_liveperson_oauth2"]
    conn["password"] = "wrong-client-secret"
    set_connection(monkeypatch, "lp_bad_client", conn)
    ok, message = LivePersonHook("lp_bad_client").test_connection()
    assert not ok and message.startswith("Step 2 of 4, authentication failed")
    assert "the client secret (or client_id) was refused" in message and "wrong-client-secret" not in message
    with pytest.raises(AuthenticationError, match="client secret"):
        LivePersonHook("lp_bad_client").users()
    assert lp.lp_requests("sentinel_token", 401) == 2  # once per hook: a refused secret is never retried


# ---- Test button and the Users permission --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn_id", "method"),
    [
        ("sandbox_liveperson_main", "OAuth 2.0"),
        ("sandbox_liveperson_oauth1", "OAuth 1.0"),
        ("sandbox_liveperson_oauth2", "OAuth 2.0"),
    ],
)
def test_the_test_button_checks_csds_auth_users_and_history(lp, conn_id, method):
    ok, message = LivePersonHook(conn_id).test_connection()
    assert ok, message
    assert method in message and "CSDS resolved account 12345678" in message
    assert "listed 8 user(s)" in message and "conversation history answered" in message


def test_the_test_button_warns_that_oauth1_has_ended(lp):
    ok, message = LivePersonHook("sandbox_liveperson_oauth1").test_connection()
    assert ok and "Warning:" in message and "LivePerson has ended" in message and "31 May 2026" in message
    ok, message = LivePersonHook("sandbox_liveperson_main").test_connection()
    assert ok and "Warning:" not in message and "Missing" not in message
    assert "Agent Groups API answered" in message and "Profiles API answered" in message


def test_the_test_button_names_each_privilege_a_guide_made_key_lacks(lp):
    ok, message = LivePersonHook("sandbox_liveperson_guide").test_connection()
    assert ok, message  # users and conversations load: the roster goes on without the rest
    assert "listed 8 user(s)" in message and "conversation history answered" in message
    for privilege in ("Agent Groups API Read", "Skills API Read", "Profiles API Read"):
        assert f'lacks the "{privilege}" privilege' in message
    assert "HTTP 403" in message


def test_the_test_button_says_what_to_do_when_users_is_missing(lp):
    ok, message = LivePersonHook("sandbox_liveperson_nousers").test_connection()
    assert not ok
    # the Test button tests a form under a temporary id: the message names no connection id
    assert message.startswith("This LivePerson connection: the Users API refused these credentials, while conversation")
    assert "sandbox_liveperson_nousers" not in message
    assert 'enable "Users" (Administration > Users)' in message and "HTTP 403" in message


def test_users_denied_raises_permission_denied_with_the_same_plain_message(lp):
    with pytest.raises(PermissionDenied) as info:
        LivePersonHook("sandbox_liveperson_nousers").users()
    assert str(info.value).startswith(users_permission_message("sandbox_liveperson_nousers"))


def test_the_ui_test_button_path_through_airflows_connection_model(lp, monkeypatch):
    """What the API server does: a transient connection exported as a URI (extras become strings)."""
    from airflow.models.connection import Connection

    for conn_id, expect in (("sandbox_liveperson_main", True), ("sandbox_liveperson_nousers", False)):
        data = lp.connections()[conn_id]
        conn = Connection(
            conn_id=f"transient_{conn_id}",
            conn_type="liveperson",
            host=data["host"],
            port=data["port"],
            schema=data["schema"],
            login=data["login"],
            password=data["password"],
            extra=json.dumps(data["extra"]),
        )
        monkeypatch.setenv(f"AIRFLOW_CONN_TRANSIENT_{conn_id.upper()}", conn.get_uri())
        ok, message = conn.test_connection()
        assert ok is expect, message
        if not expect:
            assert "Administration > Users" in message


# ---- secrets --------------------------------------------------------------------------------------------------


def test_secrets_are_registered_with_the_masker(lp):
    from airflow.sdk._shared.secrets_masker import redact

    oauth1 = lp.connections()["sandbox_liveperson_oauth1"]
    LivePersonHook("sandbox_liveperson_oauth1").users()
    hook2 = LivePersonHook("sandbox_liveperson_oauth2")
    sent = recorded(hook2)
    hook2.users()
    token = sent[-1].headers["Authorization"].split(" ", 1)[1]
    for secret in (
        oauth1["password"],
        oauth1["extra"]["access_token_secret"],
        lp.connections()["sandbox_liveperson_oauth2"]["password"],
        token,
    ):
        assert secret not in redact(f"log line with {secret} inside")


# ---- errors and recovery ----------------------------------------------------------------------------------------


def test_other_4xx_fail_at_once_with_status_and_body(lp):
    hook = LivePersonHook("sandbox_liveperson_main")
    hook.users()
    before = lp.lp_requests("conversations_search")
    with pytest.raises(ProviderRequestError) as info:
        hook.search_conversations({"latestUpdateTime": {"from": 0}})  # `start` is required
    assert info.value.status == 400
    assert "HTTP 400" in str(info.value) and "start {from, to} is required" in str(info.value)
    assert lp.lp_requests("conversations_search") == before + 1


def test_recovers_from_429_5xx_resets_truncated_bodies_and_timeouts(lp, monkeypatch):
    export_connections(lp, monkeypatch, timeout=0.3, max_attempts=10)
    hook = LivePersonHook("sandbox_liveperson_main")
    window = last_hour(lp.now())
    window["start"]["from"] -= 3 * 86_400_000
    clean = hook.search_conversations(window)
    assert clean["_metadata"]["count"] > 0
    lp.faults(p_5xx=0.2, p_reset=0.15, p_truncate=0.15, p_slow=0.1, slow_seconds=1.0)
    for _ in range(8):
        assert hook.search_conversations(window) == clean
        assert len(hook.users()) == 8
    faults = lp.counters()["faults"]["liveperson"]
    assert all(faults.get(kind, 0) > 0 for kind in ("5xx", "reset", "truncate", "slow")), faults
    assert hook.stats.retries >= sum(faults.values())


def test_429_waits_at_least_what_retry_after_asks(lp, monkeypatch):
    export_connections(lp, monkeypatch, retry_max_seconds=5, rate_limit_min_wait=1.0)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    hook = LivePersonHook("sandbox_liveperson_main", sleep=sleep)
    hook.users()
    lp.faults(rate_limit_rps=5)
    for _ in range(10):
        assert len(hook.users()) == 8
    assert lp.fault_count("rate_limit") > 0
    assert hook.stats.rate_limited == lp.fault_count("rate_limit")
    assert waits and min(waits) >= 1.0  # Retry-After: 1 (the sandbox rounds up), and never under 1 s


def test_server_now_is_the_providers_clock_and_follows_it(lp):
    hook = LivePersonHook("sandbox_liveperson_main")
    assert hook.server_now() == lp.now()  # 2025: far from this machine's clock
    lp.advance("3h")
    assert hook.server_now() == lp.now()


def test_a_users_401_while_history_works_is_still_read_as_the_missing_permission(monkeypatch):
    """The notes allow 401 or 403 for a key without Users: a scripted stand-in answers 401."""
    from support.http_stub import Answer, Stub

    stub = Stub()
    try:
        csds = Answer(
            body={
                "baseURIs": [
                    {"service": s, "account": "1", "baseURI": "127.0.0.1"} for s in ("msgHist", "accountConfigReadOnly")
                ]
            }
        )
        history = Answer(
            body={
                "_metadata": {"count": 0, "shardsStatusResult": {"partialResult": False}},
                "conversationHistoryRecords": [],
            }
        )
        stub.add(csds, Answer(401, body={"error": "Not Authenticated"}), csds, history)
        set_connection(
            monkeypatch,
            "lp_stub",
            {
                "conn_type": "liveperson",
                "host": "127.0.0.1",
                "port": stub.server.server_address[1],
                "schema": "http",
                "login": "key",
                "password": "secret",
                "extra": {"account_id": "1", "access_token": "t", "access_token_secret": "ts", **FAST_EXTRAS},
            },
        )
        with pytest.raises(PermissionDenied) as info:
            LivePersonHook("lp_stub").users()
        assert str(info.value).startswith(users_permission_message("lp_stub")) and "HTTP 401" in str(info.value)
        assert [r.path.split("?")[0].rsplit("/", 1)[-1] for r in stub.received] == [
            "baseURI.json",
            "users",
            "baseURI.json",
            "search",
        ]
    finally:
        stub.stop()


def test_a_partial_answer_is_asked_again_by_the_retry_driver_when_asked_to(lp, monkeypatch):
    from cxsync.errors import RetriesExhausted

    export_connections(lp, monkeypatch, max_attempts=3)
    hook = LivePersonHook("sandbox_liveperson_main")
    window = last_hour(lp.now())
    hook.search_conversations(window, retry_partial=True)
    lp.faults(p_partial=1.0)
    before = lp.lp_requests("conversations_search")
    assert hook.search_conversations(window)["_metadata"]["shardsStatusResult"]["partialResult"]  # handed back
    with pytest.raises(RetriesExhausted, match=r"partialResult: true\); gave up after 3 attempts"):
        hook.search_conversations(window, retry_partial=True)
    assert lp.lp_requests("conversations_search") == before + 1 + 3


def test_partial_retries_bound_the_re_asks_below_max_attempts(lp, monkeypatch):
    from cxsync.errors import RetriesExhausted

    export_connections(lp, monkeypatch, max_attempts=5)
    hook = LivePersonHook("sandbox_liveperson_main")
    window = last_hour(lp.now())
    hook.search_conversations(window)
    lp.faults(p_partial=1.0)
    before = lp.lp_requests("conversations_search")
    with pytest.raises(RetriesExhausted, match=r"partialResult: true\); gave up after 2 attempts"):
        hook.search_conversations(window, retry_partial=True, partial_retries=1)
    assert lp.lp_requests("conversations_search") == before + 2


def test_a_by_id_answer_its_caller_calls_incomplete_is_asked_again(lp, monkeypatch):
    from cxsync.errors import RetriesExhausted

    export_connections(lp, monkeypatch, max_attempts=5)
    hook = LivePersonHook("sandbox_liveperson_main")
    now = lp.now()
    found = hook.search_conversations(
        {"start": {"from": int((now - timedelta(days=7)).timestamp() * 1000), "to": int(now.timestamp() * 1000)}},
        limit=2,
    )
    ids = [r["info"]["conversationId"] for r in found["conversationHistoryRecords"]]
    assert len(ids) == 2
    calls = []

    def incomplete(answer):  # the first two answers are called incomplete
        calls.append(len(answer["conversationHistoryRecords"]))
        return "a record came back truncated" if len(calls) <= 2 else None

    before = lp.lp_requests("conversation_by_id")
    answer = hook.conversations_by_id(ids, retry_partial=True, incomplete=incomplete)
    assert len(answer["conversationHistoryRecords"]) == 2 and calls == [2, 2, 2]
    assert lp.lp_requests("conversation_by_id") == before + 3
    with pytest.raises(RetriesExhausted, match="a record came back truncated; gave up after 3 attempts"):
        hook.conversations_by_id(
            ids, retry_partial=True, partial_retries=2, incomplete=lambda answer: "a record came back truncated"
        )
