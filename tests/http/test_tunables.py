"""Request-layer tunables from connection extras: JSON values or the strings of a connection URI."""

from __future__ import annotations

import pytest

from cxsync.http import ClientTunables, ConnectionSettingError, RetryPolicy


def test_defaults():
    tunables = ClientTunables.from_extras({}, conn_id="c", default_requests_per_second=5)
    assert tunables.requests_per_second == 5 and tunables.retry == RetryPolicy()
    assert tunables.timeout == (10.0, 60.0)


def test_values_and_strings_from_a_uri():
    tunables = ClientTunables.from_extras(
        {
            "requests_per_second": "0",
            "timeout": "2.5",
            "connect_timeout": 1,
            "max_attempts": "3",
            "retry_base_seconds": "0.1",
            "retry_max_seconds": 4,
            "rate_limit_min_wait": "",
        },
        conn_id="c",
        default_requests_per_second=5,
    )
    assert tunables.requests_per_second is None  # 0 turns the limit off
    assert tunables.timeout == (1.0, 2.5)
    assert tunables.retry == RetryPolicy(max_attempts=3, base_seconds=0.1, max_seconds=4.0, min_rate_limit_wait=1.0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": "slow"}, "extra `timeout` must be a number"),
        ({"timeout": 0}, "extra `timeout` must be a number >= 0.001"),
        ({"max_attempts": 2.5}, "extra `max_attempts` must be a whole number >= 1"),
        ({"requests_per_second": True}, "extra `requests_per_second` must be a number"),
        ({"retry_base_seconds": -1}, "extra `retry_base_seconds` must be a number >= 0"),
    ],
)
def test_bad_values_name_the_connection_and_the_extra(extra, message):
    with pytest.raises(ConnectionSettingError, match="connection 'my_conn'") as info:
        ClientTunables.from_extras(extra, conn_id="my_conn", default_requests_per_second=None)
    assert message in str(info.value)
