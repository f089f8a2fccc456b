"""Paginators: where the next page starts, and when paging is done (singer-sdk style, one small class each).

A paginator knows nothing of HTTP or records: the loop that asks for pages reads `params()` for the next
request and calls `advance()` with what came back, until `finished`. Loop detection lives in `advance`, so a
provider that stops moving its cursor ends with a clear error instead of an endless loop.

- `OffsetPaginator`: `offset` and `limit`, done once the offset reaches the answer's count (LivePerson's
  `conversations/search`, `_metadata.count`), or a page comes back empty.
- `KeysetPaginator`: a cursor built from the last row of a full page (HelpDesk's `next.value` / `next.ID`),
  done on an empty or short page; a cursor seen before raises `PagingStalled`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from cxsync.errors import FatalError


class PagingStalled(FatalError):
    """A page ended where an earlier one did: the cursor does not advance, so paging would never end."""


class OffsetPaginator:
    """Offset paging to a count: `offset` moves by what each page held."""

    def __init__(self, limit: int, *, start: int = 0):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.offset = start
        self.count: int | None = None
        self.pages = 0
        self.finished = False

    def params(self) -> dict[str, int]:
        return {"offset": self.offset, "limit": self.limit}

    def advance(self, received: int, count: int | None) -> None:
        """Record one page of `received` rows of an answer that says there are `count` in all (None: unknown,
        then a full page means there may be another)."""
        self.pages += 1
        self.count = count
        self.offset += received
        if received == 0:
            self.finished = True
        elif count is not None:
            self.finished = self.offset >= count
        else:
            self.finished = received < self.limit


class KeysetPaginator:
    """Keyset paging: the next page starts after the last row of this one.

    `cursor_of(row)` is the cursor the last row gives (it raises if the row lacks the fields);
    `stalled(cursor, page_no)` words the error when a cursor repeats."""

    def __init__(
        self,
        page_size: int,
        cursor_of: Callable[[Any], Hashable],
        stalled: Callable[[Any, int], str] | None = None,
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

    def advance(self, rows: Sequence[Any]) -> None:
        self.pages += 1
        if not rows or len(rows) < self.page_size:
            self.finished = True
            return
        cursor = self._cursor_of(rows[-1])
        if cursor in self._seen:
            raise PagingStalled(self._stalled(cursor, self.pages))
        self._seen.add(cursor)
        self.cursor = cursor
