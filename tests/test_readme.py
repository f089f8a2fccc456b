"""README.md stays true to the code: connection examples, integrations fields, tables and columns."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from cxsync import registry, settings
from cxsync.provider_info import get_provider_info
from cxsync.warehouse import schema as t

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
AUTH_TYPES = {("liveperson", "oauth1"), ("liveperson", "oauth2"), ("helpdesk", "token"), ("helpdesk", "oauth2")}


def conn_fields(conn_type: str) -> set[str]:
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    return set(entry["conn-fields"])


def auth_of(conn_type: str, extra: dict) -> str:
    """The auth type a connection's extra selects, defaults included (as the hooks read it)."""
    if "auth_type" in extra:
        return extra["auth_type"]
    if conn_type == "liveperson":  # OAuth 2.0 unless both OAuth 1.0 token values are there
        return "oauth1" if {"access_token", "access_token_secret"} <= set(extra) else "oauth2"
    return "token"


def env_examples() -> list[dict]:
    blocks = re.findall(r"export AIRFLOW_CONN_(\w+)='(\{.*?\})'", README, flags=re.S)
    out = []
    for name, body in blocks:
        if name == "CXSYNC_WAREHOUSE":
            continue
        out.append({"conn_id": name.lower(), **json.loads(body)})
    return out


def cli_examples() -> list[list[str]]:
    commands = re.findall(r"^airflow connections add .*?(?<!\\)$", README, flags=re.M | re.S)
    return [shlex.split(c.replace("\\\n", " ")) for c in commands]


def test_the_two_commands_come_first():
    first_section = README.split("\n## ")[1]
    assert first_section.startswith("Two commands")
    assert "make demo" in first_section and "make test" in first_section


def test_every_auth_type_has_an_environment_example_with_declared_fields():
    examples = env_examples()
    assert {(e["conn_type"], auth_of(e["conn_type"], e["extra"])) for e in examples} == AUTH_TYPES
    for example in examples:
        assert set(example["extra"]) <= conn_fields(example["conn_type"]), example["conn_id"]
        assert example["login"] and example["password"]
        if example["conn_type"] == "liveperson":
            assert "account_id" in example["extra"]
        if auth_of(example["conn_type"], example["extra"]) == "oauth1":
            assert {"access_token", "access_token_secret"} <= set(example["extra"])


def test_the_liveperson_examples_lead_with_oauth2_by_default():
    """LivePerson ended OAuth 1.0: the first example is OAuth 2.0 and needs no `auth_type`."""
    first = next(e for e in env_examples() if e["conn_type"] == "liveperson")
    assert "auth_type" not in first["extra"] and auth_of("liveperson", first["extra"]) == "oauth2"
    assert "31 May 2026" in README and "`users.read`" in README


def test_every_auth_type_has_a_cli_example_matching_the_environment_one():
    by_id = {e["conn_id"]: e for e in env_examples()}
    commands = cli_examples()
    assert len(commands) == len(AUTH_TYPES)
    for argv in commands:
        conn_id = argv[3]
        options = dict(zip(argv[4::2], argv[5::2], strict=True))
        example = by_id[conn_id]
        assert options["--conn-type"] == example["conn_type"]
        assert options["--conn-host"] == example["host"]
        assert options["--conn-login"] == example["login"]
        assert options["--conn-password"] == example["password"]
        extra = json.loads(options["--conn-extra"])
        assert auth_of(example["conn_type"], extra) == auth_of(example["conn_type"], example["extra"])
        assert set(extra) <= conn_fields(example["conn_type"])


def test_shipped_integrations_use_the_sandbox_connections():
    # The shipped file is the demo's: its connections are the sandbox's, whose ids say so; the README's
    # production examples use other ids, so the two can never be mixed up.
    from cxsync.config import load_integrations

    documented = {e["conn_id"] for e in env_examples()}
    shipped = {i.conn_id for i in load_integrations(ROOT / "include" / "integrations.yaml").integrations}
    assert shipped and all(conn_id.startswith("sandbox_") for conn_id in shipped)
    assert not shipped & documented


@pytest.mark.parametrize(
    "table", [tbl for tbl in t.metadata.sorted_tables if tbl.name != "cx_schema_version"], ids=lambda tbl: tbl.name
)
def test_every_table_and_column_is_described(table):
    assert f"**`{table.name}`**" in README
    for column in table.columns:
        if column.name != "id":  # surrogate keys of the log tables
            assert f"`{column.name}`" in README, (table.name, column.name)


def test_integrations_fields_and_pools_are_documented():
    fields = (
        "id",
        "provider",
        "conn_id",
        "label",
        "description",
        "backfill_weeks",
        "retention",
        "schedule",
        "conversation_analytics",
        "options",
        "warehouse_conn_id",
    )
    for key in fields:
        assert f"| `{key}`" in README, key
    for spec in registry.PROVIDERS.values():
        assert f"airflow pools set {spec.pool} {spec.pool_slots} " in README
    for unit in settings.RETENTION_UNITS:
        assert f"`{unit}`" in README


