"""Deterministic conversations with planted PII, every value labelled where it sits in its text.

Planted: e-mail addresses, phone numbers of eight locales (US, GB, DE, FR, ES, IT, BR, IN) in national and
international formats, Luhn-valid card numbers, checksum-valid IBANs, national ids with a checksum (ES DNI, BR
CPF, NL BSN after its name, SE personnummer, IT codice fiscale, FR NIR), IPv4 and IPv6 addresses, and the
customer's own name (first name alone, full name, other cases, without accents), e-mail and phone. Kept: agents'
names in their greetings and in the customer's thanks; dates, times, prices, order and ticket numbers.

The customers' names come from a pool apart from the agents': a customer who shares an agent's first name
would have that name redacted in the agent's greeting too (docs/security.md says so).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.br import cpf
from stdnum.es import dni
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.se import personnummer

PHONE_LOCALES = ("US", "GB", "DE", "FR", "ES", "IT", "BR", "IN")
AGENT_NAMES = (
    ("Sophie", "Laurent"),
    ("Marcus", "Webb"),
    ("Priya", "Nair"),
    ("Tomasz", "Kowalski"),
    ("Elena", "Garcia"),
    ("Kenji", "Watanabe"),
    ("Fatima", "Haddad"),
    ("Oliver", "Brandt"),
)
CUSTOMER_FIRST = ("José", "Zoë", "Björn", "Anaïs", "Renée", "Łukasz", "Siobhán", "Chloé", "Andrea", "Mateus", "Ingrid")
CUSTOMER_LAST = (
    "Müller",
    "Núñez",
    "O'Brien",
    "Dubois",
    "Øster",
    "Żeleński",
    "Rossi",
    "Costa",
    "Lindqvist",
    "Y\u0131lmaz",
)
DOMAINS = ("mail.example", "posteo.example", "gmx.example", "outlook.example", "example.co.uk")

BENIGN = "BENIGN"
AGENT = "AGENT"


@dataclass
class Segment:
    text: str
    label: str | None = None  # an entity (EMAIL ...), AGENT (an agent's name: kept), BENIGN (kept), None: filler


@dataclass
class Message:
    role: str  # customer | agent
    segments: list[Segment]
    private: bool = False

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    def labels(self) -> list[tuple[int, int, str, str]]:
        """(start, end, label, value) of every labelled segment."""
        out, cursor = [], 0
        for s in self.segments:
            if s.label is not None:
                out.append((cursor, cursor + len(s.text), s.label, s.text))
            cursor += len(s.text)
        return out


@dataclass
class Customer:
    first: str
    last: str
    email: str
    phone: str  # E.164


@dataclass
class Conversation:
    key: str
    customer: Customer
    agent: tuple[str, str]
    agent_id: str
    subject: list[Segment]
    messages: list[Message] = field(default_factory=list)

    def planted(self) -> set[str]:
        """Every PII value as written in this conversation (what must not be stored), the customer's record too."""
        values = {v for m in self.messages for _, _, label, v in m.labels() if label not in (AGENT, BENIGN)}
        values |= {s.text for s in self.subject if s.label not in (None, AGENT, BENIGN)}
        c = self.customer
        return values | {c.first, c.last, c.email, c.phone}

    def kept(self) -> set[str]:
        """Agents' names and benign values, as written: what redaction must leave."""
        return {v for m in self.messages for _, _, label, v in m.labels() if label in (AGENT, BENIGN)}


# ---- value makers: each returns a valid value as a person would type it ---------------------------------------


def phone(rng: random.Random, region: str, international: bool | None = None) -> str:
    kind = rng.choice((phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE))
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    national = str(example.national_number)
    number = example
    for _ in range(200):  # the example's prefix with random last digits; the example itself if none is valid
        keep = max(2, len(national) - 4)
        digits = national[:keep] + "".join(rng.choice(string.digits) for _ in range(len(national) - keep))
        drawn = phonenumbers.parse("+" + str(example.country_code) + digits, None)
        if phonenumbers.is_valid_number(drawn):
            number = drawn
            break
    if international is None:
        international = rng.random() < 0.4
    style = phonenumbers.PhoneNumberFormat.INTERNATIONAL if international else phonenumbers.PhoneNumberFormat.NATIONAL
    if international and rng.random() < 0.3:
        style = phonenumbers.PhoneNumberFormat.E164
    return phonenumbers.format_number(number, style)


