"""The database backend is named in one place: doxa.core.db's `Backend` (and the search module
written for each backend). Everywhere else asks `backend(db)` what differs."""

from __future__ import annotations

import re
from pathlib import Path

DOXA = Path(__file__).resolve().parents[1] / "doxa"
NAMING = re.compile(r"is_postgresql|dialect\.name|sqlalchemy\.dialects\b")
# Where a backend is named on purpose: the Backend itself, search written per backend, and the
# migration's DDL.
OWNERS = {
    "core/db.py",
    "core/tickets/search/postgres.py",
    "core/tickets/search/sqlite.py",
    "alembic/versions/0001_initial_schema.py",
}


def test_no_module_outside_the_backend_names_the_database() -> None:
    naming = {
        f"{path.relative_to(DOXA)}:{number}: {line.strip()}"
        for path in DOXA.rglob("*.py")
        if str(path.relative_to(DOXA)) not in OWNERS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if NAMING.search(line)
    }
    assert naming == set()
