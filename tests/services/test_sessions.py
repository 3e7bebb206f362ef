"""Server-side dashboard sessions: a token resumes the sign-in until idle expiry, absolute expiry, sign-out or the
account being disabled; the table holds the token's hash, never the token."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import PermissionDeniedError
from biobank.models import AuditLog, User, UserSession
from biobank.services import sessions, users

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
IDLE = timedelta(minutes=get_settings().session_idle_minutes)
ABSOLUTE = timedelta(hours=get_settings().session_absolute_hours)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def start(engine, user: User, at: datetime = T0, **kwargs) -> str:
    with session_scope(engine) as session:
        return sessions.start_session(session, user=user, now=at, **kwargs)


def resume(engine, token: str | None, at: datetime, **kwargs) -> str | None:
    """The username the token resumes at ``at``, or None."""
    with Session(engine) as session:
        user = sessions.resume_session(session, token, now=at, **kwargs)
        return user.username if user is not None else None


def touch(engine, token: str, at: datetime) -> bool:
    with session_scope(engine) as session:
        return sessions.touch(session, token, now=at)


def rows(engine) -> list[UserSession]:
    with Session(engine) as session:
        return list(session.exec(select(UserSession).order_by(UserSession.id)))


def test_a_started_session_resumes_with_its_token_and_only_the_tokens_hash_is_stored(engine, tech):
    token = start(engine, tech, user_agent="Mozilla/5.0 (X11; Linux x86_64) " + "x" * 300)
    assert len(token) >= 43  # 32 random bytes, URL-safe
    assert resume(engine, token, T0 + minutes(1)) == "tech"
    [row] = rows(engine)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(value) for value in row.model_dump().values()}
    assert (row.user_id, row.created_at, row.last_seen_at, row.revoked_at) == (tech.id, T0, T0, None)
    assert row.expires_at == T0 + ABSOLUTE == T0 + timedelta(hours=12)  # the default of session_absolute_hours
    assert (
        row.user_agent is not None and row.user_agent.startswith("Mozilla/5.0") and len(row.user_agent) == 200
    )


def test_every_sign_in_gets_its_own_token(engine, tech):
    first, second = start(engine, tech), start(engine, tech)
    assert first != second
    assert len({row.token_hash for row in rows(engine)}) == 2


def test_an_unknown_or_missing_token_resumes_nothing(engine, tech):
    start(engine, tech)
    assert resume(engine, "not-a-token", T0) is None
    assert resume(engine, "", T0) is None
    assert resume(engine, None, T0) is None


def test_a_session_idle_longer_than_the_setting_expires(engine, tech):
    token = start(engine, tech)
    assert resume(engine, token, T0 + IDLE) == "tech"
    assert resume(engine, token, T0 + IDLE + minutes(1)) is None


def test_the_idle_expiry_follows_the_setting(engine, tech, monkeypatch):
    token = start(engine, tech)
    monkeypatch.setenv("BIOBANK_SESSION_IDLE_MINUTES", "5")
    get_settings.cache_clear()
    assert resume(engine, token, T0 + minutes(4)) == "tech"
    assert resume(engine, token, T0 + minutes(6)) is None
    assert resume(engine, token, T0 + minutes(6), idle=minutes(10)) == "tech"


def test_activity_postpones_the_idle_expiry_and_is_written_at_most_once_a_minute(engine, tech):
    token = start(engine, tech)
    assert not touch(engine, token, T0 + sessions.TOUCH_INTERVAL / 2)  # too soon after the last write
    assert touch(engine, token, T0 + minutes(20))
    assert not touch(engine, token, T0 + minutes(20.5))
    [row] = rows(engine)
    assert row.last_seen_at == T0 + minutes(20)
    assert resume(engine, token, T0 + minutes(20) + IDLE) == "tech"
    assert resume(engine, token, T0 + minutes(21) + IDLE) is None


def test_an_expired_session_is_never_revived_by_activity(engine, tech):
    token = start(engine, tech)
    late = T0 + IDLE + minutes(1)
    assert not touch(engine, token, late)
    assert resume(engine, token, late) is None
    [row] = rows(engine)
    assert row.last_seen_at == T0


def test_a_session_ends_at_its_absolute_expiry_however_active(engine, tech):
    token = start(engine, tech)
    at = T0
    while at + IDLE / 2 < T0 + ABSOLUTE:
        at += IDLE / 2
        assert resume(engine, token, at) == "tech", at
        assert touch(engine, token, at)
    assert resume(engine, token, T0 + ABSOLUTE - minutes(1)) == "tech"
    assert resume(engine, token, T0 + ABSOLUTE) is None
    assert not touch(engine, token, T0 + ABSOLUTE)


def test_signing_out_revokes_that_session_only(engine, tech):
    kept, ended = start(engine, tech), start(engine, tech)
    with session_scope(engine) as session:
        assert sessions.end_session(session, ended, now=T0 + minutes(2))
    with session_scope(engine) as session:
        assert not sessions.end_session(session, ended, now=T0 + minutes(3))  # already revoked: nothing to do
    assert resume(engine, ended, T0 + minutes(4)) is None
    assert not touch(engine, ended, T0 + minutes(4))
    assert resume(engine, kept, T0 + minutes(4)) == "tech"
    assert [row.revoked_at for row in rows(engine)] == [None, T0 + minutes(2)]


def test_disabling_a_user_revokes_all_their_sessions(engine, admin, tech):
    tech_tokens = [start(engine, tech), start(engine, tech)]
    admin_token = start(engine, admin)
    with session_scope(engine) as session:
        users.set_active(session, actor=admin, username="tech", active=False)
    assert [resume(engine, token, T0 + minutes(1)) for token in tech_tokens] == [None, None]
    assert resume(engine, admin_token, T0 + minutes(1)) == "admin"
    revoked = {row.user_id: row.revoked_at is not None for row in rows(engine)}
    assert revoked == {tech.id: True, admin.id: False}
    with session_scope(engine) as session:  # enabling the account again does not bring the sessions back
        users.set_active(session, actor=admin, username="tech", active=True)
    assert [resume(engine, token, T0 + minutes(2)) for token in tech_tokens] == [None, None]


def test_a_disabled_account_never_resumes_even_with_a_live_session(engine, tech):
    token = start(engine, tech)
    with session_scope(engine) as session:  # disabled behind the service's back: no revocation ran
        session.get(User, tech.id).is_active = False  # type: ignore[union-attr]
    assert resume(engine, token, T0 + minutes(1)) is None


def test_a_disabled_account_cannot_start_a_session(engine, admin, tech):
    with session_scope(engine) as session:
        users.set_active(session, actor=admin, username="tech", active=False)
    with pytest.raises(PermissionDeniedError, match="disabled"), session_scope(engine) as session:
        sessions.start_session(session, user=session.get(User, tech.id), now=T0)  # type: ignore[arg-type]
    assert rows(engine) == []


def test_session_rows_stay_out_of_the_audit_log(engine, tech):
    with Session(engine) as session:
        before = session.exec(select(func.count()).select_from(AuditLog)).one()
    token = start(engine, tech)
    touch(engine, token, T0 + minutes(5))
    with session_scope(engine) as session:
        sessions.end_session(session, token, now=T0 + minutes(6))
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(AuditLog)).one() == before
        assert session.exec(select(func.count()).where(AuditLog.table_name == "user_session")).one() == 0


def test_the_database_refuses_a_duplicate_or_malformed_token_hash(engine, tech):
    start(engine, tech)
    [row] = rows(engine)
    for token_hash in (row.token_hash, "too-short"):
        with pytest.raises(IntegrityError), Session(engine) as session:
            session.add(
                UserSession(
                    user_id=tech.id,
                    token_hash=token_hash,
                    created_at=T0,
                    last_seen_at=T0,
                    expires_at=T0 + timedelta(hours=1),
                )
            )
            session.commit()


def test_a_password_reset_by_an_admin_signs_the_account_out_and_a_change_of_ones_own_does_not(engine, admin, tech):
    reset_token = start(engine, tech)
    with session_scope(engine) as session:
        users.set_password(session, actor=admin, username="tech", password="a-new-long-phrase-31")
    assert resume(engine, reset_token, T0 + minutes(1)) is None
    own_token = start(engine, tech, at=T0 + minutes(2))
    with session_scope(engine) as session:
        users.set_password(session, actor=session.get(User, tech.id), username="tech", password="mine-again-long-47")
    assert resume(engine, own_token, T0 + minutes(3)) == "tech"
