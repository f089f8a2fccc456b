"""The status page's freshness: the newest loaded change per integration (seeded rows, SQLite and PostgreSQL),
the age of the loaded-through time (the incremental watermark) and when it is a warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cxsync.config import Integration
from cxsync.ui.freshness import freshness, newest_changes, threshold
from cxsync.ui.status import schedule_interval
from cxsync.ui.warehouse_reads import existing_tables
from cxsync.warehouse import schema as t

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _integration(schedule: str = "*/15 * * * *", **options) -> Integration:
    return Integration(id="lp_fresh", provider="liveperson", conn_id="x", label="x", schedule=schedule, options=options)


def _row(integration_id: str, n: int, updated: datetime | None) -> dict:
    return {"integration_id": integration_id, "interaction_id": f"c{n}", "provider": "liveperson",
            "status": "closed", "started_at": NOW - timedelta(days=1), "updated_at": updated,
            "message_count": 1, "loaded_at": NOW, "content_hash": "0" * 64}  # fmt: skip


def test_newest_change_per_integration_from_seeded_rows(warehouse):
    newest_a = NOW - timedelta(minutes=7)
    with warehouse.engine.begin() as conn:
        conn.execute(
            t.interactions.insert(),
            [
                _row("lp_a", 1, NOW - timedelta(hours=5)),
                _row("lp_a", 2, newest_a),
                _row("lp_a", 3, None),  # a record without an update stamp does not hide the others
                _row("hd_b", 4, NOW - timedelta(days=3)),
            ],
        )
    with warehouse.engine.connect() as conn:
        found = newest_changes(conn, ["lp_a", "hd_b", "hd_empty"], existing_tables(conn))
    assert found == {"lp_a": newest_a, "hd_b": NOW - timedelta(days=3), "hd_empty": None}


def test_no_table_yet_means_no_change_loaded(warehouse):
    with warehouse.engine.connect() as conn:
        assert newest_changes(conn, ["lp_a"], set()) == {"lp_a": None}


def test_default_threshold_two_intervals_at_most_the_interval_plus_two_hours():
    def limit(schedule: str, **options) -> timedelta | None:
        return threshold(_integration(schedule, **options), schedule_interval(schedule, NOW))

    assert limit("*/15 * * * *") == timedelta(minutes=30)
    assert limit("@hourly") == timedelta(hours=2)
    assert limit("0 2 * * *") == timedelta(hours=26)  # nightly
    assert limit("0 2 * * *", freshness_warn_hours=3) == timedelta(hours=3)  # the option wins


def test_fresh_data_is_no_warning_and_old_data_is_one():
    interval = timedelta(minutes=15)
    integration = _integration()
    fresh = freshness(integration, NOW, loaded_through=NOW - timedelta(minutes=20),
                      newest_change=NOW - timedelta(hours=3), interval=interval)  # fmt: skip
    # A quiet hour at the provider (old newest change) is no warning while the loads keep running.
    assert (fresh["stale"], fresh["warning"], fresh["age_seconds"]) == (False, None, 1200)
    assert (fresh["newest_change_age_seconds"], fresh["threshold_seconds"]) == (3 * 3600, 1800)

    old = freshness(integration, NOW, loaded_through=NOW - timedelta(minutes=45), newest_change=None,
                    interval=interval)  # fmt: skip
    assert old["stale"] is True
    assert "45 minutes old" in old["warning"] and "30 minutes allowed" in old["warning"]
    assert "*/15 * * * *" in old["warning"] and "freshness_warn_hours" in old["warning"]


def test_nothing_loaded_yet_is_no_freshness_warning():
    # The status page says "no incremental watermark yet" instead (one warning, one fix).
    result = freshness(_integration(), NOW, loaded_through=None, newest_change=None, interval=timedelta(minutes=15))
    assert (result["stale"], result["warning"], result["age_seconds"]) == (False, None, None)
