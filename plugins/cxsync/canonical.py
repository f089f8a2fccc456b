"""Canonical JSON: one encoding of a value, the same text for equal values, wherever cxsync stores or compares
JSON (the warehouse's raw columns and content hashes, a source's dedupe digests).

Keys sorted, compact, UTF-8 unescaped; what is not JSON becomes its `str()`. msgspec does it about seven times
faster than `json.dumps` (the load path encodes every message). It writes float exponents in their shortest form
(`1e16`, not `1e+16`), the non-JSON NaN and infinities as null, and datetimes in RFC 3339; a value it refuses (a
lone surrogate, an int beyond 64 bits) falls back to `json`, with the same sorting and separators.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec

# The fast path, for callers that splice pre-encoded parts (`msgspec.Raw`) and fall back themselves.
encode_sorted = msgspec.json.Encoder(order="sorted", enc_hook=str).encode
# What `encode_sorted` refuses (the fallback takes it).
NOT_ENCODED: tuple[type[BaseException], ...] = (
    TypeError,
    ValueError,
    OverflowError,
    UnicodeEncodeError,
    msgspec.EncodeError,
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def to_json(value: Any) -> str | None:
    """The canonical JSON text of `value` (None stays None)."""
    if value is None:
        return None
    try:
        return encode_sorted(value).decode()
    except NOT_ENCODED:
        return json_dumps(value)


def canonical_bytes(value: Any) -> bytes:
    """`to_json(value)` as UTF-8 (a lone surrogate passed through: digests must not fail on odd text)."""
    try:
        return encode_sorted(value)
    except NOT_ENCODED:
        return json_dumps(value).encode(errors="surrogatepass")


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON: equal values, equal digests."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def json_dumps(value: Any) -> str:
    """The canonical text through the `json` module (what msgspec refuses)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    if _SURROGATE.search(text):
        # A lone surrogate (a string cut inside an emoji) is not UTF-8, so no database stores it: escaped as
        # `\udxxx`, the JSON stays exact and storable.
        return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
    return text
