"""User accounts: argon2 password hashes, roles, disabling; no default password ever exists."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from biobank.domain.errors import ConflictError, PermissionDeniedError, invalid
from biobank.domain.vocab import Role
from biobank.models import User
from biobank.models.audit import act_as, add_as
from biobank.models.base import utcnow
from biobank.services.auth import Action, get_user, require
from biobank.services.sessions import revoke_for_user

_hasher = PasswordHasher()
USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10


def _check_password(password: str | None) -> None:
    if password is not None and len(password) < MIN_PASSWORD:
        raise invalid("password", "***", f"must be at least {MIN_PASSWORD} characters")


def add_user(
    session: Session,
    *,
    actor: User | None,
    username: str,
    role: str,
    password: str | None = None,
    full_name: str | None = None,
) -> User:
    """Create an account. The very first account may be created without an actor (bootstrapping an admin)."""
    first = session.exec(select(User.id).limit(1)).first() is None
    if not first:
        require(actor, Action.manage_users)
    elif role != Role.admin:
        raise invalid("role", role, "the first account must be an admin")
    if not USERNAME.match(username or ""):
        raise invalid("username", username, "lower-case letters, digits, '.', '_' or '-', starting with a letter")
    if role not in Role.__members__:
        raise invalid("role", role, f"one of {', '.join(Role)}")
    _check_password(password)
    if session.exec(select(User.id).where(User.username == username)).first() is not None:
        raise ConflictError(f"username={username!r}: a user with this name already exists", field="username")
    user = User(
        username=username,
        role=role,
        full_name=full_name,
        password_hash=_hasher.hash(password) if password else None,
    )
    return add_as(session, actor, user)


def set_password(session: Session, *, actor: User | None, username: str, password: str) -> User:
    user = get_user(session, username)
    if actor is None or actor.id != user.id:
        require(actor, Action.manage_users)
    _check_password(password)
    act_as(session, actor)
    user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def set_active(session: Session, *, actor: User | None, username: str, active: bool) -> User:
    require(actor, Action.manage_users)
    user = get_user(session, username)
    if actor is not None and actor.id == user.id and not active:
        raise invalid("username", username, "you cannot disable your own account")
    act_as(session, actor)
    user.is_active = active
    session.flush()
    if not active:
        revoke_for_user(session, user=user)  # signed out everywhere at the next click or reload
    return user


def authenticate(session: Session, *, username: str, password: str) -> User:
    """The user if the password matches; one vague error otherwise (no hint which part was wrong)."""
    user = session.exec(select(User).where(User.username == username)).first()
    failure = PermissionDeniedError("sign-in failed: unknown user, wrong password or disabled account")
    if user is None or not user.is_active or not user.password_hash:
        raise failure
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise failure from None
    act_as(session, user)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.username)))
