"""Sign-in: passwords checked with argon2, idle expiry, sign-out, disabled accounts, demo accounts in demo mode."""

from __future__ import annotations

import time

import pytest

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.services import auth, users
from tests.support.apptest import assert_no_exception, make_app


@pytest.fixture
def accounts(engine):
    with session_scope(engine) as session:
        admin = users.add_user(session, actor=None, username="root", role="admin", password="root-password-1")
        users.add_user(session, actor=admin, username="tina", role="technician", password="tina-password-1")
        users.add_user(session, actor=admin, username="paul", role="pi", password="paul-password-1")


def sign_in(at, username: str, password: str):
    at.text_input(key="login_username").set_value(username)
    at.text_input(key="login_password").set_value(password)
    return at.button(key="login_submit").click().run()


def test_only_the_sign_in_page_shows_before_signing_in(db_url, accounts):
    at = make_app(db_url).run()
    assert_no_exception(at)
    assert at.title[0].value.endswith("Rapid-autopsy biobank")
    assert at.text_input(key="login_password") is not None
    assert "username" not in at.session_state


def test_right_password_signs_in_and_shows_the_role_pages(db_url, accounts):
    at = sign_in(make_app(db_url).run(), "tina", "tina-password-1")
    assert_no_exception(at)
    assert at.session_state["username"] == "tina"
    assert any("Technician" in c.value for c in at.sidebar.caption)


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(db_url, accounts):
    at = sign_in(make_app(db_url).run(), "tina", "not-her-password")
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert "sign-in failed" in at.error[0].value


def test_an_idle_session_is_signed_out_with_a_message(db_url, accounts):
    at = make_app(db_url)
    at.session_state["username"] = "paul"
    at.session_state["last_activity"] = time.time() - (get_settings().session_idle_minutes + 1) * 60
    at.run()
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert any("without activity" in w.value for w in at.warning)


def test_sign_out_returns_to_the_sign_in_page(db_url, accounts):
    at = make_app(db_url)
    at.session_state["username"] = "paul"
    at.run()
    at.sidebar.button(key="sign_out").click().run()
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert at.text_input(key="login_password") is not None


def test_a_disabled_account_is_signed_out_at_the_next_click(db_url, engine, accounts):
    at = make_app(db_url)
    at.session_state["username"] = "tina"
    at.run()
    with session_scope(engine) as session:
        root = auth.get_user(session, "root")
        users.set_active(session, actor=root, username="tina", active=False)
    at.run()
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert any("disabled" in w.value for w in at.warning)


def test_demo_mode_lists_the_demo_accounts_and_normal_mode_does_not(db_url, accounts, monkeypatch):
    at = make_app(db_url).run()
    assert not at.dataframe
    monkeypatch.setenv("BIOBANK_DEMO_MODE", "true")
    at = make_app(db_url).run()
    assert_no_exception(at)
    shown = at.dataframe[0].value
    assert set(shown["user name"]) == {"admin", "tech", "pi", "viewer"}


def test_a_fresh_database_says_how_to_create_the_first_account(db_url):
    at = make_app(db_url).run()
    assert any("biobank users add" in i.value for i in at.info)
