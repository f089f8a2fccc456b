"""The staff file: bad rows named by file, line and field; good rows still load; `cx_staff` upserts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cxsync.config import ConfigError
from cxsync.qa.staff import load_staff, write_staff
from cxsync.warehouse import schema as t

SHIPPED = __import__("pathlib").Path(__file__).resolve().parents[2] / "include" / "staff.csv"


def test_bad_rows_name_file_line_and_field_and_good_rows_load(write_staff_csv):
    path = write_staff_csv(
        "s-1,Ann Lee,ann@x.example,Team A,agent,true,lp_main:11\n"
        ",No Id,noid@x.example,,,,\n"  # line 3
        "s-2,Bo,not-an-email,,,maybe,\n"  # line 4: two bad fields
        "s-3,Cy,cy@x.example,,,,lp_main\n"  # line 5
        "s-1,Ann Again,,,,,\n"  # line 6: duplicate id
        "s-4,Di,di@x.example,,,false,hd_main:a-1; lp_main:12\n"
        "s-5,Too,many,fields,a,b,c,d\n"  # line 8
    )
    loaded = load_staff(path)
    assert [s.staff_id for s in loaded.staff] == ["s-1", "s-4"]
    assert loaded.staff[1].active is False
    assert loaded.staff[1].external_ids == (("hd_main", "a-1"), ("lp_main", "12"))
    errors = "\n".join(loaded.errors)
    assert f"{path}: line 3: field `staff_id`: required" in errors
    assert f"{path}: line 4: field `email`" in errors and f"{path}: line 4: field `active`" in errors
    assert f"{path}: line 5: field `external_ids`" in errors
    assert f"{path}: line 6: field `staff_id`: 's-1' already used on line 2" in errors
    assert f"{path}: line 8:" in errors
    assert [line for line, _, _ in loaded.rejected] == [3, 4, 5, 6, 8]


def test_unusable_files_are_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="staff file not found"):
        load_staff(tmp_path / "missing.csv")
    path = tmp_path / "staff.csv"
    path.write_text("name,email\nAnn,ann@x.example\n")
    with pytest.raises(ConfigError, match=r"line 1: the header has no staff_id column"):
        load_staff(path)


def test_shipped_sample_has_the_wrinkles_and_no_errors():
    loaded = load_staff(SHIPPED)
    assert loaded.errors == []
    by_id = loaded.by_id()
    assert any(m.email and m.email != m.email.lower() for m in loaded.staff)  # an upper-case e-mail
    assert any(m.name and not m.name.isascii() for m in loaded.staff)  # an accented name
    assert any(len({i for i, _ in m.external_ids}) >= 2 for m in loaded.staff)  # accounts in two integrations
    names = [m.name for m in loaded.staff]
    assert len(names) != len(set(names))  # one name two people share
    assert by_id["s-102"].active is False


def test_cx_staff_upserts_and_keeps_people_who_left_the_file(warehouse, write_staff_csv):
    first = load_staff(write_staff_csv("s-1,Ann,ann@x.example,A,agent,,\ns-2,Bo,bo@x.example,B,agent,,\n"))
    assert write_staff(warehouse, first.staff) == {"loaded": 2, "new": 2, "left_file": 0}
    second = load_staff(write_staff_csv("s-1,Ann Lee,ann@x.example,A,lead,,\n"))
    assert write_staff(warehouse, second.staff) == {"loaded": 1, "new": 0, "left_file": 1}
    with warehouse.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                t.staff.c.staff_id, t.staff.c.name, t.staff.c.role, t.staff.c.is_active, t.staff.c.in_file
            ).order_by(t.staff.c.staff_id)
        ).all()
    assert [tuple(r) for r in rows] == [("s-1", "Ann Lee", "lead", True, True), ("s-2", "Bo", "agent", False, False)]
