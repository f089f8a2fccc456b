"""QA layer fixtures: a staff file writer."""

from __future__ import annotations

from pathlib import Path

import pytest

HEADER = "staff_id,name,email,team,role,active,external_ids\n"


@pytest.fixture
def write_staff_csv(tmp_path):
    def write(rows: str, name: str = "staff.csv") -> Path:
        path = tmp_path / name
        path.write_text(HEADER + rows, encoding="utf-8")
        return path

    return write
