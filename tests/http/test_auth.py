"""Auth strategies: OAuth 1.0 signatures, Basic with colons, bearer tokens and their cache."""

from __future__ import annotations

import base64
import json
from urllib.parse import unquote

from oauthlib.oauth1.rfc5849 import signature, utils

from cxsync.http import ApiClient, BasicAuth, BearerAuth, OAuth1Auth, Token, TokenCache
from support.http_stub import Answer


def test_oauth1_signs_every_request_with_hmac_sha1_in_the_header(stub, sleeps):
    auth = OAuth1Auth("app-key", "app-secret", "access-token", "token-secret")
    api = ApiClient(name="t", user_agent="ua", auth=auth, sleep=sleeps)
    stub.add(Answer(body={"a": 1}))
    api.post_json(stub.url("/resource?x=1&y=two"), json_body={"q": [1, 2]})
    received = stub.received[0]
    header = received.headers["Authorization"]
    params = dict(utils.parse_authorization_header(header))
    assert params["oauth_signature_method"] == "HMAC-SHA1"
    assert params["oauth_consumer_key"] == "app-key" and params["oauth_token"] == "access-token"
    # The signature an OAuth 1.0 server computes from what it received (key: appSecret&accessTokenSecret).
    uri = stub.url(received.path)
    collected = signature.collect_parameters(
        uri_query=uri.split("?", 1)[1], headers={"Authorization": header}, exclude_oauth_signature=True
    )
    base = signature.signature_base_string(
        "POST", signature.base_string_uri(uri), signature.normalize_parameters(collected)
    )
    assert unquote(params["oauth_signature"]) == signature.sign_hmac_sha1(base, "app-secret", "token-secret")
    assert auth.secrets() == ["app-secret", "token-secret"]


def test_basic_auth_keeps_colons_in_the_password(stub, sleeps):
    auth = BasicAuth("account-1", "dal:abc:def")
    ApiClient(name="t", user_agent="ua", auth=auth, sleep=sleeps).get_json(stub.url())
    sent = stub.received[0].headers["Authorization"]
    assert base64.b64decode(sent.split(" ", 1)[1]).decode() == "account-1:dal:abc:def"
    assert auth.secrets() == ["dal:abc:def"]


def _jwt(claims: dict) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2ln"


def test_token_lifetime_from_expires_in_else_the_jwt_exp_else_unknown():
    assert Token.from_response({"access_token": "t", "expires_in": 3600}, now=1000.0).expires_at == 4600.0
    assert Token.from_response({"access_token": "t", "expires_in": "60"}, now=10.0).expires_at == 70.0
    assert Token.from_response({"access_token": _jwt({"exp": 1_741_948_200})}).expires_at == 1_741_948_200.0
    assert Token.from_response({"access_token": "opaque"}).expires_at is None
    assert Token.from_response({"access_token": "a.b.c"}).expires_at is None  # not JSON inside


class FakeClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_token_is_reused_until_shortly_before_expiry():
    clock = FakeClock(1000.0)
    issued: list[str] = []

    def fetch() -> Token:
        issued.append(f"token-{len(issued) + 1}")
        return Token(issued[-1], clock.now + 3600)

    cache = TokenCache(fetch, refresh_margin=300, clock=clock)
    assert {cache.get() for _ in range(5)} == {"token-1"}
    clock.now += 3600 - 301
    assert cache.get() == "token-1"
    clock.now += 2  # inside the margin
    assert cache.get() == "token-2" and cache.fetches == 2


def test_a_token_of_unknown_lifetime_is_kept_until_invalidated():
    issued = iter(["one", "two"])
    cache = TokenCache(lambda: Token(next(issued), None), clock=FakeClock(0.0))
    assert cache.get() == cache.get() == "one"
    cache.invalidate()
    assert cache.get() == "two"


def test_bearer_auth_sends_the_token_and_fetches_a_new_one_once_on_401(stub, sleeps):
    issued = iter(["first", "second", "third"])
    seen_new: list[str] = []
    cache = TokenCache(lambda: Token(next(issued), None), on_new_token=lambda t: seen_new.append(t.access_token))
    api = ApiClient(name="t", user_agent="ua", auth=BearerAuth(cache), sleep=sleeps)
    stub.add(Answer(body={}), Answer(401), Answer(body={"ok": True}))
    api.get_json(stub.url())
    assert api.get_json(stub.url()) == {"ok": True}
    assert [r.headers["Authorization"] for r in stub.received] == ["Bearer first", "Bearer first", "Bearer second"]
    assert seen_new == ["first", "second"]


def test_every_strategy_is_a_requests_auth_that_plain_requests_can_use(stub):
    import requests
    from requests.auth import AuthBase

    from cxsync.http import NoAuth

    cache = TokenCache(lambda: Token("plain-token", None))
    strategies = [NoAuth(), BasicAuth("account-1", "dal:x"), BearerAuth(cache), OAuth1Auth("k", "s", "t", "ts")]
    stub.add(*[Answer(body={}) for _ in strategies])
    for strategy in strategies:
        assert isinstance(strategy, AuthBase)
        requests.get(stub.url(), auth=strategy, timeout=5)
    sent = [r.headers.get("Authorization", "") for r in stub.received]
    assert sent[0] == "" and sent[1].startswith("Basic ") and sent[2] == "Bearer plain-token"
    assert sent[3].startswith("OAuth ")
    assert "dal:x" not in repr(strategies[1]) and "plain-token" not in repr(strategies[2])
