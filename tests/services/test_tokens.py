"""The token service: personal tokens for a proven password, service tokens for token-only accounts (administrators
only), and a check that refuses unknown, revoked and expired tokens and disabled accounts; only hashes are stored."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select as core_select
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from biobank.models import ApiToken, AuditLog, User
from biobank.services import tokens, users

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)  # in the past: every expiry is decided by `now`
PASSWORD = "Ochre-Lantern-Meridian-47"
TOKEN_SHAPE = re.compile(r"^bbk_[A-Za-z0-9_-]{43}$")


def days(n: float) -> timedelta:
    return timedelta(days=n)


def issue(engine, user: User, name: str = "laptop", at: datetime = T0, **kwargs) -> str:
    with session_scope(engine) as session:
        return tokens.issue_personal_token(session, user=user, name=name, now=at, **kwargs).token


def who(engine, token: str, at: datetime = T0 + days(1), **kwargs) -> str:
    with session_scope(engine) as session:
        return tokens.user_for_token(session, token, now=at, **kwargs).username


def token_rows(engine) -> list[ApiToken]:
    with Session(engine) as session:
        return list(session.exec(select(ApiToken).order_by(ApiToken.id)))


def refused(engine, token: str, at: datetime, match: str) -> None:
    with pytest.raises(PermissionDeniedError, match=match), session_scope(engine) as session:
        tokens.user_for_token(session, token, now=at)


@pytest.fixture
def alice(engine, admin) -> User:
    """A technician with a password (the fixture users have none)."""
    with session_scope(engine) as session:
        return users.add_user(session, actor=session.get(User, admin.id), username="alice", role="technician",
                              password=PASSWORD)


def test_a_personal_token_is_shown_once_and_only_its_sha256_is_stored(engine, tech):
    token = issue(engine, tech)
    assert TOKEN_SHAPE.match(token)
    [row] = token_rows(engine)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(value) for value in row.model_dump().values()}
    assert (row.user_id, row.kind, row.name, row.created_at) == (tech.id, "personal", "laptop", T0)
    assert row.expires_at == T0 + days(get_settings().personal_token_days) == T0 + days(30)
    assert who(engine, token) == "tech"
    with Session(engine) as session:  # the audit log records the token's issue, never its value or its hash
        logged = [str(a.changes) for a in session.exec(select(AuditLog).where(AuditLog.table_name == "api_token"))]
    assert logged and not any(token in text or row.token_hash in text for text in logged)


def test_login_needs_the_password_and_a_wrong_one_issues_nothing(engine, alice):
    with pytest.raises(PermissionDeniedError, match="sign-in failed"), session_scope(engine) as session:
        tokens.login(session, username="alice", password="Wrong-Lantern-Meridian-47", name="laptop")
    assert token_rows(engine) == []
    with session_scope(engine) as session:
        issued = tokens.login(session, username="alice", password=PASSWORD, name="laptop")
    assert (issued.username, issued.role, issued.kind) == ("alice", "technician", "personal")
    assert who(engine, issued.token, at=datetime.now(UTC)) == "alice"


def test_a_token_expires(engine, tech):
    token = issue(engine, tech)
    assert who(engine, token, at=T0 + days(30) - timedelta(seconds=1)) == "tech"
    refused(engine, token, T0 + days(30), r"token 'laptop' of 'tech' expired on")


def test_a_revoked_token_never_works_again_and_revoking_twice_is_refused(engine, tech):
    token = issue(engine, tech)
    with session_scope(engine) as session:
        info = tokens.revoke_token(session, actor=session.get(User, tech.id), name="laptop", now=T0 + days(2))
    assert (info.state, info.revoked_at) == ("revoked", T0 + days(2))
    refused(engine, token, T0 + days(3), r"token 'laptop' of 'tech' was revoked on")
    with pytest.raises(ConflictError, match="already revoked"), session_scope(engine) as session:
        tokens.revoke_token(session, actor=session.get(User, tech.id), name="laptop", now=T0 + days(4))


def test_a_disabled_account_s_tokens_are_refused_and_work_again_once_enabled(engine, tech, admin):
    token = issue(engine, tech)
    with session_scope(engine) as session:
        users.set_active(session, actor=session.get(User, admin.id), username="tech", active=False)
    refused(engine, token, T0 + days(1), "the account is disabled")
    with session_scope(engine) as session:
        users.set_active(session, actor=session.get(User, admin.id), username="tech", active=True)
    assert who(engine, token) == "tech"


@pytest.mark.parametrize(
    ("presented", "message"),
    [
        ("bbk_" + "A" * 43, "unknown token"),
        ("", "not a biobank token"),
        ("tech", "not a biobank token"),
        ("bbk_" + "x" * 5000, "not a biobank token"),
    ],
)
def test_unknown_and_malformed_tokens_are_refused(engine, tech, presented, message):
    issue(engine, tech)
    refused(engine, presented, T0 + days(1), message)


def test_use_is_recorded_at_most_once_a_minute(engine, tech):
    token = issue(engine, tech)
    who(engine, token, at=T0 + timedelta(seconds=10))
    assert token_rows(engine)[0].last_used_at == T0 + timedelta(seconds=10)
    who(engine, token, at=T0 + timedelta(seconds=50))
    assert token_rows(engine)[0].last_used_at == T0 + timedelta(seconds=10)
    who(engine, token, at=T0 + timedelta(seconds=75))
    assert token_rows(engine)[0].last_used_at == T0 + timedelta(seconds=75)
    who(engine, token, at=T0 + timedelta(seconds=500), record_use=False)
    assert token_rows(engine)[0].last_used_at == T0 + timedelta(seconds=75)


def test_issuing_again_under_the_same_name_replaces_the_token(engine, tech):
    first = issue(engine, tech)
    second = issue(engine, tech, at=T0 + days(1))
    refused(engine, first, T0 + days(2), "unknown token")
    assert who(engine, second, at=T0 + days(2)) == "tech"
    assert len(token_rows(engine)) == 1


def test_a_shorter_life_may_be_chosen_but_never_a_longer_one(engine, tech, admin):
    with session_scope(engine) as session:
        issued = tokens.issue_personal_token(session, user=session.get(User, tech.id), name="short", days=7, now=T0)
    assert issued.expires_at == T0 + days(7)
    with pytest.raises(ValidationError, match="from 1 to 30"), session_scope(engine) as session:
        tokens.issue_personal_token(session, user=session.get(User, tech.id), name="long", days=31, now=T0)
    with pytest.raises(ValidationError, match="from 1 to 365"), session_scope(engine) as session:
        tokens.create_service_token(session, actor=session.get(User, admin.id), account="sequencer",
                                    role="technician", name="ingest", days=366, now=T0)
    with pytest.raises(ValidationError, match="Token name"), session_scope(engine) as session:
        tokens.issue_personal_token(session, user=session.get(User, tech.id), name="  ", now=T0)


def test_an_admin_creates_a_service_account_with_its_token_and_nobody_else_may(engine, admin, tech):
    with pytest.raises(PermissionDeniedError, match="needs an administrator; user 'tech' has role 'technician'"), \
            session_scope(engine) as session:
        tokens.create_service_token(session, actor=session.get(User, tech.id), account="sequencer",
                                    role="technician", name="ingest", now=T0)
    with pytest.raises(PermissionDeniedError, match="no user is signed in"), session_scope(engine) as session:
        tokens.create_service_token(session, actor=None, account="sequencer", role="technician", name="ingest")
    with session_scope(engine) as session:
        issued = tokens.create_service_token(session, actor=session.get(User, admin.id), account="sequencer",
                                             role="technician", name="ingest", days=90, now=T0)
    assert issued.new_account and (issued.kind, issued.role, issued.expires_at) == ("service", "technician", T0 + days(90))
    with Session(engine) as session:
        account = session.exec(select(User).where(User.username == "sequencer")).one()
        assert account.is_service and account.password_hash is None and account.role == "technician"
        created = session.exec(select(AuditLog).where(AuditLog.table_name == "user_account",
                                                      AuditLog.row_id == str(account.id))).first()
        assert created is not None and created.user_id == admin.id
    [row] = token_rows(engine)
    assert (row.kind, row.created_by_id, row.user_id) == ("service", admin.id, account.id)
    assert who(engine, issued.token) == "sequencer"
    with pytest.raises(PermissionDeniedError, match="sign-in failed"), session_scope(engine) as session:
        users.authenticate(session, username="sequencer", password="")  # no password: never a sign-in


def test_service_tokens_keep_to_their_rules(engine, admin, tech):
    def create(**kwargs):
        with session_scope(engine) as session:
            return tokens.create_service_token(session, actor=session.get(User, admin.id), now=T0,
                                               **({"account": "sequencer", "name": "ingest"} | kwargs))

    with pytest.raises(ValidationError, match="is needed"):
        create(role=None)
    first = create(role="technician")
    assert not create(name="nightly").new_account  # the account exists: no role needed
    with pytest.raises(ValidationError, match="differs from the role"):
        create(name="other", role="pi")
    with pytest.raises(ConflictError, match="still active"):
        create()
    with pytest.raises(ValidationError, match="person's account"):
        create(account="tech", role="technician")
    with session_scope(engine) as session:
        tokens.revoke_token(session, actor=session.get(User, admin.id), name="ingest", account="sequencer", now=T0)
    again = create()  # a revoked token's name may be used again: the old token stays dead
    refused(engine, first.token, T0 + days(1), "unknown token")
    assert who(engine, again.token) == "sequencer"
    with pytest.raises(ValidationError, match="service account"), session_scope(engine) as session:
        account = session.exec(select(User).where(User.username == "sequencer")).one()
        tokens.issue_personal_token(session, user=account, name="laptop", now=T0)


def test_owners_see_and_revoke_their_own_tokens_and_an_admin_all(engine, admin, tech, pi):
    issue(engine, tech)
    issue(engine, pi)
    with session_scope(engine) as session:
        tokens.create_service_token(session, actor=session.get(User, admin.id), account="sequencer",
                                    role="technician", name="ingest", now=T0)
    with Session(engine) as session:
        own = tokens.list_tokens(session, actor=session.get(User, tech.id), now=T0)
        every = tokens.list_tokens(session, actor=session.get(User, admin.id), now=T0 + days(31))
    assert [(i.username, i.name, i.state) for i in own] == [("tech", "laptop", "active")]
    assert [(i.username, i.name, i.kind, i.state, i.created_by) for i in every] == [
        ("pi", "laptop", "personal", "expired", None), ("sequencer", "ingest", "service", "active", "admin"),
        ("tech", "laptop", "personal", "expired", None)]
    assert not any(key in every[0].as_row() for key in ("token", "token_hash"))
    with pytest.raises(PermissionDeniedError, match="needs an administrator"), session_scope(engine) as session:
        tokens.revoke_token(session, actor=session.get(User, tech.id), name="laptop", account="pi")
    with pytest.raises(NotFoundError, match="not found"), session_scope(engine) as session:
        tokens.revoke_token(session, actor=session.get(User, tech.id), name="desktop")
    with session_scope(engine) as session:
        assert tokens.revoke_token(session, actor=session.get(User, admin.id), name="laptop", account="pi").state == "revoked"


def test_the_holder_revokes_the_token_it_presents(engine, tech):
    token = issue(engine, tech)
    with session_scope(engine) as session:
        assert tokens.revoke_presented(session, "bbk_" + "B" * 43) is None
        info = tokens.revoke_presented(session, token, now=T0 + days(1))
    assert info is not None and info.state == "revoked"
    refused(engine, token, T0 + days(2), "was revoked")
    with Session(engine) as session:
        row = session.connection().execute(core_select(ApiToken.__table__)).mappings().one()  # type: ignore[attr-defined]
        assert row["revoked_at"] == T0 + days(1)
