"""Users: sign-in, sign-up, administration, and the requesters intake discovers."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from doxa.core.auth import Passwords, Tokens
from doxa.core.enums import Role
from doxa.core.errors import Conflict, NotFound, PermissionDenied, Unauthenticated
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.users.models import User
from doxa.core.users.schemas import Registration, UserCreate, UserRead, UserUpdate


def require_role(actor: User, *roles: Role) -> None:
    """The service-layer half of RBAC; the REST dependencies are the other half."""
    if actor.role not in roles:
        raise PermissionDenied(f"requires role {' or '.join(roles)}")


def find_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email.strip().lower()))


def authenticate(db: Session, passwords: Passwords, *, email: str, password: str) -> User:
    if "\x00" in email or len(email) > 320:
        raise Unauthenticated("wrong email or password")
    user = find_by_email(db, email)
    if not passwords.verify(password, user.password_hash if user else None) or user is None:
        raise Unauthenticated("wrong email or password")
    if not user.is_active:
        raise Unauthenticated("this account is deactivated")
    return user


def user_for_token(db: Session, tokens: Tokens, token: str) -> User:
    """The active user a token names, loaded afresh: role changes and deactivation apply at once."""
    user = db.get(User, tokens.subject(token))
    if user is None or not user.is_active:
        raise Unauthenticated("invalid token")
    return user


def register(db: Session, passwords: Passwords, data: Registration) -> User:
    """Self sign-up as a client; an email known only from inbound mail takes over its account."""
    existing = find_by_email(db, data.email)
    if existing is not None:
        if existing.password_hash is not None or existing.role is not Role.CLIENT:
            raise Conflict("an account with this email exists")
        if not existing.is_active:
            raise Conflict("this account is deactivated")
        existing.password_hash = passwords.hash(data.password)
        existing.full_name = data.full_name or existing.full_name
        db.flush()
        return existing
    return add_user(db, passwords, UserCreate(**data.model_dump(), role=Role.CLIENT))


def create_user(db: Session, passwords: Passwords, data: UserCreate, *, actor: User) -> User:
    require_role(actor, Role.ADMIN)
    if find_by_email(db, data.email) is not None:
        raise Conflict("an account with this email exists")
    return add_user(db, passwords, data)


def add_user(db: Session, passwords: Passwords, data: UserCreate) -> User:
    """Insert a user as given; trusted callers only (the CLI, admins through create_user)."""
    user = User(
        email=data.email.lower(),
        full_name=data.full_name,
        role=data.role,
        password_hash=passwords.hash(data.password),
    )
    db.add(user)
    db.flush()
    return user


def list_users(db: Session, *, actor: User, cursor: str | None, limit: int) -> Page[UserRead]:
    require_role(actor, Role.ADMIN)
    query = select(User).order_by(User.id.desc()).limit(min(limit, MAX_PAGE_SIZE) + 1)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(User.id < after)
    rows = list(db.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[UserRead.model_validate(u) for u in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


def get_user(db: Session, user_id: int, *, actor: User) -> User:
    """One user, for staff: agents need to know who a requester is."""
    require_role(actor, Role.AGENT, Role.ADMIN)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def update_user(
    db: Session, passwords: Passwords, user_id: int, data: UserUpdate, *, actor: User
) -> User:
    require_role(actor, Role.ADMIN)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    demoted = data.role is not None and data.role is not Role.ADMIN
    if user.role is Role.ADMIN and (demoted or data.is_active is False):
        _keep_one_admin(db, user)
    for name in ("full_name", "role", "is_active"):
        if name in data.model_fields_set and getattr(data, name) is not None:
            setattr(user, name, getattr(data, name))
    if data.password is not None:
        user.password_hash = passwords.hash(data.password)
    db.flush()
    return user


def _keep_one_admin(db: Session, leaving: User) -> None:
    others = select(func.count()).where(
        User.role == Role.ADMIN, User.is_active.is_(True), User.id != leaving.id
    )
    if not db.scalar(others):
        raise Conflict("the last active admin cannot be demoted or deactivated")


def ensure_admin(db: Session, passwords: Passwords, *, email: str, password: str) -> User | None:
    """Create the first admin at start-up, unless an admin exists already."""
    if db.scalar(select(User.id).where(User.role == Role.ADMIN).limit(1)) is not None:
        return None
    user = find_by_email(db, email)
    if user is None:
        user = User(email=email.strip().lower(), role=Role.ADMIN)
        db.add(user)
    user.role, user.is_active = Role.ADMIN, True
    user.password_hash = passwords.hash(password)
    db.flush()
    return user


def requester_for(db: Session, *, email: str, name: str | None) -> User:
    """The user behind an inbound address: an unknown sender becomes a client without a password."""
    user = find_by_email(db, email)
    if user is not None:
        return user
    try:
        with db.begin_nested():  # another delivery may create the same sender concurrently
            user = User(email=email.strip().lower(), full_name=name or None, role=Role.CLIENT)
            db.add(user)
    except IntegrityError:
        user = find_by_email(db, email)
        if user is None:
            raise
    return user
