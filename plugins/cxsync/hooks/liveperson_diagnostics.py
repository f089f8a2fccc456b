"""LivePerson's words for what went wrong: the Test button's steps, failure hints and the Users permission.

Kept apart from the hook (`cxsync.hooks.liveperson`), which only talks to the API: this module words its
failures for the person who set the connection up, naming the field or the permission to fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from cxsync.errors import AuthenticationError, CxsyncError, PermissionDenied

if TYPE_CHECKING:
    from cxsync.hooks.liveperson import LivePersonConnection, LivePersonHook


class TokenRefused(AuthenticationError):
    """sentinel refused the OAuth 2.0 client credentials: no other call can succeed either."""


def users_permission_message(conn_id: str, detail: str = "") -> str:
    """The one plain answer for the most common first-setup failure (Test button and roster sync alike)."""
    text = (
        f"LivePerson connection {conn_id!r}: the Users API refused these credentials, while conversation "
        'history (Messaging Interactions) works. The App Key / API client lacks the "Users" permission. '
        "Fix: in LivePerson Conversational Cloud, edit the same App Key / API client this connection uses "
        'and enable "Users" (Administration > Users), then run the roster sync (or the Test button) again.'
    )
    return f"{text} [{detail}]" if detail else text


# The account APIs beside Users, each with its own privilege on an API key (LivePerson grants them one by one):
# resource name -> (what it is called in LivePerson, what cxsync does without it).
ACCOUNT_PRIVILEGES = {
    "agentGroups": ("Agent Groups API Read", "agents are loaded without their agent group names"),
    "skills": ("Skills API Read", "agents are loaded without their skill names"),
    "profiles": ("Profiles API Read", "agents' roles (agent, admin, manager) cannot be told apart"),
}


def privilege_missing(conn_id: str, resource: str, detail: str) -> str:
    """A roster API the credentials may not read, in plain words: which privilege to add, and what lacks it."""
    privilege, effect = ACCOUNT_PRIVILEGES[resource]
    return (
        f'LivePerson connection {conn_id!r} lacks the "{privilege}" privilege ({resource} answered {detail}): '
        f'{effect}. Fix: add "{privilege}" to the same API client / key in LivePerson (privileges are per API; '
        "the vendor's setup guide grants only Users and Conversation History)."
    )


def oauth1_end_of_life(conn_id: str) -> str:
    """The warning for a connection still on OAuth 1.0 app keys (Test button and task log)."""
    return (
        f"LivePerson connection {conn_id!r} uses OAuth 1.0 app keys, which LivePerson has ended: keys are "
        "read-only since 30 Sep 2025 and the OAuth 1.0 protocol reaches its end of life on 31 May 2026, after "
        "which these calls will stop working. Move to OAuth 2.0: in LivePerson Conversational Cloud create an "
        "API client (client credentials) with the same privileges, put its client_id in `login` and its "
        "client_secret in `password`, and remove the extras `access_token`, `access_token_secret` and "
        "`auth_type` (OAuth 2.0 is the default)."
    )


def token_refused(conn: LivePersonConnection, detail: str) -> TokenRefused:
    return TokenRefused(
        f"LivePerson sentinel refused the OAuth 2.0 client credentials of connection {conn.conn_id!r} "
        f"(client_id {conn.login!r}): the client secret (or client_id) was refused. Check `login` (client_id) "
        f"and `password` (client_secret), and that the API client belongs to account {conn.account_id!r}. "
        f"[{detail}]"
    )


def explain(conn: LivePersonConnection, response: requests.Response) -> str | None:
    """A hint added to a fatal answer: which credential or permission to look at."""
    status = response.status_code
    path = response.url or ""
    if status == 401 and "/le-users/" not in path:
        if conn.auth_type == "oauth1":
            return (
                f"LivePerson refused the OAuth 1.0 signature of connection {conn.conn_id!r}: check the App Key "
                "(login), App Secret (password), `access_token` and `access_token_secret`: all four must "
                "belong to the same App Key of this account."
            )
        return (
            f"LivePerson refused the OAuth 2.0 token of connection {conn.conn_id!r} even after fetching a "
            "new one: check the API client's permissions and that it belongs to this account."
        )
    if status == 403 and "/messaging_history/" in path:
        return (
            f"The credentials of connection {conn.conn_id!r} lack the conversation history permission: enable "
            '"Data > Conversation History / Messaging Interactions" on the same App Key / API client.'
        )
    return None


def users_refused(hook: LivePersonHook, exc: CxsyncError) -> CxsyncError:
    """A 401/403 on Users: a missing permission when msgHist accepts the same credentials, else bad auth."""
    conn = hook.connection
    try:
        hook.probe_history()
    except AuthenticationError as probe:
        return AuthenticationError(f"{one_line(probe)} (The Users API refused them too: {first_line(exc)})")
    except PermissionDenied:
        return PermissionDenied(
            f'LivePerson connection {conn.conn_id!r}: the credentials are accepted but lack both the "Users" '
            '(Administration > Users) and the "Conversation History" (Data) permissions: enable both on '
            f"the same App Key / API client. [{first_line(exc)}]"
        )
    except CxsyncError:
        pass  # msgHist unreachable: say what the Users API said
    else:
        return PermissionDenied(users_permission_message(conn.conn_id, first_line(exc)))
    return exc


def connection_test(hook: LivePersonHook) -> tuple[bool, str]:
    """Checks CSDS, authentication, Users and msgHist in that order (any failing fails the test), then Agent
    Groups, Skills and Profiles, each named when refused; answers in plain words."""
    from cxsync.hooks.liveperson import ACCOUNT_CONFIG, MSG_HIST, SENTINEL

    done: list[str] = []
    try:
        conn = hook.connection
    except CxsyncError as exc:
        return False, str(exc)
    except Exception as exc:  # e.g. the connection does not exist
        return False, f"LivePerson connection {hook.conn_id!r}: {exc}"
    auth_name = "OAuth 1.0 (App Key)" if conn.auth_type == "oauth1" else "OAuth 2.0 (client credentials)"

    # 1. CSDS
    try:
        for service in (MSG_HIST, ACCOUNT_CONFIG) + ((SENTINEL,) if conn.auth_type == "oauth2" else ()):
            hook.resolve(service)
    except CxsyncError as exc:
        return False, (
            f"Step 1 of 4, service discovery (CSDS at {conn.scheme}://{conn.host}) failed for account "
            f"{conn.account_id!r}: {exc}"
        )
    except Exception as exc:  # the UI must get an answer, not a stack trace
        return False, f"Step 1 of 4, service discovery (CSDS) failed: {type(exc).__name__}: {exc}"
    done.append(f"CSDS resolved account {conn.account_id}")

    # 2. authentication (OAuth 2.0 has its own step; OAuth 1.0 signatures are proven by the next calls)
    if conn.auth_type == "oauth2":
        try:
            hook.access_token()
        except CxsyncError as exc:
            return False, f"Step 2 of 4, authentication failed: {exc}"
        done.append("sentinel issued an OAuth 2.0 token")

    # 3. Users, 4. msgHist
    users_error: CxsyncError | None = None
    users: list[dict[str, Any]] = []
    try:
        users = hook.account_config("users")
    except TokenRefused as exc:
        return False, f"Step 2 of 4, authentication failed: {exc}"
    except (AuthenticationError, PermissionDenied) as exc:
        users_error = exc
    except CxsyncError as exc:
        return False, f"Step 3 of 4, Users API failed: {exc}"
    try:
        answer = hook.probe_history()
    except AuthenticationError as exc:
        step = "Step 2 of 4, authentication" if conn.auth_type == "oauth1" else "Step 4 of 4, conversation history"
        return False, f"{step} failed: {one_line(exc)}"
    except CxsyncError as exc:
        prefix = "; ".join(done)
        return False, f"{prefix}; but step 4 of 4, conversation history (msgHist), failed: {exc}"
    if conn.auth_type == "oauth1":
        done.append("the OAuth 1.0 signature was accepted")
    if users_error is not None:
        return False, users_permission_message(conn.conn_id, first_line(users_error))
    count = (answer.get("_metadata") or {}).get("count")
    history = "conversation history answered" + (
        f" ({count} conversation(s) in the last hour)" if isinstance(count, int) else ""
    )
    done.append(f"the Users API (v{conn.users_api_version}) listed {len(users)} user(s)")
    done.append(history)
    # Agent Groups, Skills and Profiles each need their own privilege; without them the roster still loads.
    refused: list[str] = []
    for resource in ACCOUNT_PRIVILEGES:
        try:
            hook.account_config(resource)
        except (AuthenticationError, PermissionDenied) as exc:
            refused.append(privilege_missing(conn.conn_id, resource, first_line(exc)))
        except CxsyncError as exc:
            refused.append(f"the {resource} API failed: {first_line(exc)}")
        else:
            done.append(f"{ACCOUNT_PRIVILEGES[resource][0].removesuffix(' Read')} answered")
    message = f"LivePerson connection {conn.conn_id!r} works with {auth_name}: " + "; ".join(done) + "."
    if refused:
        message += " Missing (roster loads without them): " + " ".join(refused)
    if conn.auth_type == "oauth1":
        message += " Warning: " + oauth1_end_of_life(conn.conn_id)
    return True, message


def one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
