"""`pii_redaction` in the integrations file: true, false (the default), a mapping; errors name file, entry and
field."""

from __future__ import annotations

import pytest

from cxsync.config import load_integrations
from cxsync.redaction.options import DEFAULT_PHONE_REGIONS, RedactionPolicy


def _load(tmp_path, value: str | None):
    path = tmp_path / "integrations.yaml"
    extra = f"\n    pii_redaction: {value}" if value is not None else ""
    path.write_text(f"integrations:\n  - id: lp\n    provider: liveperson\n    conn_id: c{extra}\n")
    return load_integrations(path), path


def test_off_unless_asked(tmp_path):
    config, _ = _load(tmp_path, None)
    assert config.integrations[0].pii_redaction is None
    config, _ = _load(tmp_path, "false")
    assert config.integrations[0].pii_redaction is None


def test_true_takes_the_defaults(tmp_path):
    config, _ = _load(tmp_path, "true")
    policy = config.integrations[0].pii_redaction
    assert policy == RedactionPolicy()
    assert policy.mode == "redact" and policy.phone_regions == DEFAULT_PHONE_REGIONS and not policy.drop_raw


def test_a_mapping(tmp_path):
    config, _ = _load(
        tmp_path,
        "{mode: redact_drop_raw, entities: [email, Card, customer], phone_regions: [de, fr], "
        "pseudonym_key_conn_id: pii_key}",
    )
    policy = config.integrations[0].pii_redaction
    assert policy.drop_raw and policy.entities == ("EMAIL", "CARD", "NAME")
    assert policy.phone_regions == ("DE", "FR") and policy.pseudonym_key_conn_id == "pii_key"


def test_the_version_follows_the_rules_not_the_key():
    base = RedactionPolicy()
    assert base.version == RedactionPolicy().version
    assert RedactionPolicy(entities=("EMAIL",)).version != base.version
    assert RedactionPolicy(phone_regions=("DE",)).version != base.version
    assert RedactionPolicy(mode="redact_drop_raw").version != base.version


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes please", "field `pii_redaction`: 'yes please' must be true, false or a mapping"),
        ("{mode: scrub}", "field `pii_redaction.mode`: 'scrub' must be one of redact, redact_drop_raw"),
        ("{entities: [email, ssn]}", "field `pii_redaction.entities`: unknown entity type(s) 'ssn'"),
        ("{entities: []}", "field `pii_redaction.entities`: [] must be a non-empty list"),
        ("{phone_regions: [XX]}", "field `pii_redaction.phone_regions`: 'XX' not a region"),
        ("{pseudonym_key_conn_id: ''}", "field `pii_redaction.pseudonym_key_conn_id`: '' must be the id"),
        ("{colour: red}", "field `pii_redaction`: unknown key(s) colour"),
    ],
)
def test_errors_name_the_file_the_entry_and_the_field(tmp_path, value, message):
    config, path = _load(tmp_path, value)
    assert config.integrations == []
    assert len(config.errors) == 1
    assert config.errors[0].startswith(f"{path}: integrations[0] (id 'lp'): ")
    assert message in config.errors[0]


def test_the_shipped_example_turns_it_on():
    from pathlib import Path

    shipped = load_integrations(Path(__file__).resolve().parents[2] / "include" / "integrations.yaml")
    assert not shipped.errors
    assert any(i.pii_redaction is not None for i in shipped.integrations)
