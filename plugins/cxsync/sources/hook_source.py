"""`HookSource`: a `Source` that talks through one provider hook, with requests in flight.

Apart from the contract (`sources/base.py`), which DAG parsing loads: this one brings the request threads and is
loaded only when a task runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from cxsync.sources.base import Source
from cxsync.sources.inflight import InFlight, in_flight_for

if TYPE_CHECKING:
    from cxsync.config import Integration
    from cxsync.http.client import RequestStats


class HookSource(Source):
    """A source that talks through one provider hook (`self.hook`): the provider's clock, the request counts and
    closing come from the hook; the request threads (`InFlight`) are made at the first use and closed with it."""

    hook: Any

    def __init__(self, integration: Integration, hook: Any):
        super().__init__(integration)
        self.hook = hook
        self._flight: InFlight | None = None

    def server_now(self) -> datetime:
        return self.hook.server_now()

    def request_stats(self) -> RequestStats | None:
        return self.hook.request_stats()

    def _in_flight(self) -> InFlight:
        if self._flight is None:
            self._flight = in_flight_for(self.hook)
        return self._flight

    def close(self) -> None:
        if self._flight is not None:
            self._flight.close()
            self._flight = None
        self.hook.close()
