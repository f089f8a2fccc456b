"""OAuth 2 grants built and read by oauthlib, carried by ApiClient: the form sent, the answer read, refusals."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from cxsync.http import ApiClient, RetryPolicy
from cxsync.http.oauth2 import OAuth2Grant, TokenRequestRefused
from support.http_stub import Answer

SECRET = "client-secret-value"


def grant(stub, sleeps, **kwargs) -> OAuth2Grant:
    api = ApiClient(name="t", user_agent="ua", sleep=sleeps, retry=RetryPolicy(max_attempts=3, base_seconds=0.01))
    return OAuth2Grant(api, stub.url("/token"), client_id="client-1", client_secret=SECRET, **kwargs)


def test_client_credentials_go_in_the_form_and_the_answer_is_read(stub, sleeps):
    stub.add(Answer(503), Answer(body={"access_token": "tok", "expires_in": 3600, "token_type": "Bearer"}))
    g = grant(stub, sleeps)
    answer = g.client_credentials()
    assert answer["access_token"] == "tok" and g.token(answer).expires_at is not None
    form = {k: v[0] for k, v in parse_qs(stub.received[-1].body.decode()).items()}
    assert form == {"grant_type": "client_credentials", "client_id": "client-1", "client_secret": SECRET}
    assert "Authorization" not in stub.received[-1].headers and len(sleeps) == 1  # the 503 was retried


def test_refresh_and_code_grants(stub, sleeps):
    stub.add(Answer(body={"access_token": "a1", "refresh_token": "r2"}), Answer(body={"access_token": "a2"}))
    g = grant(stub, sleeps)
    assert g.refresh("r1")["refresh_token"] == "r2"
    g.authorization_code("the-code", redirect_uri="http://127.0.0.1:1/callback", code_verifier="v" * 43)
    forms = [{k: v[0] for k, v in parse_qs(r.body.decode()).items()} for r in stub.received]
    assert forms[0]["grant_type"] == "refresh_token" and forms[0]["refresh_token"] == "r1"
    assert forms[1]["grant_type"] == "authorization_code" and forms[1]["code"] == "the-code"
    assert forms[1]["code_verifier"] == "v" * 43 and forms[1]["redirect_uri"] == "http://127.0.0.1:1/callback"


@pytest.mark.parametrize(
    ("answer", "error", "description"),
    [
        (Answer(400, body={"error": "invalid_grant", "error_description": "revoked"}), "invalid_grant", "revoked"),
        (Answer(401, body={"code": "bad_client", "message": "who are you"}), "bad_client", "who are you"),
        (Answer(200, body={"token_type": "Bearer"}), "unknown_error", ""),
        (Answer(400, body=b"<html>nope</html>"), "unexpected answer", ""),
    ],
)
def test_a_refusal_carries_the_servers_words_and_no_secret(stub, sleeps, answer, error, description):
    stub.add(answer)
    with pytest.raises(TokenRequestRefused) as refused:
        grant(
            stub, sleeps, describe=lambda r: f"refused: {r.error} / {r.description} / {r.status}"
        ).client_credentials()
    assert (refused.value.error, refused.value.description) == (error, description)
    assert str(refused.value).startswith(f"refused: {error}") and SECRET not in str(refused.value)
    assert len(stub.received) == 1  # a refusal is never retried


def test_a_token_answer_cut_short_is_asked_again_not_called_a_refusal(stub, sleeps):
    """A 200 whose JSON was cut on the way says nothing about the credentials: the grant is sent again."""
    stub.add(Answer(200, body=b'{"access_token": "to'), Answer(body={"access_token": "tok", "expires_in": 60}))
    assert grant(stub, sleeps).client_credentials()["access_token"] == "tok"
    assert len(stub.received) == 2


def test_a_token_answer_that_is_never_json_is_refused_after_a_few_tries(stub, sleeps):
    for _ in range(5):
        stub.add(Answer(200, body=b"<html>maintenance</html>"))
    with pytest.raises(TokenRequestRefused):
        grant(stub, sleeps).client_credentials()
    assert len(stub.received) == 3
