"""The Test button tests an unsaved form under a random temporary connection id: its messages never name that
id, and they point at the form's fields by the labels the form shows."""

from __future__ import annotations

import json

import pytest

from cxsync.hooks.helpdesk import HelpDeskHook
from cxsync.hooks.liveperson import LivePersonHook
from cxsync.hooks.test_button import for_the_form, form_labels

TEMPORARY_ID = "xw6gSZpL"  # what Airflow's api-server names the form it tests


@pytest.fixture
def hd(hd_sandbox):
    return hd_sandbox()


def test_helpdesk_oauth_without_a_refresh_token_advises_a_command_that_can_work(hd):
    hd.derive(TEMPORARY_ID, base="sandbox_helpdesk_oauth", extra={"refresh_token": None})
    ok, message = HelpDeskHook(TEMPORARY_ID).test_connection()
    assert not ok
    assert TEMPORARY_ID not in message
    assert "--conn-id <the connection id, once saved>" in message


def test_helpdesk_missing_login_names_the_form_field(hd):
    hd.derive(TEMPORARY_ID, login="")
    ok, message = HelpDeskHook(TEMPORARY_ID).test_connection()
    assert not ok and TEMPORARY_ID not in message
    assert message.startswith("This connection: field `login` is empty")
    assert message.endswith('In the form: "Account ID / Client ID".')


def test_liveperson_missing_account_names_the_form_field(monkeypatch):
    conn = {"conn_type": "liveperson", "login": "key", "password": "secret", "extra": {"auth_type": "oauth2"}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{TEMPORARY_ID.upper()}", json.dumps(conn))
    ok, message = LivePersonHook(TEMPORARY_ID).test_connection()
    assert not ok and TEMPORARY_ID not in message
    assert message.startswith("This LivePerson connection: extra `account_id` is required")
    assert message.endswith('In the form: "Account number".')


def test_form_wording():
    labels = form_labels("helpdesk")
    assert labels["login"] == "Account ID / Client ID" and labels["auth_type"] == "Authentication"
    said = "HelpDesk connection 'ab12': extra `auth_type` is 'x'; run `python -m cxsync.helpdesk_oauth --conn-id ab12`"
    assert for_the_form(said, "ab12", labels) == (
        "This HelpDesk connection: extra `auth_type` is 'x'; run "
        "`python -m cxsync.helpdesk_oauth --conn-id <the connection id, once saved>` "
        'In the form: "Authentication".'
    )
    # a connection named like the command's module leaves the command alone
    said = (
        "connection 'helpdesk_oauth' has no refresh token: "
        "run `python -m cxsync.helpdesk_oauth --conn-id helpdesk_oauth`"
    )
    assert for_the_form(said, "helpdesk_oauth", labels) == (
        "This connection has no refresh token: run "
        "`python -m cxsync.helpdesk_oauth --conn-id <the connection id, once saved>`"
    )


def test_a_sentence_that_starts_with_the_connection_starts_with_a_capital():
    from cxsync.hooks.test_button import for_the_form

    said = for_the_form("LivePerson connection 'tmpX1' works with OAuth 2. connection 'tmpX1' is fine.", "tmpX1", {})
    assert said == "This LivePerson connection works with OAuth 2. This connection is fine."
