"""The engine: typed placeholders or keyed pseudonyms, every string of raw JSON, counts without values, the mode
that drops raw JSON, the cheap path."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from cxsync.records import InteractionRecord, MessageRecord, RejectedRecord
from cxsync.redaction.engine import Redactor
from cxsync.redaction.identity import CustomerIdentity
from cxsync.redaction.options import RedactionPolicy

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ANNA = CustomerIdentity.of(["Anna Šimková"], ["anna@mail.example"], ["+420 601 123 456"])


def record() -> InteractionRecord:
    return InteractionRecord(
        "c1",
        "liveperson",
        "closed",
        T0,
        subject="Card 4111 1111 1111 1111 for Anna",
        customer_id="anna@mail.example",
        raw={"consumer": {"firstName": "Anna", "email": "anna@mail.example", "phone": 420601123456}, "n": 17},
        messages=[
            MessageRecord("m1", 1, T0, "customer", "anna", text="I'm anna simkova, mail me at kim@x.example"),
            MessageRecord("m2", 2, T0, "agent", "a1", text="Thanks Anna, Sophie here.", raw={"text": "Thanks Anna"}),
            MessageRecord("m3", 3, T0, "agent", "a1", text="IBAN DE89370400440532013000", is_private=True),
        ],
    )


def test_typed_placeholders_everywhere_and_counts_per_message():
    rec = record()
    redactor = Redactor(RedactionPolicy())
    counts = redactor.interaction(rec, ANNA)
    assert rec.subject == "Card <CARD> for <NAME>"
    assert rec.customer_id == "<EMAIL>"
    assert rec.raw == {"consumer": {"firstName": "<NAME>", "email": "<EMAIL>", "phone": "<PHONE>"}, "n": 17}
    texts = [m.text for m in rec.messages]
    assert texts == ["I'm <NAME> <NAME>, mail me at <EMAIL>", "Thanks <NAME>, Sophie here.", "IBAN <IBAN>"]
    assert rec.messages[1].raw == {"text": "Thanks <NAME>"}
    assert [m.pii_counts for m in rec.messages] == [{"EMAIL": 1, "NAME": 2}, {"NAME": 2}, {"IBAN": 1}]
    assert counts == Counter({"NAME": 6, "EMAIL": 3, "CARD": 1, "IBAN": 1, "PHONE": 1})
    assert redactor.tally.as_dict() == {
        "interactions": 1,
        "messages_scanned": 3,
        "messages_redacted": 3,
        "rejected_scanned": 0,
        "by_entity": {"CARD": 1, "EMAIL": 3, "IBAN": 1, "NAME": 6, "PHONE": 1},
    }
    assert rec.redaction_version == RedactionPolicy().version


def test_pseudonyms_are_keyed_and_stable():
    policy = RedactionPolicy(pseudonym_key_conn_id="pii_key")
    one, two = Redactor(policy, b"k1"), Redactor(policy, b"k1")
    other = Redactor(policy, b"k2")
    text = "mail KIM@x.example or kim@x.example, not sam@x.example"
    a = one.text(text, None, Counter())
    assert a == two.text(text, None, Counter())  # another run, the same tokens
    tokens = a.split()
    assert tokens[1] == tokens[3].rstrip(",") and tokens[1] != tokens[5]  # one e-mail, one token
    assert tokens[1].startswith("<EMAIL:") and len(tokens[1]) == len("<EMAIL:3f9a1c>")
    assert other.text(text, None, Counter()) != a  # the key decides


def test_a_pseudonym_policy_without_its_key_is_refused():
    with pytest.raises(ValueError, match="pii_key"):
        Redactor(RedactionPolicy(pseudonym_key_conn_id="pii_key"))


def test_redact_drop_raw_stores_no_raw_json():
    rec = record()
    rejected = RejectedRecord("interactions", "c2", "bad", {"email": "anna@mail.example"})
    redactor = Redactor(RedactionPolicy(mode="redact_drop_raw"))
    redactor.records([rec], [rejected], lambda raw: ANNA)
    assert rec.raw is None and all(m.raw is None for m in rec.messages) and rejected.raw is None
    assert rec.messages[0].text == "I'm <NAME> <NAME>, mail me at <EMAIL>"


def test_only_the_chosen_entities_are_redacted():
    redactor = Redactor(RedactionPolicy(entities=("EMAIL",)))
    counts = Counter()
    assert redactor.text("Anna: kim@x.example, 4111 1111 1111 1111", redactor.matcher(ANNA), counts) == (
        "Anna: <EMAIL>, 4111 1111 1111 1111"
    )


def test_text_with_no_digit_and_no_at_skips_the_detectors(monkeypatch):
    redactor = Redactor(RedactionPolicy())
    calls = []
    redactor._finders = tuple(lambda text, f=f: calls.append(text) or f(text) for f in redactor._finders)
    counts = Counter()
    assert redactor.text("no numbers here, Anna", redactor.matcher(ANNA), counts) == "no numbers here, <NAME>"
    assert calls == []
    redactor.text("call 030 1234567", None, counts)
    assert calls


def test_rejected_records_match_the_page_customers():
    rec = record()
    refused = RejectedRecord("interactions", "c1/events[3]", "bad event", {"text": "from Anna Šimková"})
    Redactor(RedactionPolicy()).records([rec], [refused], lambda raw: ANNA if raw is rec.raw else None)
    assert refused.raw == {"text": "from <NAME> <NAME>"}
