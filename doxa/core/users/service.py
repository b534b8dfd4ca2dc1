"""Users: sign-in, sign-up, administration, and the requesters intake discovers."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from doxa.core.addresses import identity_key
from doxa.core.auth import LOCAL, Passwords, Tokens
from doxa.core.db import backend, utcnow
from doxa.core.enums import Role, TokenPurpose
from doxa.core.errors import Conflict, NotFound, PermissionDenied, Unauthenticated
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.teams import assignment
from doxa.core.users import networks
from doxa.core.users.models import AccountToken, User
from doxa.core.users.schemas import Preferences, UserCreate, UserRead, UserUpdate
from doxa.core.users.throttle import Throttle, account_key, hashing_network


def require_role(actor: User, *roles: Role) -> None:
    """The service-layer half of RBAC; the REST dependencies are the other half."""
    if actor.role not in roles:
        raise PermissionDenied(f"requires role {' or '.join(roles)}")


def find_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == identity_key(email)))


def login_allowed(passwords: Passwords, throttle: Throttle, *, email: str, network: str) -> None:
    """TooManyRequests for a login that would be refused anyway; no I/O, so the edge can ask
    before it spends a thread or a query (authenticate asks again)."""
    throttle.check_login(email, network)
    passwords.check_capacity(hashing_network(network))


def authenticate(
    db: Session,
    passwords: Passwords,
    throttle: Throttle,
    *,
    email: str,
    password: str,
    network: str,
) -> User:
    """The user these credentials name; failures count against the address, the network and
    the account (all networks together: past that cap only networks that signed in to it
    lately may go on trying, any other once a minute). A success remembers the network."""
    if "\x00" in email or len(email) > 320:
        raise Unauthenticated("wrong email or password")
    login_allowed(passwords, throttle, email=email, network=network)  # before any bcrypt
    user = find_by_email(db, email)
    account = account_key(email, user.token_version if user else 0)
    if throttle.account_capped(account) and not networks.signed_in_from(db, user, network):
        throttle.capped_try(email, network)
    stored = user.password_hash if user else None
    matched = passwords.verify(password, stored, network=hashing_network(network))
    # A deactivated account answers and counts exactly as a wrong password: anything else would
    # tell a guesser that the password was right.
    if user is None or not matched or not user.is_active:
        throttle.login_failed(email, network, account=account)
        raise Unauthenticated("wrong email or password")
    networks.remember(db, user, network)
    return user


def issue_token(db: Session, tokens: Tokens, user: User) -> str:
    """An access token for the user; the account is marked as used (see ensure_admin)."""
    user.token_issued_at = utcnow()
    db.flush()
    return tokens.issue(user.id, user.token_version)


def user_for_token(db: Session, tokens: Tokens, token: str) -> User:
    """The active user a token names, loaded afresh: role changes and deactivation apply at once,
    and a password change or reset (a new token version) ends every earlier token."""
    claims = tokens.read(token)
    user = db.get(User, claims.user_id)
    if user is None or not user.is_active or user.token_version != claims.version:
        raise Unauthenticated("invalid token")
    return user


def set_password(
    db: Session, passwords: Passwords, user: User, password: str, *, network: str = LOCAL
) -> None:
    """Set a password and end the user's earlier access tokens and outstanding mailed links."""
    user.password_hash = passwords.hash(password, network=hashing_network(network))
    user.token_version += 1
    void_links(db, user.email)
    db.flush()


def void_links(db: Session, email: str, purpose: TokenPurpose | None = None) -> None:
    """Mark the address's unused mailed tokens (of one purpose, or all) as used."""
    query = update(AccountToken).where(
        AccountToken.email == email.lower(), AccountToken.used_at.is_(None)
    )
    if purpose is not None:
        query = query.where(AccountToken.purpose == purpose)
    db.execute(query.values(used_at=utcnow()))


def create_user(db: Session, passwords: Passwords, data: UserCreate, *, actor: User) -> User:
    require_role(actor, Role.ADMIN)
    if find_by_email(db, data.email) is not None:
        raise Conflict("an account with this email exists")
    return add_user(db, passwords, data)


def add_user(db: Session, passwords: Passwords, data: UserCreate) -> User:
    """Insert a user as given; trusted callers only (the CLI, admins through create_user)."""
    user = User(
        email=identity_key(data.email),
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
    if data.is_active is False and user.is_active:
        user.token_version += 1  # deactivation ends its tokens for good, reactivation or not
        assignment.deactivate(db, user)  # their open tickets go back to their teams' queues
    for name in ("full_name", "role", "is_active"):
        if name in data.model_fields_set and getattr(data, name) is not None:
            setattr(user, name, getattr(data, name))
    if data.password is not None:
        set_password(db, passwords, user, data.password)
    db.flush()
    return user


def update_me(db: Session, user: User, data: Preferences) -> User:
    """The caller's own availability (agents and admins) and mail notifications (anyone)."""
    if data.available is not None:
        require_role(user, Role.AGENT, Role.ADMIN)
        user.available = data.available
    if data.notifications is not None:
        chosen = data.notifications.model_dump(exclude_none=True)
        user.notifications = {**(user.notifications or {}), **chosen}
    db.flush()
    return user


def _keep_one_admin(db: Session, leaving: User) -> None:
    others = select(func.count()).where(
        User.role == Role.ADMIN, User.is_active.is_(True), User.id != leaving.id
    )
    if not db.scalar(others):
        raise Conflict("the last active admin cannot be demoted or deactivated")


class AdminBootstrap(StrEnum):
    CREATED = "created"
    EXISTS = "exists"  # an admin exists already: nothing to do
    TAKEN = "taken"  # the address belongs to an account someone controls: nothing created


def ensure_admin(db: Session, passwords: Passwords, *, email: str, password: str) -> AdminBootstrap:
    """Create the first admin at start-up, unless an admin exists already.

    An account with that address that has a password, or was ever issued a token, is someone's:
    it is never promoted. A passwordless account known only from inbound mail becomes the admin.
    """
    if db.scalar(select(User.id).where(User.role == Role.ADMIN).limit(1)) is not None:
        return AdminBootstrap.EXISTS
    user = find_by_email(db, email)
    if user is not None and (user.password_hash is not None or user.token_issued_at is not None):
        return AdminBootstrap.TAKEN
    if user is None:
        user = User(email=identity_key(email), role=Role.ADMIN, token_version=0)
        db.add(user)
        db.flush()
    user.role, user.is_active = Role.ADMIN, True
    set_password(db, passwords, user, password)  # also voids sign-up links someone requested
    return AdminBootstrap.CREATED


def requester_for(db: Session, *, email: str, name: str | None) -> User:
    """The user behind an inbound address: an unknown sender becomes a client without a password."""
    user = find_by_email(db, email)
    return user if user is not None else new_requester(db, email=email, name=name)


def new_requester(db: Session, *, email: str, name: str | None) -> User:
    """A client for an address the caller has just found no user for.

    One INSERT .. ON CONFLICT DO NOTHING: another delivery may create the same sender at the
    same moment, and then that user is the one.
    """
    address = identity_key(email)
    created = db.scalars(
        backend(db)
        .insert(User)
        .values(email=address, full_name=name or None, role=Role.CLIENT)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(User)
    ).one_or_none()
    return created or db.scalars(select(User).where(User.email == address)).one()
