"""An import writes each validated chunk while it reads the next, and stays all or nothing with every error reported:
rows already written go when a later row fails or the database refuses one, and a dry run has the database check
every row (its own constraints and triggers included) before rolling it all back; on SQLite and PostgreSQL.

Chunks are made small here (50 rows read, 20 written per batch) so a file of a few hundred rows spans many."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from biobank.db.engine import session_scope
from biobank.imports import engine as import_engine
from biobank.imports import validate as import_validate
from biobank.models import AuditLog, CustodyEvent, Specimen, User
from tests.support.dbtools import snapshot
from tests.support.factories import collect, make_case
from tests.support.specimen_files import (
    add_database_rule,
    assert_refused_and_taken_back,
    import_specimens,
    specimen_csv,
)

ROWS = 300


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_validate, "CHUNK_ROWS", 50)
    monkeypatch.setattr(import_engine, "WRITE_ROWS", 20)


@pytest.fixture
def case(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech, lesion="L02", region="A")  # the sampling site L02-A the rows name


def _csv(rows: int = ROWS, bad: dict[int, dict[str, str]] | None = None) -> bytes:
    return specimen_csv(rows, bad, prefix="S")


_run = import_specimens


def _imported(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Specimen).where(Specimen.code.like("S%"))).one()  # type: ignore[attr-defined]


def _refuse_code(engine: Engine, code: str) -> None:
    """A rule of the database the import's checks do not know (as a lab's own trigger would be): ``code`` refused."""
    add_database_rule(engine, "test_lab_rule", "specimen", f"NEW.code = '{code}'", "this code is reserved")


def test_chunks_are_written_while_later_rows_are_still_being_read(engine: Engine, tech: User, case: None) -> None:
    report, events = _run(engine, tech, _csv())
    assert report.ok and report.written and report.inserted == ROWS
    phases = [phase for phase, _n in events]
    first_write, last_read = phases.index("write"), len(phases) - 1 - phases[::-1].index("validate")
    assert first_write < last_read, "nothing was written before the whole file was read"
    assert sum(n for phase, n in events if phase == "write") == ROWS
    assert _imported(engine) == ROWS
    with Session(engine) as session:  # every row kept its audit row and first custody event, in file order
        ids = session.exec(select(Specimen.id).where(Specimen.code.like("S%")).order_by(Specimen.code)).all()  # type: ignore[attr-defined]
        assert ids == sorted(ids)
        assert session.exec(select(func.count()).select_from(CustodyEvent).where(
            CustodyEvent.specimen_id.in_(ids))).one() == ROWS  # type: ignore[attr-defined]
        assert session.exec(select(func.count()).select_from(AuditLog).where(
            AuditLog.table_name == "specimen", AuditLog.action == "insert",
            AuditLog.row_id.in_([str(i) for i in ids]))).one() == ROWS  # type: ignore[attr-defined]


def test_a_late_bad_row_takes_back_the_chunks_already_written_and_every_error_is_reported(
    engine: Engine, tech: User, case: None
) -> None:
    before = snapshot(engine)
    bad = {220: {"storage_format": "jelly"}, 290: {"quantity": "lots"}, 295: {"code": "S0001"}}
    report, events = _run(engine, tech, _csv(bad=bad))
    assert any(phase == "write" for phase, _n in events), "the rows before the first bad one were written first"
    assert not report.ok and not report.written
    assert {(e.row, e.column) for e in report.errors} == {(222, "storage_format"), (292, "quantity"), (297, "code")}
    assert snapshot(engine) == before


def test_a_refusal_by_the_database_midway_takes_everything_back_and_later_errors_are_still_reported(
    engine: Engine, tech: User, case: None
) -> None:
    _refuse_code(engine, "S0120")
    assert_refused_and_taken_back(engine, tech, _csv(bad={250: {"storage_format": "jelly"}}), "test_lab_rule",
                                  later=(252, "storage_format"))


def test_a_dry_run_has_the_database_check_every_row_and_writes_nothing(engine: Engine, tech: User, case: None) -> None:
    before = snapshot(engine)
    clean, _events = _run(engine, tech, _csv(), dry_run=True)
    assert clean.ok and not clean.written and clean.inserted == ROWS
    assert snapshot(engine) == before

    _refuse_code(engine, "S0277")
    before = snapshot(engine)
    refused, _events = _run(engine, tech, _csv(), dry_run=True)
    assert not refused.ok and not refused.written
    assert any("test_lab_rule" in e.message for e in refused.errors), [e.message for e in refused.errors]
    assert snapshot(engine) == before
    assert _imported(engine) == 0
