"""A rule's `then`: reading it (a 422 naming the path of the bad part) and checking what it
names (a team, an active staff member, a known category) exists when the rule is written.

When the rule runs later, what it names may be gone: the engine checks again and skips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.enums import Priority, Role, Status
from doxa.core.errors import InvalidInput
from doxa.core.schemas import MAX_ID
from doxa.core.teams.models import Team
from doxa.core.triage.labels import categories
from doxa.core.users.models import User

MAX_ACTIONS = 20
MAX_TAG = 64
SETTABLE = ("team_id", "priority", "category", "assignee_id", "status")
ADD_TAG = "add_tag"


@dataclass(frozen=True)
class Action:
    """`{set: field, value}` (`field` one of SETTABLE) or `{add_tag: tag}` (`field` "add_tag")."""

    field: str
    value: Any

    def as_json(self) -> dict[str, Any]:
        if self.field == ADD_TAG:
            return {ADD_TAG: self.value}
        return {"set": self.field, "value": self.value}


def read_then(raw: object, path: str = "then") -> tuple[Action, ...]:
    """A `then` as stored, or InvalidInput naming the path of the first thing wrong."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"{path}: must be a list of 1 to {MAX_ACTIONS} actions")
    if len(raw) > MAX_ACTIONS:
        raise InvalidInput(f"{path}: at most {MAX_ACTIONS} actions")
    return tuple(read_action(item, f"{path}[{n}]") for n, item in enumerate(raw))


def read_action(raw: object, path: str) -> Action:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: must be an object {{set, value}} or {{add_tag}}")
    if ADD_TAG in raw:
        if set(raw) != {ADD_TAG}:
            raise InvalidInput(f"{path}.{sorted(set(raw) - {ADD_TAG})[0]}: unknown key")
        tag = raw[ADD_TAG]
        if not isinstance(tag, str) or not tag.strip() or len(tag.strip()) > MAX_TAG:
            raise InvalidInput(f"{path}.add_tag: a tag of 1 to {MAX_TAG} characters")
        if "\x00" in tag:
            raise InvalidInput(f"{path}.add_tag: must not contain NUL characters")
        return Action(ADD_TAG, tag.strip())
    unknown = set(raw) - {"set", "value"}
    if unknown:
        raise InvalidInput(f"{path}.{sorted(unknown)[0]}: unknown key (use set/value or add_tag)")
    name = raw.get("set")
    if name not in SETTABLE:
        raise InvalidInput(f"{path}.set: {name!r} cannot be set (one of {', '.join(SETTABLE)})")
    if "value" not in raw:
        raise InvalidInput(f"{path}.value: missing")
    return Action(name, _read_value(name, raw["value"], f"{path}.value"))


def _read_value(name: str, value: Any, path: str) -> Any:
    if name in ("team_id", "assignee_id"):
        if value is None:
            return None  # take the ticket out of its team, or unassign it
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
            raise InvalidInput(f"{path}: an id")
        return value
    choices = {"priority": Priority, "status": Status}.get(name)
    if choices is not None:
        if value not in frozenset(choices):
            raise InvalidInput(f"{path}: {value!r} is not one of {', '.join(choices)}")
        return str(value)
    if not isinstance(value, str) or not value:  # category
        raise InvalidInput(f"{path}: a category")
    return value


def check_then(db: Session, actions: tuple[Action, ...], path: str = "then") -> None:
    """What the actions name exists now: InvalidInput `then[1].value: no team 42` otherwise."""
    known: tuple[str, ...] | None = None
    for n, action in enumerate(actions):
        where = f"{path}[{n}].value"
        if action.value is None:
            continue
        if action.field == "team_id" and db.get(Team, action.value) is None:
            raise InvalidInput(f"{where}: no team {action.value}")
        if action.field == "assignee_id" and not active_staff(db, action.value):
            raise InvalidInput(f"{where}: user {action.value} is not an active agent")
        if action.field == "category":
            known = known if known is not None else categories(db)
            if action.value not in known:
                raise InvalidInput(
                    f"{where}: unknown category {action.value!r} (one of {', '.join(known)})"
                )


def active_staff(db: Session, user_id: int) -> bool:
    query = select(User.id).where(
        User.id == user_id, User.is_active.is_(True), User.role.in_((Role.AGENT, Role.ADMIN))
    )
    return db.scalar(query) is not None
