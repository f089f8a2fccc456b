"""The one place that sorts failures into retriable and fatal.

Hooks and sources raise these; the DAG tasks turn `FatalError` into `AirflowFailException`, so a
failure no retry can fix (bad credentials, a missing permission, bad config) fails the task at once
instead of sitting through retry delays.
"""

from __future__ import annotations


class CxsyncError(Exception):
    """Base of cxsync's own errors. Messages are plain words and never carry secrets."""


class FatalError(CxsyncError):
    """No retry can fix this: a person has to change credentials, permissions or configuration."""


class AuthenticationError(FatalError):
    """The provider refused the credentials (401, bad signature, invalid client)."""


class PermissionDenied(FatalError):
    """The credentials work but lack a permission or role (403)."""


class ProviderRequestError(FatalError):
    """A 4xx answer other than 401/403/429: the request itself is wrong; retrying repeats it."""

    def __init__(self, message: str, status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body


class RetriableError(CxsyncError):
    """Transient: 429, 5xx, resets, timeouts, truncated bodies, partial answers. Retried with backoff."""


class RetriesExhausted(RetriableError):
    """The request layer's own bounded retries ran out; Airflow's task retry may still succeed later."""
