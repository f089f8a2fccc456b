"""Where a secret may go: token endpoints and provider hosts are checked before a credential is sent there.

A client secret, a refresh token or a bearer token goes only to
- an `https` URL. Plain http is accepted for a loopback host only when the user says so: the connection's extra
  `allow_plain_http_loopback: true` (the sandbox prints its connections with it) or the environment variable
  `CXSYNC_ALLOW_PLAIN_HTTP_LOOPBACK=1` (a test suite's stubs). Without it, a process on the same machine
  listening on a loopback port (another user's, on a shared host) would read the secret;
- a host of the provider itself (HelpDesk: the LiveChat/Text accounts hosts; LivePerson: `*.liveperson.net`),
  unless the connection's extra `trusted_hosts` names that host (a proxy or gateway of your own): an explicit
  opt-out, never a default.

A LivePerson CSDS answer (`baseURI`) must be a bare `host[:port]`: one with user info, a path, a query or a
fragment (`va.sentinel.liveperson.net@evil.example`) is refused, whatever its host.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from cxsync.http.tunables import ConnectionSettingError

log = logging.getLogger(__name__)

TRUSTED_HOSTS_EXTRA = "trusted_hosts"
PLAIN_HTTP_LOOPBACK_EXTRA = "allow_plain_http_loopback"
PLAIN_HTTP_LOOPBACK_ENV = "CXSYNC_ALLOW_PLAIN_HTTP_LOOPBACK"
_TRUE = ("1", "true", "yes", "on")
# The LiveChat/Text accounts servers that issue HelpDesk OAuth tokens (HelpDesk's own pages sign in at
# accounts.helpdesk.com).
HELPDESK_ACCOUNTS_HOSTS = frozenset(
    {"accounts.livechat.com", "accounts.livechatinc.com", "accounts.text.com", "accounts.helpdesk.com"}
)
LIVEPERSON_DOMAIN = "liveperson.net"


class UntrustedEndpoint(ConnectionSettingError):
    """A credential would go to a host or scheme cxsync does not send secrets to; the message says how to fix it."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_loopback_allowed(extra: Mapping[str, Any]) -> bool:
    """Whether the user opted in to plain http towards loopback hosts (extra or environment, see above)."""
    flag = extra.get(PLAIN_HTTP_LOOPBACK_EXTRA)
    if flag is True or str(flag).strip().lower() in _TRUE:
        return True
    return os.environ.get(PLAIN_HTTP_LOOPBACK_ENV, "").strip().lower() in _TRUE


def trusted_hosts(extra: Mapping[str, Any], *, conn_id: str) -> frozenset[str]:
    """The extra `trusted_hosts`: a JSON list of host names, or one comma-separated string."""
    value = extra.get(TRUSTED_HOSTS_EXTRA)
    if value is None or value == "":
        return frozenset()
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ConnectionSettingError(
            f"connection {conn_id!r}: extra `{TRUSTED_HOSTS_EXTRA}` must be a list of host names, got {value!r:.80}"
        )
    hosts = frozenset(str(item).strip().lower() for item in items if str(item).strip())
    for host in hosts:
        if any(c in host for c in "/@:?# "):
            raise ConnectionSettingError(
                f"connection {conn_id!r}: extra `{TRUSTED_HOSTS_EXTRA}` holds {host!r:.80}: list bare host names "
                "(like auth.example.com), without scheme, port or path"
            )
    return hosts


def check_endpoint(
    url: str,
    *,
    provider_hosts: frozenset[str] = frozenset(),
    provider_domain: str | None = None,
    trusted: frozenset[str] = frozenset(),
    plain_http_loopback: bool = False,
    conn_id: str,
    what: str,
) -> str:
    """`url` if a credential may be sent there, else `UntrustedEndpoint` naming the connection and the fix."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    shown = f"{parts.scheme}://{host}" if host else repr(url[:80])
    if parts.scheme not in ("http", "https") or not host:
        raise UntrustedEndpoint(f"connection {conn_id!r}: {what} {shown} is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UntrustedEndpoint(
            f"connection {conn_id!r}: {what} carries user info (`...@host`); refusing to send credentials there"
        )
    loopback = is_loopback(host)
    own = host in provider_hosts or (
        provider_domain is not None and (host == provider_domain or host.endswith("." + provider_domain))
    )
    if not (own or loopback or host in trusted):
        expected = sorted(provider_hosts) + ([f"*.{provider_domain}"] if provider_domain else [])
        raise UntrustedEndpoint(
            f"connection {conn_id!r}: {what} {shown} is not a host of the provider ({', '.join(expected)}); "
            f"credentials are not sent there. If this host is yours (a gateway or proxy), name it in the "
            f"connection's extra `{TRUSTED_HOSTS_EXTRA}`"
        )
    if parts.scheme != "https" and not loopback:
        raise UntrustedEndpoint(
            f"connection {conn_id!r}: {what} {shown} is plain http; credentials go only over https "
            "(plain http is accepted for loopback hosts, like the sandbox, only)"
        )
    if parts.scheme != "https" and not plain_http_loopback:
        raise UntrustedEndpoint(
            f"connection {conn_id!r}: {what} {shown} is plain http to a loopback host; credentials go there only "
            f"when you say so: set the connection's extra `{PLAIN_HTTP_LOOPBACK_EXTRA}` to true (the sandbox's "
            f"connections carry it) or {PLAIN_HTTP_LOOPBACK_ENV}=1, or use https"
        )
    if host in trusted and not own:
        log.info("connection %r: %s %s is trusted by the extra `%s`", conn_id, what, shown, TRUSTED_HOSTS_EXTRA)
    return url


def warn_if_plain_http(scheme: str, host: str, *, conn_id: str) -> bool:
    """Log a warning when a connection's `schema: http` sends credentials in clear text to a non-loopback host."""
    host = urlsplit(f"//{host}").hostname or host
    if scheme.lower() != "http" or is_loopback(host):
        return False
    log.warning(
        "connection %r uses `schema: http` with host %s: credentials and transcripts travel unencrypted. "
        "Use https (plain http is meant for the local sandbox on 127.0.0.1)",
        conn_id,
        host,
    )
    return True


def check_helpdesk_accounts_url(accounts_url: str, extra: Mapping[str, Any], *, conn_id: str) -> str:
    """The HelpDesk OAuth server (extra `accounts_url`), before a client secret, code or refresh token goes there."""
    return check_endpoint(
        accounts_url,
        provider_hosts=HELPDESK_ACCOUNTS_HOSTS,
        trusted=trusted_hosts(extra, conn_id=conn_id),
        plain_http_loopback=plain_http_loopback_allowed(extra),
        conn_id=conn_id,
        what="the OAuth token server (extra `accounts_url`)",
    )


def check_csds_host(base_uri: str, *, service: str, conn_id: str) -> str:
    """A CSDS `baseURI` as a bare `host[:port]`; a scheme prefix is dropped, anything else is refused."""
    text = base_uri.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    bad = not host or any(c in text for c in "@/?#\\ \t\r\n") or (port and not port.isdigit())
    if bad:
        raise UntrustedEndpoint(
            f"connection {conn_id!r}: LivePerson CSDS answered {base_uri!r:.120} for service {service!r}, which is "
            "not a bare host name (user info, a path, a query or a fragment): refusing to send anything there"
        )
    return text.rstrip(".")