def test_status_says_both_pipelines_are_built_and_they_are():

    status = README.split("## Two commands")[0]
    assert "in progress" not in status and "not implemented yet" not in status
    for provider, spec in registry.PROVIDERS.items():
        registry.source_class(provider)  # imports: the pipeline exists
        assert f"**{spec.display_name}**" in status


def tunable_rows() -> dict[str, tuple[str, str]]:
    """`| `key` | yes/no | meaning | default |` rows of the request tunables table: key -> (form field, default)."""
    section = README.split("### Request tunables")[1].split("\n### ")[0].split("\n## ")[0]
    rows = re.findall(r"^\| `(\w+)` \| (yes|no) \| .*? \| ([\d.]+) \|$", section, flags=re.M)
    return {key: (form, default) for key, form, default in rows}


def test_request_tunables_table_lists_every_extra_with_the_code_defaults():
    from cxsync.hooks import helpdesk, liveperson
    from cxsync.http import tunables

    documented = tunable_rows()
    in_code = re.findall(r"^\| `(\w+)` +\|", tunables.__doc__, flags=re.M)
    assert set(documented) == set(in_code)
    assert liveperson.DEFAULT_REQUESTS_PER_SECOND == helpdesk.DEFAULT_REQUESTS_PER_SECOND
    defaults = tunables.ClientTunables.from_extras(
        {}, conn_id="x", default_requests_per_second=liveperson.DEFAULT_REQUESTS_PER_SECOND
    )
    actual = {
        "requests_per_second": defaults.requests_per_second,
        "connect_timeout": defaults.timeout[0],
        "timeout": defaults.timeout[1],
        "max_attempts": defaults.retry.max_attempts,
        "retry_base_seconds": defaults.retry.base_seconds,
        "retry_max_seconds": defaults.retry.max_seconds,
        "rate_limit_min_wait": defaults.retry.min_rate_limit_wait,
        "max_response_mb": defaults.max_response_bytes / (1024 * 1024),
        "request_deadline": defaults.deadline,
        "max_in_flight": defaults.max_in_flight,
    }
    assert {key: float(default) for key, (_, default) in documented.items()} == actual
    for key in documented:  # every documented extra really changes what the request layer does
        changed = tunables.ClientTunables.from_extras({key: 3}, conn_id="x", default_requests_per_second=5.0)
        assert changed != defaults, key
    for conn_type in ("liveperson", "helpdesk"):
        fields = conn_fields(conn_type)
        assert {key for key, (form, _) in documented.items() if form == "yes"} == set(documented) & fields


def test_make_demo_section_matches_what_the_demo_does():
    from cxsync.config import load_integrations
    from cxsync_dev import demo

    section = README.split("### What `make demo` does")[1].split("\n## ")[0]
    assert f"`cxsync_<id>_backfill` with `{json.dumps(demo.BACKFILL_CONF)}`" in section
    assert f'{{"advance": "{demo.CLOCK_STEP}"}}' in section
    assert f".airflow/{demo.LOG_DIR_NAME}/" in section
    assert f"--conn-id {demo.OAUTH_CONN_ID}" in section
    for spec in registry.PROVIDERS.values():
        assert f"`{spec.pool}`" in section
    shipped = load_integrations(ROOT / "include" / "integrations.yaml").integrations
    assert len(shipped) == 4
    for integration in shipped:
        assert f"`{integration.conn_id}`" in section and f"`{integration.id}`" in section
    from cxsync.warehouse import Warehouse

    warehouse = Warehouse.from_url("sqlite://")
    warehouse.ensure_schema()
    labels = [label for label, _ in demo.count_rows(warehouse, ["x"])]
    warehouse.dispose()
    for label in labels:  # every figure the demo prints is explained, and shown in the sample output
        assert f"\n{label}  " in section, label
        assert label.split(" ")[0] in section.split("8. **What landed**")[1].split("\n\n")[0]


def test_helpdesk_oauth_command_is_documented_as_it_parses(capsys):
    from cxsync import helpdesk_oauth

    with pytest.raises(SystemExit):
        helpdesk_oauth.main(["--help"])
    options = set(re.findall(r"--[a-z][a-z-]+", capsys.readouterr().out)) - {"--help"}
    section = README.split("### Connect HelpDesk OAuth once")[1].split("\n### ")[0]
    assert options == set(re.findall(r"--[a-z][a-z-]+", section))
    assert f"http://127.0.0.1:{helpdesk_oauth.DEFAULT_PORT}/callback" in section
    assert f"default {helpdesk_oauth.DEFAULT_PORT}" in section
    assert f"default {helpdesk_oauth.DEFAULT_TIMEOUT_SECONDS:g} s" in section


def test_test_button_section_quotes_the_users_permission_fix():
    from cxsync.hooks.liveperson import users_permission_message

    fix = 'enable "Users" (Administration > Users)'
    assert fix in users_permission_message("x")
    assert fix in README.split("### The Test button")[1].split("\n### ")[0]
