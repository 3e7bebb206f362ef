"""The audit trail written by the database (PostgreSQL, migration 0010) and deletes audited on both databases.

On PostgreSQL statement triggers write every audit row, with the acting user and reason the application sets as
transaction-local settings; the ORM hook then writes none. These tests hold the triggers to the hook's own output.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from biobank.db import ddl
from biobank.db.engine import make_engine, session_scope
from biobank.domain.errors import BiobankError
from biobank.models import AuditLog, ConsentWithdrawal, Specimen, SpecimenLocation, User
from biobank.models.audit import act_as, audit_reason, database_audits
from biobank.services import donors, storage
from tests.support.dbtools import Templates, create_pg_database, drop_pg_database, fresh_database, migrate
from tests.support.factories import collect, lab, make_case

postgres_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _audit(engine: Engine, **where: Any) -> list[AuditLog]:
    with Session(engine) as session:
        statement = select(AuditLog).order_by(AuditLog.id)  # type: ignore[arg-type]
        for name, value in where.items():
            statement = statement.where(getattr(AuditLog, name) == value)
        return list(session.exec(statement).all())


# ------------------------------------------------------------------------------------------------ both databases


def test_a_freed_storage_position_is_audited_as_a_delete(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        code = collect(session, tech)[0]
        lab(session, tech)
        storage.store(session, actor=tech, codes=[code], box_code="BOX1", at="A1")
    with Session(engine) as session:
        location = session.exec(select(SpecimenLocation)).one()
        location_id, specimen_id = location.id, location.specimen_id
    with session_scope(engine) as session:
        storage.dispose(session, actor=tech, code=code, reason="thawed by accident")
    deleted = _audit(engine, table_name="specimen_location", action="delete")
    assert len(deleted) == 1
    row = deleted[0]
    assert (row.row_id, row.user_id) == (str(location_id), tech.id)
    assert row.changes["specimen_id"] == [specimen_id, None] and row.changes["position"] == ["A1", None]
    assert all(new is None for _old, new in row.changes.values())


def test_a_withdrawal_of_consent_can_be_neither_changed_nor_deleted(engine, tech, admin):
    with session_scope(engine) as session:
        make_case(session, tech)
        donors.withdraw_consent(session, actor=admin, donor_code="RA-0001", requested_by="donor",
                                withdrawn_at=datetime(2026, 4, 1, tzinfo=UTC), reason="changed mind")
    for statement, rule in ((delete(ConsentWithdrawal), "tg_consent_withdrawal_no_delete"),
                            (update(ConsentWithdrawal).values(reason="rewritten"), "tg_consent_withdrawal_no_update")):
        with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
            session.execute(statement)
        assert refused.value.field == rule
    with Session(engine) as session:
        assert session.exec(select(ConsentWithdrawal.reason)).all() == ["changed mind"]


# ------------------------------------------------------------------------------------------------- PostgreSQL


def _body(connection: Any, table: str) -> str:
    return connection.execute(text("SELECT prosrc FROM pg_proc WHERE proname = :name"),
                              {"name": f"biobank_audit_{table}"}).scalar_one()


@postgres_only
def test_every_table_but_the_log_its_version_and_sessions_has_current_audit_triggers(engine):
    """A migration that adds a table or changes an audited table's columns must install its triggers again
    (biobank.db.ddl.audit_table): the function is compared with what the table's columns give today."""
    with engine.connect() as connection:
        tables = connection.execute(text(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
        )).scalars().all()
        triggers = set(connection.execute(text(
            "SELECT c.relname || ':' || t.tgname || ':' || t.tgenabled::text FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname LIKE 'tg\\_%\\_audit\\_%'")).scalars())
        audited = sorted(set(tables) - set(ddl.NOT_AUDITED))
        assert len(audited) >= 24
        for table in audited:
            assert {f"{table}:tg_{table}_audit_{verb}:O" for verb in ("ins", "upd", "del")} <= triggers, table
            columns, keys = (connection.execute(text(query), {"table": table}).all() for query in (
                "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = CAST(:table AS regclass) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(num, pos) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num "
                "WHERE i.indrelid = CAST(:table AS regclass) AND i.indisprimary ORDER BY k.pos"))
            expected = ddl.audit_function_body([tuple(c) for c in columns], [k for (k,) in keys])
            assert _body(connection, table) == expected, f"{table}: reinstall its audit triggers in a migration"
        for table in ddl.NOT_AUDITED:
            assert not any(t.startswith(f"{table}:") for t in triggers)


