"""Redaction of records before they are stored: text, subjects, raw JSON (every string value), customer fields.

A `Redactor` applies one policy: each span the detectors find becomes a typed placeholder (`<EMAIL>`) or, with
a pseudonym key, an HMAC pseudonym (`<EMAIL:3f9a1c>`: the same value, the same token, in every run). It counts
what it replaced per message (`MessageRecord.pii_counts`) and per run (`tally`), never the values.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cxsync.records import InteractionRecord, MessageRecord, RejectedRecord
from cxsync.redaction import detectors as d
from cxsync.redaction.identity import CustomerIdentity
from cxsync.redaction.options import RedactionPolicy

# Most messages and most raw strings hold no `@` and no run of digits a detector could take (phone and card numbers,
# IBANs and ids have six or more, IPs dotted or hex groups with colons): only the customer matcher looks at them.
_NEEDS_DETECTORS = re.compile(
    r"@|\d[\d .()/-]{4,}\d|\d\.\d{1,3}\.|[0-9a-fA-F]:[0-9a-fA-F]{0,4}:|[A-Za-z]{6}\d\d"
).search
# Strings of raw JSON that no detector could ever take: timestamps, UUIDs, short numbers.
_INERT = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    # A UUID, or an id with one inside and no space or `@` (LivePerson's `ms::conv:<uuid>::msg:3`).
    r"|[\w:./-]*[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}[\w:./-]*"
    r"|-?\d{1,6}(?:\.\d+)?"
).fullmatch
# A JSON string of digits alone is an id or a number written as text (LivePerson's agent ids are ten digits, a
# valid US number): only a card number or the customer's own phone is looked for in it.
_DIGITS_ONLY = re.compile(r"\d{7,}").fullmatch


_DETECTED_CACHE = 50_000


@dataclass
class RedactionTally:
    """A run's evidence: how much was scanned and replaced, by entity type; no values."""

    interactions: int = 0
    messages_scanned: int = 0
    messages_redacted: int = 0
    rejected_scanned: int = 0
    counts: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "interactions": self.interactions,
            "messages_scanned": self.messages_scanned,
            "messages_redacted": self.messages_redacted,
            "rejected_scanned": self.rejected_scanned,
            "by_entity": dict(sorted(self.counts.items())),
        }


