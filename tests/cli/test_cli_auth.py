"""Who the command line acts as is proven by a token: `biobank login|logout|whoami`, `--user` only choosing among
stored sign-ins, `BIOBANK_TOKEN` service tokens (the audit names the service account), the first-admin rule and the
demo guard."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.cli.credentials import FILE_NAME, TokenFile, database_key
from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.models import ApiToken, AuditLog, Container, User
from biobank.services import tokens, users
from tests.support.dbtools import snapshot

runner = CliRunner()
PASSWORD = "Ochre-Lantern-Meridian-47"


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return runner.invoke(app, list(args), env=env, input=input)


def stored(config_dir: Path, db_url: str) -> dict[str, str]:
    return TokenFile(config_dir).tokens_for(database_key(db_url))


@pytest.fixture
def alice(engine, db_url) -> str:
    """The first account, an admin with a password, created as a person would (no token needed yet)."""
    result = run("users", "add", "alice", "--role", "admin", "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    return "alice"


def login(username: str = "alice", password: str = PASSWORD, *extra: str):
    return run("login", "--user", username, *extra, input=f"{password}\n")


# ------------------------------------------------------------------------------------------- login, whoami, logout


def test_login_prompts_for_the_password_and_stores_a_token_only_its_owner_can_read(engine, db_url, alice, cli_config_dir):
    result = login()
    assert result.exit_code == 0, result.output
    assert "signed in as alice (admin)" in result.output and PASSWORD not in result.output
    file = cli_config_dir / FILE_NAME
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli_config_dir.stat().st_mode) == 0o700
    assert PASSWORD not in file.read_text()
    token = stored(cli_config_dir, db_url)["alice"]
    assert token.startswith("bbk_")
    with Session(engine) as session:
        [row] = session.exec(select(ApiToken)).all()
    assert (row.kind, row.token_hash) == ("personal", hashlib.sha256(token.encode()).hexdigest())
    who = run("whoami")
    assert who.exit_code == 0 and who.output.startswith("alice (admin) on ") and "personal token" in who.output
    data = json.loads(run("whoami", "--json").output)
    assert (data["username"], data["role"], data["kind"], data["state"], data["source"]) == (
        "alice", "admin", "personal", "active", "stored sign-in")
    assert token not in json.dumps(data)


def test_a_wrong_password_stores_nothing_and_the_password_is_never_an_option(engine, db_url, alice, cli_config_dir):
    result = login(password="Wrong-Lantern-Meridian-47")
    assert result.exit_code == 2 and "sign-in failed" in result.output
    assert run("login", "--user", "alice", "--password", PASSWORD).exit_code == 2  # no such option
    from_environment = run("login", "--user", "alice", env={"BIOBANK_PASSWORD": PASSWORD}, input="")
    assert from_environment.exit_code != 0  # the prompt got nothing: the environment is not read
    assert stored(cli_config_dir, db_url) == {}
    with Session(engine) as session:
        assert session.exec(select(ApiToken)).all() == []


def test_a_token_file_that_cannot_be_read_or_written_is_one_line_and_no_live_token_is_left(
    engine, db_url, alice, tmp_path, cli_config_dir
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unreadable = run("login", "--user", "alice", env={"BIOBANK_CONFIG_DIR": str(blocker / "biobank")},
                     input=f"{PASSWORD}\n")
    assert unreadable.exit_code == 2 and unreadable.output.strip().splitlines()[-1].startswith("error: token file ")
    (cli_config_dir / ".tokens.lock").mkdir(parents=True)  # readable (no file yet), but nothing can be written
    unwritable = login()
    assert unwritable.exit_code == 2 and unwritable.output.strip().splitlines()[-1].startswith("error: token file ")
    with Session(engine) as session:
        [row] = session.exec(select(ApiToken)).all()
    assert row.revoked_at is not None  # issued, then held by no one: revoked at once


def test_logout_revokes_the_token_and_forgets_it(engine, db_url, alice, cli_config_dir):
    assert login().exit_code == 0
    token = stored(cli_config_dir, db_url)["alice"]
    result = run("logout")
    assert result.exit_code == 0 and "token" in result.output and "revoked" in result.output
    assert stored(cli_config_dir, db_url) == {}
    with pytest.raises(Exception, match="was revoked"), session_scope(engine) as session:
        tokens.user_for_token(session, token)
    after = run("users", "add", "bob", "--role", "viewer", "--password", "Violet-Compass-Harbour-83")
    assert after.exit_code == 2 and "no user is signed in (run 'biobank login'" in after.output
    assert run("whoami").exit_code == 2 and run("logout").exit_code == 2


def test_signing_in_again_revokes_the_token_it_replaces(engine, db_url, alice, cli_config_dir):
    assert login("alice", PASSWORD, "--name", "laptop").exit_code == 0
    first = stored(cli_config_dir, db_url)["alice"]
    assert login("alice", PASSWORD, "--name", "desktop").exit_code == 0
    with pytest.raises(Exception, match="'laptop' of 'alice' was revoked"), session_scope(engine) as session:
        tokens.user_for_token(session, first)
    assert run("whoami").output.startswith("alice (admin)")


def test_user_without_a_stored_token_is_refused_with_the_login_command(engine, db_url, tech):
    before = snapshot(engine)
    result = run("storage", "add", "UH", "--kind", "site", "--user", "tech")
    assert result.exit_code == 2
    assert result.output == "error: 'tech' is not signed in to this database: run 'biobank login --user tech'\n"
    assert snapshot(engine) == before
    result = run("storage", "add", "UH", "--kind", "site", env={"BIOBANK_USER": "tech"})  # the variable is --user
    assert result.exit_code == 2 and "biobank login --user tech" in result.output


def test_user_chooses_among_several_sign_ins(engine, db_url, tech, pi, cli_login):
    cli_login("tech", "pi")
    asked = run("storage", "add", "UH", "--kind", "site")
    assert asked.exit_code == 2 and "signed in to this database as pi, tech: choose one with --user NAME" in asked.output
    assert run("storage", "add", "UH", "--kind", "site", "--user", "tech").exit_code == 0
    with Session(engine) as session:
        container = session.exec(select(Container).where(Container.code == "UH")).one()
        audit = session.exec(select(AuditLog).where(AuditLog.table_name == "container")).one()
    assert container.created_by_id == tech.id and audit.user_id == tech.id


def test_an_expired_or_revoked_stored_sign_in_is_refused_with_the_login_command(engine, db_url, tech, cli_config_dir):
    with session_scope(engine) as session:
        old = tokens.issue_personal_token(session, user=session.get(User, tech.id), name="old",
                                          now=datetime.now(UTC) - timedelta(days=31)).token
    TokenFile(cli_config_dir).put(database_key(db_url), "tech", old)
    result = run("storage", "add", "UH", "--kind", "site", "--user", "tech")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "token 'old' of 'tech' expired on" in result.output and "run 'biobank login --user tech'" in result.output


def test_a_disabled_account_cannot_act_with_its_token(engine, db_url, tech, admin, cli_login):
    cli_login("tech")
    with session_scope(engine) as session:
        users.set_active(session, actor=session.get(User, admin.id), username="tech", active=False)
    result = run("storage", "add", "UH", "--kind", "site", "--user", "tech")
    assert result.exit_code == 2 and "the account is disabled" in result.output


def test_a_token_file_others_can_read_is_refused(engine, db_url, tech, cli_login, cli_config_dir):
    cli_login("tech")
    (cli_config_dir / FILE_NAME).chmod(0o644)
    result = run("storage", "add", "UH", "--kind", "site", "--user", "tech")
    assert result.exit_code == 2 and "may be read by others (mode 0644)" in result.output and "chmod 600" in result.output


# ---------------------------------------------------------------------------------------------- service tokens


def test_a_service_token_acts_as_the_service_account_and_the_audit_names_it(engine, db_url, admin, cli_login):
    cli_login("admin")
    created = runner.invoke(app, ["tokens", "create", "ingest", "--user-account", "sequencer", "--role", "technician",
                                  "--days", "30"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("bbk_") and created.stdout.count("\n") == 1  # the token alone on stdout, shown once
    assert "new service account sequencer (technician)" in created.stderr
    result = run("storage", "add", "UH", "--kind", "site", env={"BIOBANK_TOKEN": token})
    assert result.exit_code == 0, result.output
    with Session(engine) as session:
        sequencer = session.exec(select(User).where(User.username == "sequencer")).one()
        container = session.exec(select(Container).where(Container.code == "UH")).one()
        audit = session.exec(select(AuditLog).where(AuditLog.table_name == "container")).one()
    assert sequencer.is_service and container.created_by_id == sequencer.id and audit.user_id == sequencer.id
    who = json.loads(run("whoami", "--json", env={"BIOBANK_TOKEN": token}).output)
    assert (who["username"], who["kind"], who["source"]) == ("sequencer", "service", "BIOBANK_TOKEN")
    listed = run("tokens", "list", "--json")
    rows = {(r["account"], r["name"]): r for r in json.loads(listed.output)}
    assert rows[("sequencer", "ingest")]["state"] == "active" and rows[("sequencer", "ingest")]["last_used_at"]
    assert token not in listed.output
    refused = run("login", "--user", "sequencer", input="anything at all\n")
    assert refused.exit_code == 2 and "sign-in failed" in refused.output
    assert run("tokens", "revoke", "ingest", "--account", "sequencer").exit_code == 0
    after = run("storage", "add", "LAB", "--kind", "room", "--parent", "UH", env={"BIOBANK_TOKEN": token})
    assert after.exit_code == 2 and after.output.startswith("error: BIOBANK_TOKEN: token 'ingest' of 'sequencer' was revoked")


def test_only_an_admin_creates_service_tokens_and_a_token_is_not_another_user(engine, db_url, admin, tech, cli_login):
    tokens_by_user = cli_login("admin", "tech")
    refused = run("tokens", "create", "ingest", "--user-account", "sequencer", "--role", "technician", "--user", "tech")
    assert refused.exit_code == 2 and "needs an administrator; user 'tech' has role 'technician'" in refused.output
    mixed = run("storage", "add", "UH", "--kind", "site", "--user", "admin", env={"BIOBANK_TOKEN": tokens_by_user["tech"]})
    assert mixed.exit_code == 2 and "BIOBANK_TOKEN belongs to 'tech', not 'admin'" in mixed.output
    unknown = run("storage", "add", "UH", "--kind", "site", env={"BIOBANK_TOKEN": "bbk_" + "Z" * 43})
    assert unknown.exit_code == 2 and unknown.output.startswith("error: BIOBANK_TOKEN: unknown token")


# ---------------------------------------------------------------------------------------------- the first admin


def test_the_first_admin_needs_no_token_and_every_later_account_an_admins(engine, db_url, cli_config_dir):
    first = run("users", "add", "alice", "--role", "admin", "--password", PASSWORD)
    assert first.exit_code == 0, first.output
    second = run("users", "add", "mallory", "--role", "admin", "--password", "Violet-Compass-Harbour-83")
    assert second.exit_code == 2 and "no user is signed in (run 'biobank login', or set BIOBANK_TOKEN)" in second.output
    named = run("users", "add", "mallory", "--role", "admin", "--password", "Violet-Compass-Harbour-83", "--user", "alice")
    assert named.exit_code == 2 and "run 'biobank login --user alice'" in named.output
    assert login().exit_code == 0
    assert run("users", "add", "bob", "--role", "technician", "--password", "Violet-Compass-Harbour-83").exit_code == 0
    with Session(engine) as session:
        accounts = {u.username: u.id for u in session.exec(select(User))}
        audit = session.exec(select(AuditLog).where(AuditLog.table_name == "user_account",
                                                    AuditLog.row_id == str(accounts["bob"]))).first()
    assert sorted(accounts) == ["alice", "bob"]
    assert audit is not None and audit.user_id == accounts["alice"]  # the token's user is the audit's author


def test_a_stale_stored_sign_in_does_not_block_the_first_admin_of_a_new_database(engine, db_url, cli_config_dir):
    TokenFile(cli_config_dir).put(database_key(db_url), "ghost", "bbk_" + "G" * 43)
    result = run("users", "add", "alice", "--role", "admin", "--password", PASSWORD)
    assert result.exit_code == 0, result.output


# -------------------------------------------------------------------------------------------------- demo guard


def test_demo_refuses_outside_demo_mode_and_on_a_database_with_any_user(engine, db_url, monkeypatch, tech):
    monkeypatch.delenv("BIOBANK_DEMO_MODE", raising=False)
    get_settings.cache_clear()
    before = snapshot(engine)
    outside = run("demo", "--donors", "1")
    assert outside.exit_code == 2 and "only in demo mode (BIOBANK_DEMO_MODE=true)" in outside.output
    assert run("demo", "--if-empty").exit_code == 2
    monkeypatch.setenv("BIOBANK_DEMO_MODE", "true")
    get_settings.cache_clear()
    with_user = run("demo", "--donors", "1")
    assert with_user.exit_code == 2 and "already has user accounts" in with_user.output
    skipped = run("demo", "--if-empty")
    assert skipped.exit_code == 0 and "user accounts: demo cohort not loaded" in skipped.output
    assert snapshot(engine) == before
