"""`pipeline.read_ahead`: the same pages in the same order from one background thread, errors where they
happened, and a producer that stops when the consumer does."""

from __future__ import annotations

import threading
import time

import pytest

from cxsync import pipeline, settings
from cxsync.sources.base import Page


def pages(n: int, seen_threads: set | None = None, fail_at: int | None = None, produced: list | None = None):
    for i in range(n):
        if seen_threads is not None:
            seen_threads.add(threading.get_ident())
        if fail_at == i:
            raise RuntimeError(f"page {i} failed")
        if produced is not None:
            produced.append(i)
        yield Page(records=[], label=f"page {i}")


def test_pages_come_in_order_from_one_other_thread():
    threads: set = set()
    labels = [p.label for p in pipeline.read_ahead(pages(20, threads))]
    assert labels == [f"page {i}" for i in range(20)]
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_a_source_error_is_raised_after_the_pages_before_it():
    got = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for page in pipeline.read_ahead(pages(10, fail_at=3)):
            got.append(page.label)
    assert got == ["page 0", "page 1", "page 2"]


def test_the_producer_stays_at_most_depth_pages_ahead_and_stops_with_the_consumer():
    produced: list[int] = []
    reader = pipeline.read_ahead(pages(100, produced=produced), depth=1)
    assert next(reader).label == "page 0"
    time.sleep(0.2)  # let the producer run as far ahead as it may
    assert len(produced) <= 3  # the page handed over, one waiting, one being made
    reader.close()  # the consumer stops early (e.g. its warehouse write failed)
    time.sleep(0.3)
    assert len(produced) <= 4
    assert not any(t.name == "cxsync-read-ahead" and t.is_alive() for t in threading.enumerate())


def test_the_source_generator_is_closed_in_its_thread_when_the_consumer_stops():
    closed = threading.Event()

    def source():
        try:
            for i in range(100):
                yield Page(records=[], label=str(i))
        finally:
            closed.set()

    reader = pipeline.read_ahead(source())
    next(reader)
    reader.close()
    assert closed.wait(2)


def test_depth_zero_reads_in_the_callers_thread(monkeypatch):
    monkeypatch.setattr(settings, "READ_AHEAD_PAGES", 0)
    threads: set = set()
    assert len(list(pipeline.read_ahead(pages(5, threads)))) == 5
    assert threads == {threading.get_ident()}


# ---- spared_heap: the cyclic GC leaves the process's old objects alone during a load ---------------------------


def test_objects_from_before_the_load_are_frozen_during_it_and_given_back_after(monkeypatch):
    import gc

    def collectable(obj) -> bool:  # in one of the collector's generations (frozen objects are in none)
        return any(o is obj for o in gc.get_objects())

    monkeypatch.setattr(settings, "GC_FREEZE_BEFORE_LOAD", True)
    gc.unfreeze()
    old = [["made before the load"]]  # lists are always tracked by the collector
    assert collectable(old)
    with pipeline.spared_heap():
        young = [["made during the load"]]
        assert gc.get_freeze_count() > 0 and not collectable(old) and collectable(young)
    assert gc.get_freeze_count() == 0 and collectable(old)


def test_a_process_that_froze_objects_itself_keeps_them_frozen(monkeypatch):
    import gc

    def collectable(obj) -> bool:
        return any(o is obj for o in gc.get_objects())

    monkeypatch.setattr(settings, "GC_FREEZE_BEFORE_LOAD", True)
    mine = [["frozen by the process itself"]]
    gc.freeze()
    try:
        # The freeze count is no witness: frozen objects whose last reference goes are still freed.
        assert not collectable(mine)
        with pipeline.spared_heap():
            pass
        assert not collectable(mine) and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_setting_turns_freezing_off(monkeypatch):
    import gc

    monkeypatch.setattr(settings, "GC_FREEZE_BEFORE_LOAD", False)
    gc.unfreeze()
    with pipeline.spared_heap():
        assert gc.get_freeze_count() == 0


