"""The audit trail: every insert and update writes an audit row in the same transaction; the log is immutable."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text, update
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.domain.errors import BiobankError, ValidationError
from biobank.models import AuditLog, CustodyEvent, Donor
from biobank.services import donors
from biobank.services.inputs import DonorCreate


def test_inserts_and_updates_are_audited_with_user_and_changed_fields(engine, tech, admin):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001", sex="female"))
    from datetime import UTC, datetime

    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=admin, donor_code="RA-0001", requested_by="donor",
                                withdrawn_at=datetime(2026, 1, 1, tzinfo=UTC), reason="changed mind")
    with Session(engine) as session:
        donor = session.exec(select(Donor)).one()
        rows = session.exec(select(AuditLog).where(AuditLog.table_name == "donor").order_by(AuditLog.id)).all()
        assert donor.created_by_id == tech.id and donor.updated_by_id == admin.id
    insert, update_row = rows
    assert insert.action == "insert" and insert.user_id == tech.id and insert.row_id == str(donor.id)
    assert insert.changes["code"] == [None, "RA-0001"]
    assert update_row.action == "update" and update_row.user_id == admin.id
    assert update_row.changes == {"status": ["enrolled", "withdrawn"]}


def test_a_failed_operation_leaves_no_audit_rows(engine, tech):
    with pytest.raises(ValidationError), session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
        donors.register_donor(session, actor=tech, data=DonorCreate(code="not a code"))
    with Session(engine) as session:
        assert session.exec(select(AuditLog).where(AuditLog.table_name == "donor")).all() == []


def test_password_hashes_never_reach_the_audit_log(engine, admin):
    from biobank.services import users

    with session_scope(engine) as session:
        users.add_user(session, actor=admin, username="bob", role="technician", password="correct horse battery")
        users.set_password(session, actor=admin, username="bob", password="another long secret")
    with Session(engine) as session:
        rows = session.exec(select(AuditLog).where(AuditLog.table_name == "user_account")).all()
    text_of_rows = repr([r.changes for r in rows])
    assert "argon2" not in text_of_rows
    assert any(r.action == "update" and r.changes.get("password_hash") == ["<redacted>", "<redacted>"] for r in rows)


@pytest.mark.parametrize("statement", ["update", "delete"])
def test_the_audit_log_cannot_be_changed_or_deleted(engine, tech, statement):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
    query = update(AuditLog).values(user_id=None) if statement == "update" else delete(AuditLog)
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(query)
    assert refused.value.field == f"tg_audit_log_no_{statement}"
    with Session(engine) as session:
        assert session.exec(select(AuditLog)).all()


def test_the_custody_chain_is_append_only(engine, tech):
    from tests.support.factories import collect, make_case

    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(update(CustodyEvent).values(note="rewritten"))
    assert refused.value.field == "tg_custody_event_no_update"
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(delete(CustodyEvent))
    assert refused.value.field == "tg_custody_event_no_delete"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_truncating_the_audit_log_is_refused_on_postgresql(engine, tech):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(text("TRUNCATE audit_log"))
    assert refused.value.field == "tg_audit_log_no_truncate"
