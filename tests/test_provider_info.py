"""Provider registration: the entry point, the connection types and their form fields, as Airflow reads them."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from cxsync.provider_info import get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent
SECRETS = {"liveperson": {"access_token", "access_token_secret"}, "helpdesk": {"refresh_token"}}
EXTRAS = {
    "liveperson": {"account_id", "auth_type", "access_token", "access_token_secret", "source", "users_api_version"},
    "helpdesk": {"auth_type", "refresh_token", "accounts_url"},
}


def connection_type(name: str) -> dict:
    (found,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == name]
    return found


def test_entry_point_resolves_to_get_provider_info():
    (ep,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("cxsync.")]
    assert ep.value == "cxsync.provider_info:get_provider_info"
    assert ep.load() is get_provider_info
    assert ep.dist is not None and ep.dist.metadata["Name"] == "cxsync"


def test_provider_info_is_valid_against_airflows_runtime_schema():
    schema = json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_connection_types_are_valid_against_airflows_provider_yaml_schema():
    # provider.yaml's schema is the one that spells out `conn-fields` and `ui-field-behaviour`.
    schema = json.loads((AIRFLOW_DIR / "provider.yaml.schema.json").read_text())
    jsonschema.validate(get_provider_info()["connection-types"], schema["properties"]["connection-types"])


def test_provider_yaml_schema_catches_a_malformed_field():
    # The check above has teeth: a field without a schema, or an unknown hidden field, is refused.
    schema = json.loads((AIRFLOW_DIR / "provider.yaml.schema.json").read_text())["properties"]["connection-types"]
    bad = json.loads(json.dumps(get_provider_info()["connection-types"]))
    bad[0]["conn-fields"]["account_id"].pop("schema")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = json.loads(json.dumps(get_provider_info()["connection-types"]))
    bad[1]["ui-field-behaviour"]["hidden-fields"].append("token")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@pytest.mark.parametrize(
    ("conn_type", "hook_path", "display"),
    [
        ("liveperson", "cxsync.hooks.liveperson.LivePersonHook", "LivePerson"),
        ("helpdesk", "cxsync.hooks.helpdesk.HelpDeskHook", "HelpDesk"),
    ],
)
def test_connection_type_names_an_importable_hook_of_that_type(conn_type, hook_path, display):
    entry = connection_type(conn_type)
    assert entry["hook-class-name"] == hook_path
    assert entry["hook-name"] == display
    module, _, name = hook_path.rpartition(".")
    hook = getattr(importlib.import_module(module), name)
    assert hook.conn_type == conn_type
    assert hook.hook_name == display
    assert hasattr(hook, "test_connection")  # the connection form's Test button calls it
    modules = {m for h in get_provider_info()["hooks"] for m in h["python-modules"]}
    assert module in modules


@pytest.mark.parametrize("conn_type", ["liveperson", "helpdesk"])
def test_contract_fields_are_declared_and_secrets_are_passwords(conn_type):
    entry = connection_type(conn_type)
    fields = entry["conn-fields"]
    assert EXTRAS[conn_type] <= set(fields)
    for name, spec in fields.items():
        is_password = spec["schema"].get("format") == "password"
        assert is_password == (name in SECRETS[conn_type]), name
        assert spec["label"] and spec["description"]
    behaviour = entry["ui-field-behaviour"]
    assert {"login", "password", "host"} <= set(behaviour["relabeling"])
    # the fields the contract uses stay visible
    assert not {"host", "schema", "port", "login", "password"} & set(behaviour["hidden-fields"])


def test_relabeling_follows_the_contract():
    lp = connection_type("liveperson")
    # OAuth 2.0 client credentials lead: LivePerson ended OAuth 1.0 app keys
    assert lp["ui-field-behaviour"]["relabeling"]["login"] == "Client ID"
    assert lp["ui-field-behaviour"]["relabeling"]["password"] == "Client Secret"
    assert "legacy OAuth 1.0" in lp["ui-field-behaviour"]["placeholders"]["login"]
    assert lp["conn-fields"]["auth_type"]["schema"]["enum"] == ["oauth2", "oauth1"]
    assert lp["conn-fields"]["auth_type"]["schema"]["default"] == "oauth2"
    assert "legacy" in lp["conn-fields"]["access_token"]["label"]
    assert lp["conn-fields"]["source"]["schema"]["default"] == "cxsync"
    assert lp["conn-fields"]["users_api_version"]["schema"]["default"] == "4.0"
    hd = connection_type("helpdesk")
    assert hd["ui-field-behaviour"]["relabeling"]["login"] == "Account ID / Client ID"
    assert hd["ui-field-behaviour"]["relabeling"]["password"] == "Personal Access Token / Client Secret"
    assert hd["conn-fields"]["auth_type"]["schema"]["enum"] == ["token", "oauth2"]
    assert hd["conn-fields"]["auth_type"]["schema"]["default"] == "token"
    # OAuth-only fields carry no default, which the form would save into token connections' extras too
    assert "default" not in hd["conn-fields"]["accounts_url"]["schema"]
    assert "https://accounts.livechat.com" in hd["conn-fields"]["accounts_url"]["description"]
    # the form shows help texts as plain text: no Markdown
    for form in (lp, hd):
        for name, field in form["conn-fields"].items():
            assert "`" not in field["description"], name


def _airflow_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return env


def test_airflow_providers_hooks_lists_both_connection_types(tmp_path):
    airflow_cli = Path(sys.executable).with_name("airflow")
    done = subprocess.run(
        [str(airflow_cli), "providers", "hooks", "--output", "json"],
        env=_airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    hooks = {h["connection_type"]: h for h in json.loads(done.stdout)}
    assert hooks["liveperson"]["class"] == "cxsync.hooks.liveperson.LivePersonHook"
    assert hooks["liveperson"]["hook_name"] == "LivePerson"
    assert hooks["liveperson"]["package_name"] == "cxsync"
    assert hooks["helpdesk"]["class"] == "cxsync.hooks.helpdesk.HelpDeskHook"
    assert hooks["helpdesk"]["hook_name"] == "HelpDesk"


def test_providers_manager_builds_the_connection_forms(tmp_path):
    # A fresh interpreter: ProvidersManager is a process-wide singleton that caches what it found.
    script = """
