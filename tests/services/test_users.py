"""Accounts: argon2 hashes, the password policy, roles (changed through one audited service), disabling; roles are
enforced in the services."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, PermissionDeniedError, ValidationError
from biobank.models import AuditLog, User
from biobank.services import auth, passwords, users
from tests.support.dbtools import assert_refused

GOOD = "granite harbour lantern"


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
        users.add_user(session, actor=admin, username="Bob Smith", role="technician", password=GOOD)
    with pytest.raises(ValidationError, match=r"^Role \(boss\)"), session_scope(engine) as session:
        users.add_user(session, actor=admin, username="bob", role="boss", password=GOOD)
    with pytest.raises(ConflictError), session_scope(engine) as session:
        users.add_user(session, actor=admin, username="viewer", role="viewer", password=GOOD)
    with pytest.raises(PermissionDeniedError, match="manage_users"), session_scope(engine) as session:
        users.add_user(session, actor=viewer, username="eve", role="admin", password=GOOD)
    with pytest.raises(ValidationError, match="cannot disable your own account"), session_scope(engine) as session:
        users.set_active(session, actor=admin, username="admin", active=False)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("technician", {"enter", "enrol", "correct", "withdraw", "ship"}),
        ("coordinator", {"enrol", "withdraw"}),
        ("pi", {"approve", "plan", "withdraw", "export", "read_export_log"}),
        ("viewer", set()),
    ],
)
def test_the_role_matrix(role, allowed):
    user = User(username="u", role=role)
    assert {a.value for a in auth.Action if auth.can(user, a)} == allowed


# ---------------------------------------------------------------------------------------- the password policy


@pytest.mark.parametrize(
    ("password", "username", "refusal"),
    [
        ("short", "bob", "must be at least 10 characters"),
        ("short     ", "bob", r"at least 10 characters \(spaces at either end do not count\)"),
        ("   short  ", "bob", r"at least 10 characters \(spaces at either end do not count\)"),
        ("          ", "bob", "is blank"),
        ("", "bob", "is blank"),
        ("x" * 257 + "yzuvw", "bob", "at most 256 characters"),
        ("bob-granite-harbour", "bob", "must not contain the user name"),
        ("Granite-BOB-harbour", "bob", "must not contain the user name"),
        ("b0b-granite-harbour", "bob", "must not contain the user name"),  # a look-alike digit
        ("pipipipipi", "pi", "must not contain the user name"),
        ("aaaaaaaaaa", "bob", "needs at least 5 different characters"),
        ("pipipipipi", "pat", "needs at least 5 different characters"),
        ("abcdeabcdeabcde", "pat", "must not repeat a pattern"),
        ("harbourharbour", "pat", "must not repeat a pattern"),
        ("ghijklmnopq", "pat", "must not be a run of consecutive characters"),
        ("9876543210", "pat", "must not be a run of consecutive characters"),
        ("password123", "pat", "is too common"),
        ("iloveyou2026!", "pat", "is too common"),  # a listed password with digits and symbols added
        ("P@ssw0rd-2026", "pat", "is too common"),  # look-alike characters
        ("Biobank-2026", "pat", "is too common"),  # the system's own name
    ],
)
def test_the_policy_refuses_each_kind_of_weak_password(password, username, refusal):
    with pytest.raises(ValidationError, match=refusal) as raised:
        passwords.check_password(password, username=username)
    assert str(raised.value).startswith("Password ")


@pytest.mark.parametrize(
    "password",
    ["granite harbour lantern", "correct horse battery", "Tr0ub4dor&3-sail", "  quartz-lantern-41  ", "a long password"],
)
def test_the_policy_accepts_a_long_uncommon_password(password):
    assert passwords.password_problems(password, username="bob") == []


def test_the_shipped_list_holds_thousands_of_common_passwords():
    common = passwords.common_passwords()
    assert len(common) > 19_000
    assert {"123456", "password", "qwerty", "iloveyou", "1q2w3e4r5t"} <= common
    assert all(entry == entry.lower() and entry.strip() == entry for entry in common)


def test_every_refused_rule_is_named_at_once():
    problems = passwords.password_problems("pipi", username="pi")
    assert len(problems) == 3  # too short, contains the name, too little variety


def test_the_policy_applies_to_a_new_account_and_to_every_password_change(engine, admin):
    assert_refused(engine, ValidationError, "must not contain the user name", lambda session: users.add_user(
        session, actor=admin, username="tina", role="technician", password="tina-password-1"))
    assert_refused(engine, ValidationError, "is blank: every account needs a password", lambda session: users.add_user(
        session, actor=admin, username="tina", role="technician"))
    with session_scope(engine) as session:
        users.add_user(session, actor=admin, username="tina", role="technician", password=GOOD)
    for weak in ("aaaaaaaaaa", "          ", "qwertyuiop", "Tina2026-Tina"):
        assert_refused(engine, ValidationError, "^Password ", lambda session, weak=weak: users.set_password(
            session, actor=admin, username="tina", password=weak))
    with session_scope(engine) as session:  # her own change goes through the same policy
        tina = auth.get_user(session, "tina")
        with pytest.raises(ValidationError, match="too common"):
            users.set_password(session, actor=tina, username="tina", password="password123")


def test_the_first_account_cannot_be_a_service_account(engine):
    assert_refused(engine, ValidationError, "first account must be a person's", lambda session: users.add_user(
        session, actor=None, username="pipeline", role="admin", service=True))


def test_a_service_account_has_no_password_and_cannot_sign_in_with_one(engine, admin):
    assert_refused(engine, ValidationError, "must not be given", lambda session: users.add_user(
        session, actor=admin, username="sequencer", role="technician", password=GOOD, service=True))
    with session_scope(engine) as session:
        made = users.add_user(session, actor=admin, username="sequencer", role="technician", service=True)
        assert made.is_service and made.password_hash is None
    assert_refused(engine, ValidationError, "service account", lambda session: users.set_password(
        session, actor=admin, username="sequencer", password=GOOD))
    for attempt in ("", GOOD):
        with pytest.raises(PermissionDeniedError, match=f"^{users.FAILED}$"), session_scope(engine) as session:
            users.authenticate(session, username="sequencer", password=attempt)


# --------------------------------------------------------------------------------------------- role changes


def _accounts(engine, admin):
    with session_scope(engine) as session:
        users.add_user(session, actor=admin, username="tina", role="technician", password=GOOD)


def test_an_admin_changes_a_role_and_the_audit_keeps_old_new_and_reason(engine, admin):
    _accounts(engine, admin)
    with session_scope(engine) as session:
        changed = users.set_role(session, actor=admin, username="tina", role="pi", reason="now leads the cohort")
        assert changed.role == "pi"
    with Session(engine) as session:
        tina = auth.get_user(session, "tina")
        row = session.exec(select(AuditLog).where(AuditLog.table_name == "user_account", AuditLog.row_id == str(tina.id))
                           .order_by(AuditLog.id.desc())).first()
    assert tina.role == "pi"
    assert row is not None and row.action == "update" and row.user_id == admin.id
    assert row.changes == {"role": ["technician", "pi"]}
    assert row.reason == "now leads the cohort"


def test_only_an_admin_may_change_a_role_and_only_to_a_known_one(engine, admin, viewer, tech):
    _accounts(engine, admin)
    for actor in (viewer, tech):
        assert_refused(engine, PermissionDeniedError, "manage_users", lambda session, actor=actor: users.set_role(
            session, actor=actor, username="tina", role="admin"))
    assert_refused(engine, ValidationError, r"^Role \(boss\)", lambda session: users.set_role(
        session, actor=admin, username="tina", role="boss"))


def test_the_same_role_again_changes_nothing(engine, admin):
    _accounts(engine, admin)
    with session_scope(engine) as session:
        before = len(session.exec(select(AuditLog)).all())
        users.set_role(session, actor=admin, username="tina", role="technician")
        assert len(session.exec(select(AuditLog)).all()) == before


def test_the_last_active_admin_cannot_be_demoted_or_disabled(engine, admin):
    assert_refused(engine, ValidationError, "last active administrator", lambda session: users.set_role(
        session, actor=admin, username="admin", role="viewer"))
    with session_scope(engine) as session:  # a disabled admin and a token-only admin do not count
        users.add_user(session, actor=admin, username="ann", role="admin", password=GOOD)
        users.set_active(session, actor=admin, username="ann", active=False)
        users.add_user(session, actor=admin, username="pipeline", role="admin", service=True)
    assert_refused(engine, ValidationError, "last active administrator", lambda session: users.set_role(
        session, actor=admin, username="admin", role="technician"))
    with session_scope(engine) as session:  # with another active admin, either may step down
        users.set_active(session, actor=admin, username="ann", active=True)
        users.set_role(session, actor=admin, username="admin", role="technician", reason="handed over to ann")
    with Session(engine) as session:
        ann = auth.get_user(session, "ann")
    assert_refused(engine, ValidationError, "last active administrator", lambda session: users.set_role(
        session, actor=ann, username="ann", role="pi"))
    with session_scope(engine) as session:
        users.set_role(session, actor=ann, username="admin", role="admin")
    with session_scope(engine) as session:  # with ann left, another admin may be disabled
        users.set_active(session, actor=ann, username="admin", active=False)
    with Session(engine) as session:
        pipeline = auth.get_user(session, "pipeline")
    assert_refused(engine, ValidationError, "last active administrator", lambda session: users.set_active(
        session, actor=pipeline, username="ann", active=False))


# ------------------------------------------------------------------------------------- every change is audited


def _audit_of(engine, username: str) -> list[AuditLog]:
    """The audit rows of an account's ``user_account`` row, oldest first."""
    with Session(engine) as session:
        row_id = str(auth.get_user(session, username).id)
        return list(session.exec(select(AuditLog).where(AuditLog.table_name == "user_account",
                                                        AuditLog.row_id == row_id).order_by(AuditLog.id)))


