"""The integrations file: every validation rule, error wording (file, entry, field), and isolation of bad entries."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cxsync import settings
from cxsync.config import ConfigError, Retention, integrations_path, load_integrations

ROOT = Path(__file__).resolve().parents[1]

GOOD = {"id": "lp_main", "provider": "liveperson", "conn_id": "sandbox_liveperson_main"}


def write(tmp_path: Path, text: str, name: str = "integrations.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_entries(tmp_path: Path, *entries: dict):
    import yaml

    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump({"integrations": list(entries)}, sort_keys=False), encoding="utf-8")
    return load_integrations(path)


def only_error(config) -> str:
    assert len(config.errors) == 1, config.errors
    return config.errors[0]


def assert_names(error: str, path: Path, index: int, field: str) -> None:
    assert str(path) in error, error
    assert f"integrations[{index}]" in error, error
    assert f"`{field}`" in error, error


# ---- the shipped file and defaults ------------------------------------------------------------------


def test_shipped_file_is_valid_and_covers_both_providers_and_every_auth_type():
    config = load_integrations(ROOT / "include" / "integrations.yaml")
    assert config.errors == []
    assert {i.provider for i in config.integrations} == {"liveperson", "helpdesk"}
    assert len({i.id for i in config.integrations}) == len(config.integrations) == 4
    assert config.warehouse_conn_id == "cxsync_warehouse"


def test_minimal_entry_gets_the_contract_defaults(tmp_path):
    config = load_entries(tmp_path, GOOD)
    assert config.errors == []
    (integration,) = config.integrations
    assert integration.id == "lp_main"
    assert integration.provider == "liveperson"
    assert integration.conn_id == "sandbox_liveperson_main"
    assert integration.backfill_weeks == 1
    assert integration.schedule == "0 2 * * *"
    assert integration.label == "lp_main"  # label falls back to the id
    assert integration.description == ""
    assert integration.conversation_analytics is False
    assert integration.retention == Retention(**settings.DEFAULT_RETENTION)
    assert config.warehouse_conn_id == "cxsync_warehouse"


def test_full_entry_is_read_as_written(tmp_path):
    path = write(
        tmp_path,
        """
        warehouse_conn_id: qa_dw
        integrations:
          - id: hd_eu_2
            provider: helpdesk
            label: HelpDesk EU
            description: Tickets of the EU team
            conn_id: helpdesk_eu
            backfill_weeks: 4
            retention: {value: 2, unit: quarters}
            conversation_analytics: true
            schedule: "30 3 * * 1-5"
            options: {overlap_minutes: 15}
    """,
    )
    config = load_integrations(path)
    assert config.errors == []
    assert config.warehouse_conn_id == "qa_dw"
    (i,) = config.integrations
    assert (i.id, i.provider, i.label, i.description, i.conn_id) == (
        "hd_eu_2",
        "helpdesk",
        "HelpDesk EU",
        "Tickets of the EU team",
        "helpdesk_eu",
    )
    assert i.backfill_weeks == 4
    assert i.retention == Retention(2, "quarters")
    assert i.conversation_analytics is True
    assert i.schedule == "30 3 * * 1-5"
    assert i.options == {"overlap_minutes": 15}
    assert config.get("hd_eu_2") is i


def test_get_of_an_unknown_id_names_the_file(tmp_path):
    config = load_entries(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="no valid integration with id 'nope'") as info:
        config.get("nope")
    assert str(tmp_path) in str(info.value)


# ---- field rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["LP", "1lp", "lp-main", "lp main", "_lp", "", 7, None, "lp.main", "lpé"])
def test_id_must_match_the_pattern(tmp_path, bad_id):
    config = load_entries(tmp_path, {**GOOD, "id": bad_id})
    assert config.integrations == []
    assert_names(only_error(config), tmp_path / "integrations.yaml", 0, "id")


@pytest.mark.parametrize("good_id", ["a", "lp_main", "hd2", "x_1_y"])
def test_id_pattern_accepts(tmp_path, good_id):
    assert [i.id for i in load_entries(tmp_path, {**GOOD, "id": good_id}).integrations] == [good_id]


def test_id_length_is_bounded_so_dag_ids_and_tags_stay_within_airflow_limits(tmp_path):
    long_id = "a" * (settings.MAX_INTEGRATION_ID_LENGTH + 1)
    config = load_entries(tmp_path, {**GOOD, "id": long_id})
    assert config.integrations == []
    assert "longer than" in only_error(config)
    ok = "a" * settings.MAX_INTEGRATION_ID_LENGTH
    assert load_entries(tmp_path, {**GOOD, "id": ok}).errors == []


def test_id_must_be_unique_and_the_first_entry_wins(tmp_path):
    config = load_entries(tmp_path, GOOD, {**GOOD, "conn_id": "other"}, {**GOOD, "id": "hd", "provider": "helpdesk"})
    assert [(i.id, i.conn_id) for i in config.integrations] == [
        ("lp_main", "sandbox_liveperson_main"),
        ("hd", "sandbox_liveperson_main"),
    ]
    error = only_error(config)
    assert_names(error, tmp_path / "integrations.yaml", 1, "id")
    assert "duplicate" in error and "'lp_main'" in error


@pytest.mark.parametrize("provider", ["zendesk", "LivePerson", "", None, 3])
def test_provider_must_be_known(tmp_path, provider):
    config = load_entries(tmp_path, {**GOOD, "provider": provider})
    error = only_error(config)
    assert_names(error, tmp_path / "integrations.yaml", 0, "provider")
    assert "liveperson, helpdesk" in error


def test_provider_is_required(tmp_path):
    entry = {k: v for k, v in GOOD.items() if k != "provider"}
    assert_names(only_error(load_entries(tmp_path, entry)), tmp_path / "integrations.yaml", 0, "provider")


@pytest.mark.parametrize("weeks", [1, 2, 3, 4])
def test_backfill_weeks_in_range(tmp_path, weeks):
    assert load_entries(tmp_path, {**GOOD, "backfill_weeks": weeks}).integrations[0].backfill_weeks == weeks


@pytest.mark.parametrize("weeks", [0, 5, -1, 1.5, "2", True, None])
def test_backfill_weeks_out_of_range_or_not_an_integer(tmp_path, weeks):
    error = only_error(load_entries(tmp_path, {**GOOD, "backfill_weeks": weeks}))
    assert_names(error, tmp_path / "integrations.yaml", 0, "backfill_weeks")
    assert "from 1 to 4" in error


@pytest.mark.parametrize("unit", ["days", "weeks", "months", "quarters", "years"])
def test_retention_units(tmp_path, unit):
    assert load_entries(tmp_path, {**GOOD, "retention": {"value": 3, "unit": unit}}).integrations[0].retention == (
        Retention(3, unit)
    )


@pytest.mark.parametrize(
    ("retention", "field"),
    [
        ({"value": 0, "unit": "days"}, "retention.value"),
        ({"value": -3, "unit": "days"}, "retention.value"),
        ({"value": 1.5, "unit": "days"}, "retention.value"),
        ({"value": "90", "unit": "days"}, "retention.value"),
        ({"value": True, "unit": "days"}, "retention.value"),
        ({"unit": "days"}, "retention.value"),
        ({"value": 90, "unit": "day"}, "retention.unit"),
        ({"value": 90, "unit": "hours"}, "retention.unit"),
        ({"value": 90}, "retention.unit"),
        ({"value": 90, "unit": "days", "keep": True}, "retention"),
        ({"value": 90, "unit": "days", "approval_share": 1.5}, "retention.approval_share"),
        ({"value": 90, "unit": "days", "approval_share": "10%"}, "retention.approval_share"),
        ({"value": 90, "unit": "days", "approval_share": True}, "retention.approval_share"),
        ("90 days", "retention"),
        (90, "retention"),
    ],
)
def test_retention_rules(tmp_path, retention, field):
    config = load_entries(tmp_path, {**GOOD, "retention": retention})
    assert config.integrations == []
    assert_names(only_error(config), tmp_path / "integrations.yaml", 0, field)


def test_retention_approval_share(tmp_path):
    entry = {**GOOD, "retention": {"value": 3, "unit": "days", "approval_share": 0.25}}
    assert load_entries(tmp_path, entry).integrations[0].retention.approval_share == 0.25
    assert load_entries(tmp_path, GOOD).integrations[0].retention.approval_share == 0.10


@pytest.mark.parametrize(
    "schedule",
    [
        "0 2 * * *",
        "*/15 * * * *",
        "30 3 * * 1-5",
        "0 4 1 * *",
        "@daily",
        "@hourly",
        "@weekly",
        "@quarterly",
        " 0 2 * * * ",
    ],
)
def test_schedule_accepts_cron_and_presets(tmp_path, schedule):
    config = load_entries(tmp_path, {**GOOD, "schedule": schedule})
    assert config.errors == []


@pytest.mark.parametrize(
    "schedule", ["nightly", "61 * * * *", "0 25 * * *", "0 2 * *", "0 2 * * * *", "@reboot", "@sometimes", "", 5, None]
)
def test_schedule_rejects_what_is_not_cron(tmp_path, schedule):
    error = only_error(load_entries(tmp_path, {**GOOD, "schedule": schedule}))
    assert_names(error, tmp_path / "integrations.yaml", 0, "schedule")
    assert "cron" in error


@pytest.mark.parametrize("conn_id", [None, "", "   ", 12])
def test_conn_id_is_required(tmp_path, conn_id):
    entry = {**GOOD, "conn_id": conn_id}
    assert_names(only_error(load_entries(tmp_path, entry)), tmp_path / "integrations.yaml", 0, "conn_id")


def test_missing_conn_id(tmp_path):
    entry = {k: v for k, v in GOOD.items() if k != "conn_id"}
    error = only_error(load_entries(tmp_path, entry))
    assert_names(error, tmp_path / "integrations.yaml", 0, "conn_id")
    assert "required" in error


@pytest.mark.parametrize("field", ["label", "description"])
@pytest.mark.parametrize("value", [12, ["a"], {"a": 1}, True])
def test_label_and_description_must_be_strings(tmp_path, field, value):
    assert_names(only_error(load_entries(tmp_path, {**GOOD, field: value})), tmp_path / "integrations.yaml", 0, field)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_conversation_analytics_is_boolean(tmp_path, value):
    error = only_error(load_entries(tmp_path, {**GOOD, "conversation_analytics": value}))
    assert_names(error, tmp_path / "integrations.yaml", 0, "conversation_analytics")


def test_unknown_entry_keys_are_errors_not_silently_ignored(tmp_path):
    error = only_error(load_entries(tmp_path, {**GOOD, "backfil_weeks": 2}))
    assert str(tmp_path / "integrations.yaml") in error
    assert "integrations[0] (id 'lp_main')" in error
    assert "'backfil_weeks'" in error and "allowed:" in error


def test_unknown_top_level_key_is_reported_and_entries_still_load(tmp_path):
    path = write(
        tmp_path,
        """
        integration:
          - {id: typo, provider: liveperson, conn_id: c}
        integrations:
          - {id: lp_main, provider: liveperson, conn_id: c}
    """,
    )
    config = load_integrations(path)
    assert [i.id for i in config.integrations] == ["lp_main"]
    error = only_error(config)
    assert str(path) in error and "'integration'" in error


def test_entry_that_is_not_a_mapping(tmp_path):
    config = load_entries(tmp_path, "lp_main")
    error = only_error(config)
    assert str(tmp_path / "integrations.yaml") in error and "integrations[0]" in error and "mapping" in error


@pytest.mark.parametrize("value", ["", None, 5])
def test_warehouse_conn_id_must_be_a_non_empty_string(tmp_path, value):
    import yaml

    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump({"warehouse_conn_id": value, "integrations": [GOOD]}))
    config = load_integrations(path)
    assert [i.id for i in config.integrations] == ["lp_main"]
    assert "`warehouse_conn_id`" in only_error(config)
    assert config.warehouse_conn_id == settings.DEFAULT_WAREHOUSE_CONN_ID


# ---- error wording and isolation ---------------------------------------------------------------------


def test_every_problem_of_an_entry_is_reported_at_once(tmp_path):
    config = load_entries(
        tmp_path,
        {
            "id": "Bad",
            "provider": "zendesk",
            "backfill_weeks": 9,
            "retention": {"value": 0, "unit": "eons"},
            "schedule": "never",
        },
    )
    fields = ["id", "provider", "conn_id", "backfill_weeks", "retention.value", "retention.unit", "schedule"]
    assert len(config.errors) == len(fields)
    for error, field in zip(config.errors, fields, strict=True):
        assert_names(error, tmp_path / "integrations.yaml", 0, field)
        assert "(id 'Bad')" in error


def test_a_bad_entry_never_hides_the_good_ones(tmp_path):
    path = write(
        tmp_path,
        """
        integrations:
          - {id: lp_main, provider: liveperson, conn_id: lp}
          - {id: hd_bad, provider: helpdesk, conn_id: hd, backfill_weeks: 9}
          - {id: hd_main, provider: helpdesk, conn_id: hd}
          - just a string
          - {id: lp_two, provider: liveperson, conn_id: lp2, retention: {value: 1, unit: years}}
    """,
    )
    config = load_integrations(path)
    assert [i.id for i in config.integrations] == ["lp_main", "hd_main", "lp_two"]
    assert len(config.errors) == 2
    assert_names(config.errors[0], path, 1, "backfill_weeks")
    assert "(id 'hd_bad')" in config.errors[0]
    assert "integrations[3]" in config.errors[1]


# ---- the file as a whole ------------------------------------------------------------------------------


def test_env_variable_overrides_the_path(tmp_path, monkeypatch):
    path = write(tmp_path, "integrations:\n  - {id: from_env, provider: helpdesk, conn_id: hd}\n", "elsewhere.yaml")
    monkeypatch.setenv("CXSYNC_INTEGRATIONS_FILE", str(path))
    assert integrations_path() == path
    config = load_integrations()
    assert config.path == path
    assert [i.id for i in config.integrations] == ["from_env"]


def test_without_the_env_variable_the_project_file_is_used(monkeypatch):
    monkeypatch.delenv("CXSYNC_INTEGRATIONS_FILE", raising=False)
    assert integrations_path() == ROOT / "include" / "integrations.yaml"


def test_missing_file_says_how_to_fix_it(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_integrations(path)
    message = str(info.value)
    assert str(path) in message and "not found" in message and "CXSYNC_INTEGRATIONS_FILE" in message


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, "integrations: []\n")
    real_read_text = Path.read_text

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    # The tests may run as root, whom file modes do not stop: refuse the read instead.
    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(ConfigError, match="cannot read the integrations file: Permission denied") as info:
        load_integrations(path)
    assert str(path) in str(info.value)


def test_a_directory_is_not_an_integrations_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_integrations(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "integrations:\n  - {id: lp_main, provider: liveperson\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_integrations(path)
    assert str(path) in str(info.value)


def test_binary_file_is_a_clear_error(tmp_path):
    path = tmp_path / "integrations.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError) as info:
        load_integrations(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_integrations(path)


def test_integrations_must_be_a_list(tmp_path):
    path = write(tmp_path, "integrations: {id: lp_main}\n")
    with pytest.raises(ConfigError, match="`integrations`: must be a list"):
        load_integrations(path)


@pytest.mark.parametrize("text", ["", "integrations:\n", "integrations: []\n"])
def test_empty_file_means_no_integrations_and_no_errors(tmp_path, text):
    config = load_integrations(write(tmp_path, text))
    assert config.integrations == [] and config.errors == []


def test_an_alias_bomb_gives_a_short_error(tmp_path):
    # Aliases within the loader's budget still expand into a value whose full repr is ~20 KB: the error message
    # (it lands in task logs and DAG docs) quotes a cut-down repr of it.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]" for n in range(1, 4)]
    text = "\n".join(["x-bomb:", *("  " + line for line in lines)])
    text += "\nintegrations:\n  - {id: *a3, provider: *a3, conn_id: c, label: *a3, schedule: *a3}\n"
    path = write(tmp_path, text)
    assert path.stat().st_size < 1024
    config = load_integrations(path)
    assert not config.integrations
    assert len(" ".join(config.errors)) < 4000
    assert any("field `id`: [[[...], [...]" in e for e in config.errors)


def test_an_id_with_a_trailing_newline_is_refused(tmp_path):
    config = load_entries(tmp_path, {**GOOD, "id": "lp_main\n"})
    assert not config.integrations and "field `id`" in config.errors[0]


# ---- reconciliation option --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 673, "48", True, None, [48]])
def test_reconcile_hours_must_be_a_number_of_hours_in_range(tmp_path, bad):
    config = load_entries(tmp_path, {**GOOD, "options": {"reconcile_hours": bad}}, {**GOOD, "id": "lp_ok"})
    assert [i.id for i in config.integrations] == ["lp_ok"]  # the good entry keeps its DAGs
    message = only_error(config)
    assert_names(message, tmp_path / "integrations.yaml", 0, "options.reconcile_hours")
    assert "from 0 (no reconciliation) to 672" in message


@pytest.mark.parametrize(("given", "hours"), [(None, 48.0), (0, 0.0), (24, 24.0), (1.5, 1.5), (672, 672.0)])
def test_reconcile_hours_defaults_to_48_and_0_turns_it_off(tmp_path, given, hours):
    options = {} if given is None else {"reconcile_hours": given}
    (integration,) = load_entries(tmp_path, {**GOOD, "options": options}).integrations
    assert integration.reconcile_hours == hours


# ---- provider options: checked when the file is loaded, against the source's declaration ------------------


@pytest.mark.parametrize(
    ("provider", "options", "field"),
    [
        ("liveperson", {"incremental_overlap_minutes": 5}, "options.incremental_overlap_minutes"),
        ("liveperson", {"content_to_retrieve": ["transfers"]}, "options.content_to_retrieve"),
        ("liveperson", {"partial_retries": "5"}, "options.partial_retries"),
        ("helpdesk", {"page_size": 500}, "options.page_size"),
        ("helpdesk", {"overlap_minutes": -1}, "options.overlap_minutes"),
        ("helpdesk", {"open_conversation_days": 10}, "options"),  # a LivePerson option
        ("liveperson", {"reconcile_hour": 12}, "options"),  # a typo
    ],
)
def test_a_bad_provider_option_names_file_entry_and_field_and_hides_no_good_entry(tmp_path, provider, options, field):
    config = load_entries(
        tmp_path, {**GOOD, "provider": provider, "options": options}, {**GOOD, "id": "lp_ok", "options": {}}
    )
    assert [i.id for i in config.integrations] == ["lp_ok"]
    assert_names(only_error(config), tmp_path / "integrations.yaml", 0, field)


def test_good_provider_options_load_as_written(tmp_path):
    options = {"incremental_overlap_minutes": 45, "content_to_retrieve": ["messageRecords"], "reconcile_hours": 0}
    (integration,) = load_entries(tmp_path, {**GOOD, "options": options}).integrations
    assert integration.options == options and integration.reconcile_hours == 0


def test_an_alias_bomb_in_an_option_value_is_refused_while_parsing(tmp_path):
    """An alias bomb in an integration's option value is refused before it is built: parsing stays fast and
    small, and the error names the file."""
    import time

    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [
        f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]"
        for n in range(1, 10)
    ]
    text = "\n".join(["x-bomb:", *("  " + line for line in lines)])
    text += "\nintegrations:\n  - {id: lp_main, provider: liveperson, conn_id: c, options: {page_size: *a9}}\n"
    path = write(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_integrations(path)
    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert message.startswith(f"{path}: YAML aliases expand") and len(message) < 400


def test_a_retention_of_one_unit_reads_singular():
    from cxsync.config import Retention

    assert str(Retention(1, "years")) == "1 year" and str(Retention(13, "months")) == "13 months"
    assert str(Retention(1, "days")) == "1 day"


def test_the_freshness_preset_is_a_15_minute_cron(tmp_path):
    config = load_entries(tmp_path, {**GOOD, "schedule": "@every_15_minutes"})
    assert config.errors == []
    assert config.integrations[0].schedule == "*/15 * * * *"
    error = only_error(load_entries(tmp_path, {**GOOD, "schedule": "@every_5_minutes"}))
    assert "@every_15_minutes" in error  # the message lists the preset


def test_reconcile_every_hours_and_freshness_warn_hours_are_checked(tmp_path):
    config = load_entries(tmp_path, {**GOOD, "options": {"reconcile_every_hours": 1, "freshness_warn_hours": 0.5}})
    assert config.errors == []
    options = config.integrations[0].common_options
    assert (options.reconcile_every_hours, options.freshness_warn_hours) == (1, 0.5)
    error = only_error(load_entries(tmp_path, {**GOOD, "options": {"reconcile_every_hours": -1}}))
    assert "reconcile_every_hours" in error
