"""``biobank db roles`` outside PostgreSQL and with bad names (the tamper suite runs it on PostgreSQL)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from biobank.cli import app
from biobank.config import get_settings
from biobank.db.engine import make_engine
from biobank.db.roles import migration_url, privileges_for, setup_roles
from biobank.domain.errors import ValidationError
from biobank.models import metadata


@pytest.mark.parametrize(("owner", "app_role", "message"), [
    ("biobank_owner", "biobank_owner", "different roles"),
    ("postgres", "biobank", "owner role 'postgres'"),
    ("biobank_owner", "Robert'); DROP TABLE", "app role"),
    ("pg_write_all_data", "biobank", "owner role"),
])
def test_role_names_are_checked_before_anything_runs(owner, app_role, message):
    with pytest.raises(ValidationError, match=message):
        setup_roles(make_engine("sqlite://"), owner=owner, app=app_role)


def test_sqlite_has_no_roles_and_the_command_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOBANK_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.delenv("BIOBANK_OWNER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "roles", "--owner", "biobank_owner", "--app", "biobank"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: database roles need PostgreSQL: SQLite has no logins (whoever can write the file owns it)")


def test_migrations_use_the_owners_url_when_it_is_set(monkeypatch):
    monkeypatch.setenv("BIOBANK_DATABASE_URL", "postgresql+psycopg://biobank@db/biobank")
    monkeypatch.delenv("BIOBANK_OWNER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    assert migration_url() == "postgresql+psycopg://biobank@db/biobank"
    monkeypatch.setenv("BIOBANK_OWNER_DATABASE_URL", "postgresql+psycopg://biobank_owner@db/biobank")
    get_settings.cache_clear()
    assert migration_url() == "postgresql+psycopg://biobank_owner@db/biobank"
    get_settings.cache_clear()


def test_history_is_append_only_and_only_freed_positions_and_expired_idempotency_keys_are_deleted():
    tables = set(metadata.tables)
    append_only = {t for t in tables if privileges_for(t) == ("SELECT", "INSERT")}
    deleted_from = {t for t in tables if "DELETE" in privileges_for(t)}
    assert append_only == {"audit_log", "custody_event", "consent_withdrawal", "export_record", "export_donor"}
    assert deleted_from == {"specimen_location", "api_idempotency_key"}
    assert all("SELECT" in privileges_for(t) for t in tables)
