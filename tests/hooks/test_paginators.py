"""Paginators: where the next page starts, when paging ends, and a cursor that does not move."""

from __future__ import annotations

import pytest

from cxsync.errors import FatalError
from cxsync.hooks.paginators import KeysetPaginator, OffsetPaginator, PagingStalled


def test_offset_paging_runs_to_the_count():
    pages = OffsetPaginator(100)
    seen = []
    for received in (100, 100, 50):
        seen.append(pages.params())
        pages.advance(received, count=250)
    assert pages.finished and pages.pages == 3
    assert [p["offset"] for p in seen] == [0, 100, 200] and {p["limit"] for p in seen} == {100}


def test_offset_paging_without_a_count_ends_on_a_short_or_empty_page():
    pages = OffsetPaginator(10, start=20)
    pages.advance(10, count=None)
    assert not pages.finished and pages.params()["offset"] == 30
    pages.advance(3, count=None)
    assert pages.finished
    empty = OffsetPaginator(10)
    empty.advance(0, count=500)  # a count that promises more, but the page is empty: stop, never loop
    assert empty.finished


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
