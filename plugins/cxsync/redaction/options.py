"""`pii_redaction` of an integration entry: `false` (the default: nothing redacted), `true` (the defaults below),
or a mapping of mode, entities, phone regions and the pseudonym key's connection.

    pii_redaction:
      mode: redact              # or redact_drop_raw: raw JSON columns are not stored at all
      entities: [email, phone, card, iban, national_id, ip, customer]
      phone_regions: [US, GB, DE, FR, ES, IT, BR, IN]
      pseudonym_key_conn_id: cxsync_pii_key   # typed placeholders become <EMAIL:3f9a1c>, keyed by its password
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cxsync.redaction import entities as d

MODES = ("redact", "redact_drop_raw")
# The configuration's names for the entity types; `customer`: the customer's own name, e-mail and phone as the
# provider's record names them (counted as NAME, EMAIL and PHONE).
ENTITY_NAMES = {
    "email": d.EMAIL,
    "phone": d.PHONE,
    "card": d.CARD,
    "iban": d.IBAN,
    "national_id": d.NATIONAL_ID,
    "ip": d.IP,
    "customer": d.NAME,
}
# Numbers written with `+` or `00` are found whatever the region; these decide national formats.
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "BR", "IN")
# Bump when a detector finds more or less than before: it is part of `RedactionPolicy.version`, which is part of
# every redacted interaction's content hash, so stored rows are re-redacted (the `cxsync_redact` DAG) and reloads
# rewrite them.
RULES_VERSION = 1
_KEYS = ("mode", "entities", "phone_regions", "pseudonym_key_conn_id")


@dataclass(frozen=True)
class RedactionPolicy:
    mode: str = "redact"
    entities: tuple[str, ...] = tuple(d.ENTITIES)
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
    pseudonym_key_conn_id: str | None = None

    @property
    def drop_raw(self) -> bool:
        return self.mode == "redact_drop_raw"

    @property
    def version(self) -> str:
        """What the stored text depends on: rules, mode, entities, regions, pseudonyms (never the key itself)."""
        parts = [self.mode, ",".join(sorted(self.entities)), ",".join(self.phone_regions)]
        parts.append(self.pseudonym_key_conn_id or "")
        return f"r{RULES_VERSION}-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]

    def describe(self) -> str:
        names = [name for name, entity in ENTITY_NAMES.items() if entity in self.entities]
        key = self.pseudonym_key_conn_id
        how = f"pseudonyms keyed by connection {key}" if key else "placeholders"
        return f"{self.mode}: {', '.join(names)}; phones of {', '.join(self.phone_regions)}; {how}"


def parse_pii_redaction(value: Any, problems: list[str]) -> RedactionPolicy | None:
    """The policy an entry's `pii_redaction` asks for (None: off); what is wrong goes to `problems`, each naming
    its field."""
    if value is None or value is False:
        return None
    if value is True:
        return RedactionPolicy()
    if not isinstance(value, dict):
        problems.append(f"field `pii_redaction`: {value!r:.80} must be true, false or a mapping ({', '.join(_KEYS)})")
        return None
    ok = True
    unknown = sorted(map(str, set(value) - set(_KEYS)))
    if unknown:
        problems.append(f"field `pii_redaction`: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_KEYS)}")
        ok = False
    mode = value.get("mode", "redact")
    if mode not in MODES:
        problems.append(f"field `pii_redaction.mode`: {mode!r:.80} must be one of {', '.join(MODES)}")
        ok = False
    entities = value.get("entities", list(ENTITY_NAMES))
    chosen: list[str] = []
    if not isinstance(entities, list) or not entities:
        problems.append(
            f"field `pii_redaction.entities`: {entities!r:.80} must be a non-empty list of {', '.join(ENTITY_NAMES)}"
        )
        ok = False
    else:
        wrong = [e for e in entities if not isinstance(e, str) or e.lower() not in ENTITY_NAMES]
        if wrong:
            problems.append(
                f"field `pii_redaction.entities`: unknown entity type(s) {', '.join(map(repr, wrong))}; "
                f"allowed: {', '.join(ENTITY_NAMES)}"
            )
            ok = False
        else:
            chosen = [ENTITY_NAMES[e.lower()] for e in entities]
    regions = value.get("phone_regions", list(DEFAULT_PHONE_REGIONS))
    if not isinstance(regions, list) or not regions or not all(isinstance(r, str) for r in regions):
        problems.append(
            f"field `pii_redaction.phone_regions`: {regions!r:.80} must be a non-empty list of region codes (US, DE)"
        )
        ok = False
    else:
        import phonenumbers  # only for a file that names regions: parsing the defaults needs no metadata

        wrong = [r for r in regions if r.upper() not in phonenumbers.SUPPORTED_REGIONS]
        if wrong:
            problems.append(
                f"field `pii_redaction.phone_regions`: {', '.join(map(repr, wrong))} not a region phonenumbers "
                "knows; use ISO 3166 two-letter codes such as US, GB, DE, FR, ES, BR, IN"
            )
            ok = False
    key_conn = value.get("pseudonym_key_conn_id")
    if key_conn is not None and (not isinstance(key_conn, str) or not key_conn.strip()):
        problems.append(
            f"field `pii_redaction.pseudonym_key_conn_id`: {key_conn!r:.80} must be the id of an Airflow connection "
            "whose password is the pseudonym key"
        )
        ok = False
    if not ok:
        return None
    order = {entity: i for i, entity in enumerate(d.ENTITIES)}
    return RedactionPolicy(
        mode=mode,
        entities=tuple(sorted(set(chosen), key=order.__getitem__)),
        phone_regions=tuple(dict.fromkeys(r.upper() for r in regions)),
        pseudonym_key_conn_id=key_conn,
    )
