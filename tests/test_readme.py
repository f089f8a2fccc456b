"""README.md stays true to the code: connection examples, integrations fields, tables and columns."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from cxsync import settings
from cxsync.provider_info import get_provider_info
from cxsync.warehouse import schema as t

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
AUTH_TYPES = {("liveperson", "oauth1"), ("liveperson", "oauth2"), ("helpdesk", "token"), ("helpdesk", "oauth2")}


def conn_fields(conn_type: str) -> set[str]:
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    return set(entry["conn-fields"])


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
    assert {(e["conn_type"], e["extra"]["auth_type"]) for e in examples} == AUTH_TYPES
    for example in examples:
        assert set(example["extra"]) <= conn_fields(example["conn_type"]), example["conn_id"]
        assert example["login"] and example["password"]
        if example["conn_type"] == "liveperson":
            assert "account_id" in example["extra"]
        if example["extra"]["auth_type"] == "oauth1":
            assert {"access_token", "access_token_secret"} <= set(example["extra"])


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
        assert extra["auth_type"] == example["extra"]["auth_type"]
        assert set(extra) <= conn_fields(example["conn_type"])


def test_shipped_integrations_use_the_connection_ids_of_the_examples():
    from cxsync.config import load_integrations

    documented = {e["conn_id"] for e in env_examples()}
    assert {i.conn_id for i in load_integrations(ROOT / "include" / "integrations.yaml").integrations} <= documented


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
    for provider, slots in settings.POOL_SLOTS.items():
        assert f"airflow pools set {settings.pool_name(provider)} {slots} " in README
    for unit in settings.RETENTION_UNITS:
        assert f"`{unit}`" in README
