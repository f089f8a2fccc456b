"""The entity types redaction knows, as placeholders name them (`<EMAIL>`). Plain data: the integrations file's
checks read it at DAG parse time, without loading the detectors' libraries."""

from __future__ import annotations

EMAIL, PHONE, CARD, IBAN, NATIONAL_ID, IP, NAME = "EMAIL", "PHONE", "CARD", "IBAN", "NATIONAL_ID", "IP", "NAME"
# In the order they win when two spans overlap: a card number is also a digit run a phone matcher could take.
ENTITIES: tuple[str, ...] = (EMAIL, IBAN, CARD, NATIONAL_ID, IP, PHONE, NAME)
