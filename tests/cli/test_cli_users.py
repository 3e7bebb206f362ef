"""`biobank users add|list|disable|enable|reset-password`: argon2 hashes, roles checked, one-line errors."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from biobank.domain.errors import PermissionDeniedError
from biobank.models import User
from biobank.services.users import authenticate

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def boss(db_url, cli_login):
    result = run("users", "add", "boss", "--role", "admin", "--password", "granite-harbour-7")
    assert result.exit_code == 0, result.output
    cli_login("boss")
    return "boss"


def test_the_first_account_is_an_admin_created_without_an_actor_and_its_password_is_hashed(db_url, engine, boss):
    with Session(engine) as session:
        user = session.exec(select(User).where(User.username == "boss")).one()
    assert user.role == "admin" and user.password_hash.startswith("$argon2")
    assert "granite-harbour-7" not in user.password_hash


def test_the_first_account_cannot_be_anything_but_an_admin(db_url):
    result = run("users", "add", "tina", "--role", "technician", "--password", "quartz-lantern-41")
    assert result.exit_code == 2
    assert "first account must be an admin" in result.output
    assert "Traceback" not in result.output


def test_an_admin_adds_a_technician_who_can_then_sign_in(db_url, engine, boss):
    result = run("users", "add", "tina", "--role", "technician", "--user", "boss", env={"BIOBANK_NEW_PASSWORD": "quartz-lantern-41"})
    assert result.exit_code == 0, result.output
    with session_scope(engine) as session:
        assert authenticate(session, username="tina", password="quartz-lantern-41").role == "technician"


def test_a_technician_cannot_add_accounts(db_url, boss, cli_login):
    run("users", "add", "tina", "--role", "technician", "--user", "boss", "--password", "quartz-lantern-41")
    cli_login("tina")
    result = run("users", "add", "eve", "--role", "admin", "--user", "tina", "--password", "eve-password-11")
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "manage_users" in result.output


def test_a_short_password_is_refused(db_url, boss):
    result = run("users", "add", "tina", "--role", "technician", "--user", "boss", "--password", "short")
    assert result.exit_code == 2 and "at least 10 characters" in result.output


def test_list_shows_roles_and_state_as_json_without_hashes(db_url, boss):
    run("users", "add", "vic", "--role", "viewer", "--user", "boss", "--password", "meadow-signal-9")
    result = run("users", "list", "--json")
    assert result.exit_code == 0
    rows = {row["username"]: row for row in json.loads(result.output)}
    assert rows["vic"]["role"] == "viewer" and rows["vic"]["active"] and rows["vic"]["has_password"]
    assert "argon2" not in result.output


def test_a_disabled_account_cannot_sign_in_and_enable_restores_it(db_url, engine, boss):
    run("users", "add", "tina", "--role", "technician", "--user", "boss", "--password", "quartz-lantern-41")
    assert run("users", "disable", "tina", "--user", "boss").exit_code == 0
    with pytest.raises(PermissionDeniedError), session_scope(engine) as session:
        authenticate(session, username="tina", password="quartz-lantern-41")
    assert run("users", "enable", "tina", "--user", "boss").exit_code == 0
    with session_scope(engine) as session:
        authenticate(session, username="tina", password="quartz-lantern-41")


def test_an_admin_cannot_disable_their_own_account(db_url, boss):
    result = run("users", "disable", "boss", "--user", "boss")
    assert result.exit_code == 2 and "your own account" in result.output


def test_reset_password_replaces_the_old_one(db_url, engine, boss):
    run("users", "add", "tina", "--role", "technician", "--user", "boss", "--password", "quartz-lantern-41")
    result = run("users", "reset-password", "tina", "--user", "boss", "--password", "quartz-lantern-42")
    assert result.exit_code == 0, result.output
    with session_scope(engine) as session:
        authenticate(session, username="tina", password="quartz-lantern-42")
    with pytest.raises(PermissionDeniedError), session_scope(engine) as session:
        authenticate(session, username="tina", password="quartz-lantern-41")


def test_reset_password_without_a_password_off_a_terminal_exits_2(db_url, boss):
    result = run("users", "reset-password", "boss", "--user", "boss")
    assert result.exit_code == 2 and "BIOBANK_NEW_PASSWORD" in result.output
