"""Normalized records: what provider sources produce and the warehouse stores.

Sources turn API pages into these; the warehouse knows nothing about providers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class AgentRecord:
    agent_id: str
    login_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    role: str | None = None
    is_enabled: bool | None = None
    is_deleted: bool = False
    group_ids: list[str] = field(default_factory=list)
    skill_ids: list[str] = field(default_factory=list)
    raw: Any = None


@dataclass
class GroupRecord:
    """An agent group (LivePerson) or team (HelpDesk)."""

    group_id: str
    name: str | None = None
    raw: Any = None


@dataclass
class SkillRecord:
    skill_id: str
    name: str | None = None
    raw: Any = None


@dataclass
class MessageRecord:
    message_id: str
    seq: int
    sent_at: datetime | None
    sender_type: str
    sender_id: str | None = None
    text: str | None = None
    is_private: bool = False
    message_type: str | None = None
    # The provider's dialog the message belongs to, lowercased: `main`, or `post_survey` for a LivePerson
    # post-conversation survey (kept, but not part of the transcript QA scores).
    dialog_type: str = "main"
    # Metadata of files sent with the message, each {"name", "type", "size"}: never the file itself.
    attachments: list[dict[str, Any]] = field(default_factory=list)
    raw: Any = None
    # Set by PII redaction (cxsync.redaction): how many values of each entity type it replaced in this message's
    # text, attachments and raw JSON (`{}`: scanned, nothing found); None: not redacted.
    pii_counts: dict[str, int] | None = None


@dataclass
class InteractionRecord:
    interaction_id: str
    provider: str
    status: str
    started_at: datetime
    channel: str | None = None
    provider_status: str | None = None
    subject: str | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    agent_id: str | None = None
    customer_id: str | None = None
    messages: list[MessageRecord] = field(default_factory=list)
    raw: Any = None
    # QA signals (docs/metrics.md says each provider's source and scale).
    csat_score: float | None = None
    sentiment_score: float | None = None
    close_reason: str | None = None
    skill: str | None = None
    agent_group: str | None = None
    tags: list[str] = field(default_factory=list)
    priority: str | None = None
    # The number people quote (HelpDesk `shortID`), when the provider has one besides the id.
    display_id: str | None = None
    # Agents the record names (ticket event authors, assignees): the warehouse adds those it does not know, so
    # agents deleted before the first roster sync still get a row that matching can see.
    agents_seen: list[AgentRecord] = field(default_factory=list)
    # The redaction rules this record was redacted with (`RedactionPolicy.version`); None: stored as the provider
    # sent it. Part of the content hash, so changing the rules changes every redacted interaction's hash.
    redaction_version: str | None = None

    @property
    def message_count(self) -> int:
        return len(self.messages)


@dataclass
class RejectedRecord:
    stream: str
    record_key: str | None
    reason: str
    raw: Any = None
