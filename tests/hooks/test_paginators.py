"""Keyset paging: where the next page starts, when paging ends, and a cursor that does not move."""

from __future__ import annotations

import pytest

from cxsync.errors import FatalError
from cxsync.hooks.paginators import KeysetPaginator, PagingRunaway, PagingStalled


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


def test_a_cursor_that_keeps_moving_is_stopped_at_what_the_listing_can_hold():
    limits = []

    def limit(first):
        limits.append(first)
        return 3

    pages = KeysetPaginator(2, lambda row: row["ID"], limit=limit, runaway=lambda n, most: f"{n} pages > {most}")
    pages.advance([{"ID": "a"}, {"ID": "b"}])
    pages.advance([{"ID": "c"}, {"ID": "d"}])
    with pytest.raises(PagingRunaway, match="3 pages > 3") as runaway:
        pages.advance([{"ID": "e"}, {"ID": "f"}])  # new cursors every time, never a short page
    assert isinstance(runaway.value, FatalError)
    assert limits == ["a"]  # worked out once, from the first row


def test_a_listing_that_ends_within_its_limit_is_not_stopped():
    pages = KeysetPaginator(2, lambda row: row["ID"], limit=lambda first: 2)
    pages.advance([{"ID": "a"}, {"ID": "b"}])
    pages.advance([{"ID": "c"}])
    assert pages.finished and pages.pages == 2
