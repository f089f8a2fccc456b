"""Agent matching: every precedence rule, ambiguity, overrides that survive re-runs, deleted agents and bots."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from cxsync.qa.matching import (
    Override,
    ProviderAgent,
    clear_override,
    list_matches,
    match_agents,
    normalize_name,
    run_matching,
    set_override,
)
from cxsync.qa.staff import StaffMember, load_staff
from cxsync.warehouse import schema as t
from support.qa import add_agents

STAFF = (
    "s-1,Ann Lee,Ann.Lee@Acme.example ,Team A,agent,true,\n"
    "s-2,José O'Neil-Smith,jose@acme.example,Team A,agent,true,lp:77\n"
    "s-3,Gus Petrov,gus1@acme.example,Team B,agent,true,\n"
    "s-4,Gus  PETROV,gus2@acme.example,Team B,agent,true,\n"
    "s-5,Dee Dup,dup@acme.example,Team B,agent,true,\n"
    "s-6,Dee Dupe,DUP@acme.example,Team B,agent,false,\n"
    "s-7,Left Person,left@acme.example,Team B,agent,false,\n"
    "s-8,Eva Two,eva@acme.example,Team A,agent,true,lp:88;hd:h-8\n"
)


def _seed(warehouse) -> None:
    add_agents(
        warehouse,
        "lp",
        [
            {"agent_id": "10", "display_name": "Someone", "email": "  ANN.LEE@acme.example"},  # email
            {"agent_id": "77", "display_name": "Ann Lee", "email": "ann.lee@acme.example"},  # external id beats email
            {"agent_id": "20", "display_name": "  jose   o neil smith ", "email": None},  # name: accents, punctuation
            {"agent_id": "30", "display_name": "Gus Petrov", "email": None},  # two staff of that name
            {"agent_id": "40", "display_name": "Dee Dup", "email": "dup@acme.example"},  # e-mail of two: no name guess
            {"agent_id": "50", "display_name": "Virtual Assistant", "role": "bot"},
            {"agent_id": "60", "display_name": "Nobody Known", "email": "x@y.example"},
            {"agent_id": "70", "display_name": "Left Person", "email": "LEFT@acme.example", "is_deleted": True},
            {"agent_id": "88", "display_name": "Eva T.", "email": "eva.t@lp.example"},
        ],
    )
    add_agents(warehouse, "hd", [{"agent_id": "h-8", "display_name": "E. Two", "email": "e2@hd.example"}])


def _methods(warehouse) -> dict[tuple[str, str], tuple]:
    return {
        (r["integration_id"], r["agent_id"]): (r["method"], r["staff_id"], tuple(r["candidates"]))
        for r in list_matches(warehouse)
    }


def test_every_agent_gets_a_row_by_precedence_and_ambiguity_never_guesses(warehouse, write_staff_csv, caplog):
    _seed(warehouse)
    with caplog.at_level(logging.INFO, logger="cxsync.qa.matching"):
        summary = run_matching(warehouse, load_staff(write_staff_csv(STAFF)))
    assert _methods(warehouse) == {
        ("lp", "10"): ("email", "s-1", ()),
        ("lp", "77"): ("external_id", "s-2", ()),
        ("lp", "20"): ("name", "s-2", ()),
        ("lp", "30"): ("ambiguous", None, ("s-3", "s-4")),
        ("lp", "40"): ("ambiguous", None, ("s-5", "s-6")),
        ("lp", "50"): ("bot", None, ()),
        ("lp", "60"): ("unmatched", None, ()),
        ("lp", "70"): ("email", "s-7", ()),  # deleted agents are matched too
        ("lp", "88"): ("external_id", "s-8", ()),  # one person, accounts in two integrations
        ("hd", "h-8"): ("external_id", "s-8", ()),
    }
    assert summary["agents"] == 10
    assert summary["by_method"] == {
        "manual": 0, "external_id": 3, "email": 2, "name": 1, "bot": 1, "ambiguous": 2, "unmatched": 1,
    }  # fmt: skip
    log = caplog.text
    assert "ambiguous (2): Gus Petrov (lp:30) -> one of s-3, s-4" in log
    assert "unmatched (1): Nobody Known (lp:60)" in log
    assert "Left Person (lp:70, deleted) -> s-7 Left Person" in log
    with warehouse.engine.connect() as conn:
        confidence = dict(
            conn.execute(
                sa.select(t.agent_matches.c.method, sa.func.max(t.agent_matches.c.confidence)).group_by(
                    t.agent_matches.c.method
                )
            ).all()
        )
    assert confidence["external_id"] == 1.0 > confidence["email"] > confidence["name"] > confidence["ambiguous"] == 0


def test_overrides_win_survive_reruns_and_unknown_staff_is_reported_not_applied(warehouse, write_staff_csv):
    _seed(warehouse)
    staff = load_staff(write_staff_csv(STAFF))
    run_matching(warehouse, staff)
    with warehouse.engine.connect() as conn:
        first_matched_at = conn.execute(
            sa.select(t.agent_matches.c.matched_at).where(t.agent_matches.c.agent_id == "10")
        ).scalar_one()
    set_override(warehouse, "lp", "30", "s-4", note="Billing Gus", set_by="qa-lead")  # resolves an ambiguity
    set_override(warehouse, "lp", "77", "s-1", set_by="qa-lead")  # beats an external id
    set_override(warehouse, "lp", "10", None, note="shared login, never score")  # never match
    set_override(warehouse, "lp", "60", "s-404", set_by="typo")  # unknown staff id
    for _ in range(2):  # overrides survive re-runs
        summary = run_matching(warehouse, staff)
        methods = _methods(warehouse)
        assert methods[("lp", "30")] == ("manual", "s-4", ())
        assert methods[("lp", "77")] == ("manual", "s-1", ())
        assert methods[("lp", "10")] == ("manual", None, ())
        assert methods[("lp", "60")] == ("unmatched", None, ())  # not applied
        assert len(summary["override_problems"]) == 1 and "'s-404'" in summary["override_problems"][0]
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(t.agent_matches)).scalar_one()
        unchanged = conn.execute(
            sa.select(t.agent_matches.c.matched_at).where(t.agent_matches.c.agent_id == "88")
        ).scalar_one()
        changed = conn.execute(
            sa.select(t.agent_matches.c.matched_at).where(t.agent_matches.c.agent_id == "10")
        ).scalar_one()
    assert rows == 10  # upserts: no duplicates
    assert unchanged <= first_matched_at < changed  # matched_at moves only when the outcome changes
    assert clear_override(warehouse, "lp", "30") and not clear_override(warehouse, "lp", "30")
    run_matching(warehouse, staff)
    assert _methods(warehouse)[("lp", "30")] == ("ambiguous", None, ("s-3", "s-4"))


def test_bad_staff_rows_are_rejected_records_and_good_rows_match(warehouse, write_staff_csv):
    _seed(warehouse)
    path = write_staff_csv(STAFF + ",No Id,noid@acme.example,,,,\n")
    summary = run_matching(warehouse, load_staff(path))
    assert summary["staff_errors"] == 1
    with warehouse.engine.connect() as conn:
        rejected = conn.execute(sa.select(t.rejected_records.c.record_key, t.rejected_records.c.reason)).all()
    assert [r.record_key for r in rejected] == ["line 10"]
    assert f"{path}: line 10: field `staff_id`: required" in rejected[0].reason
    assert _methods(warehouse)[("lp", "10")] == ("email", "s-1", ())


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("José O'Neil-Smith", "jose o neil smith"),
        ("  ANN\tLEE ", "ann lee"),
        ("Nils Müller", "NILS MULLER"),
        ("Søren Ørsted", "soren orsted"),
        ("Hana Jovanović", "Hana Jovanovic"),
    ],
)
def test_name_normalisation(a, b):
    assert normalize_name(a) == normalize_name(b) != ""


def test_pure_matcher_handles_ambiguous_external_ids_and_override_order():
    staff = [
        StaffMember("s-1", external_ids=(("lp", "1"),)),
        StaffMember("s-2", external_ids=(("lp", "1"),), email="a@x.example"),
    ]
    agents = [ProviderAgent("lp", "1", email="a@x.example"), ProviderAgent("lp", "2", role="bot")]
    outcome = match_agents(agents, staff, [Override("lp", "2", "s-1")])
    assert [(m.method, m.staff_id, m.candidates) for m in outcome.matches] == [
        ("ambiguous", None, ("s-1", "s-2")),  # an ambiguous id does not fall through to the e-mail
        ("manual", "s-1", ()),  # an override beats the bot rule
    ]
