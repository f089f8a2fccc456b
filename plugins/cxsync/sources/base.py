"""The contract between a provider source and the provider-agnostic pipeline.

A source owns everything provider-specific about *what* to ask and *how to map* the answers; its
hook owns *how to talk* (auth, sessions, retries, rate limits). The pipeline owns batching,
watermarks, progress logs and the warehouse.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from cxsync.records import AgentRecord, GroupRecord, InteractionRecord, RejectedRecord, SkillRecord
from cxsync.redaction.identity import CustomerIdentity

if TYPE_CHECKING:
    from cxsync.config import Integration
    from cxsync.warehouse.store import HeldInteraction


@dataclass
class Roster:
    agents: list[AgentRecord]
    groups: list[GroupRecord] = field(default_factory=list)
    skills: list[SkillRecord] = field(default_factory=list)
    # True when `agents` is the provider's whole roster, so agents missing from it are gone.
    complete: bool = True
    rejected: list[RejectedRecord] = field(default_factory=list)
    # What the roster lacks and why, in plain words (a privilege the credentials miss, say): the task log and
    # the status page show them; an empty list clears the earlier ones.
    warnings: list[str] = field(default_factory=list)


@dataclass
class Page:
    """One unit of fetched work, written to the warehouse in one transaction."""

    records: list[InteractionRecord]
    rejected: list[RejectedRecord] = field(default_factory=list)
    # For progress logs, e.g. "page 3 of 12"; the pipeline adds counts and rates.
    label: str = ""


@dataclass(frozen=True)
class Listed:
    """One interaction as a provider's list shows it, for reconciliation: only what comparing needs."""

    interaction_id: str
    started_at: datetime | None
    status: str | None = None  # open | closed; None when the list does not say
    # The provider's update stamp, or a lower bound of it; None when the list carries none (see `changed`).
    updated_at: datetime | None = None
    agent_id: str | None = None
    agent_known: bool = False  # whether the list says who the agent is (agent_id None: nobody)
    deleted: bool = False  # listed among the provider's deleted records (kept by us until retention)


class Source(ABC):
    """Turns a provider's API into normalized records. Built per task run, from the integration."""

    provider: ClassVar[str]
    # Set by the incremental load (`pipeline.load_changes`): the `updated_at` the warehouse holds for each
    # interaction it holds updated at or after a time. A source whose change list re-lists its overlap on every
    # run (HelpDesk) skips fetching a listed record whose list stamp is not newer; None: fetch all it lists.
    stored_since: Callable[[datetime], dict[str, datetime | None]] | None = None

    def __init__(self, integration: Integration):
        self.integration = integration

    @abstractmethod
    def server_now(self) -> datetime:
        """The provider's current time (UTC-aware): windows and watermarks are on its clock."""

    @abstractmethod
    def roster(self) -> Roster:
        """Every agent the provider knows, deleted ones included where the API can say so."""

    @abstractmethod
    def window(self, start: datetime, end: datetime) -> Iterator[Page]:
        """Every interaction that started in [start, end), page by page, each complete with messages."""

    @abstractmethod
    def changes(self, since: datetime | None, until: datetime) -> Iterator[Page]:
        """Interactions created or changed from `since` (already minus the source's own overlap) to
        `until`. `since` is None on the first run; the source then picks a sensible look-back."""

    # ---- reconciliation: list cheaply, fetch only the difference -----------------------------------------

    def listing(self, start: datetime, end: datetime) -> Iterator[Listed]:
        """Interactions that started in [start, end) and those changed since `start`, from list requests only
        (no record fetched whole), with the ones the provider holds as deleted marked so."""
        raise NotImplementedError(f"{type(self).__name__} cannot list for reconciliation")

    def changed(
        self, held: Sequence[HeldInteraction], end: datetime, covered_since: datetime | None = None
    ) -> set[str]:
        """Of stored interactions whose listing (up to `end`) carried no update stamp, the ids the provider changed
        since our copy (cheaply, by list requests). `covered_since`: the watermark the incremental run just before
        read from (its overlap is the source's): a change after it that was visible then is already loaded.
        Sources whose lists carry stamps never need it."""
        return set()

    def fetch(self, interaction_ids: Sequence[str]) -> Iterator[Page]:
        """These interactions whole (as `window` gives them), page by page; ids the provider no longer has
        are left out."""
        raise NotImplementedError(f"{type(self).__name__} cannot fetch interactions by id")

    def customer_identity(self, raw: Any) -> CustomerIdentity | None:
        """The customer's name, e-mail and phone as a raw record (an interaction's `raw`, stored or fresh, or a
        rejected record's) names them: what PII redaction matches in free text. None: the source cannot say."""
        return None

    def request_stats(self) -> Any:
        """The request layer's counts of this source's requests (a `RequestStats`), or None: recorded per task in
        `cx_request_stats`."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook for sources that hold sessions
        """Release sessions; called once the task is done."""
