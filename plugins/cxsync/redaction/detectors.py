"""What counts as PII in a text, and where it is: each detector returns spans, offline and deterministic.

No model and no network: regular expressions find candidates, checksums decide (Luhn for cards, ISO 7064 for
IBANs, python-stdnum for national ids), the `phonenumbers` library's metadata decides phone numbers for the
configured regions. Dates, prices and order numbers are no entity, and the checks are there to keep them: a
date is no valid phone number, an order number fails Luhn nine times in ten and is no card without it, a
national-format phone number needs its region's trunk prefix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.br import cpf
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer

from cxsync.redaction.entities import CARD, EMAIL, ENTITIES, IBAN, IP, NAME, NATIONAL_ID, PHONE
from cxsync.redaction.identity import CustomerIdentity, fold_with_offsets

__all__ = ["CARD", "EMAIL", "ENTITIES", "IBAN", "IP", "NAME", "NATIONAL_ID", "PHONE", "Span", "resolve"]


class Span(NamedTuple):
    start: int
    end: int
    entity: str
    # The value in one canonical form (an e-mail lower-cased, a phone in E.164, digits only): what a pseudonym
    # is keyed on, so one customer's e-mail is one token however it was typed.
    canonical: str


# ---- e-mail ------------------------------------------------------------------------------------------------
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")


def find_emails(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), EMAIL, m.group().lower()) for m in _EMAIL.finditer(text)]


# A digit run right after a word that names a reference is that reference, not a phone or a card: "invoice
# 4192341062" is a valid US number, "EAN 4006763333443" passes Luhn.
_REFERENCE_WORD = re.compile(
    r"(?i)(?<![^\W\d_])(?:order|invoice|inv|ticket|tracking|ean|sku|ref|reference|case|item|article|barcode|isbn|"
    r"gtin|upc|po|booking|parcel|shipment|serial|model|part|bestellung|rechnung|commande|facture|pedido|factura)"
    r"(?:\s*(?:no\.?|nr\.?|number|num\.?|id|#))?\s*[:#]?\s*$"
)


def after_reference_word(text: str, start: int) -> bool:
    return _REFERENCE_WORD.search(text, max(0, start - 30), start) is not None


# ---- payment cards -----------------------------------------------------------------------------------------
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def find_cards(text: str) -> list[Span]:
    spans = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        # Issuer prefixes (2 and 5 Mastercard, 3 Amex/Diners/JCB, 4 Visa, 6 Discover/UnionPay/Maestro) and Luhn.
        if digits[0] in "23456" and luhn.is_valid(digits) and not after_reference_word(text, m.start()):
            spans.append(Span(m.start(), m.end(), CARD, digits))
    return spans


# ---- IBAN --------------------------------------------------------------------------------------------------
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}")


def find_ibans(text: str) -> list[Span]:
    spans = []
    for m in _IBAN.finditer(text):
        candidate = m.group()
        # The pattern may run on into the next word ("... 0130 00 THANKS"): the longest prefix that passes
        # the checksum is the IBAN.
        positions = [i for i, c in enumerate(candidate) if c != " "]
        compact = "".join(candidate[i] for i in positions).upper()
        for length in range(min(len(compact), 34), 14, -1):
            if stdnum_iban.is_valid(compact[:length]):
                spans.append(Span(m.start(), m.start() + positions[length - 1] + 1, IBAN, compact[:length]))
                break
    return spans


# ---- national ids with a checksum --------------------------------------------------------------------------
# Bare digit runs pass an 11-proof or a mod-10 check one time in ten: those ids count only after a word that
# names them; formats with letters, dots or a dash are distinctive enough alone.
_ID_WORDS = re.compile(
    r"(?i)(?:bsn|pesel|aadhaa?r|steuer-?id|idnr|identifikationsnummer|cpf|dni|nie|nir|personnummer|"
    r"codice fiscale|national (?:id|insurance|number)|id(?:entity)? (?:number|no\.?|card)|tax id|ssn|"
    r"social security|sécurité sociale|securite sociale)\W{0,20}(?:\w+\W{1,3}){0,3}$"
)


@dataclass(frozen=True)
class _IdFormat:
    pattern: re.Pattern[str]
    is_valid: Callable[[str], bool]
    needs_word: bool = False


_ID_FORMATS: tuple[_IdFormat, ...] = (
    _IdFormat(re.compile(r"(?<![\w-])\d{8}-?[A-Za-z](?![\w-])"), dni.is_valid),
    _IdFormat(re.compile(r"(?<![\w-])[XYZxyz]-?\d{7}-?[A-Za-z](?![\w-])"), nie.is_valid),
    _IdFormat(re.compile(r"(?<!\w)[A-Za-z]{6}\d{2}[A-Za-z]\d{2}[A-Za-z]\d{3}[A-Za-z](?!\w)"), codicefiscale.is_valid),
    _IdFormat(
        re.compile(r"(?<![\w-])[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?\d{2}(?![\w-])"), nir.is_valid
    ),
    _IdFormat(re.compile(r"(?<![\w.-])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w-])"), cpf.is_valid),
    _IdFormat(re.compile(r"(?<![\w-])(?:\d{2})?\d{6}[-+]\d{4}(?![\w-])"), personnummer.is_valid),
    _IdFormat(re.compile(r"(?<![\w-])[2-9]\d{3} \d{4} \d{4}(?![\w-])"), aadhaar.is_valid),
    _IdFormat(re.compile(r"(?<![\w.-])\d{11}(?![\w-])"), cpf.is_valid, needs_word=True),
    _IdFormat(re.compile(r"(?<![\w.-])[2-9]\d{11}(?![\w-])"), aadhaar.is_valid, needs_word=True),
    _IdFormat(re.compile(r"(?<![\w.-])(?:\d{9}|\d{4}\.\d{2}\.\d{3})(?![\w-])"), bsn.is_valid, needs_word=True),
    _IdFormat(re.compile(r"(?<![\w.-])\d{11}(?![\w-])"), pesel.is_valid, needs_word=True),
    _IdFormat(re.compile(r"(?<![\w.-])\d{2} ?\d{3} ?\d{3} ?\d{3}(?![\w-])"), idnr.is_valid, needs_word=True),
)


def find_national_ids(text: str) -> list[Span]:
    spans = []
    for fmt in _ID_FORMATS:
        for m in fmt.pattern.finditer(text):
            if fmt.needs_word and not _ID_WORDS.search(text, max(0, m.start() - 60), m.start()):
                continue
            value = m.group()
            try:
                valid = fmt.is_valid(value)
            except Exception:  # stdnum raises on some malformed inputs instead of answering False
                valid = False
            if valid:
                spans.append(Span(m.start(), m.end(), NATIONAL_ID, re.sub(r"[\s.-]", "", value).upper()))
    return spans


# ---- IP addresses ------------------------------------------------------------------------------------------
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def find_ips(text: str) -> list[Span]:
    spans = []
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            try:
                address = ipaddress.ip_address(m.group())
            except ValueError:
                continue
            spans.append(Span(m.start(), m.end(), IP, address.compressed))
    return spans


# ---- phone numbers -----------------------------------------------------------------------------------------
# Not inside a reference: a digit run after a letter, `#`, `-` or `/` is an order or ticket number's tail.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+#/-])(?:\+|00)?\(?\d[\d ().\-/]{5,22}\d(?![\w-])")
_DATE_LIKE = re.compile(r"\d{1,4}([-/.])\d{1,2}\1\d{1,4}|\d{1,2}:\d{2}(?::\d{2})?")


class PhoneFinder:
    """Phone numbers valid in one of `regions` (ISO 3166 codes) or written internationally (`+`, `00`)."""

    def __init__(self, regions: Sequence[str]):
        self.regions = tuple(regions)
        # A number written nationally without its trunk prefix (`30 1234567` for Berlin's `030 1234567`) is
        # how order numbers and references look: only regions whose numbers are written without one (the
        # North American plan, Spain, Italy) take it.
        self._prefix = {r: (phonenumbers.PhoneMetadata.metadata_for_region(r).national_prefix or "") for r in regions}

    def find(self, text: str) -> list[Span]:
        spans = []
        for m in _PHONE_CANDIDATE.finditer(text):
            candidate = m.group().rstrip(" .-/(")
            digits = re.sub(r"\D", "", candidate)
            if not 7 <= len(digits) <= 15 or _DATE_LIKE.fullmatch(candidate) or after_reference_word(text, m.start()):
                continue
            number = self._parse(candidate, digits)
            if number is not None:
                spans.append(Span(m.start(), m.start() + len(candidate), PHONE, number))
                continue
            # Two numbers run together ("030 1234567 / 0171 2345678"): the library's matcher splits them.
            for region in self.regions:
                matches = phonenumbers.PhoneNumberMatcher(candidate, region, leniency=phonenumbers.Leniency.VALID)
                found = [(match.start, match.end, match.number) for match in matches]
                for start, end, parsed in found:
                    if self._accept(candidate[start:end], parsed, region):
                        spans.append(
                            Span(
                                m.start() + start,
                                m.start() + end,
                                PHONE,
                                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
                            )
                        )
                if found:
                    break
        return spans

    def _parse(self, candidate: str, digits: str) -> str | None:
        international = candidate.startswith(("+", "00"))
        for region in (None,) if international else self.regions:
            text = "+" + digits[2:] if candidate.startswith("00") else candidate
            try:
                parsed = phonenumbers.parse(text, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed) and self._accept(candidate, parsed, region):
                return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        return None

    def _accept(self, written: str, parsed: phonenumbers.PhoneNumber, region: str | None) -> bool:
        if region is None or written.startswith(("(", "+", "00")):
            return True  # international, or an area code in brackets: written as a phone number
        prefix = self._prefix.get(region, "")
        if prefix in ("", "1"):  # no trunk prefix, or the NANP's optional 1
            return True
        return re.sub(r"\D", "", written).startswith(prefix)


# ---- the customer's own name, e-mail and phone ---------------------------------------------------------------
_DIGIT_RUN = re.compile(r"\+?\d[\d ().\-/]{4,22}\d")


class CustomerMatcher:
    """The customer the provider's record names, in any text: name tokens (first name alone too) matched case-
    and accent-insensitively, their e-mail addresses case-insensitively, their phone numbers however grouped."""

    def __init__(self, identity: CustomerIdentity):
        self.identity = identity
        names = sorted(identity.names, key=len, reverse=True)
        self._names = (
            re.compile(r"(?<![^\W\d_])(?:" + "|".join(map(re.escape, names)) + r")(?![^\W\d_])") if names else None
        )
        # The cheap check: any text that holds none of the tokens' first three letters is skipped unfolded.
        self._stems = tuple({n[:3] for n in names})
        self._emails = (
            re.compile("|".join(re.escape(e) for e in identity.emails), re.IGNORECASE) if identity.emails else None
        )
        self._phones = tuple(p[-9:] for p in identity.phones)
        # `may_match` on ASCII text (most raw JSON values) in one search: a name's stem, an `@` when there are
        # e-mails to find, a digit run when there are phones.
        quick = [re.escape(stem) for stem in self._stems]
        if self._emails is not None:
            quick.append("@")
        if self._phones:
            quick.append(_DIGIT_RUN.pattern)
        self._quick = re.compile("|".join(quick), re.IGNORECASE).search if quick else None

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if self._emails is not None and "@" in text:
            spans += [Span(m.start(), m.end(), EMAIL, m.group().lower()) for m in self._emails.finditer(text)]
        if self._phones and any(c.isdigit() for c in text):
            for m in _DIGIT_RUN.finditer(text):
                digits = re.sub(r"\D", "", m.group())
                if len(digits) < 7:
                    continue
                known = next((p for p in self._phones if digits.endswith(p) or p.endswith(digits[-9:])), None)
                if known is not None:
                    spans.append(Span(m.start(), m.end(), PHONE, known))
        if self._names is not None:
            spans += self._find_names(text)
        return spans

    def may_match(self, text: str) -> bool:
        """The cheap check: whether `find` could find anything in `text`."""
        if self._quick is None:
            return False
        if text.isascii():
            return self._quick(text) is not None
        if (self._emails is not None and "@" in text) or (self._phones and _DIGIT_RUN.search(text)):
            return True
        if self._names is None:
            return False
        lowered = text.lower() if text.isascii() else fold_with_offsets(text)[0]
        return any(stem in lowered for stem in self._stems)

    def _find_names(self, text: str) -> list[Span]:
        if text.isascii():
            lowered = text.lower()
            if not any(stem in lowered for stem in self._stems):
                return []
            return [Span(m.start(), m.end(), NAME, m.group()) for m in self._names.finditer(lowered)]
        folded, offsets = fold_with_offsets(text)
        if not any(stem in folded for stem in self._stems):
            return []
        spans = []
        for m in self._names.finditer(folded):
            start, end = offsets[m.start()], offsets[m.end() - 1] + 1
            spans.append(Span(start, end, NAME, m.group()))
        return spans


def resolve(spans: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans in text order: of two that overlap, the entity earlier in ENTITIES wins, then the
    longer one."""
    rank = {entity: i for i, entity in enumerate(ENTITIES)}
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (rank[s.entity], -(s.end - s.start), s.start)):
        if all(span.end <= other.start or span.start >= other.end for other in chosen):
            chosen.append(span)
    return sorted(chosen)