class Redactor:
    """One policy, one key: redacts text, JSON values and whole records in place."""

    def __init__(self, policy: RedactionPolicy, key: bytes | None = None):
        if policy.pseudonym_key_conn_id and not key:
            raise ValueError(
                f"pii_redaction names pseudonym_key_conn_id {policy.pseudonym_key_conn_id!r}, but no key was given: "
                "set that connection's password"
            )
        self.policy = policy
        self.version = policy.version
        self._key = key
        self.tally = RedactionTally()
        wanted = set(policy.entities)
        self._customer = d.NAME in wanted
        finders: list[Callable[[str], list[d.Span]]] = []
        if d.EMAIL in wanted:
            finders.append(d.find_emails)
        if d.IBAN in wanted:
            finders.append(d.find_ibans)
        if d.CARD in wanted:
            finders.append(d.find_cards)
        if d.NATIONAL_ID in wanted:
            finders.append(d.find_national_ids)
        if d.IP in wanted:
            finders.append(d.find_ips)
        if d.PHONE in wanted:
            finders.append(d.PhoneFinder(policy.phone_regions).find)
        self._finders = tuple(finders)
        self._matchers: dict[CustomerIdentity, d.CustomerMatcher] = {}
        # Results of `text` by (text, matcher): emptied per interaction, so a matcher's id is never reused in it.
        self._cache: dict[tuple[str, int], tuple[str, Counter]] = {}
        self._detected: dict[str, list[d.Span]] = {}

    # ---- values -------------------------------------------------------------------------------------------

    def matcher(self, identity: CustomerIdentity | None) -> d.CustomerMatcher | None:
        if not self._customer or not identity:
            return None
        found = self._matchers.get(identity)
        if found is None:
            if len(self._matchers) > 1024:  # one per customer of a page; never grows without bound
                self._matchers.clear()
            found = self._matchers[identity] = d.CustomerMatcher(identity)
        return found

    def spans(self, text: str, matcher: d.CustomerMatcher | None = None) -> list[d.Span]:
        found: list[d.Span] = []
        if _NEEDS_DETECTORS(text):
            # What the detectors find depends on the text alone: canned answers and repeated raw values are
            # scanned once per task (bounded).
            general = self._detected.get(text)
            if general is None:
                general = [span for finder in self._finders for span in finder(text)]
                if len(self._detected) >= _DETECTED_CACHE:
                    self._detected.clear()
                self._detected[text] = general
            found = list(general)
        if matcher is not None:
            found += matcher.find(text)
        return d.resolve(found) if found else found

    def text(self, text: str | None, matcher: d.CustomerMatcher | None, counts: Counter) -> str | None:
        """`text` with every span replaced; adds what it replaced to `counts`."""
        if not text or (not _NEEDS_DETECTORS(text) and (matcher is None or not matcher.may_match(text))):
            return text  # the cheap path: nothing any detector or the customer's matcher could take
        key = (text, id(matcher))
        cached = self._cache.get(key)
        if cached is not None:  # the same text again (a message's text inside its raw JSON): found once
            redacted, found = cached
        else:
            found = Counter()
            redacted = self._replace(text, matcher, found)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = (redacted, found)
        if found:
            counts.update(found)
        return redacted

    def _replace(self, text: str, matcher: d.CustomerMatcher | None, counts: Counter) -> str:
        spans = self.spans(text, matcher)
        if not spans:
            return text
        out: list[str] = []
        cursor = 0
        for span in spans:
            out.append(text[cursor : span.start])
            out.append(self.placeholder(span.entity, span.canonical))
            cursor = span.end
            counts[span.entity] += 1
        out.append(text[cursor:])
        return "".join(out)

    def placeholder(self, entity: str, canonical: str) -> str:
        if self._key is None:
            return f"<{entity}>"
        token = hmac.new(self._key, f"{entity}:{canonical}".encode(), hashlib.sha256).hexdigest()[:6]
        return f"<{entity}:{token}>"

    def value(self, value: Any, matcher: d.CustomerMatcher | None, counts: Counter) -> Any:
        """A JSON value with every string in it redacted (keys are the provider's field names: kept). A number is
        checked against the customer's phone numbers only: timestamps and ids are numbers too."""
        kind = type(value)
        if kind is str:
            if not _NEEDS_DETECTORS(value) and (matcher is None or not matcher.may_match(value)):
                return value
            if _INERT(value):
                return value
            if _DIGITS_ONLY(value):
                return self._digits(value, matcher, counts)
            return self.text(value, matcher, counts)
        if kind is dict:
            walk = self.value
            return {k: v if v is None or type(v) is bool else walk(v, matcher, counts) for k, v in value.items()}
        if kind is list or kind is tuple:
            return [self.value(v, matcher, counts) for v in value]
        if isinstance(value, str):  # a str subclass
            return self.text(value, matcher, counts)
        if isinstance(value, dict):
            return {k: self.value(v, matcher, counts) for k, v in value.items()}
        if isinstance(value, int) and not isinstance(value, bool) and matcher is not None and abs(value) >= 10**6:
            spans = [s for s in matcher.find(str(value)) if s.entity == d.PHONE]
            if spans:
                counts[d.PHONE] += 1
                return self.placeholder(d.PHONE, spans[0].canonical)
        return value

    def _digits(self, value: str, matcher: d.CustomerMatcher | None, counts: Counter) -> str:
        spans = d.find_cards(value) if d.CARD in self.policy.entities else []
        if matcher is not None:
            spans += [s for s in matcher.find(value) if s.entity == d.PHONE]
        if not spans:
            return value
        span = d.resolve(spans)[0]
        counts[span.entity] += 1
        return value[: span.start] + self.placeholder(span.entity, span.canonical) + value[span.end :]

    def identifier(self, value: str | None, matcher: d.CustomerMatcher | None, counts: Counter) -> str | None:
        """An id column that may be the customer's e-mail (HelpDesk's requester) or phone: only e-mail addresses
        and the customer's own contact details are looked for (an id's digits are no phone number)."""
        if not value:
            return value
        spans = d.find_emails(value) if d.EMAIL in self.policy.entities and "@" in value else []
        if matcher is not None:
            spans += [s for s in matcher.find(value) if s.entity != d.NAME]
        if not spans:
            return value
        for span in reversed(d.resolve(spans)):
            value = value[: span.start] + self.placeholder(span.entity, span.canonical) + value[span.end :]
            counts[span.entity] += 1
        return value

    # ---- records ------------------------------------------------------------------------------------------

    def interaction(self, record: InteractionRecord, identity: CustomerIdentity | None) -> Counter:
        """Redact one interaction and its messages in place; returns the interaction's counts (messages'
        included), and sets each message's own `pii_counts`."""
        matcher = self.matcher(identity)
        self._cache.clear()
        counts: Counter = Counter()
        record.subject = self.text(record.subject, matcher, counts)
        record.customer_id = self.identifier(record.customer_id, matcher, counts)
        record.tags = [self.text(tag, matcher, counts) or tag for tag in record.tags]
        record.raw = None if self.policy.drop_raw else self.value(record.raw, matcher, counts)
        for message in record.messages:
            counts += self.message(message, matcher)
        record.redaction_version = self.version
        self.tally.interactions += 1
        self.tally.counts += counts
        return counts

    def message(self, message: MessageRecord, matcher: d.CustomerMatcher | None) -> Counter:
        counts: Counter = Counter()
        message.text = self.text(message.text, matcher, counts)
        if message.sender_type == "customer":
            message.sender_id = self.identifier(message.sender_id, matcher, counts)
        message.attachments = self.value(message.attachments, matcher, counts)
        message.raw = None if self.policy.drop_raw else self.value(message.raw, matcher, counts)
        message.pii_counts = dict(sorted(counts.items()))
        self.tally.messages_scanned += 1
        if counts:
            self.tally.messages_redacted += 1
        return counts

    def rejected(self, record: RejectedRecord, identity: CustomerIdentity | None) -> None:
        matcher = self.matcher(identity)
        self._cache.clear()
        counts: Counter = Counter()
        record.record_key = self.identifier(record.record_key, matcher, counts)
        record.reason = self.text(record.reason, matcher, counts) or record.reason
        record.raw = None if self.policy.drop_raw else self.value(record.raw, matcher, counts)
        self.tally.rejected_scanned += 1
        self.tally.counts += counts

    def records(
        self,
        records: Iterable[InteractionRecord],
        rejected: Iterable[RejectedRecord],
        identity_of: Callable[[Any], CustomerIdentity | None],
    ) -> None:
        """A page's records in place. A rejected record is matched against its own raw's customer and every
        customer of the page (a refused message event of a ticket carries no requester of its own)."""
        page_identity = CustomerIdentity()
        for record in records:
            identity = identity_of(record.raw)
            page_identity = page_identity.merged(identity)
            self.interaction(record, identity)
        for item in rejected:
            self.rejected(item, page_identity.merged(identity_of(item.raw)))
