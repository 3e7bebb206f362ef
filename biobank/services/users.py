"""User accounts: argon2 password hashes, roles, disabling, and a sign-in that resists guessing; no default password
ever exists.

Every account but a token-only service account (``is_service``) has a password, and every new password passes the
policy of :mod:`biobank.services.passwords`. A service account has none and never signs in with one.

Sign-in (:func:`authenticate`):

- **Throttle.** After failed sign-ins the next attempt waits before its password is checked: 0.5 s after one
  failure, doubling with each (1, 2, 4 s ...) up to ``signin_delay_max_seconds`` (8 s), counted per account
  (``user_account.failed_signins``) and per client (an identifier the caller passes, such as the browser's address;
  counted in this process's memory by :class:`SigninGuard`, which holds a bounded number of clients and forgets one
  after ``signin_lockout_minutes`` without a failure). The wait holds no database lock and blocks only the caller.
- **Lockout.** ``signin_lockout_after`` (5) failures in a row lock the account for ``signin_lockout_minutes`` (15)
  or until an administrator unlocks it (:func:`unlock_user`). A locked account refuses every password, right or
  wrong, without checking it. Once a lockout has passed the count starts again; a successful sign-in clears it.
- **Audit.** Every failure and every lockout leaves an audit row on ``user_account`` (by the account's change of
  ``failed_signins`` and ``locked_until``, with a reason starting "sign-in failed" or "sign-in refused" that names
  the client); a name that is no account leaves one with no row id and the name tried. (The audit log's action
  vocabulary is ``insert``/``update``, so these rows are ``update`` rows: their reason says what happened.)
- **No oracle.** An unknown name, a disabled, service or password-less account cost what a known account with a
  wrong password costs (one argon2 verification, against a dummy hash, and one write), fail with the same message,
  and are throttled and locked alike: a name that is no account keeps its count in :class:`SigninGuard`.

The throttle's read and a failure's writes run in short transactions of their own on the caller's engine, so a
refused sign-in stays recorded although the caller's unit of work rolls back on the error, and the wait holds no
lock. Call :func:`authenticate` first in a unit of work; a success is written in the caller's transaction.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from biobank.config import get_settings
from biobank.domain.errors import ConflictError, PermissionDeniedError, invalid
from biobank.domain.timing import as_utc, lab_time
from biobank.domain.vocab import Role
from biobank.models import AuditLog, User
from biobank.models.audit import act_as, add_as
from biobank.models.base import utcnow
from biobank.services.auth import Action, get_user, require
from biobank.services.passwords import MIN_LENGTH, check_password
from biobank.services.sessions import revoke_for_user

_hasher = PasswordHasher()
USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD = MIN_LENGTH
#: The first failure's delay; each further failure doubles it, up to ``signin_delay_max_seconds``.
DELAY_BASE_SECONDS = 0.5
#: Clients (and names that are no account) the sign-in guard remembers; the least recently failed go first.
GUARD_CAPACITY = 10_000
#: What is kept of a name or client identifier (the longest user name; an IPv6 address with its zone fits).
IDENTIFIER_MAX = 64

FAILED = "sign-in failed: unknown user, wrong password or disabled account"


class SigninFailed(PermissionDeniedError):
    """A refused sign-in; the one message never tells which part was wrong."""

    def __init__(self) -> None:
        super().__init__(FAILED)


class AccountLocked(PermissionDeniedError):
    """Too many failed sign-ins: the account is locked until :attr:`until` (or an administrator unlocks it)."""

    def __init__(self, until: datetime, *, now: datetime) -> None:
        self.until = until
        super().__init__(
            f"Too many failed sign-ins: this account is locked until {_lab_clock(until, now)}, "
            "or until an administrator unlocks it"
        )


def _lab_clock(moment: datetime, now: datetime) -> str:
    """``14:05`` in the lab's zone when ``moment`` falls on today's lab day, else ``07 Dec 2026 14:05``."""
    zone = get_settings().zone
    local = as_utc(moment).astimezone(zone)
    if local.date() == as_utc(now).astimezone(zone).date():
        return local.strftime("%H:%M")
    return lab_time(moment, zone)


# ------------------------------------------------------------------------------------------------ accounts


def add_user(
    session: Session,
    *,
    actor: User | None,
    username: str,
    role: str,
    password: str | None = None,
    full_name: str | None = None,
    service: bool = False,
) -> User:
    """Create an account. The very first account may be created without an actor (bootstrapping an admin).

    Every account needs a password that passes the policy, except a token-only service account (``service``), which
    may not have one.
    """
    first = session.exec(select(User.id).limit(1)).first() is None
    if not first:
        require(actor, Action.manage_users)
    elif role != Role.admin:
        raise invalid("role", role, "the first account must be an admin")
    elif service:
        raise invalid("username", username, "the first account must be a person's, with a password")
    if not USERNAME.match(username or ""):
        raise invalid("username", username, "lower-case letters, digits, '.', '_' or '-', starting with a letter")
    if role not in Role.__members__:
        raise invalid("role", role, f"one of {', '.join(Role)}")
    if service:
        if password is not None:
            raise invalid("password", None, "must not be given: a service account signs in with API tokens only")
    else:
        check_password(password, username=username)
    if session.exec(select(User.id).where(User.username == username)).first() is not None:
        raise ConflictError(f"username={username!r}: a user with this name already exists", field="username")
    user = User(
        username=username,
        role=role,
        full_name=full_name,
        password_hash=_hasher.hash(password) if password is not None and not service else None,
        is_service=service,
    )
    return add_as(session, actor, user)


#: The audit reason of a password change; the audit row itself shows only ``["<redacted>", "<redacted>"]``.
PASSWORD_RESET = "password reset by an administrator"
PASSWORD_CHANGED = "password changed by the account itself"


def set_password(
    session: Session, *, actor: User | None, username: str, password: str, reason: str | None = None
) -> User:
    """A new password for an account: by an admin, or by the account itself.

    Audited as a change of ``password_hash`` whose old and new values are both ``"<redacted>"`` (never the hash), with
    a reason that says who changed it (:data:`PASSWORD_RESET` or :data:`PASSWORD_CHANGED`, then ``reason`` if given).
    A reset by an admin also revokes the account's dashboard sessions.
    """
    user = get_user(session, username)
    own = actor is not None and actor.id == user.id
    if not own:
        require(actor, Action.manage_users)
    if user.is_service:
        raise invalid("username", username, "is a service account: it signs in with API tokens only, never a password")
    check_password(password, username=user.username)
    said = (reason or "").strip()
    _write_as(session, actor, f"{PASSWORD_CHANGED if own else PASSWORD_RESET}{': ' + said if said else ''}")
    user.password_hash = _hasher.hash(password)
    if not own:
        revoke_for_user(session, user=user)  # a reset ends the account's dashboard sessions: whoever knew the old
    session.flush()                          # password is signed out
    return user


def set_active(
    session: Session, *, actor: User | None, username: str, active: bool, reason: str | None = None
) -> User:
    """Enable or disable an account (admins only); audited with the old and the new ``is_active`` and the reason.

    A disabled account is signed out everywhere; no one disables their own account or the last active administrator.
    """
    require(actor, Action.manage_users)
    user = get_user(session, username)
    if actor is not None and actor.id == user.id and not active:
        raise invalid("username", username, "you cannot disable your own account")
    if not active and user.is_active:
        _keep_an_admin(session, user, "disable")
    _write_as(session, actor, reason)
    user.is_active = active
    session.flush()
    if not active:
        revoke_for_user(session, user=user)  # signed out everywhere at the next click or reload
    return user


def set_role(
    session: Session, *, actor: User | None, username: str, role: str, reason: str | None = None
) -> User:
    """Give an account another role (admins only); audited with the old and the new role and the reason.

    The last active administrator who can sign in keeps the role: someone must be able to manage the accounts.
    """
    require(actor, Action.manage_users)
    if role not in Role.__members__:
        raise invalid("role", role, f"one of {', '.join(Role)}")
    user = get_user(session, username)
    if user.role == role:
        return user
    if user.role == Role.admin:
        _keep_an_admin(session, user, "take the admin role from")
    _write_as(session, actor, reason)
    user.role = role
    session.flush()
    return user


def unlock_user(session: Session, *, actor: User | None, username: str, reason: str | None = None) -> User:
    """Lift a sign-in lockout and clear the failed sign-ins (admins only); audited."""
    require(actor, Action.manage_users)
    user = get_user(session, username)
    _write_as(session, actor, reason or "unlocked by an administrator")
    user.failed_signins = 0
    user.locked_until = None
    session.flush()
    return user


def is_locked(user: User, now: datetime | None = None) -> bool:
    """Whether ``user`` is locked out of signing in at ``now``."""
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.username)))


def _write_as(session: Session, actor: User | None, reason: str | None) -> None:
    """Make ``actor`` the author of the writes that follow, with ``reason`` (blank: none) on their audit rows."""
    act_as(session, actor, reason=reason)  # trimmed; blank is none; longer than the audit keeps is refused


def _keep_an_admin(session: Session, user: User, verb: str) -> None:
    """Refuse to leave no active administrator who can sign in (the rows are locked until the commit, so two admins
    demoting each other at once cannot both succeed)."""
    if user.role != Role.admin or not user.is_active or user.is_service:
        return
    admins = session.exec(
        select(User.id).where(User.role == Role.admin, col(User.is_active), ~col(User.is_service)).with_for_update()
    ).all()
    if not [other for other in admins if other != user.id]:
        raise invalid("username", user.username, f"is the last active administrator: cannot {verb} this account")


# ------------------------------------------------------------------------------------------------- sign-in

Clock = Callable[[], datetime]
Sleeper = Callable[[float], None]


@dataclass(frozen=True)
class _Tally:
    failures: int = 0
    last: datetime | None = None
    locked_until: datetime | None = None


class _Tallies:
    """A bounded map of failure tallies; the least recently failed is forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], _Tally] = OrderedDict()

    def get(self, key: tuple[str, str]) -> _Tally:
        return self._items.get(key) or _Tally()

    def put(self, key: tuple[str, str], tally: _Tally) -> None:
        self._items[key] = tally
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class SigninGuard:
    """The sign-in throttle's memory and its clock: failures per client, and per name that is no account (so such a
    name is throttled and locked like an account). One per process (:data:`GUARD`); tests make their own with a
    clock and a sleeper that do not wait. Keys include the database, so two databases never share a count."""

    def __init__(self, *, clock: Clock = utcnow, sleep: Sleeper = time.sleep, capacity: int = GUARD_CAPACITY) -> None:
        self.clock = clock
        self.sleep = sleep
        self.clients = _Tallies(capacity)
        self.names = _Tallies(capacity)
        self._lock = threading.Lock()

    def client_failures(self, key: tuple[str, str], now: datetime, window: timedelta) -> int:
        """Failures of a client, forgotten once ``window`` passed since its last one."""
        with self._lock:
            tally = self.clients.get(key)
        if tally.last is None or now - tally.last >= window:
            return 0
        return tally.failures

    def client_failed(self, key: tuple[str, str], now: datetime, window: timedelta) -> None:
        with self._lock:
            tally = self.clients.get(key)
            fresh = tally.last is not None and now - tally.last < window
            self.clients.put(key, _Tally(failures=(tally.failures if fresh else 0) + 1, last=now))

    def name_tally(self, key: tuple[str, str]) -> _Tally:
        with self._lock:
            return self.names.get(key)

    def name_failed(self, key: tuple[str, str], step: Callable[[_Tally], tuple[_Tally, str]]) -> tuple[_Tally, str]:
        """Count one more failure of a name that is no account: ``step`` turns its tally into the next one (and
        says why), in one move, so two failures at once both count."""
        with self._lock:
            after, reason = step(self.names.get(key))
            self.names.put(key, after)
        return after, reason