def test_each_change_to_an_account_is_audited_with_the_old_and_the_new_value(engine, admin):
    with session_scope(engine) as session:
        users.add_user(session, actor=admin, username="cora", role="coordinator", password=GOOD, full_name="Cora")
    [added] = _audit_of(engine, "cora")
    assert added.action == "insert" and added.user_id == admin.id
    assert added.changes["role"] == [None, "coordinator"] and added.changes["is_active"] == [None, True]
    assert added.changes["username"] == [None, "cora"] and "password_hash" not in added.changes

    steps = [
        (lambda s: users.set_active(s, actor=admin, username="cora", active=False, reason="left the programme"),
         {"is_active": [True, False]}, "left the programme"),
        (lambda s: users.set_active(s, actor=admin, username="cora", active=True), {"is_active": [False, True]}, None),
        (lambda s: users.set_role(s, actor=admin, username="cora", role="technician", reason="bench work"),
         {"role": ["coordinator", "technician"]}, "bench work"),
        (lambda s: users.set_password(s, actor=admin, username="cora", password="meadow-signal-9"),
         {"password_hash": ["<redacted>", "<redacted>"]}, users.PASSWORD_RESET),
    ]
    for step, changes, reason in steps:
        with session_scope(engine) as session:
            step(session)
        last = _audit_of(engine, "cora")[-1]
        assert (last.action, last.user_id, last.changes, last.reason) == ("update", admin.id, changes, reason)


