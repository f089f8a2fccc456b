"""CSV cells that spreadsheets show as text, never run as formulas ("CSV injection").

Excel, LibreOffice and Google Sheets treat a cell that starts with `=`, `+`, `-` or `@` as a formula, and a
leading tab or carriage return can hide such a start from a first glance (OWASP's list). Provider-supplied ids
and names end up in the QA lists' CSV files: such a cell gets a leading `'`, which spreadsheets show as text
and hide. Numbers stay numbers (a negative count is not text a provider chose).
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` ready for a CSV cell: text that a spreadsheet would run as a formula starts with `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
