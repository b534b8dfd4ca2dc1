"""Alembic, driven from the package so `doxa migrate` works from any directory; and the check
`doxa serve` makes at start that the live schema is the one the models describe."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool

from doxa.core.db import make_engine
from doxa.core.models import Base

# Full-text search lives outside the ORM: SQLite's FTS5 table (and its shadow tables) and
# PostgreSQL's generated search_vector and search_pairs columns with their GIN indexes, made by
# the first migration.
_UNMANAGED_PREFIXES = ("ticket_fts", "ix_ticket_search", "search_vector", "search_pairs")
# Differences named in the one line; the rest are counted.
_NAMED = 3


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "doxa:alembic")
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree."""
    command.check(alembic_config(database_url))


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """What autogenerate compares: all but the full-text objects the models do not map, and
    tables that are not ours (the database may be shared with other software)."""
    if type_ == "table" and reflected and compare_to is None:
        return False
    return not (name is not None and name.startswith(_UNMANAGED_PREFIXES))


class SchemaMismatch(ValueError):
    """The live schema is not the one the models describe; the message says what to do."""


def ensure_schema_matches(database_url: str) -> None:
    """Raise SchemaMismatch, in one line, when the database's tables differ from the models.

    Until a first release every schema change edits the one migration, so a database made by
    an earlier edit carries the head revision and `upgrade` leaves it as it is (SPEC: Schema).
    """
    engine = make_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_object": include_object, "compare_type": True}
            )
            differences = compare_metadata(context, Base.metadata)
            revision = context.get_current_revision()
    finally:
        engine.dispose()
    if not differences:
        return
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    named = "; ".join(_describe(difference) for difference in differences[:_NAMED])
    if len(differences) > _NAMED:
        named += f" (and {len(differences) - _NAMED} more)"
    if revision != head:
        remedy = "run `doxa migrate`"
    else:
        remedy = (
            "it was made by an earlier edit of the migration: drop and recreate the database "
            "(its data is lost), then run `doxa migrate`"
        )
    raise SchemaMismatch(
        f"the database schema differs from this version's models: {named}; {remedy}"
    )


def _describe(difference: Any) -> str:
    """One difference as autogenerate reports it, from the database's side."""
    if isinstance(difference, list):  # changes to one column: type, nullable, default...
        _, _, table, column, *_ = difference[0]
        changed = ", ".join(change[0].removeprefix("modify_") for change in difference)
        return f"column {table}.{column} differs ({changed})"
    operation, *rest = difference
    action, _, kind = operation.partition("_")
    where = "is missing" if action == "add" else "is not in the models"
    match kind:
        case "table":
            return f"table {rest[0].name} {where}"
        case "column":
            return f"column {rest[1]}.{rest[2].name} {where}"
        case "index" | "constraint" | "fk":
            item = rest[0]
            label = {"index": "index", "constraint": "constraint", "fk": "foreign key"}[kind]
            return f"{label} {item.name or ''} on {item.table.name} {where}".replace("  ", " ")
    return " ".join(operation.split("_"))
