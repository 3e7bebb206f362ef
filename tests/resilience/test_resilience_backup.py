"""Backups taken while writers run are one consistent point in time; a restore into an empty database gives the same
rows (counts and per-table checksums); restores into a database holding data are refused. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from biobank.cli import app
from biobank.cli.ops import database_name
from biobank.config import get_settings
from biobank.db import backup
from biobank.db.engine import dispose_engines, make_engine, session_scope
from biobank.domain.errors import ConflictError, ValidationError
from biobank.services import donors, specimens
from tests.support.cli_auth import issue_cli_token
from tests.support.dbtools import empty_database
from tests.support.factories import collect, make_case
from tests.support.workload import CUSTODY_PER_SPECIMEN, SPECIMENS_PER_REGION

ROOT = Path(__file__).resolve().parents[2]
WRITERS = (("L01", "BREAST"), ("L02", "LIVER"))


class Writer:
    """A child process committing one region per transaction; remembers how many commits it has announced."""

    def __init__(self, db_url: str, lesion: str, site: str) -> None:
        self.lesion = lesion
        self.committed = 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.workload", "collect", "--url", db_url, "--lesion", lesion, "--site", site,
             "--count", "2000"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("committed "):
                self.committed = int(line.split()[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        self.process.wait(10)
        self._reader.join(5)


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _assert_whole_transactions(engine) -> dict[str, int]:
    """Every specimen has its audit row and custody events; every region has all its specimens."""
    orphans = _count(engine, """
        SELECT count(*) FROM specimen s WHERE NOT EXISTS (
            SELECT 1 FROM audit_log a WHERE a.table_name = 'specimen' AND a.row_id = CAST(s.id AS VARCHAR(64))
              AND a.action = 'insert')""")
    assert orphans == 0, "specimens without their audit row"
    incomplete = _count(engine, f"""
        SELECT count(*) FROM specimen s
        WHERE (SELECT count(*) FROM custody_event c WHERE c.specimen_id = s.id) <> {CUSTODY_PER_SPECIMEN}""")
    assert incomplete == 0, "specimens without their custody events"
    partial_sites = _count(engine, f"""
        SELECT count(*) FROM sampling_site t
        WHERE (SELECT count(*) FROM specimen s WHERE s.sampling_site_id = t.id) <> {SPECIMENS_PER_REGION}""")
    assert partial_sites == 0, "regions with only some of their specimens"
    return {
        lesion: _count(engine, "SELECT count(*) FROM sampling_site t JOIN lesion l ON l.id = t.lesion_id "
                               "WHERE l.code = :code", code=lesion)
        for lesion, _ in WRITERS
    }


def test_a_backup_taken_while_writers_insert_is_one_point_in_time(engine, db_url, tech, backend, tmp_path):
    with session_scope(engine) as session:
        make_case(session, tech)
    writers = [Writer(db_url, lesion, site) for lesion, site in WRITERS]
    try:
        deadline = time.monotonic() + 60
        while min(w.committed for w in writers) < 3:
            assert all(w.process.poll() is None for w in writers), [w.process.stderr.read() for w in writers]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "writers did not get going"
            time.sleep(0.05)
        before = {w.lesion: w.committed for w in writers}
        result = backup.backup(engine, tmp_path / "live.backup")
        time.sleep(0.3)  # let the readers catch up: a later count only loosens the upper bound, never breaks it
        after = {w.lesion: w.committed for w in writers}
        assert all(w.process.poll() is None for w in writers), "writers were still running after the backup"
    finally:
        for writer in writers:
            writer.stop()
    assert result.bytes > 0

    with empty_database(backend, tmp_path) as target_url:
        target = make_engine(target_url)
        try:
            backup.restore(target, result.path)
            regions = _assert_whole_transactions(target)
        finally:
            target.dispose()
    for lesion, _ in WRITERS:
        # The copy holds every region committed before the backup began and none announced after it ended
        # (+1: a commit can land just before its announcement is read).
        assert before[lesion] <= regions[lesion] <= after[lesion] + 1, (lesion, before, regions, after)


def _populate(engine, tech, admin) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech)
    with session_scope(engine) as session:
        specimens.aliquot(session, actor=tech, parent_code=codes[0], portions=[10, 5])
        specimens.correct_specimen(session, actor=tech, code=codes[1], reason="reweighed", expected_version=1, quantity=45,
                                   quantity_remaining=45)
        donors.withdraw_consent(session, actor=admin, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=datetime(2026, 5, 1, tzinfo=UTC), reason="family asked")


def test_restore_into_an_empty_database_gives_identical_counts_and_checksums(engine, tech, admin, backend, tmp_path):
    _populate(engine, tech, admin)
    source = backup.table_checksums(engine)
    made = backup.backup(engine, tmp_path / "quiet.backup")
    with empty_database(backend, tmp_path) as target_url:
        target = make_engine(target_url)
        try:
            backup.restore(target, made.path)
            restored = backup.table_checksums(target)
        finally:
            target.dispose()
    assert {t: c.rows for t, c in restored.items()} == {t: c.rows for t, c in source.items()}
    assert {t: c.rows for t, c in source.items()} == backup.table_counts(engine)
    assert restored == source
    assert source["specimen"].rows == 5 and source["audit_log"].rows > 0


def test_restore_refuses_a_database_that_holds_tables_and_changes_nothing(engine, tech, admin, tmp_path):
    _populate(engine, tech, admin)
    made = backup.backup(engine, tmp_path / "one.backup")
    before = backup.table_checksums(engine)
    with pytest.raises(ConflictError, match=r"restore refused: database .* is not empty"):
        backup.restore(engine, made.path)
    assert backup.table_checksums(engine) == before


def test_backup_never_overwrites_and_restore_refuses_a_file_that_is_not_a_backup(engine, tmp_path):
    made = backup.backup(engine, tmp_path / "b.backup")
    with pytest.raises(ConflictError, match="already exists"):
        backup.backup(engine, made.path)
    assert backup.backup(engine, made.path, overwrite=True).bytes > 0
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    with pytest.raises(ValidationError, match="not a biobank backup"):
        backup.restore(engine, junk)


def test_backup_and_restore_through_the_cli(db_url, engine, tech, admin, backend, tmp_path, monkeypatch):
    _populate(engine, tech, admin)
    token = issue_cli_token(db_url, "admin")  # before the backup: a restore checks it against the backup's accounts
    runner = CliRunner()
    file = tmp_path / "cli.backup"
    result = runner.invoke(app, ["backup", str(file)])
    assert result.exit_code == 0, result.output
    assert "backup written" in result.output
    refused = runner.invoke(app, ["restore", str(file)])
    assert refused.exit_code == 2 and "restore refused" in refused.output
    with empty_database(backend, tmp_path) as target_url:
        monkeypatch.setenv("BIOBANK_DATABASE_URL", target_url)
        get_settings.cache_clear()
        restored = runner.invoke(app, ["restore", str(file), "--json", "--confirm", database_name(target_url)],
                                 env={"BIOBANK_TOKEN": token})
        assert restored.exit_code == 0, restored.output
        assert '"specimen": 5' in restored.output
        sums = runner.invoke(app, ["db", "checksums", "--json"])
        assert sums.exit_code == 0 and '"table": "specimen"' in sums.output
        dispose_engines()


def test_the_postgres_password_travels_in_the_environment_never_on_the_command_line():
    from sqlalchemy.engine import make_url

    env = backup.pg_environment(make_url("postgresql+psycopg://biobank:s3cret@db.internal:6543/biobank?sslmode=require"))
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == ("db.internal", "6543", "biobank", "biobank")
    assert env["PGPASSWORD"] == "s3cret" and env["PGSSLMODE"] == "require"
    import inspect

    source = inspect.getsource(backup._pg_backup) + inspect.getsource(backup._pg_restore)
    assert "password" not in source.lower()
