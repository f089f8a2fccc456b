"""A failed task's log ends with one plain line (the error's first line and the action that fixes it), and the
task keeps that line as an XCom for the status card."""

from __future__ import annotations

import logging

from airflow.sdk.exceptions import AirflowFailException

from cxsync import failure
from cxsync.config import ConfigError
from cxsync.errors import AuthenticationError, RetriableError


def _wrapped(exc: Exception) -> AirflowFailException:
    """What cxsync.tasks.fail_fast raises: Airflow's exception, the cxsync error as its cause."""
    try:
        try:
            raise exc
        except Exception as inner:
            raise AirflowFailException(str(inner)) from inner
    except AirflowFailException as outer:
        return outer


def test_an_oauth_helpdesk_refusal_says_reconnect_helpdesk():
    exc = _wrapped(AuthenticationError("HelpDesk refused the refresh token (invalid_grant)\nmore detail"))
    found = failure.describe(exc, provider="helpdesk", auth_type="oauth2", conn_id="hd_oauth")
    assert found.message == "HelpDesk refused the refresh token (invalid_grant)"
    assert found.button == failure.RECONNECT_HELPDESK and "Reconnect HelpDesk" in found.action
    assert "python -m" not in found.line


def test_other_failures_name_their_fix():
    token = failure.describe(_wrapped(AuthenticationError("401 from LivePerson")), provider="liveperson",
                             conn_id="lp")  # fmt: skip
    assert token.button is None and "credentials of connection 'lp'" in token.action
    assert "integrations file" in failure.describe(_wrapped(ConfigError("bad entry"))).action
    assert failure.describe(RetriableError("")).message == "RetriableError"


class FakeTi:
    def __init__(self):
        self.pushed: dict = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_the_callback_logs_the_plain_line_last_and_keeps_it(caplog):
    ti = FakeTi()
    exc = _wrapped(ConfigError("integrations.yaml: entry 'x': unknown field 'schedul'\n  at line 4"))
    with caplog.at_level(logging.ERROR):
        failure.on_failure({"exception": exc, "ti": ti, "task": None})
    assert caplog.records[-1].getMessage() == (
        "cxsync: this task failed: integrations.yaml: entry 'x': unknown field 'schedul'. "
        "Fix the integrations file as said; the DAGs pick it up on the next parse."
    )
    assert ti.pushed[failure.XCOM_KEY]["message"] == "integrations.yaml: entry 'x': unknown field 'schedul'"


def test_a_missing_refresh_token_points_to_the_button_not_the_terminal():
    text = "connection 'hd' uses OAuth 2 but has no refresh token yet: run `python -m cxsync.helpdesk_oauth` once"
    exc = _wrapped(AuthenticationError(text))
    found = failure.describe(exc, provider="helpdesk", auth_type="oauth2", conn_id="hd")
    assert found.message == "connection 'hd' uses OAuth 2 but has no refresh token yet"
    assert found.button == failure.RECONNECT_HELPDESK
