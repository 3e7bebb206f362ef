"""How the import overlaps its work and stays all or nothing (issue 21): a chunk's lookups are built while the chunk
before is written (the resolver's session waits for the writer before it reaches the database), the specimens'
first custody events of a chunk are written while the next chunk is prepared, and the first chunk is a small one so
the writer starts early. On SQLite and PostgreSQL.

Chunks are made small here (50 rows read, 20 written per batch) so a file of a few hundred rows spans many."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.imports import engine as import_engine
from biobank.imports import validate as import_validate
from biobank.imports.registry import KINDS
from biobank.models import AuditLog, CustodyEvent, Specimen, User
from tests.support.dbtools import snapshot
from tests.support.factories import collect, make_case
from tests.support.specimen_files import (
    add_database_rule,
    assert_refused_and_taken_back,
    import_specimens,
    specimen_csv,
)

ROWS = 230  # not a multiple of the chunk: the last chunk's custody events are written when the import closes


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_validate, "CHUNK_ROWS", 50)
    monkeypatch.setattr(import_validate, "FIRST_CHUNK_ROWS", 7)
    monkeypatch.setattr(import_engine, "WRITE_ROWS", 20)


@pytest.fixture
def case(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech, lesion="L02", region="A")


def _csv(rows: int = ROWS, bad: dict[int, dict[str, str]] | None = None) -> bytes:
    return specimen_csv(rows, bad, prefix="P")


_run = import_specimens


def _refuse_custody_of(engine: Engine, code: str) -> None:
    """A rule of the database on custody events (as a lab's own trigger would be): ``code``'s first event refused."""
    add_database_rule(engine, "test_custody_rule", "custody_event",
                      f"(SELECT code FROM specimen WHERE id = NEW.specimen_id) = '{code}'", "no custody for this code")


def test_every_specimen_keeps_its_first_custody_event_and_both_their_audit_rows(
    engine: Engine, tech: User, case: None
) -> None:
    report, events = _run(engine, tech, _csv())
    assert report.ok and report.written and report.inserted == ROWS
    assert sum(n for phase, n in events if phase == "write") == ROWS
    with Session(engine) as session:
        ids = session.exec(select(Specimen.id).where(Specimen.code.like("P%")).order_by(Specimen.code)).all()  # type: ignore[attr-defined]
        assert len(ids) == ROWS and ids == sorted(ids)  # type: ignore[type-var]
        custody = session.exec(select(CustodyEvent.id, CustodyEvent.specimen_id, CustodyEvent.kind, CustodyEvent.user_id)
                               .where(CustodyEvent.specimen_id.in_(ids))  # type: ignore[attr-defined]
                               .order_by(CustodyEvent.id)).all()  # type: ignore[arg-type]
        assert [c[1] for c in custody] == ids, "one event per specimen, in file order"
        assert {(c[2], c[3]) for c in custody} == {("collected", tech.id)}
        audited = session.exec(select(AuditLog.table_name, AuditLog.row_id, AuditLog.user_id).where(
            AuditLog.action == "insert", AuditLog.table_name.in_(["specimen", "custody_event"]))).all()  # type: ignore[attr-defined]
        assert {(t, r) for t, r, _u in audited if t == "specimen"} >= {("specimen", str(i)) for i in ids}
        assert {u for t, r, u in audited if t == "specimen" and r in {str(i) for i in ids}} == {tech.id}
        # the custody events' own audit rows (PostgreSQL: the database's triggers; SQLite: the importer's)
        events = {str(c[0]) for c in custody}
        assert {r for t, r, _u in audited if t == "custody_event"} >= events
        assert {u for t, r, u in audited if t == "custody_event" and r in events} == {tech.id}


def test_a_custody_event_refused_by_the_database_takes_everything_back_and_later_errors_are_still_reported(
    engine: Engine, tech: User, case: None
) -> None:
    _refuse_custody_of(engine, "P0033")  # in the second chunk: its events are written while the third is prepared
    assert_refused_and_taken_back(engine, tech, _csv(bad={200: {"storage_format": "jelly"}}), "test_custody_rule",
                                  later=(202, "storage_format"))


def test_a_custody_event_of_the_last_chunk_refused_takes_everything_back(engine: Engine, tech: User, case: None) -> None:
    _refuse_custody_of(engine, f"P{ROWS - 1:04d}")  # written only when the import closes
    before = snapshot(engine)
    report, _events = _run(engine, tech, _csv())
    assert not report.ok and not report.written and report.inserted == 0
    assert any("test_custody_rule" in e.message for e in report.errors), [e.message for e in report.errors]
    assert snapshot(engine) == before
    dry, _events = _run(engine, tech, _csv(), dry_run=True)  # a dry run has the database check the events too
    assert not dry.ok and any("test_custody_rule" in e.message for e in dry.errors)
    assert snapshot(engine) == before


def test_only_the_specimen_kinds_have_their_after_insert_written_later() -> None:
    """Their custody events are read by no later lookup or rule; another kind's side effects (a placement's
    position, a passage's events) may be, so they are written with their rows."""
    assert sorted(name for name, kind in KINDS.items() if kind.after_insert_later) == ["passage_descendants", "specimens"]


def test_the_garbage_collector_waits_while_imports_run_and_resumes_after_the_last(
    engine: Engine, tech: User, case: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full collection stops every thread, the writer's too; it waits until the last import of the process ends,
    and a collector switched off by the process stays off."""
    seen: list[bool] = []
    resolve = type(import_engine.get_kind("specimens")).resolve

    def spying(self: Any, res: Any, rows: Any) -> None:
        seen.append(gc.isenabled())
        resolve(self, res, rows)

    monkeypatch.setattr(type(import_engine.get_kind("specimens")), "resolve", spying)
    assert gc.isenabled()
    report, _events = _run(engine, tech, _csv(60))
    assert report.ok and seen and not any(seen)
    assert gc.isenabled()

    with import_engine._collector_paused():
        with import_engine._collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "another import still runs"
    assert gc.isenabled()
    with pytest.raises(RuntimeError), import_engine._collector_paused():
        raise RuntimeError("an import failed")
    assert gc.isenabled()

    gc.disable()
    try:
        with import_engine._collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