import json
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
widgets = {k: {"sensitive": v.is_sensitive, "title": v.field["schema"].get("title"), "value": v.field["value"]}
           for k, v in pm.connection_form_widgets.items() if k.split("__")[1] in ("liveperson", "helpdesk")}
behaviours = {k: pm.field_behaviours.get(k) for k in ("liveperson", "helpdesk")}
print(json.dumps({"widgets": widgets, "behaviours": behaviours, "providers": sorted(pm.providers)}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=_airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "cxsync" in found["providers"]
    widgets = found["widgets"]
    for conn_type, extras in EXTRAS.items():
        for name in extras:
            key = f"extra__{conn_type}__{name}"
            assert key in widgets, key
            assert widgets[key]["sensitive"] == (name in SECRETS[conn_type]), key
    assert widgets["extra__liveperson__account_id"]["title"] == "Account number"
    assert widgets["extra__liveperson__auth_type"]["value"] == "oauth2"
    assert widgets["extra__helpdesk__auth_type"]["value"] == "token"
    lp = found["behaviours"]["liveperson"]
    assert lp["relabeling"]["login"] == "Client ID"
    assert lp["placeholders"]["host"] == "api.liveperson.net"
    assert found["behaviours"]["helpdesk"]["relabeling"]["password"] == "Personal Access Token / Client Secret"


def test_pointing_airflows_plugins_folder_at_the_package_is_harmless(tmp_path):
    # cxsync is a provider, not a plugin. Airflow execs every .py file of its plugins folder as a
    # top-level module; plugins/.airflowignore keeps it from running cxsync's modules that way.
    env = _airflow_env(tmp_path)
    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "plugins")
    airflow_cli = Path(sys.executable).with_name("airflow")
    done = subprocess.run(
        [str(airflow_cli), "plugins", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "python -m cxsync" not in done.stdout + done.stderr
    assert "Failed to import plugin" not in done.stdout + done.stderr
