"""Keyset paging (singer-sdk style): where the next page starts, and when paging is done.

The paginator knows nothing of HTTP or records: the loop that asks for pages reads `cursor` for the next request
and calls `advance()` with the rows that came back, until `finished`. Loop detection lives in `advance`, so a
provider that stops moving its cursor ends with a clear error instead of an endless loop; and a provider whose
cursor keeps moving without the list ever ending is stopped once it has answered more pages than the listing can
hold (`limit`: the caller works that out from the first row, e.g. the span of time left to the window's end).

Offset paging has no class here: LivePerson's search pages are asked several at once at offsets planned from
the first answer's count (`sources/liveperson.py`, `sources/inflight.py`), not one after another.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from cxsync.errors import FatalError


class PagingStalled(FatalError):
    """A page ended where an earlier one did: the cursor does not advance, so paging would never end."""


class PagingRunaway(FatalError):
    """More full pages than the listing can hold: the cursor moves, but the list would never end."""


class KeysetPaginator:
    """Keyset paging: the next page starts after the last row of this one.

    `cursor_of(row)` is the cursor the last row gives (it raises if the row lacks the fields);
    `stalled(cursor, page_no)` words the error when a cursor repeats. `limit(first_cursor)`, given the cursor of
    the first row of the first full page, is the most pages the listing can take; `runaway(pages, max_pages)` words
    the error when a listing needs more."""

    def __init__(
        self,
        page_size: int,
        cursor_of: Callable[[Any], Hashable],
        stalled: Callable[[Any, int], str] | None = None,
        limit: Callable[[Any], int] | None = None,
        runaway: Callable[[int, int], str] | None = None,
    ):
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self.cursor: Any = None
        self.pages = 0
        self.finished = False
        self._cursor_of = cursor_of
        self._stalled = stalled or (lambda cursor, page_no: f"page {page_no} ended at cursor {cursor!r} again")
        self._seen: set[Hashable] = set()
        self.max_pages: int | None = None
        self._limit = limit
        self._runaway = runaway or (lambda pages, most: f"{pages} full pages, more than the {most} it can hold")

    def advance(self, rows: Sequence[Any]) -> None:
        self.pages += 1
        if not rows or len(rows) < self.page_size:
            self.finished = True
            return
        if self.pages == 1 and self._limit is not None:
            self.max_pages = max(1, self._limit(self._cursor_of(rows[0])))
        cursor = self._cursor_of(rows[-1])
        if cursor in self._seen:
            raise PagingStalled(self._stalled(cursor, self.pages))
        if self.max_pages is not None and self.pages >= self.max_pages:
            raise PagingRunaway(self._runaway(self.pages, self.max_pages))
        self._seen.add(cursor)
        self.cursor = cursor
