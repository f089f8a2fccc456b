"""Recall and precision of a redactor on the labelled corpus, per entity type; agents' names and benign values kept.

A planted value counts as found when the redactor's spans cover every letter and digit of it (a phone whose
area code survives is not found); a span counts as right when it overlaps a planted value. Customer contact
details (the customer's own e-mail and phone, labelled EMAIL and PHONE) are counted with their type and, with
the customer's name, under CUSTOMER too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cxsync.redaction.engine import Redactor
from cxsync.redaction.identity import CustomerIdentity
from cxsync_dev.pii.corpus import AGENT, BENIGN, Conversation, Segment


@dataclass
class Scores:
    planted: Counter = field(default_factory=Counter)
    found: Counter = field(default_factory=Counter)
    spans: int = 0
    right_spans: int = 0
    kept: Counter = field(default_factory=Counter)  # AGENT, BENIGN: occurrences left intact
    seen: Counter = field(default_factory=Counter)
    misses: list[tuple[str, str]] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def recall(self, entity: str) -> float:
        return self.found[entity] / self.planted[entity] if self.planted[entity] else 1.0

    @property
    def precision(self) -> float:
        return self.right_spans / self.spans if self.spans else 1.0

    def keep_rate(self, label: str) -> float:
        return self.kept[label] / self.seen[label] if self.seen[label] else 1.0


def _labels(segments: list[Segment]) -> list[tuple[int, int, str, str]]:
    out, cursor = [], 0
    for s in segments:
        if s.label is not None:
            out.append((cursor, cursor + len(s.text), s.label, s.text))
        cursor += len(s.text)
    return out


def score(redactor: Redactor, conversations: list[Conversation]) -> Scores:
    scores = Scores()
    for conv in conversations:
        c = conv.customer
        identity = CustomerIdentity.of([c.first, c.last], [c.email], [c.phone])
        matcher = redactor.matcher(identity)
        texts = [conv.subject] + [m.segments for m in conv.messages]
        for segments in texts:
            text = "".join(s.text for s in segments)
            spans = redactor.spans(text, matcher)
            covered = set()
            for span in spans:
                covered.update(range(span.start, span.end))
            labels = _labels(segments)
            for start, end, label, value in labels:
                chars = [i for i in range(start, end) if text[i].isalnum()]
                if label in (AGENT, BENIGN):
                    scores.seen[label] += 1
                    if not any(i in covered for i in chars):
                        scores.kept[label] += 1
                    else:
                        scores.wrong.append(f"{label}: {value!r} in {text!r}")
                    continue
                own = _is_own(value, label, c)
                for entity in (label, "CUSTOMER") if own else (label,):
                    scores.planted[entity] += 1
                    if all(i in covered for i in chars):
                        scores.found[entity] += 1
                    elif entity == label:
                        scores.misses.append((label, value))
            pii = [(s, e) for s, e, label, _ in labels if label not in (AGENT, BENIGN)]
            for span in spans:
                scores.spans += 1
                if any(span.start < e and s < span.end for s, e in pii):
                    scores.right_spans += 1
                else:
                    scores.wrong.append(f"{span.entity}: {text[span.start : span.end]!r} in {text!r}")
    return scores


def _is_own(value: str, label: str, customer) -> bool:
    if label == "NAME":
        return True
    if label == "EMAIL":
        return value.lower() == customer.email.lower()
    if label == "PHONE":
        digits = "".join(ch for ch in value if ch.isdigit())
        return customer.phone.lstrip("+").endswith(digits[-9:])
    return False
