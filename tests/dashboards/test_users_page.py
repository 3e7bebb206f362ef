"""The Users page (administrators only): accounts with their role, state and sign-ins; every change asked for,
confirmed, made by the services and audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.models import AuditLog, User
from biobank.models.base import utcnow
from biobank.services import auth, users
from dashboards.shell.navigation import PAGES
from tests.support.apptest import assert_no_exception, make_app

GOOD = "granite harbour lantern"


@pytest.fixture
def accounts(engine):
    with session_scope(engine) as session:
        root = users.add_user(session, actor=None, username="root", role="admin", password=GOOD)
        users.add_user(session, actor=root, username="tina", role="technician", password="quartz-lantern-41",
                       full_name="Tina Tech")
        users.add_user(session, actor=root, username="sequencer", role="technician", service=True)


def page(db_url: str, username: str = "root"):
    at = make_app(db_url, page="users")
    at.session_state["username"] = username
    return at.run()


def account(engine, username: str) -> User:
    with Session(engine) as session:
        return auth.get_user(session, username)


def choose(at, username: str):
    return at.selectbox(key="users_account").set_value(username).run()


def confirm(at, action: str):
    """Press an action's button, check the question it asks, and confirm it."""
    at = at.button(key=f"users_{action}").click().run()
    assert_no_exception(at)
    assert at.warning, "no confirmation was asked"
    question = at.warning[0].value
    at = at.button(key=f"users_{action}_confirm").click().run()
    assert_no_exception(at)
    return at, question


def shown_accounts(at) -> dict[str, dict]:
    frame = at.dataframe[0].value
    return {row["user name"]: row for row in frame.to_dict("records")}


def test_only_administrators_have_the_page():
    [spec] = [spec for spec in PAGES if spec.module == "users"]
    assert spec.roles == {"admin"} and spec.section == "Admin"


def test_the_page_lists_every_account_with_role_state_and_sign_ins(db_url, engine, accounts):
    with session_scope(engine) as session:
        tina = auth.get_user(session, "tina")
        tina.failed_signins, tina.locked_until = 5, utcnow() + timedelta(minutes=10)
    at = page(db_url)
    assert_no_exception(at)
    shown = shown_accounts(at)
    assert set(shown) == {"root", "tina", "sequencer"}
    assert shown["tina"]["role"] == "technician" and shown["tina"]["active"]
    assert shown["tina"]["failed sign-ins"] == 5 and shown["tina"]["locked until"]
    assert shown["tina"]["name"] == "Tina Tech"
    assert shown["sequencer"]["kind"].startswith("service") and not shown["root"]["locked until"]


def test_a_role_change_is_confirmed_then_made_and_audited_with_the_reason(db_url, engine, accounts):
    at = choose(page(db_url), "tina")
    at.selectbox(key="users_role_tina").set_value("pi")
    at.text_input(key="users_role_reason_tina").set_value("leads the cohort now")
    at = at.run()
    assert account(engine, "tina").role == "technician"  # nothing yet
    at, question = confirm(at, "role")
    assert question == "Change the role of tina from technician to pi?"
    assert at.success[0].value == "tina is now pi"
    assert account(engine, "tina").role == "pi"
    with Session(engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.reason == "leads the cohort now")).one()
    assert row.changes == {"role": ["technician", "pi"]} and row.user_id == account(engine, "root").id


def test_cancel_changes_nothing(db_url, engine, accounts):
    at = choose(page(db_url), "tina")
    at = at.button(key="users_disable").click().run()
    at = at.button(key="users_disable_cancel").click().run()
    assert_no_exception(at)
    assert not at.warning
    assert account(engine, "tina").is_active


def test_the_last_administrator_cannot_demote_themselves(db_url, engine, accounts):
    at = choose(page(db_url), "root")
    at = at.selectbox(key="users_role_root").set_value("viewer").run()
    at, _ = confirm(at, "role")
    assert "last active administrator" in at.error[0].value
    assert account(engine, "root").role == "admin"


def test_disable_and_enable_an_account(db_url, engine, accounts):
    at, question = confirm(choose(page(db_url), "tina"), "disable")
    assert "signed out everywhere" in question
    assert not account(engine, "tina").is_active
    at, _ = confirm(choose(at, "tina"), "enable")
    assert at.success[0].value == "tina enabled"
    assert account(engine, "tina").is_active


def test_unlock_lifts_a_lockout(db_url, engine, accounts):
    with session_scope(engine) as session:
        tina = auth.get_user(session, "tina")
        tina.failed_signins, tina.locked_until = 5, utcnow() + timedelta(minutes=10)
    at = choose(page(db_url), "tina")
    assert "locked until" in at.caption[1].value
    at, _ = confirm(at, "unlock")
    assert at.success[0].value == "tina unlocked"
    tina = account(engine, "tina")
    assert tina.failed_signins == 0 and tina.locked_until is None
    with session_scope(engine) as session:
        assert users.authenticate(session, username="tina", password="quartz-lantern-41").username == "tina"


def test_unlock_is_offered_only_after_failed_sign_ins(db_url, accounts):
    at = choose(page(db_url), "tina")
    assert at.button(key="users_unlock").disabled


def test_reset_password_refuses_a_weak_one_then_takes_a_good_one(db_url, engine, accounts):
    at = choose(page(db_url), "tina")
    at.text_input(key="users_reset_password").set_value("password123")
    at = at.text_input(key="users_reset_password_again").set_value("password123").run()
    at, _ = confirm(at, "password")
    assert "too common" in at.error[0].value
    at.text_input(key="users_reset_password").set_value("meadow-signal-9")
    at = at.text_input(key="users_reset_password_again").set_value("meadow-signal-9").run()
    at, _ = confirm(at, "password")
    assert at.success[0].value == "password of tina reset"
    assert at.text_input(key="users_reset_password").value == ""  # not left in the form
    with session_scope(engine) as session:
        users.authenticate(session, username="tina", password="meadow-signal-9")


