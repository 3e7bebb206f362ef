"""Dashboard sessions kept on the server, so a browser reload does not sign anyone out.

Signing in starts a session: a random token for the browser (kept in a cookie) and only the token's SHA-256 hash in
``user_session``. The token resumes the session until one of these ends it:

- **idle expiry**: no recorded activity for ``session_idle_minutes`` (``BIOBANK_SESSION_IDLE_MINUTES``);
- **absolute expiry**: ``session_absolute_hours`` (``BIOBANK_SESSION_ABSOLUTE_HOURS``, 12 by default) after sign-in,
  however active the user is;
- **revocation**: signing out (:func:`end_session`), or the account being disabled (:func:`revoke_for_user`,
  called by :func:`biobank.services.users.set_active`).

A disabled account's session never resumes, even one that escaped revocation.

Every function takes ``now`` so the expiry rules can be tested without waiting. The rows are written with Core
statements, outside the audit hook (see :mod:`biobank.models.sessions`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, insert, select, update
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.errors import PermissionDeniedError
from biobank.domain.timing import as_utc
from biobank.models import User, UserSession
from biobank.models.base import pk, table_of, utcnow

#: A session ends this long after sign-in, however active (a setting later: ``BIOBANK_SESSION_ABSOLUTE_HOURS``).
#: Activity is written at most this often: the idle expiry is this much less exact, and a click is not a write.
TOUCH_INTERVAL = timedelta(minutes=1)
#: Random bytes in a token (``secrets.token_urlsafe``: 43 URL-safe characters).
TOKEN_BYTES = 32
USER_AGENT_MAX = 200

_sessions = table_of(UserSession)


def hash_token(token: str) -> str:
    """What the table stores for ``token``: its SHA-256, in hex. A random 256-bit token needs no salt or stretching."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now(now: datetime | None) -> datetime:
    return utcnow() if now is None else as_utc(now)


def _idle(idle: timedelta | None) -> timedelta:
    return timedelta(minutes=get_settings().session_idle_minutes) if idle is None else idle


def _live(token: str, now: datetime, idle: timedelta) -> ColumnElement[bool]:
    """The session of ``token``, if neither revoked nor expired (absolutely, or by idleness) at ``now``."""
    return and_(
        _sessions.c.token_hash == hash_token(token),
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > now,
        _sessions.c.last_seen_at >= now - idle,
    )


def start_session(
    session: Session, *, user: User, now: datetime | None = None, user_agent: str | None = None
) -> str:
    """A new session for ``user`` (just authenticated); returns the token for the browser, which is stored nowhere."""
    if not user.is_active:
        raise PermissionDeniedError(f"user {user.username!r} is disabled", field="user", value=user.username)
    now = _now(now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    agent = (user_agent or "").strip()[:USER_AGENT_MAX] or None
    session.connection().execute(
        insert(_sessions).values(
            user_id=pk(user),
            token_hash=hash_token(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=get_settings().session_absolute_hours),
            user_agent=agent,
        )
    )
    return token


def resume_session(
    session: Session, token: str | None, *, now: datetime | None = None, idle: timedelta | None = None
) -> User | None:
    """The active user whose live session ``token`` opens, or None (unknown, revoked, expired, account disabled).

    Reads only: call :func:`touch` to record the activity. ``idle`` defaults to ``session_idle_minutes``.
    """
    if not token:
        return None
    user_id = (
        session.connection()
        .execute(select(_sessions.c.user_id).where(_live(token, _now(now), _idle(idle))))
        .scalar_one_or_none()
    )
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user if user is not None and user.is_active else None


def touch(
    session: Session, token: str, *, now: datetime | None = None, idle: timedelta | None = None
) -> bool:
    """Record activity on the live session of ``token`` (postponing its idle expiry), at most once per
    :data:`TOUCH_INTERVAL`; an expired or revoked session is never revived. Returns whether a row was written."""
    now = _now(now)
    result = session.connection().execute(
        update(_sessions)
        .where(_live(token, now, _idle(idle)), _sessions.c.last_seen_at <= now - TOUCH_INTERVAL)
        .values(last_seen_at=now)
    )
    return result.rowcount > 0


def end_session(session: Session, token: str, *, now: datetime | None = None) -> bool:
    """Revoke the session of ``token`` (signing out); returns whether a live one was revoked."""
    result = session.connection().execute(
        update(_sessions)
        .where(_sessions.c.token_hash == hash_token(token), _sessions.c.revoked_at.is_(None))
        .values(revoked_at=_now(now))
    )
    return result.rowcount > 0


def revoke_for_user(session: Session, *, user: User, now: datetime | None = None) -> int:
    """Revoke every session of ``user`` not yet revoked (the account was disabled); returns how many."""
    result = session.connection().execute(
        update(_sessions)
        .where(_sessions.c.user_id == pk(user), _sessions.c.revoked_at.is_(None))
        .values(revoked_at=_now(now))
    )
    return result.rowcount