def test_a_password_change_says_who_changed_it_and_never_holds_the_hash(engine, admin):
    _accounts(engine, admin)
    with session_scope(engine) as session:
        users.set_password(session, actor=admin, username="tina", password="meadow-signal-9", reason="forgotten")
    with session_scope(engine) as session:
        users.set_password(session, actor=auth.get_user(session, "tina"), username="tina", password="quartz-lantern-41")
    rows = _audit_of(engine, "tina")
    assert [row.reason for row in rows[-2:]] == [f"{users.PASSWORD_RESET}: forgotten", users.PASSWORD_CHANGED]
    assert all(row.changes == {"password_hash": ["<redacted>", "<redacted>"]} for row in rows[-2:])
    with Session(engine) as session:
        stored = auth.get_user(session, "tina").password_hash
        every = session.exec(select(AuditLog)).all()
    assert stored and not [row for row in every if "argon2" in repr(row.changes)]


def test_an_unlock_is_audited_with_the_count_it_cleared(engine, admin):
    _accounts(engine, admin)
    with session_scope(engine) as session:
        tina = auth.get_user(session, "tina")
        tina.failed_signins = 3
    with session_scope(engine) as session:
        users.unlock_user(session, actor=admin, username="tina")
    last = _audit_of(engine, "tina")[-1]
    assert last.changes == {"failed_signins": [3, 0]} and last.user_id == admin.id
    assert last.reason == "unlocked by an administrator"


def test_every_role_may_be_given_the_coordinator_included(engine, admin):
    _accounts(engine, admin)
    for role in ("coordinator", "viewer", "pi", "admin", "technician"):
        with session_scope(engine) as session:
            assert users.set_role(session, actor=admin, username="tina", role=role).role == role