def card(rng: random.Random) -> str:
    prefix, length = rng.choice((("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15), ("6011", 16)))
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = body + luhn.calc_check_digit(body)
    style = rng.random()
    if style < 0.5 and length == 16:
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
    if style < 0.7 and length == 16:
        return "-".join(digits[i : i + 4] for i in range(0, 16, 4))
    return digits


_IBAN_SHAPES = {"DE": "8n10n", "FR": "5n5n11n2n", "NL": "4a10n", "GB": "4a6n8n", "IT": "1a5n5n12n", "BE": "12n"}


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(_IBAN_SHAPES))
    while True:  # national check digits inside some BBANs (the French RIB key): draw until valid
        value = _iban_draw(rng, country)
        if stdnum_iban.is_valid(value):
            break
    if rng.random() < 0.6:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def _iban_draw(rng: random.Random, country: str) -> str:
    bban, count = "", ""
    for char in _IBAN_SHAPES[country]:
        if char.isdigit():
            count += char
            continue
        pool = string.ascii_uppercase if char == "a" else string.digits
        bban += "".join(rng.choice(pool) for _ in range(int(count)))
        count = ""
    return country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban


def national_id(rng: random.Random) -> tuple[str, str]:
    """(what precedes it, the id): the words people write before an id, which some formats need."""
    kind = rng.choice(("dni", "cpf", "bsn", "personnummer", "codice", "nir"))
    if kind == "dni":
        body = f"{rng.randint(10_000_000, 99_999_999)}"
        return "my DNI is ", body + dni.calc_check_digit(body)
    if kind == "cpf":
        body = f"{rng.randint(100_000_000, 999_999_999)}"
        value = body + cpf._calc_check_digits(body)
        return "CPF ", f"{value[:3]}.{value[3:6]}.{value[6:9]}-{value[9:]}"
    if kind == "bsn":
        while True:
            value = f"{rng.randint(100_000_000, 999_999_999)}"
            if bsn.is_valid(value):
                return "BSN: ", value
    if kind == "personnummer":
        while True:
            body = f"{rng.randint(60, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(100, 999)}"
            value = f"{body[:6]}-{body[6:]}{luhn.calc_check_digit(body)}"
            if personnummer.is_valid(value):
                return "personnummer ", value
    if kind == "codice":
        letters = "".join(rng.choice("BCDFGHLMNPRSTVZ") for _ in range(6))
        body = f"{letters}{rng.randint(50, 99)}{rng.choice('ABCDEHLMPRST')}{rng.randint(1, 28):02d}"
        body += f"{rng.choice('ABCDEFGHILM')}{rng.randint(100, 999)}"
        return "codice fiscale ", body + codicefiscale.calc_check_digit(body)
    while True:
        body = f"{rng.choice('12')}{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 95):02d}"
        body += f"{rng.randint(1, 990):03d}{rng.randint(1, 999):03d}"
        value = body + nir.calc_check_digits(body)
        if nir.is_valid(value):
            return (
                "numéro de sécurité sociale ",
                f"{value[0]} {value[1:3]} {value[3:5]} {value[5:7]} {value[7:10]} {value[10:13]} {value[13:]}",
            )


def ip(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return (
            "2001:db8:"
            + ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(3))
            + "::"
            + f"{rng.randint(1, 0xFFFF):x}"
        )
    return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def email(rng: random.Random, first: str | None = None) -> str:
    local = (first or rng.choice(("kim", "alex", "sam", "robin", "max"))).lower()
    local = local.encode("ascii", "ignore").decode() or "user"
    return f"{local}{rng.choice(('.', '_', ''))}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"


def benign(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{rng.randint(2025, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2026",
            f"{rng.randint(1, 28)} March 2026",
            f"{rng.randint(8, 18)}:{rng.choice(('00', '15', '30', '45'))}",
            f"€{rng.randint(5, 2000):,}.{rng.randint(0, 99):02d}",
            f"${rng.randint(5, 900)}.{rng.randint(0, 99):02d}",
            f"{rng.randint(5, 300)},{rng.randint(0, 99):02d} €",
            f"#{rng.randint(1_000_000, 99_999_999)}",
            f"ORD-2026-{rng.randint(0, 999_999):06d}",
            f"ticket {rng.randint(10_000, 999_999)}",
            f"{rng.randint(2, 12)} items",
            # Harder: digit runs as long as phone or card numbers.
            f"EAN {_ean13(rng)}",
            f"invoice {rng.randint(1_000_000_000, 9_999_999_999)}",
            f"tracking 1Z{rng.randint(100, 999)}AA{rng.randint(10**9, 10**10 - 1)}",
            f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        )
    )


def _ean13(rng: random.Random) -> str:
    body = f"{rng.choice(('400', '590', '800', '871'))}{rng.randint(0, 10**9 - 1):09d}"
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    return body + str(check)


# ---- conversations ---------------------------------------------------------------------------------------------


def _planted(rng: random.Random, customer: Customer) -> list[Segment]:
    """One customer line that carries a planted value (sometimes two), with benign text around it."""
    kind = rng.choice(("email", "phone", "card", "iban", "national_id", "ip", "name", "own_email", "own_phone", "two"))
    if kind == "email":
        return [Segment("you can also reach me at "), Segment(email(rng), "EMAIL"), Segment(", thanks")]
    if kind == "phone":
        region = rng.choice(PHONE_LOCALES)
        return [Segment("my number is "), Segment(phone(rng, region), "PHONE"), Segment(" if you need it")]
    if kind == "card":
        return [Segment("I paid with card "), Segment(card(rng), "CARD"), Segment(" on "), Segment(benign(rng), BENIGN)]
    if kind == "iban":
        return [
            Segment("please refund to IBAN "),
            Segment(iban(rng), "IBAN"),
            Segment(", order "),
            Segment(f"#{rng.randint(1_000_000, 99_999_999)}", BENIGN),
        ]
    if kind == "national_id":
        words, value = national_id(rng)
        return [Segment(f"for the invoice, {words}"), Segment(value, "NATIONAL_ID")]
    if kind == "ip":
        return [
            Segment("the error shows my IP "),
            Segment(ip(rng), "IP"),
            Segment(" at "),
            Segment(benign(rng), BENIGN),
        ]
    if kind == "name":
        written = rng.choice(
            (
                f"{customer.first} {customer.last}",
                customer.first,
                customer.first.upper(),
                _ascii(customer.first),
                _ascii(f"{customer.first} {customer.last}").lower(),
            )
        )
        return [Segment("this is "), Segment(written, "NAME"), Segment(" again, about "), Segment(benign(rng), BENIGN)]
    if kind == "own_email":
        written = rng.choice((customer.email, customer.email.upper()))
        return [Segment("the account e-mail is "), Segment(written, "EMAIL")]
    if kind == "own_phone":
        number = phonenumbers.parse(customer.phone, None)
        written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return [
            Segment("call me back on "),
            Segment(written, "PHONE"),
            Segment(" before "),
            Segment(benign(rng), BENIGN),
        ]
    return [
        Segment("card "),
        Segment(card(rng), "CARD"),
        Segment(" and mail "),
        Segment(email(rng), "EMAIL"),
        Segment(" — total "),
        Segment(benign(rng), BENIGN),
    ]


def _ascii(text: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).replace("ł", "l")


def conversation(rng: random.Random, n: int) -> Conversation:
    first, last = rng.choice(CUSTOMER_FIRST), rng.choice(CUSTOMER_LAST)
    region = rng.choice(PHONE_LOCALES)
    own_phone = phonenumbers.format_number(
        phonenumbers.parse(phone(rng, region, international=True), None), phonenumbers.PhoneNumberFormat.E164
    )
    customer = Customer(first, last, email(rng, first), own_phone)
    agent_index = rng.randrange(len(AGENT_NAMES))
    agent = AGENT_NAMES[agent_index]
    subject = rng.choice(
        (
            [Segment("Refund for order "), Segment(f"#{rng.randint(1_000_000, 9_999_999)}", BENIGN)],
            [Segment("Card "), Segment(card(rng), "CARD"), Segment(" charged twice")],
            [Segment("Please call "), Segment(phone(rng, rng.choice(PHONE_LOCALES)), "PHONE")],
            [Segment("Question from "), Segment(f"{first} {last}", "NAME")],
        )
    )
    conv = Conversation(f"pii-{n:05d}", customer, agent, f"agent-{agent_index + 1}", subject)
    greeting = rng.choice(
        ("Hi, this is {first} from support.", "{first} {last} here, happy to help.", "Hello! {first} speaking.")
    )
    parts = greeting.split("{first}")
    segments = [Segment(parts[0]), Segment(agent[0], AGENT)]
    rest = parts[1]
    if "{last}" in rest:
        before, after = rest.split("{last}")
        segments += [Segment(before), Segment(agent[1], AGENT), Segment(after)]
    else:
        segments.append(Segment(rest))
    conv.messages.append(Message("agent", segments))
    conv.messages.append(
        Message(
            "customer", [Segment("Hello, my order "), Segment(benign(rng), BENIGN), Segment(" has not arrived yet.")]
        )
    )
    for _ in range(rng.randint(1, 3)):
        conv.messages.append(Message("customer", _planted(rng, customer)))
        conv.messages.append(
            Message(
                "agent", [Segment("Thanks, I have noted it. Delivery by "), Segment(benign(rng), BENIGN), Segment(".")]
            )
        )
    if rng.random() < 0.4:  # a private note that repeats what the customer said
        conv.messages.append(Message("agent", [Segment("Note: customer said "), *_planted(rng, customer)[:2]], True))
    conv.messages.append(Message("customer", [Segment("Thank you "), Segment(agent[0], AGENT), Segment("!")]))
    return conv


def generate(count: int = 400, seed: int = 21) -> list[Conversation]:
    """`count` conversations, the same ones for the same seed."""
    rng = random.Random(f"cxsync-pii-corpus:{seed}")
    return [conversation(rng, n) for n in range(count)]