@postgres_only
def test_a_core_update_is_audited_with_the_acting_user_and_the_reason(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        code = collect(session, tech)[0]
    with session_scope(engine) as session:
        act_as(session, tech)
        with audit_reason(session, "scale was not tared"):
            session.execute(update(Specimen).where(Specimen.code == code).values(quantity=45.5, quantity_remaining=45.5))  # type: ignore[arg-type]
        session.execute(update(Specimen).where(Specimen.code == code).values(notes="re-weighed"))  # type: ignore[arg-type]
    rows = _audit(engine, table_name="specimen", action="update")
    assert [(r.changes, r.user_id, r.reason) for r in rows] == [
        ({"quantity": [50, 45.5], "quantity_remaining": [50, 45.5]}, tech.id, "scale was not tared"),
        ({"notes": [None, "re-weighed"]}, tech.id, None),
    ]


@postgres_only
def test_the_acting_user_follows_the_session_into_its_next_transaction_and_past_a_rolled_back_savepoint(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
    with Session(engine) as session:
        act_as(session, tech)
        session.commit()  # the settings are transaction-local: the next transaction must get them again
        session.execute(update(User).where(User.id == tech.id).values(full_name="First"))  # type: ignore[arg-type]
        nested = session.begin_nested()
        act_as(session, tech, reason="inside")
        nested.rollback()  # takes the setting made inside it along
        act_as(session, tech)
        session.execute(update(User).where(User.id == tech.id).values(full_name="Second"))  # type: ignore[arg-type]
        session.commit()
    rows = _audit(engine, table_name="user_account", action="update")
    assert [(r.changes["full_name"][1], r.user_id, r.reason) for r in rows] == [("First", tech.id, None),
                                                                             ("Second", tech.id, None)]


@postgres_only
def test_a_key_changed_by_an_update_is_audited_as_the_old_row_and_the_new(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
    with session_scope(engine) as session:
        session.execute(text("UPDATE lesion SET id = id + 1000 WHERE code = 'L01'"))
    rows = _audit(engine, table_name="lesion", action="update")
    old, new = sorted(rows, key=lambda r: int(r.row_id))
    assert int(new.row_id) == int(old.row_id) + 1000
    assert old.changes["code"] == ["L01", None] and new.changes["code"] == [None, "L01"]


@postgres_only
def test_the_hook_writes_nothing_where_the_database_audits(engine, tech):
    with session_scope(engine) as session:
        assert database_audits(session.connection())
        make_case(session, tech)
    inserts = Counter((r.table_name, r.row_id) for r in _audit(engine, action="insert"))
    assert inserts and set(inserts.values()) == {1}, "one audit row per inserted row"


def test_a_database_not_yet_upgraded_keeps_the_application_hook(backend: str, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'at-0009.db'}" if backend == "sqlite" else create_pg_database()
    try:
        migrate(url, "0009")
        engine = make_engine(url)
        with session_scope(engine) as session:
            assert not database_audits(session.connection())
            user = User(username="early", role="admin")
            session.add(user)
        assert [(r.table_name, r.action) for r in _audit(engine)] == [("user_account", "insert")]
        engine.dispose()
    finally:
        if backend == "postgresql":
            drop_pg_database(url)


# ------------------------------------------------------------------- the triggers write what the hook wrote


def _normalised(rows: list[AuditLog], near: datetime) -> Counter[tuple[Any, ...]]:
    """Audit rows without their ids and times; values that are times of this run (created_at...) made equal."""

    def value(item: Any) -> Any:
        if isinstance(item, str) and len(item) >= 19 and item[4] == "-" and item[10] == "T":
            moment = datetime.fromisoformat(item)
            return "<now>" if abs(moment - near) < timedelta(hours=1) else moment
        if isinstance(item, float) and item.is_integer():
            return int(item)
        return item

    return Counter(
        (r.table_name, r.row_id, r.action, r.user_id, r.reason,
         tuple(sorted((k, value(old), value(new)) for k, (old, new) in r.changes.items())))
        for r in rows
    )


@postgres_only
def test_the_database_writes_the_same_audit_rows_as_the_application_hook(
    backend: str, templates: Templates, tmp_path: Path
) -> None:
    """The demo cohort (every service: registration, consent, cases, collection, aliquots, derivatives, storage,
    distribution, derived models, plans, withdrawal) loaded on SQLite (the hook) and PostgreSQL (the triggers)."""
    from biobank.demo.cohort import load_demo

    now = datetime.now(UTC).replace(microsecond=0)
    found: dict[str, Counter[tuple[Any, ...]]] = {}
    for name in ("sqlite", "postgresql"):
        with fresh_database(name, templates, tmp_path) as url:
            engine = make_engine(url)
            with session_scope(engine) as session:
                load_demo(session, donors_count=3, now=now)
            with Session(engine) as session:
                found[name] = _normalised(list(session.exec(select(AuditLog)).all()), now)
                assert session.exec(select(func.count()).select_from(AuditLog)).one() > 500
            engine.dispose()
    assert found["sqlite"] == found["postgresql"], (
        sorted(found["sqlite"] - found["postgresql"])[:3], sorted(found["postgresql"] - found["sqlite"])[:3])

