"""`biobank users role|unlock` and the password policy from the command line: audited changes, one-line refusals
with exit code 2."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import PermissionDeniedError
from biobank.models import AuditLog
from biobank.services import auth, users
from biobank.services.users import AccountLocked, SigninGuard

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def refused(result, words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert words in result.output, result.output


@pytest.fixture
def boss(db_url, cli_login):
    assert run("users", "add", "boss", "--role", "admin", "--password", "granite-harbour-7").exit_code == 0
    cli_login("boss")
    result = run("users", "add", "tina", "--role", "technician", "--user", "boss", "--password", "quartz-lantern-41")
    assert result.exit_code == 0, result.output
    return "boss"


def role_of(engine, username: str) -> str:
    with Session(engine) as session:
        return auth.get_user(session, username).role


def test_an_admin_changes_a_role_and_the_audit_keeps_old_new_and_reason(engine, boss):
    result = run("users", "role", "tina", "pi", "--reason", "leads the cohort now", "--user", "boss")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "user tina: role technician -> pi"
    assert role_of(engine, "tina") == "pi"
    with Session(engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.reason == "leads the cohort now")).one()
        boss_id = auth.get_user(session, "boss").id
    assert row.changes == {"role": ["technician", "pi"]} and row.user_id == boss_id


def test_the_same_role_again_says_so(boss):
    result = run("users", "role", "tina", "technician", "--user", "boss")
    assert result.exit_code == 0 and "already has role technician" in result.output


def test_a_technician_cannot_change_roles(engine, boss, cli_login):
    cli_login("tina")
    refused(run("users", "role", "tina", "admin", "--user", "tina"), "manage_users")
    assert role_of(engine, "tina") == "technician"


def test_the_last_admin_keeps_the_role_and_an_unknown_role_is_refused(engine, boss):
    refused(run("users", "role", "boss", "viewer", "--user", "boss"), "last active administrator")
    refused(run("users", "role", "tina", "boss", "--user", "boss"), "Role (boss)")
    refused(run("users", "role", "nobody", "pi", "--user", "boss"), "nobody")
    assert role_of(engine, "boss") == "admin"


def test_unlock_lifts_a_lockout(engine, boss, monkeypatch):
    monkeypatch.setenv("BIOBANK_SIGNIN_DELAY_MAX_SECONDS", "0")
    get_settings.cache_clear()
    guard = SigninGuard()
    for n in range(5):
        with pytest.raises(PermissionDeniedError) as raised, session_scope(engine) as session:
            users.authenticate(session, username="tina", password=f"wrong password {n}", guard=guard)
    assert isinstance(raised.value, AccountLocked)
    result = run("users", "unlock", "tina", "--reason", "she called the lab manager", "--user", "boss")
    assert result.exit_code == 0, result.output
    assert "tina unlocked" in result.output
    with session_scope(engine) as session:
        assert users.authenticate(session, username="tina", password="quartz-lantern-41", guard=guard)
    with Session(engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.reason == "she called the lab manager")).one()
    assert row.changes["failed_signins"] == [5, 0]


def test_only_an_admin_unlocks(boss, cli_login):
    cli_login("tina")
    refused(run("users", "unlock", "boss", "--user", "tina"), "manage_users")


def test_a_weak_or_missing_password_is_refused_in_one_line(boss):
    refused(run("users", "add", "paul", "--role", "pi", "--user", "boss", "--password", "paul-lab-2026"),
            "Password must not contain the user name")
    refused(run("users", "add", "paul", "--role", "pi", "--user", "boss", "--password", "password123"),
            "too common")
    refused(run("users", "add", "paul", "--role", "pi", "--user", "boss"), "every account needs a password")
    refused(run("users", "reset-password", "tina", "--user", "boss", "--password", "          "), "is blank")
