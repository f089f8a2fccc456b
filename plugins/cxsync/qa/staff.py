"""The staff file (`include/staff.csv`): the QA team's people, loaded into `cx_staff`.

One row per person: `staff_id` (required, unique), `name`, `email`, `team`, `role`, `active` (true/false,
default true), `external_ids` (`;`-separated `<integration id>:<provider agent id>` pairs). A bad row gets
an error naming the file, the line and the field; the good rows load all the same.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from cxsync import settings
from cxsync.config import ConfigError
from cxsync.warehouse import schema as t
from cxsync.warehouse.bulk import BulkUpsert
from cxsync.warehouse.store import Warehouse, to_json

STAFF_COLUMNS = ["staff_id", "name", "email", "team", "role", "is_active", "external_ids", "in_file", "updated_at"]
COLUMNS = ("staff_id", "name", "email", "team", "role", "active", "external_ids")
REQUIRED_COLUMNS = ("staff_id",)
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}
_INTEGRATION_RE = re.compile(settings.INTEGRATION_ID_PATTERN)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True)
class StaffMember:
    staff_id: str
    name: str | None = None
    email: str | None = None
    team: str | None = None
    role: str | None = None
    active: bool = True
    external_ids: tuple[tuple[str, str], ...] = ()  # (integration id, provider agent id)
    line: int = 0


@dataclass
class StaffFile:
    path: Path
    staff: list[StaffMember] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Bad rows as the file has them, with their errors: (line, row text, reason), for cx_rejected_records.
    rejected: list[tuple[int, str, str]] = field(default_factory=list)

    def by_id(self) -> dict[str, StaffMember]:
        return {s.staff_id: s for s in self.staff}


def staff_path() -> Path:
    """`CXSYNC_STAFF_FILE`, else include/staff.csv in the project root."""
    env = os.environ.get(settings.STAFF_FILE_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / settings.DEFAULT_STAFF_FILE


def load_staff(path: str | os.PathLike | None = None) -> StaffFile:
    """Read and validate the staff file. Raises ConfigError only when the file as a whole is unusable."""
    file_path = Path(path) if path is not None else staff_path()
    try:
        text = file_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{file_path}: staff file not found; create it or set {settings.STAFF_FILE_ENV}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file_path}: cannot read the staff file: {exc}") from None
    return parse_staff(text, file_path)


def parse_staff(text: str, file_path: Path) -> StaffFile:
    result = StaffFile(path=file_path)
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise ConfigError(
                    f"{file_path}: line {line}: the header has no {', '.join(missing)} column; "
                    f"expected columns: {', '.join(COLUMNS)}"
                )
            unknown = [c for c in header if c not in COLUMNS]
            if unknown:
                result.errors.append(
                    f"{file_path}: line {line}: unknown column(s) {', '.join(map(repr, unknown))} ignored; "
                    f"allowed: {', '.join(COLUMNS)}"
                )
            continue
        where = f"{file_path}: line {line}"
        if len(row) > len(header):
            problem = f"{where}: {len(row)} fields for {len(header)} columns (a comma inside a value?)"
            result.errors.append(problem)
            result.rejected.append((line, ",".join(row), problem))
            continue
        values = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        problems: list[str] = []
        member = _parse_row(values, line, problems)
        if member is not None and member.staff_id in seen:
            problems.append(f"field `staff_id`: {member.staff_id!r} already used on line {seen[member.staff_id]}")
            member = None
        if problems:
            result.errors.extend(f"{where}: {p}" for p in problems)
            result.rejected.append((line, ",".join(row), "; ".join(f"{where}: {p}" for p in problems)))
            continue
        assert member is not None
        seen[member.staff_id] = line
        result.staff.append(member)
    return result


def _parse_row(values: dict[str, str], line: int, problems: list[str]) -> StaffMember | None:
    staff_id = values.get("staff_id", "")
    if not staff_id:
        problems.append("field `staff_id`: required")
    elif len(staff_id) > t.KEY_LENGTH:
        problems.append(f"field `staff_id`: longer than {t.KEY_LENGTH} characters")
    email = values.get("email") or None
    if email is not None and not _EMAIL_RE.match(email):
        problems.append(f"field `email`: {email!r} is not an e-mail address")
    active_text = values.get("active", "").lower()
    active = True
    if active_text in _FALSE:
        active = False
    elif active_text and active_text not in _TRUE:
        problems.append(f"field `active`: {values['active']!r} must be true or false")
    external: list[tuple[str, str]] = []
    for part in (values.get("external_ids") or "").split(";"):
        part = part.strip()
        if not part:
            continue
        integration_id, sep, agent_id = part.partition(":")
        integration_id, agent_id = integration_id.strip(), agent_id.strip()
        if not sep or not agent_id or not _INTEGRATION_RE.match(integration_id):
            problems.append(
                f"field `external_ids`: {part!r} must be <integration id>:<provider agent id> (e.g. lp_main:3677470410)"
            )
        else:
            external.append((integration_id, agent_id))
    if problems:
        return None
    return StaffMember(
        staff_id=staff_id,
        name=values.get("name") or None,
        email=email,
        team=values.get("team") or None,
        role=values.get("role") or None,
        active=active,
        external_ids=tuple(external),
        line=line,
    )


def write_staff(warehouse: Warehouse, staff: list[StaffMember], *, now: datetime | None = None) -> dict[str, int]:
    """Upsert the file's people into `cx_staff`. People no longer in the file stay (their history is scored
    under their id) with `in_file` false and `is_active` false."""
    now = now or datetime.now(UTC)
    table = t.staff
    rows = [
        (
            s.staff_id,
            s.name,
            s.email,
            s.team,
            s.role,
            s.active,
            to_json([f"{i}:{a}" for i, a in s.external_ids]),
            True,
            now,
        )
        for s in sorted(staff, key=lambda s: s.staff_id)
    ]
    ids = [r[0] for r in rows]
    upsert = BulkUpsert(warehouse.engine.dialect, table, STAFF_COLUMNS, ["staff_id"])
    with warehouse.engine.begin() as conn:
        existing = set(conn.execute(sa.select(table.c.staff_id)).scalars())
        for start in range(0, len(rows), settings.UPSERT_BATCH_ROWS * 4):
            upsert.execute(conn, rows[start : start + settings.UPSERT_BATCH_ROWS * 4])
        gone = sorted(existing - set(ids))
        for start in range(0, len(gone), settings.UPSERT_BATCH_ROWS):
            conn.execute(
                table.update()
                .where(table.c.staff_id.in_(gone[start : start + settings.UPSERT_BATCH_ROWS]), table.c.in_file)
                .values(in_file=False, is_active=False, updated_at=now)
            )
    return {"loaded": len(rows), "new": len(set(ids) - existing), "left_file": len(gone)}