# ---- task-log lines ---------------------------------------------------------------------------------------------


def test_a_page_label_that_names_its_window_is_not_prefixed_with_it_again(caplog):
    import logging

    from cxsync.warehouse import WriteStats

    caplog.set_level(logging.INFO, logger="cxsync.pipeline")
    progress = pipeline.Progress("window 2026-03-01 00:00..2026-03-02 00:00 UTC")
    progress.page_done(Page(records=[], label="window 2026-03-01 00:00..2026-03-02 00:00: page 1 of 2"), WriteStats())
    progress.page_done(Page(records=[], label="silo tickets page 1"), WriteStats())
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith("window 2026-03-01 00:00..2026-03-02 00:00: page 1 of 2 done: 0 conversations")
    assert first.count("2026-03-01") == 1
    assert second.startswith("window 2026-03-01 00:00..2026-03-02 00:00 UTC: silo tickets page 1 done:")


def test_the_backfill_logs_its_totals_over_every_window(caplog):
    import logging

    from cxsync.config import Integration

    caplog.set_level(logging.INFO, logger="cxsync.pipeline")
    window = {"conversations": 10, "inserted": 8, "updated": 1, "unchanged": 1, "messages_written": 90}
    results = [{**window, "rejected": 1, "pages": 1, "seconds": 1.5}, {**window, "pages": 2, "seconds": 2.0}, None]
    totals = pipeline.backfill_totals(Integration("lp_x", "liveperson", "c", "LP"), results)
    assert totals["conversations"] == 20 and totals["messages_written"] == 180 and totals["rejected"] == 1
    assert totals["windows"] == 2 and totals["pages"] == 3 and totals["task_seconds"] == 3.5
    assert caplog.records[-1].getMessage() == (
        "backfill of lp_x finished: 2 day windows, 20 conversations (16 new, 2 changed, 2 unchanged), "
        "180 messages written, 1 rejected, 3 pages, 3.5 s of task time"
    )


def test_a_backfill_that_finds_days_empty_says_so_in_its_summary(caplog):
    import logging

    from cxsync.config import Integration

    caplog.set_level(logging.INFO, logger="cxsync.pipeline")
    full = {"conversations": 5, "pages": 1, "seconds": 1.0}
    empty = {"conversations": 0, "pages": 1, "seconds": 0.2}
    results = [{**empty, "day": "2026-11-02"}, {**empty, "day": "2026-11-01"}, {**full, "day": "2026-11-03"}]
    totals = pipeline.backfill_totals(Integration("lp_x", "liveperson", "c", "LP"), results)
    assert totals["empty_days"] == ["2026-11-01", "2026-11-02"]
    assert caplog.records[-1].levelno == logging.WARNING
    assert (
        caplog.records[-1]
        .getMessage()
        .startswith("backfill of lp_x: 2 of 3 day windows found no conversation (2026-11-01, 2026-11-02)")
    )
    assert pipeline.backfill_totals(Integration("lp_x", "liveperson", "c", "LP"), results[2:])["empty_days"] == []


def test_the_demos_sandbox_has_history_for_the_longest_backfill():
    from cxsync import settings
    from cxsync_dev.demo.state import SANDBOX_OPTIONS

    longest = 7 * settings.MAX_BACKFILL_WEEKS
    assert SANDBOX_OPTIONS["lp_days"] >= longest and SANDBOX_OPTIONS["hd_days"] >= longest


def test_a_reader_thread_that_dies_without_a_word_fails_the_load_instead_of_hanging(monkeypatch):
    class Unreportable:
        def __init__(self, error):
            raise RuntimeError("cannot even report")  # the reader dies in its own error handling

    monkeypatch.setattr(pipeline, "_Failed", Unreportable)
    got = []
    with pytest.raises(RuntimeError, match="stopped without a page, an end or an error"):
        for page in pipeline.read_ahead(pages(10, fail_at=2)):
            got.append(page.label)
    assert got == ["page 0", "page 1"]
