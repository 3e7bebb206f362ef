"""The engine factory and the UTC datetime type on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from biobank.db.engine import UTCDateTime, make_engine, session_scope
from biobank.domain.errors import ConflictError
from biobank.models import Donor, User
from biobank.models.base import utcnow


def test_naive_datetimes_are_refused_by_the_column_type():
    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), make_engine("sqlite://").dialect)


def test_times_come_back_aware_and_in_utc(engine):
    local = datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(engine) as session:
        user = User(username="tz", role="admin", created_at=local)
        session.add(user)
    with Session(engine) as session:
        stored = session.exec(select(User.created_at).where(User.username == "tz")).one()
    assert stored == local
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0
    engine.dispose()


def test_a_savepoint_rolls_back_only_its_own_work(engine):
    with Session(engine) as session:
        session.add(User(username="outer", role="admin"))
        session.flush()
        nested = session.begin_nested()
        session.add(User(username="inner", role="admin"))
        session.flush()
        nested.rollback()
        session.commit()
    with Session(engine) as session:
        assert session.exec(select(User.username)).all() == ["outer"]


def test_a_unique_violation_becomes_a_conflict_naming_the_rule(engine):
    with session_scope(engine) as session:
        session.add(Donor(code="RA-0001"))
    with pytest.raises(ConflictError, match=r"^A donor with this code already exists$") as refused:
        with session_scope(engine) as session:
            session.add(Donor(code="RA-0001"))
    assert refused.value.field == "uq_donor_code"
    with Session(engine) as session:
        assert len(session.exec(select(Donor)).all()) == 1


def test_an_empty_string_is_not_a_code(engine):
    """Refused before the database by every ORM write (no blank text in a required column), and by the database's
    own CHECK for a write that goes around the ORM."""
    from sqlalchemy import insert

    from biobank.domain.errors import ValidationError

    with pytest.raises(ValidationError, match=r"^donor: Code cannot be empty") as refused:
        with session_scope(engine) as session:
            session.add(Donor(code=""))
    assert refused.value.field == "code"
    with pytest.raises(ValidationError, match=r"^A donor code uses only letters") as refused:
        with session_scope(engine) as session:
            session.execute(insert(Donor).values(code="", sex="unknown", status="enrolled", created_at=utcnow()))
    assert refused.value.field == "ck_donor_code_safe"


# ------------------------------------------------------------------------------------------------ SQLite durability


def test_sqlite_writers_sync_every_commit(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()


def _users_in_the_file_alone(path, tmp_path) -> list[str]:
    """The usernames a copy of the database file holds, without its write-ahead log beside it."""
    import shutil
    import sqlite3

    alone = tmp_path / "alone.db"
    shutil.copyfile(path, alone)
    conn = sqlite3.connect(alone)
    try:
        return [name for (name,) in conn.execute("SELECT username FROM user_account ORDER BY username")]
    finally:
        conn.close()


def test_a_checkpoint_leaves_every_committed_row_in_the_database_file(tmp_path, templates):
    import shutil

    from biobank.db.engine import checkpoint

    path = tmp_path / "biobank.db"
    shutil.copyfile(templates.sqlite(), path)
    engine = make_engine(f"sqlite:///{path}")
    holder = make_engine(f"sqlite:///{path}").connect()  # another process's open connection: no checkpoint on close
    holder.execute(text("SELECT count(*) FROM user_account")).scalar()
    holder.commit()
    with session_scope(engine) as session:
        session.add(User(username="written", role="admin"))
    assert _users_in_the_file_alone(path, tmp_path) == []  # still only in biobank.db-wal
    assert checkpoint(engine) is True
    assert _users_in_the_file_alone(path, tmp_path) == ["written"]
    assert (tmp_path / "biobank.db-wal").stat().st_size == 0
    holder.close()
    engine.dispose()


def test_a_command_that_ends_leaves_its_rows_in_the_database_file(tmp_path, templates):
    """A process that wrote through the shared engine (as every CLI command does) checkpoints when it exits, even
    while another process (the dashboard) keeps the database open."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "biobank.db"
    shutil.copyfile(templates.sqlite(), path)
    holder = make_engine(f"sqlite:///{path}").connect()
    holder.execute(text("SELECT count(*) FROM user_account")).scalar()
    holder.commit()
    script = (
        "from biobank.db.engine import get_engine, session_scope\n"
        "from biobank.models import User\n"
        "with session_scope(get_engine()) as session:\n"
        "    session.add(User(username='from_the_cli', role='admin'))\n"
    )
    env = {**os.environ, "BIOBANK_DATABASE_URL": f"sqlite:///{path}"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _users_in_the_file_alone(path, tmp_path) == ["from_the_cli"]
    holder.close()
