"""The engine factory and the UTC datetime type on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from biobank.db.engine import UTCDateTime, make_engine, session_scope
from biobank.domain.errors import ConflictError
from biobank.models import Donor, User


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
    from biobank.domain.errors import ValidationError

    with pytest.raises(ValidationError, match=r"^A donor code uses only letters") as refused:
        with session_scope(engine) as session:
            session.add(Donor(code=""))
    assert refused.value.field == "ck_donor_code_safe"
