"""Run pipeline steps in-process the way the DAG tasks run them, Airflow's task retry included.

Each try of a step builds a fresh source (every Airflow task does). A `FatalError` ends the step at once
(the task's `AirflowFailException`); any other exception is a failed try that Airflow would retry: the step
runs again, up to `tries` times, and every failure is recorded so a test can check that faults surfaced only
as `RetriableError`s, never as crashes of another kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from cxsync import pipeline
from cxsync.config import Integration
from cxsync.errors import FatalError, RetriableError
from support.providers import ProviderCase

T = TypeVar("T")


@dataclass
class TaskRunner:
    case: ProviderCase
    integration: Integration
    warehouse: Any
    tries: int = 10  # generous: a test about convergence must not fail on an unlucky streak of faults
    failures: list[BaseException] = field(default_factory=list)

    @property
    def reruns(self) -> int:
        return len(self.failures)

    def unexpected_failures(self) -> list[str]:
        """Failed tries that were not `RetriableError`: a fault that escaped the error sorting."""
        return [f"{type(f).__name__}: {f}" for f in self.failures if not isinstance(f, RetriableError)]

    def task(self, body: Callable[[Any], T]) -> T:
        for attempt in range(1, self.tries + 1):
            source = self.case.source(self.integration)
            try:
                return body(source)
            except FatalError:
                raise
            except Exception as exc:
                self.failures.append(exc)
                if attempt == self.tries:
                    raise
            finally:
                source.close()
        raise AssertionError("unreachable")

    # ---- the DAGs' tasks ------------------------------------------------------------------------------

    def roster(self) -> dict:
        return self.task(lambda source: pipeline.sync_roster(self.integration, source, self.warehouse))

    def plan(self, weeks: int = 1) -> tuple[datetime, list[pipeline.Window]]:
        end = self.task(lambda source: source.server_now())
        return end, pipeline.plan_windows(end, weeks)

    def window(self, window: pipeline.Window) -> dict:
        return self.task(lambda source: pipeline.load_window(self.integration, source, self.warehouse, window))

    def backfill(self, weeks: int = 1) -> list[dict]:
        end, windows = self.plan(weeks)
        results = [self.window(w) for w in windows]
        pipeline.finish_backfill(self.integration, self.warehouse, end)
        return results

    def incremental(self) -> dict:
        return self.task(lambda source: pipeline.load_changes(self.integration, source, self.warehouse))
