"""`biobank users add|disable|enable|reset-password|role|unlock` and the password policy from the command line: each
change audited with the old and the new value (never a password or its hash), one-line refusals with exit code 2."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import PermissionDeniedError
from biobank.models import AuditLog, User
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


def audit_of(engine, username: str) -> list[AuditLog]:
    with Session(engine) as session:
        row_id = str(auth.get_user(session, username).id)
        return list(session.exec(select(AuditLog).where(AuditLog.table_name == "user_account",
                                                        AuditLog.row_id == row_id).order_by(AuditLog.id)))


def test_every_account_command_is_audited_with_old_and_new_values(engine, boss):
    with Session(engine) as session:
        boss_id = auth.get_user(session, "boss").id
    result = run("users", "add", "cora", "--role", "coordinator", "--user", "boss", "--password", "meadow-signal-9")
    assert result.exit_code == 0 and result.output.strip() == "user cora added with role coordinator"
    [added] = audit_of(engine, "cora")
    assert added.changes["role"] == [None, "coordinator"] and "password_hash" not in added.changes
    commands = [
        (("disable", "cora", "--reason", "on leave"), "user cora disabled", {"is_active": [True, False]}, "on leave"),
        (("enable", "cora"), "user cora enabled", {"is_active": [False, True]}, None),
        (("role", "cora", "technician", "--reason", "bench"), "user cora: role coordinator -> technician",
         {"role": ["coordinator", "technician"]}, "bench"),
        (("reset-password", "cora", "--password", "quartz-lantern-42"), "password of cora reset",
         {"password_hash": ["<redacted>", "<redacted>"]}, users.PASSWORD_RESET),
    ]
    for args, said, changes, reason in commands:
        result = run("users", *args, "--user", "boss")
        assert result.exit_code == 0 and result.output.strip() == said, result.output
        last = audit_of(engine, "cora")[-1]
        assert (last.user_id, last.changes, last.reason) == (boss_id, changes, reason), args
    with Session(engine) as session:
        assert not [row for row in session.exec(select(AuditLog)).all() if "argon2" in repr(row.changes)]


def test_disable_or_enable_twice_says_so_and_writes_nothing(engine, boss):
    assert run("users", "disable", "tina", "--user", "boss").exit_code == 0
    before = len(audit_of(engine, "tina"))
    result = run("users", "disable", "tina", "--user", "boss")
    assert result.exit_code == 0 and result.output.strip() == "user tina already disabled"
    assert len(audit_of(engine, "tina")) == before


def test_a_service_account_is_added_without_a_password_and_listed_as_one(engine, boss):
    result = run("users", "add", "sequencer", "--role", "technician", "--service", "--user", "boss")
    assert result.exit_code == 0 and result.output.strip() == "service account sequencer added with role technician"
    with Session(engine) as session:
        assert session.exec(select(User.password_hash).where(User.username == "sequencer")).one() is None
    rows = {row["username"]: row for row in json.loads(run("users", "list", "--json").output)}
    assert rows["sequencer"]["service"] and not rows["sequencer"]["has_password"]
    assert not rows["tina"]["service"] and rows["tina"]["locked_until"] is None and rows["tina"]["failed_signins"] == 0


def test_the_commands_that_take_a_role_name_every_role():
    for args in (("users", "add"), ("users", "role"), ("tokens", "create")):
        shown = " ".join(run(*args, "--help").output.split())
        assert "coordinator" in shown, args
