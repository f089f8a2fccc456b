"""The QA lists file: bad entries named by file, entry and field; good lists kept; the shipped file is valid."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from cxsync.qa.lists_config import QaList, load_qa_lists

SHIPPED = Path(__file__).resolve().parents[2] / "include" / "qa_lists.yaml"


def test_shipped_file_is_valid():
    config = load_qa_lists(SHIPPED)
    assert config.errors == []
    assert [q.id for q in config.lists] == ["weekly_random", "support_earliest", "unhappy_refunds"]
    weekly = config.get("weekly_random")
    assert (weekly.type, weekly.per_agent, weekly.period.seconds()) == ("random", 3, 7 * 86400)
    assert weekly.filters.status == ("closed",) and weekly.filters.min_agent_messages == 1
    unhappy = config.get("unhappy_refunds").filters
    assert (unhappy.status, unhappy.max_csat, unhappy.tags) == (("closed",), 2.0, ("refund",))


def test_bad_entries_are_named_and_good_ones_kept(tmp_path):
    path = tmp_path / "qa_lists.yaml"
    path.write_text(
        textwrap.dedent("""
        lists:
          - {id: good, type: all, period: {last: 2, unit: days}}
          - {id: no_quota, type: random, period: {last: 7, unit: days}}
          - {id: bad_filter, type: sequential, total: 5, period: {last: 7, unit: days},
             filters: {status: pending, min_agent_messages: -1, talk_ratio: 2}}
          - {id: Bad-Id, type: lottery, per_agent: 0, period: {last: 0, unit: years}, schedule: "every day"}
          - {id: good, type: all, period: {last: 1, unit: days}}
          - {id: also_good, type: random, total: 4, period: {last: 12, unit: hours}, evaluators: [s-1, s-2],
             filters: {channel: [messaging, email], team: Support, staff: [s-3], min_duration_seconds: 60,
                       max_customer_messages: 9}, exclude_listed_within_days: 14, seed: 7}
    """)
    )
    config = load_qa_lists(path)
    assert [q.id for q in config.lists] == ["good", "also_good"]
    errors = "\n".join(config.errors)
    assert f"{path}: lists[1] (id 'no_quota'): fields `per_agent` / `total`" in errors
    for field in ("`filters.status`", "`filters.min_agent_messages`", "`filters`: unknown filter(s) 'talk_ratio'"):
        assert f"{path}: lists[2] (id 'bad_filter'): field {field}" in errors
    for field in ("`id`", "`type`", "`per_agent`", "`period.last`", "`period.unit`", "`schedule`"):
        assert f"{path}: lists[3] (id 'Bad-Id'): field {field}" in errors
    assert f"{path}: lists[4] (id 'good'): field `id`: duplicate id 'good'" in errors
    also = config.get("also_good")
    assert also.filters.channel == ("messaging", "email") and also.filters.team == ("Support",)
    assert QaList.from_definition(also.definition()) == also  # what a run records reads back the same


def test_unusable_files_are_one_error_not_an_exception(tmp_path, monkeypatch):
    broken = tmp_path / "broken.yaml"
    broken.write_text("lists: [\n")
    config = load_qa_lists(broken)
    assert config.lists == [] and len(config.errors) == 1 and "not valid YAML" in config.errors[0]
    monkeypatch.setenv("CXSYNC_QA_LISTS_FILE", str(tmp_path / "missing.yaml"))
    assert "QA lists file not found" in load_qa_lists().errors[0]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"flags": ["angry_customer"]}, "filters.flags"),
        ({"min_first_response_seconds": -1}, "filters.min_first_response_seconds"),
        ({"max_first_response_seconds": "fast"}, "filters.max_first_response_seconds"),
    ],
)
def test_bad_analytics_filters_name_the_field(tmp_path, filters, field):
    path = tmp_path / "qa_lists.yaml"
    week = {"last": 7, "unit": "days"}
    entries = [
        {"id": "bad", "type": "all", "period": week, "filters": filters},
        {"id": "ok", "type": "all", "period": week},
    ]
    path.write_text(yaml.safe_dump({"lists": entries}))
    config = load_qa_lists(path)
    assert [q.id for q in config.lists] == ["ok"]
    assert len(config.errors) == 1 and f"`{field}`" in config.errors[0] and str(path) in config.errors[0]


def test_analytics_filters_load():
    qa_list = QaList.from_definition(
        {"id": "x", "type": "all", "period": {"last": 7, "unit": "days"}, "filters": {"flags": ["long_wait"]}}
    )
    assert qa_list.filters.flags == ("long_wait",)


def _bomb(levels: int) -> str:
    """A few hundred bytes of YAML whose aliases expand to 9 x 6^levels strings."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [
        f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]" for n in range(1, levels + 1)
    ]
    return "\n".join(["x-bomb:", *("  " + line for line in lines)])


def test_an_alias_bomb_is_refused_while_loading_with_a_short_error_naming_the_file(tmp_path):
    """The 500-byte file that gave a 35-million-character error (and DAG doc) is refused before any value is
    built or formatted; the error is one short line naming the file."""
    path = tmp_path / "qa_lists.yaml"
    path.write_text(_bomb(8) + "\nlists:\n  - {id: weekly, type: all, period: {last: 7, unit: days}, label: *a8}\n")
    assert path.stat().st_size < 600
    config = load_qa_lists(path)
    assert config.lists == [] and len(config.errors) == 1
    assert config.errors[0].startswith(f"{path}: YAML aliases expand") and "alias bomb" in config.errors[0]
    assert len(config.errors[0]) < 400


def test_anchors_used_the_ordinary_way_still_load(tmp_path):
    path = tmp_path / "qa_lists.yaml"
    path.write_text(
        "x-period: &week {last: 7, unit: days}\n"
        "lists:\n"
        "  - {id: one, type: all, period: *week}\n"
        "  - {id: two, type: all, period: *week}\n"
    )
    config = load_qa_lists(path)
    assert config.errors == [] or "x-period" in config.errors[0]  # an unknown top-level key, not a refusal
    assert not any("alias" in e for e in config.errors)


@pytest.mark.parametrize("ident", ["weekly\n", "weekly\r\n", "weekly "])
def test_a_list_id_must_match_whole(tmp_path, ident):
    path = tmp_path / "qa_lists.yaml"
    path.write_text(yaml.safe_dump({"lists": [{"id": ident, "type": "all", "period": {"last": 7, "unit": "days"}}]}))
    config = load_qa_lists(path)
    assert config.lists == [] and "field `id`" in config.errors[0]
