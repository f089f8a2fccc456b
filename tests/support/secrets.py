"""Recognisable credentials for a sandbox, so a test can search every output for them.

The sandbox's own credentials are fixed (LivePerson) or derived from the seed (HelpDesk) and it has no option to
choose them, so `use_recognisable_credentials` registers a LivePerson OAuth 1.0 key and OAuth 2.0 client with
recognisable secrets next to the built-in ones, and gives the HelpDesk account a recognisable personal access
token and OAuth client secret (once the server started, before anything asks it). `Credentials` holds the values and the
Airflow connections that use them.

Tokens the providers issue during a run are secrets too; their values are not known in advance, but their
beginnings are: every LivePerson sentinel token starts with the same JWT header, every HelpDesk access token
with `dal:` and the encoding of "a.<client id>.". `issued_token_prefixes` gives those.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from cxsync_dev.sandbox.core import Sandbox
from cxsync_dev.sandbox.liveperson_auth import OAuth1Key, OAuth2Client

LP_APP_KEY = "cxsync-secrets-app-key"
LP_CLIENT_ID = "cxsync-secrets-client"
SECRETS = {
    "lp_app_secret": "SECRET-lp-app-secret-123",
    "lp_access_token": "SECRET-lp-access-token-123",
    "lp_access_token_secret": "SECRET-lp-token-secret-123",
    "lp_client_secret": "SECRET-lp-client-secret-123",
    "hd_api_token": "SECRET-hd-token:123",  # HelpDesk tokens may hold colons
    "hd_client_secret": "SECRET-hd-client-secret-123",
    "lp_wrong_secret": "SECRET-lp-wrong-secret-999",
    "hd_wrong_token": "SECRET-hd-wrong-token:999",
}


@dataclass
class Credentials:
    common: dict[str, Any]  # what every connection shares: host, schema, port
    extra: dict[str, Any]  # extras every connection shares (the request layer's tunables)
    lp_account_id: str
    hd_account_id: str
    hd_client_id: str
    hd_accounts_url: str
    hd_refresh_token: str = ""
    secrets: dict[str, str] = field(default_factory=lambda: dict(SECRETS))

    def connections(self) -> dict[str, dict[str, Any]]:
        """Six connections: LivePerson OAuth 1.0 and 2.0, HelpDesk token and OAuth 2, and two with a wrong secret."""
        s = self.secrets

        def conn(conn_type: str, login: str, password: str, **extra: Any) -> dict[str, Any]:
            return {
                **self.common,
                "conn_type": conn_type,
                "login": login,
                "password": password,
                "extra": {**self.extra, **extra},
            }

        lp = {"account_id": self.lp_account_id, "source": "cxsync"}
        oauth1 = {
            **lp,
            "auth_type": "oauth1",
            "access_token": s["lp_access_token"],
            "access_token_secret": s["lp_access_token_secret"],
        }
        return {
            "lp_secret_oauth1": conn("liveperson", LP_APP_KEY, s["lp_app_secret"], **oauth1),
            "lp_secret_oauth2": conn("liveperson", LP_CLIENT_ID, s["lp_client_secret"], **lp, auth_type="oauth2"),
            "hd_secret_token": conn("helpdesk", self.hd_account_id, s["hd_api_token"], auth_type="token"),
            "hd_secret_oauth": conn(
                "helpdesk",
                self.hd_client_id,
                s["hd_client_secret"],
                auth_type="oauth2",
                accounts_url=self.hd_accounts_url,
                refresh_token=self.hd_refresh_token,
            ),
            "lp_secret_wrong": conn("liveperson", LP_APP_KEY, s["lp_wrong_secret"], **oauth1),
            "hd_secret_wrong": conn("helpdesk", self.hd_account_id, s["hd_wrong_token"], auth_type="token"),
        }

    def values(self) -> dict[str, str]:
        """Every secret a connection holds, by name (the refresh token once issued)."""
        out = dict(self.secrets)
        if self.hd_refresh_token:
            out["hd_refresh_token"] = self.hd_refresh_token
        return out


def use_recognisable_credentials(sandbox: Sandbox) -> None:
    """Make `sandbox` accept the credentials of `SECRETS`: call once its server started (which builds the
    providers' worlds), before anything asks it."""
    s = SECRETS
    auth = sandbox.liveperson.auth
    auth.keys[LP_APP_KEY] = OAuth1Key(LP_APP_KEY, s["lp_app_secret"], s["lp_access_token"], s["lp_access_token_secret"])
    auth.clients[LP_CLIENT_ID] = OAuth2Client(LP_CLIENT_ID, s["lp_client_secret"])
    world = sandbox.helpdesk.world
    world.api_token = s["hd_api_token"]
    world.client_secret = s["hd_client_secret"]


def issued_token_prefixes(sandbox: Sandbox) -> dict[str, str]:
    """The beginning every provider-issued access token of this sandbox shares (see the module docstring)."""
    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    lp_prefix = base64.urlsafe_b64encode(header).rstrip(b"=").decode() + "."
    stable = f"a.{sandbox.helpdesk.world.client_id}.".encode()
    stable = stable[: len(stable) // 3 * 3]  # whole base64 groups only: the rest depends on what follows
    hd_prefix = "dal:" + base64.urlsafe_b64encode(stable).decode()
    return {"lp_access_token_issued": lp_prefix, "hd_access_token_issued": hd_prefix}