GUARD = SigninGuard()


@dataclass(frozen=True)
class _Account:
    """What the throttle reads of an account before the password is checked."""

    id: int
    password_hash: str | None  # None unless the account may sign in with a password (active, not a service)
    failed_signins: int
    locked_until: datetime | None


@dataclass(frozen=True)
class _Limits:
    lock_after: int
    lock_for: timedelta
    delay_cap: float

    @classmethod
    def from_settings(cls) -> _Limits:
        settings = get_settings()
        return cls(settings.signin_lockout_after, timedelta(minutes=settings.signin_lockout_minutes),
                   settings.signin_delay_max_seconds)


def signin_delay(failures: int, *, cap: float) -> float:
    """Seconds to wait before checking a password after ``failures`` failed sign-ins: 0, 0.5, 1, 2, 4 ... up to cap."""
    if failures <= 0:
        return 0.0
    return min(DELAY_BASE_SECONDS * 2 ** min(failures - 1, 30), cap)


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    client: str | None = None,
    guard: SigninGuard | None = None,
) -> User:
    """The user if the password matches; else :class:`SigninFailed` (one vague message: no hint which part was
    wrong), or :class:`AccountLocked` once too many sign-ins failed. ``client`` identifies the caller for the
    per-client throttle (the dashboard passes the browser's address); see the module's docstring for the rules."""
    guard = guard or GUARD
    limits = _Limits.from_settings()
    engine = _engine_of(session)
    database = engine.url.render_as_string(hide_password=True)
    typed = (username or "").strip().lower()
    name = _printable(typed)
    who = _printable(client or "") or None
    account = _peek(engine, typed if USERNAME.match(typed) else "")  # what no account can be named is looked up as ""
    now = guard.clock()
    if account is not None:
        failures, locked_until = account.failed_signins, account.locked_until
    else:
        tally = guard.name_tally((database, name))
        failures, locked_until = tally.failures, tally.locked_until
    if locked_until is not None and locked_until <= now:
        failures = 0  # the lockout has passed: a fresh count
    if locked_until is None or locked_until <= now:
        by_client = guard.client_failures((database, who), now, limits.lock_for) if who else 0
        delay = signin_delay(max(failures, by_client), cap=limits.delay_cap)
        if delay > 0:
            guard.sleep(delay)
            now = guard.clock()
        stored = account.password_hash if account is not None else None
        if _verify(stored, password) and account is not None:
            user = _signed_in(session, account, password, now)
            if user is not None:
                return user
    locked = _record_failure(engine, guard, limits, database=database, account=account, name=name, client=who,
                             now=now)
    if locked is not None:
        raise AccountLocked(locked, now=now)
    raise SigninFailed()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of a random secret, made like every stored one: checking a password against it costs the same."""
    return _hasher.hash(secrets.token_urlsafe(24))


def _verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with nothing stored, the same work against the dummy hash."""
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _printable(text: str) -> str:
    """``text`` as it may be kept in memory and in the audit log: each control or format character shown as U+FFFD
    (so what was typed is never mistaken for another name), at most :data:`IDENTIFIER_MAX` characters."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text.strip())[:IDENTIFIER_MAX]


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


def _peek(engine: Engine, name: str) -> _Account | None:
    """The account named ``name``, read in a short transaction of its own (on SQLite a deferred one: no write lock)."""
    with Session(engine.execution_options(sqlite_begin="DEFERRED")) as peek:
        user = peek.exec(select(User).where(User.username == name)).first()
        if user is None or user.id is None:
            return None
        usable = user.is_active and not user.is_service and bool(user.password_hash)
        return _Account(user.id, user.password_hash if usable else None, user.failed_signins, user.locked_until)


def _signed_in(session: Session, account: _Account, password: str, now: datetime) -> User | None:
    """Record the sign-in in the caller's transaction; None if the account changed since it was read."""
    user = session.exec(select(User).where(User.id == account.id)).first()
    if (user is None or not user.is_active or user.is_service or user.password_hash != account.password_hash
            or is_locked(user, now)):
        return None
    act_as(session, user)
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_signins = 0
    user.locked_until = None
    user.last_login_at = now
    session.flush()
    return user


