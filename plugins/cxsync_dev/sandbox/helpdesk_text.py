"""Word lists and small text builders for the HelpDesk sandbox's people, subjects and messages.

Texts carry the characters that break naive clients on purpose: `&`, `<`, quotes, accents and emoji.
"""

from __future__ import annotations

import html
import random
import unicodedata

FIRST_NAMES = (
    "Ana", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivan", "Jonas", "Keiko", "Liam", "Maya",
    "Nils", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wen", "Xavi", "Yara", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Baptiste", "Chen", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ito", "Jovanović",
    "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka",
    "Ueda", "Varga", "Walsh", "Xu", "Yilmaz", "Zimmermann",
)  # fmt: skip
MAIL_DOMAINS = ("example.com", "mail.example.org", "shop.example.net", "example.co.uk")
TEAM_NAMES = ("Support", "Billing", "Returns & Exchanges", "VIP", "Shipping", "Technical", "Partners", "Escalations")
TAG_NAMES = ("refund", "shipping", "vip", "bug", "feedback", "urgent", "invoice", "login")
SOURCES = ("mail", "mail", "mail", "chat", "form", "api")

SUBJECTS = (
    "Order #{n} has not arrived",
    "Refund for invoice {n}",
    "Can't log in to my account",
    "Wrong size delivered (order {n})",
    "Question about pricing & plans",
    "Package damaged <urgent>",
    "Change of address for order {n}",
    "Double charge on my card",
    '"Premium" upgrade not applied',
    "Réclamation commande {n}",
    "Where is my parcel? 📦",
    "Cancel my subscription",
)
CLIENT_LINES = (
    "Hello, I ordered {item} last week and it still has not arrived.",
    "Can you tell me where my parcel is?",
    "I was charged twice & I would like a refund.",
    "The {item} I received is broken.",
    "Thanks for the quick answer!",
    "That did not work, I still see the same error.",
    "I've attached a photo of the box.",
    "Could you please call me back tomorrow morning?",
    "My order number is {n}.",
    "Ça ne marche toujours pas 😞",
    'Is there a discount for "loyal" customers?',
    "OK, I will wait <3",
)
AGENT_LINES = (
    "Thank you for reaching out, I'm looking into it now.",
    "I've issued a refund of {amount} EUR; it will show within 5 business days.",
    "Your parcel is with the carrier and should arrive by Friday.",
    "Could you send me a photo of the damaged {item}?",
    "I've forwarded this to our billing team & they will follow up.",
    "Please try logging in again after clearing your browser cache.",
    "A replacement {item} is on its way.",
    "Is there anything else I can help you with?",
    "I'm sorry for the trouble — we'll make it right.",
)
NOTE_LINES = (
    "Internal: customer already contacted us twice about this.",
    "Checked the payment log, the double charge is real.",
    "Escalating to Tier 2, see the order {n} history.",
    "Do not offer another voucher, one was given last month.",
    "Carrier confirmed the loss; approve the replacement.",
)
ITEMS = ("jacket", "coffee grinder", "lamp", "pair of boots", "phone case", "desk chair", "backpack")
ATTACHMENT_KINDS = (
    ("photo.jpg", "image/jpeg"),
    ("receipt.pdf", "application/pdf"),
    ("screenshot.png", "image/png"),
    ("log.txt", "text/plain"),
)


def person(rng: random.Random) -> tuple[str, str]:
    """(name, email) of a made-up customer or agent."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{ascii_fold(first)}.{ascii_fold(last)}".lower().replace("'", "")
    return f"{first} {last}", f"{local}{rng.randrange(1, 999)}@{rng.choice(MAIL_DOMAINS)}"


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def fill(template: str, rng: random.Random) -> str:
    return template.format(n=rng.randrange(10000, 99999), item=rng.choice(ITEMS), amount=rng.randrange(5, 400))


def subject(rng: random.Random) -> str:
    return fill(rng.choice(SUBJECTS), rng)


def paragraph(rng: random.Random, lines: tuple[str, ...], sentences: int) -> str:
    return " ".join(fill(rng.choice(lines), rng) for _ in range(sentences))


def message_text(rng: random.Random, author_kind: str, private: bool, greeting_name: str | None) -> str:
    """Plain text of one message: one or two paragraphs, separated by a blank line."""
    if private:
        return paragraph(rng, NOTE_LINES, rng.randint(1, 2))
    lines = AGENT_LINES if author_kind == "agent" else CLIENT_LINES
    text = paragraph(rng, lines, rng.randint(1, 3))
    if rng.random() < 0.4:
        text += "\n\n" + paragraph(rng, lines, 1)
    if author_kind == "agent" and greeting_name:
        text = f"Hi {greeting_name.split()[0]},\n\n{text}"
    return text


def rich_html(text: str) -> str:
    """The `richTextHtml` twin of a plain text: escaped paragraphs, line breaks kept."""
    if not text:
        return ""
    paragraphs = text.split("\n\n")
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
