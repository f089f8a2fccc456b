"""Keyset paging: where the next page starts, when paging ends, and a cursor that does not move."""

from __future__ import annotations

import pytest

from cxsync.errors import FatalError
from cxsync.hooks.paginators import KeysetPaginator, PagingStalled


def test_keyset_paging_follows_the_last_row_and_ends_on_a_short_page():
    pages = KeysetPaginator(2, lambda row: (row["at"], row["ID"]))
    pages.advance([{"at": "1", "ID": "a"}, {"at": "2", "ID": "b"}])
    assert pages.cursor == ("2", "b") and not pages.finished
    pages.advance([{"at": "3", "ID": "c"}])
    assert pages.finished and pages.pages == 2


def test_a_keyset_cursor_seen_before_stops_paging_with_a_clear_error():
    pages = KeysetPaginator(2, lambda row: row["ID"], lambda cursor, n: f"page {n} repeats {cursor}")
    full = [{"ID": "a"}, {"ID": "b"}]
    pages.advance(full)
    with pytest.raises(PagingStalled, match="page 2 repeats b") as stalled:
        pages.advance(full)
    assert isinstance(stalled.value, FatalError)
