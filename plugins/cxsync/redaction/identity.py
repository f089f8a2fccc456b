"""The customer as the provider's record names them: what the customer matcher looks for in free text.

Sources build it (`Source.customer_identity`) from the record they mapped; the redaction engine knows no provider.
Names are matched case- and accent-insensitively (`fold`), token by token, so the first name alone is found too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# Tokens shorter than this are not matched alone ("Al", "Jo" would redact half of every chat): the full name
# still is.
MIN_NAME_TOKEN = 3
_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


def fold(text: str) -> str:
    """Lower case without accents: `Müller` and `MULLER` fold alike. Characters that decompose into a letter and
    marks keep the letter; one character may become several (`ß` -> `ss`), so offsets are not kept: callers that
    need them fold character by character (`fold_with_offsets`)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """`fold(text)` and, for each character of it, the index of the character of `text` it came from."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        folded = fold(char) if not char.isascii() else char.lower()
        out.append(folded)
        offsets.extend([index] * len(folded))
    return "".join(out), offsets


def _is_placeholder(value: str) -> bool:
    # A value already redacted (a row re-redacted under new rules): nothing left to look for.
    return value.startswith("<") and value.endswith(">")


@dataclass(frozen=True)
class CustomerIdentity:
    """Folded name tokens, lower-cased e-mail addresses, phone numbers' digits."""

    names: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, names: Iterable[str | None] = (), emails: Iterable[str | None] = (), phones: Iterable[str | None] = ()
    ) -> CustomerIdentity:
        """From the record's values as written (None, empty and placeholder values are left out)."""
        tokens: set[str] = set()
        for name in names:
            if not isinstance(name, str) or _is_placeholder(name.strip()):
                continue
            folded = fold(name)
            tokens.update(t for t in _TOKEN.findall(folded) if len(t) >= MIN_NAME_TOKEN)
        mails = {m.strip().lower() for m in emails if isinstance(m, str) and "@" in m and not _is_placeholder(m)}
        digits = set()
        for phone in phones:
            if isinstance(phone, int | str) and not isinstance(phone, bool):
                only = re.sub(r"\D", "", str(phone))
                if len(only) >= 6:  # "0", "undefined": no number
                    digits.add(only)
        return cls(tuple(sorted(tokens)), tuple(sorted(mails)), tuple(sorted(digits)))

    def __bool__(self) -> bool:
        return bool(self.names or self.emails or self.phones)

    def merged(self, other: CustomerIdentity | None) -> CustomerIdentity:
        if not other:
            return self
        return CustomerIdentity(
            tuple(sorted({*self.names, *other.names})),
            tuple(sorted({*self.emails, *other.emails})),
            tuple(sorted({*self.phones, *other.phones})),
        )
