"""Accounts: argon2 hashes, roles, disabling; roles are enforced in the services."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, PermissionDeniedError, ValidationError
from biobank.models import User
from biobank.services import auth, users


def test_passwords_are_stored_as_argon2_hashes_and_verified(engine, admin):
    with session_scope(engine) as session:
        users.add_user(session, actor=admin, username="bob", role="technician", password="a long password")
    with Session(engine) as session:
        stored = session.exec(select(User.password_hash).where(User.username == "bob")).one()
    assert stored.startswith("$argon2") and "a long password" not in stored
    with session_scope(engine) as session:
        assert users.authenticate(session, username="bob", password="a long password").username == "bob"
    with pytest.raises(PermissionDeniedError, match="sign-in failed"), session_scope(engine) as session:
        users.authenticate(session, username="bob", password="wrong password!")


def test_a_disabled_account_cannot_sign_in_or_write(engine, admin):
    with session_scope(engine) as session:
        users.add_user(session, actor=admin, username="bob", role="technician", password="a long password")
        users.set_active(session, actor=admin, username="bob", active=False)
    with pytest.raises(PermissionDeniedError), session_scope(engine) as session:
        users.authenticate(session, username="bob", password="a long password")
    with Session(engine) as session:
        bob = auth.get_user(session, "bob")
        with pytest.raises(PermissionDeniedError, match="disabled"):
            auth.require(bob, auth.Action.enter)


def test_account_rules(engine, admin, viewer):
    with pytest.raises(ValidationError, match="at least 10 characters"), session_scope(engine) as session:
        users.add_user(session, actor=admin, username="bob", role="technician", password="short")
    with pytest.raises(ValidationError, match=r"^User name \(Bob Smith\): lower-case letters"), session_scope(engine) as session:
        users.add_user(session, actor=admin, username="Bob Smith", role="technician")
    with pytest.raises(ValidationError, match=r"^Role \(boss\)"), session_scope(engine) as session:
        users.add_user(session, actor=admin, username="bob", role="boss")
    with pytest.raises(ConflictError), session_scope(engine) as session:
        users.add_user(session, actor=admin, username="viewer", role="viewer")
    with pytest.raises(PermissionDeniedError, match="manage_users"), session_scope(engine) as session:
        users.add_user(session, actor=viewer, username="eve", role="admin")
    with pytest.raises(ValidationError, match="cannot disable your own account"), session_scope(engine) as session:
        users.set_active(session, actor=admin, username="admin", active=False)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("technician", {"enter", "correct", "withdraw", "ship"}),
        ("pi", {"approve", "plan", "withdraw", "export"}),
        ("viewer", set()),
    ],
)
def test_the_role_matrix(role, allowed):
    user = User(username="u", role=role)
    assert {a.value for a in auth.Action if auth.can(user, a)} == allowed