def test_two_different_passwords_cannot_be_submitted(db_url, accounts):
    at = choose(page(db_url), "tina")
    at.text_input(key="users_reset_password").set_value("meadow-signal-9")
    at = at.text_input(key="users_reset_password_again").set_value("meadow-signal-8").run()
    assert "differ" in at.error[0].value
    assert at.button(key="users_password").disabled


def test_a_service_account_has_no_password_to_reset(db_url, accounts):
    at = choose(page(db_url), "sequencer")
    assert_no_exception(at)
    assert any("API tokens only" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "users_password"]


def test_add_an_account_and_a_service_account(db_url, engine, accounts):
    at = page(db_url)
    at.text_input(key="users_new_username").set_value("paul")
    at.text_input(key="users_new_full_name").set_value("Paul PI")
    at.selectbox(key="users_new_role").set_value("pi")
    at.text_input(key="users_new_password").set_value("paul-lab-2026")  # contains the name: refused
    at = at.text_input(key="users_new_password_again").set_value("paul-lab-2026").run()
    at, question = confirm(at, "add")
    assert question == "Add the account paul with role pi?"
    assert "must not contain the user name" in at.error[0].value
    with Session(engine) as session:
        assert session.exec(select(User).where(User.username == "paul")).first() is None
    at.text_input(key="users_new_password").set_value("cohort-lead-2026")
    at = at.text_input(key="users_new_password_again").set_value("cohort-lead-2026").run()
    at, _ = confirm(at, "add")
    assert at.success[0].value == "paul added as pi"
    paul = account(engine, "paul")
    assert paul.role == "pi" and paul.full_name == "Paul PI" and paul.password_hash
    assert at.text_input(key="users_new_username").value == ""  # the form is emptied for the next one
    at.text_input(key="users_new_username").set_value("scanner")
    at = at.checkbox(key="users_new_service").check().run()
    assert not [t for t in at.text_input if t.key == "users_new_password"]
    at, _ = confirm(at, "add")
    scanner = account(engine, "scanner")
    assert scanner.is_service and scanner.password_hash is None


def test_a_non_administrator_cannot_open_the_page(db_url, accounts):
    """The address of the page opens something else for a technician; the services would refuse her anyway."""
    at = page(db_url, "tina")
    assert_no_exception(at)
    assert at.session_state["username"] == "tina"
    assert not [t for t in at.title if t.value == "Users"]
    assert not [s for s in at.selectbox if s.key == "users_account"]


def audit_of(engine, username: str) -> list[AuditLog]:
    with Session(engine) as session:
        row_id = str(auth.get_user(session, username).id)
        return list(session.exec(select(AuditLog).where(AuditLog.table_name == "user_account",
                                                        AuditLog.row_id == row_id).order_by(AuditLog.id)))


def test_every_role_is_offered_the_coordinator_included(db_url, accounts):
    at = choose(page(db_url), "tina")
    roles = set(at.selectbox(key="users_role_tina").options)
    assert roles == {"technician", "coordinator", "pi", "admin", "viewer"}
    assert set(at.selectbox(key="users_new_role").options) == roles


def test_each_change_on_the_page_is_audited_with_old_and_new_values(db_url, engine, accounts):
    root = account(engine, "root").id
    at = choose(page(db_url), "tina")
    at = at.text_input(key="users_access_reason_tina").set_value("on leave").run()
    at, _ = confirm(at, "disable")
    last = audit_of(engine, "tina")[-1]
    assert (last.user_id, last.changes, last.reason) == (root, {"is_active": [True, False]}, "on leave")

    at = choose(at, "tina")
    at = at.text_input(key="users_access_reason_tina").set_value("back").run()
    at, _ = confirm(at, "enable")
    last = audit_of(engine, "tina")[-1]
    assert (last.changes, last.reason) == ({"is_active": [False, True]}, "back")

    at = choose(at, "tina")
    at.text_input(key="users_reset_password").set_value("meadow-signal-9")
    at = at.text_input(key="users_reset_password_again").set_value("meadow-signal-9").run()
    at, _ = confirm(at, "password")
    last = audit_of(engine, "tina")[-1]
    assert last.changes == {"password_hash": ["<redacted>", "<redacted>"]} and last.reason == users.PASSWORD_RESET

    at.text_input(key="users_new_username").set_value("cora")
    at.selectbox(key="users_new_role").set_value("coordinator")
    at.text_input(key="users_new_password").set_value("consent-desk-2026")
    at = at.text_input(key="users_new_password_again").set_value("consent-desk-2026").run()
    at, _ = confirm(at, "add")
    assert at.success[0].value == "cora added as coordinator"
    [added] = audit_of(engine, "cora")
    assert added.user_id == root and added.changes["role"] == [None, "coordinator"]
    assert "password_hash" not in added.changes
    with Session(engine) as session:
        assert not [row for row in session.exec(select(AuditLog)).all() if "argon2" in repr(row.changes)]


def test_the_navigation_and_the_sign_in_page_know_every_role():
    from biobank.domain.vocab import Role
    from dashboards.shell.login import ROLE_PAGES
    from dashboards.shell.navigation import ALL_ROLES

    roles = {role.value for role in Role}
    assert set(ALL_ROLES) == roles and set(ROLE_PAGES) == roles
    assert {role for spec in PAGES for role in spec.roles} <= roles