def _record_failure(
    engine: Engine,
    guard: SigninGuard,
    limits: _Limits,
    *,
    database: str,
    account: _Account | None,
    name: str,
    client: str | None,
    now: datetime,
) -> datetime | None:
    """Count a failed sign-in and audit it, committed at once in a transaction of its own; returns the end of the
    account's lockout when it is (now) locked."""
    via = f" from {client}" if client else ""
    if client:
        guard.client_failed((database, client), now, limits.lock_for)
    with Session(engine) as own:
        if account is None:
            after, reason = guard.name_failed((database, name), lambda before: _next_tally(before, now, limits, via))
            # No row changed, so no hook or trigger writes this one: it is written as an event of its own.
            act_as(own, None)
            own.add(AuditLog(user_id=None, table_name="user_account", row_id="", action="update",
                             changes={"username": [None, name]}, reason=f"{reason}; no account has this name"))
            own.flush()
        else:
            user = own.exec(select(User).where(User.id == account.id).with_for_update()).one()
            state = _Tally(user.failed_signins, None, user.locked_until)
            after, reason = _next_tally(state, now, limits, via)
            act_as(own, None, reason=reason)
            user.failed_signins = after.failures
            user.locked_until = after.locked_until
            own.flush()
        own.commit()
    return after.locked_until if after.locked_until is not None and after.locked_until > now else None


def _next_tally(before: _Tally, now: datetime, limits: _Limits, via: str) -> tuple[_Tally, str]:
    """The count after one more failure, and the audit reason that says what happened."""
    until = before.locked_until
    if until is not None and until > now:
        return (replace(before, failures=before.failures + 1, last=now),
                f"sign-in refused{via}: locked until {until.isoformat()}")
    failures = (0 if until is not None else before.failures) + 1
    if failures >= limits.lock_after:
        until = now + limits.lock_for
        return (_Tally(failures, now, until),
                f"sign-in failed{via}; locked until {until.isoformat()} after {failures} failed sign-ins")
    return _Tally(failures, now, None), f"sign-in failed{via}"
