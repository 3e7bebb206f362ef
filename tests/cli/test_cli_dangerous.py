"""`biobank db downgrade` and `biobank restore` need an administrator's token and the database's name typed to
confirm; a downgrade takes a backup first (and says where); a restore checks the token against the backup's own
accounts, since the empty database it fills has none."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from biobank.cli import app
from biobank.cli.ops import database_name
from biobank.config import get_settings
from biobank.db import backup
from biobank.db.engine import dispose_engines, make_engine, session_scope
from tests.support.cli_auth import issue_cli_token
from tests.support.dbtools import empty_database, snapshot
from tests.support.factories import donor_with_region

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return runner.invoke(app, list(args), env=env, input=input)


def revision(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


@pytest.fixture
def bank(engine, tech):
    with session_scope(engine) as session:
        donor_with_region(session, tech)
    return engine


@pytest.fixture
def backups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "backups"
    directory.mkdir()
    monkeypatch.setenv("BIOBANK_BACKUP_DIR", str(directory))
    get_settings.cache_clear()
    return directory


# ---------------------------------------------------------------------------------------------------- downgrade


def test_a_downgrade_without_an_admins_token_changes_nothing(db_url, bank, admin, backups, cli_login):
    name = database_name(db_url)
    anonymous = run("db", "downgrade", "base", "--confirm", name)
    assert anonymous.exit_code == 2
    assert anonymous.output == ("error: downgrade: needs an administrator; no user is signed in "
                                "(run 'biobank login', or set BIOBANK_TOKEN)\n")
    cli_login("tech")
    assert run("whoami").exit_code == 0  # its use is recorded now, not by the refused downgrade (once a minute)
    before, head = snapshot(bank), revision(bank)
    technician = run("db", "downgrade", "base", "--confirm", name, "--user", "tech")
    assert technician.exit_code == 2 and "needs an administrator; user 'tech' has role 'technician'" in technician.output
    stranger = run("db", "downgrade", "base", "--confirm", name, "--user", "admin")
    assert stranger.exit_code == 2 and "run 'biobank login --user admin'" in stranger.output
    assert revision(bank) == head and snapshot(bank) == before and list(backups.iterdir()) == []


def test_a_downgrade_needs_the_database_name_typed(db_url, bank, admin, backups, cli_login):
    cli_login("admin")
    assert run("whoami").exit_code == 0  # its use is recorded now, not by the refused downgrade (once a minute)
    before, head = snapshot(bank), revision(bank)
    typed_wrong = run("db", "downgrade", "base", input="production\n")
    assert typed_wrong.exit_code == 2 and "not confirmed" in typed_wrong.output
    assert f"type the database's name ({database_name(db_url)})" in typed_wrong.output
    assert run("db", "downgrade", "base", "--confirm", "production").exit_code == 2
    assert "not confirmed" in run("db", "downgrade", "-1", "--confirm", "production").output  # "-1" is a revision
    assert run("db", "downgrade", "base", input="").exit_code == 2  # nothing typed
    assert revision(bank) == head and snapshot(bank) == before and list(backups.iterdir()) == []


def test_a_confirmed_downgrade_takes_a_backup_first_and_says_where(db_url, bank, admin, backups, backend, tmp_path,
                                                                   cli_login):
    cli_login("admin")
    assert run("whoami").exit_code == 0  # its use is recorded now, not by the downgrade's check (once a minute)
    before = backup.table_checksums(bank)
    result = run("db", "downgrade", "0009", input=f"{database_name(db_url)}\n")
    assert result.exit_code == 0, result.output
    [made] = list(backups.iterdir())
    assert f"downgrade by admin: backup taken first: {made}" in result.output
    assert result.output.rstrip().endswith("database at 0009")
    assert revision(bank) == "0009"
    with empty_database(backend, tmp_path) as url:  # the backup holds the database as it was before the downgrade
        copy = make_engine(url)
        try:
            backup.restore(copy, made)
            assert backup.table_checksums(copy) == before
        finally:
            copy.dispose()


# ------------------------------------------------------------------------------------------------------ restore


@pytest.fixture
def dump(db_url, bank, admin, tmp_path) -> tuple[Path, dict[str, str], dict]:
    """A backup of a small bank, tokens issued before it was taken (the admin's and the technician's), and the
    checksums of its tables."""
    issued = {name: issue_cli_token(db_url, name) for name in ("admin", "tech")}
    file = tmp_path / "bank.backup"
    backup.backup(bank, file)
    return file, issued, backup.table_checksums(bank)


@pytest.fixture
def empty_target(backend, tmp_path, monkeypatch):
    """An empty database, made the configured one."""
    with empty_database(backend, tmp_path) as url:
        monkeypatch.setenv("BIOBANK_DATABASE_URL", url)
        get_settings.cache_clear()
        yield url
        dispose_engines()


def test_a_restore_checks_the_admins_token_against_the_backup_and_the_typed_name(dump, bank, empty_target, db_url):
    file, issued, sums = dump
    name = database_name(empty_target)
    target = make_engine(empty_target)
    try:
        anonymous = run("restore", str(file), "--confirm", name)
        assert anonymous.exit_code == 2 and "needs the token of an administrator" in anonymous.output
        technician = run("restore", str(file), "--confirm", name, env={"BIOBANK_TOKEN": issued["tech"]})
        assert technician.exit_code == 2 and "needs an administrator; user 'tech' has role 'technician'" in technician.output
        later = issue_cli_token(db_url, "admin", name="after-the-backup")  # valid in the source, not in the backup
        unknown = run("restore", str(file), "--confirm", name, env={"BIOBANK_TOKEN": later})
        assert unknown.exit_code == 2 and "restore: in the backup, unknown token" in unknown.output
        typed_wrong = run("restore", str(file), env={"BIOBANK_TOKEN": issued["admin"]}, input="biobank\n")
        assert typed_wrong.exit_code == 2 and "not confirmed" in typed_wrong.output
        assert snapshot(target) == {}
        restored = run("restore", str(file), env={"BIOBANK_TOKEN": issued["admin"]}, input=f"{name}\n")
        assert restored.exit_code == 0, restored.output
        assert "restore by admin: the database is empty" in restored.output and "nothing to back up first" in restored.output
        assert backup.table_checksums(target) == sums
    finally:
        target.dispose()


def test_a_restore_into_a_database_with_tables_is_refused_before_anything_else(dump, db_url):
    file, issued, _sums = dump
    refused = run("restore", str(file), "--confirm", database_name(db_url), env={"BIOBANK_TOKEN": issued["admin"]})
    assert refused.exit_code == 2 and refused.output.startswith("error: restore refused: database")
