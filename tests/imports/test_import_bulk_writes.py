"""The importer's bulk write path: rows go in unchanged, and the audit rows and first custody events the database
builds from them have the same shape as those the services write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from biobank.db import bulk
from biobank.db.engine import UTCDateTime, make_engine, session_scope
from biobank.models import AuditLog, User
from biobank.models.audit import REDACTED
from tests.imports.test_import_engine import do_import
from tests.support.dbtools import Templates, fresh_database
from tests.support.factories import exported_demo, importer_of

AWKWARD = ["plain", "tab\there", "new\nline", "back\\slash", "quote \" and ' both", "ünïcödé µl", "", "\\N", "[1, 2]",
           "null", "0.50", "1e3"]


@pytest.mark.parametrize("rows", [10, 120], ids=["executemany", "batch"])
def test_insert_rows_stores_every_value_as_given(engine: Engine, tech: User, rows: int) -> None:
    """Small batches go through executemany, large ones through one JSON statement (SQLite) or COPY (PostgreSQL):
    text that looks like numbers, JSON, escapes or NULL stays text; numbers, times and JSON keep their types."""
    base = datetime(2026, 3, 14, 2, 0, 0, 123456, tzinfo=UTC)
    values = [
        {"occurred_at": base + timedelta(seconds=i, microseconds=-i), "user_id": tech.id if i % 2 else None,
         "table_name": "specimen", "row_id": AWKWARD[i % len(AWKWARD)], "action": "insert",
         "changes": {"quantity": [None, i / 7], "code": [None, AWKWARD[(i + 3) % len(AWKWARD)]], "n": [None, 2**53 + i]},
         "reason": None if i % 3 == 0 else AWKWARD[(i + 5) % len(AWKWARD)]}
        for i in range(rows)
    ]
    table = AuditLog.__table__  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        before = session.execute(select(table.c.id).order_by(table.c.id.desc()).limit(1)).scalar() or 0
        bulk.insert_rows(session, table, values)
    with Session(engine) as session:
        got = session.execute(select(table).where(table.c.id > before).order_by(table.c.id)).mappings().all()
    assert [{k: row[k] for k in values[0]} for row in got] == values


def _hook_shape(row: dict[str, Any], table: Any) -> dict[str, list[Any]]:
    return {
        name: [None, value.isoformat() if hasattr(value, "isoformat") else value]
        for name, value in row.items()
        if value is not None and name not in REDACTED and name in table.c
    }


def _same_changes(got: dict[str, list[Any]], want: dict[str, list[Any]], table: Any) -> bool:
    if got.keys() != want.keys():
        return False
    for name, (old, new) in got.items():
        expected = want[name][1]
        if old is not None:
            return False
        if isinstance(table.c[name].type, UTCDateTime):
            if datetime.fromisoformat(new) != datetime.fromisoformat(expected):
                return False
        elif new != expected:
            return False
    return True


def test_imported_rows_get_one_audit_row_each_in_the_hooks_shape_and_specimens_a_first_custody_event(
    engine: Engine, backend: str, templates: Templates, tmp_path: Path
) -> None:
    with session_scope(engine) as session:
        files = exported_demo(session)
    with fresh_database(backend, templates, tmp_path) as url:
        target = make_engine(url)
        try:
            with session_scope(target) as session:
                importer = importer_of(session)
            for name, content in files.items():
                report = do_import(target, importer, name, content)
                assert report.ok, (name, report.errors[:3])
            with Session(target) as session:
                audits = session.execute(select(AuditLog).where(  # type: ignore[arg-type]
                    AuditLog.action == "insert", AuditLog.table_name != "user_account")).scalars().all()
                by_table: dict[str, dict[str, dict[str, list[Any]]]] = {}
                for audit in audits:
                    assert audit.user_id == importer.id
                    changes = audit.changes if isinstance(audit.changes, dict) else json.loads(audit.changes)
                    assert audit.row_id not in by_table.setdefault(audit.table_name, {}), "one audit row per row"
                    by_table[audit.table_name][audit.row_id] = changes
                imported = 0
                for name, rows in by_table.items():
                    table = SQLModel.metadata.tables[name]
                    stored = {str(r["id"]): dict(r) for r in session.execute(select(table)).mappings()}
                    assert rows.keys() == stored.keys(), f"{name}: every row audited once"
                    for row_id, changes in rows.items():
                        assert _same_changes(changes, _hook_shape(stored[row_id], table), table), (name, row_id, changes)
                    imported += len(rows)
                assert imported > 100 and "specimen" in by_table
                # the custody events the kinds write with plain SQL are audited too (SQLite: by the importer)
                assert "custody_event" in by_table
                events = session.execute(text(
                    "SELECT s.lineage, s.collected_at, e.kind, e.occurred_at, e.note, e.user_id, "
                    "count(*) OVER (PARTITION BY s.id) FROM specimen s JOIN custody_event e ON e.specimen_id = s.id "
                    "WHERE e.kind IN ('collected', 'aliquoted', 'derived') AND e.note = 'imported'"
                )).all()
                specimens = session.execute(text("SELECT count(*) FROM specimen")).scalar()
        finally:
            target.dispose()
    assert len(events) == specimens
    expected_kind = {"primary": "collected", "aliquot": "aliquoted", "derivative": "derived"}
    for lineage, collected_at, kind, occurred_at, note, user_id, per_specimen in events:
        assert (kind, note, user_id, per_specimen) == (expected_kind[lineage], "imported", importer.id, 1)
        if lineage == "primary":
            assert str(occurred_at)[:19] == str(collected_at)[:19]


def test_record_inserted_audits_exactly_the_ids_given_even_when_they_are_not_a_run(engine: Engine, tech: User) -> None:
    from biobank.models import Donor
    from biobank.models.audit import act_as, record_inserted

    with session_scope(engine) as session:
        for number in range(1, 6):
            session.add(Donor(code=f"RA-{number:04d}"))
    table = Donor.__table__  # type: ignore[attr-defined]
    with Session(engine) as session:
        ids = session.execute(select(table.c.id).order_by(table.c.id)).scalars().all()
    chosen = [ids[0], ids[2], ids[4]]
    on_postgres = engine.dialect.name == "postgresql"  # there the database's triggers audited the inserts already
    with session_scope(engine) as session:
        before = session.execute(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1)).scalar() or 0  # type: ignore[arg-type,union-attr]
        act_as(session, tech)
        assert record_inserted(session, table, chosen) == (0 if on_postgres else 3)
    with Session(engine) as session:
        written = session.execute(select(AuditLog.row_id, AuditLog.user_id).where(AuditLog.id > before)  # type: ignore[arg-type,operator]
                                  .order_by(AuditLog.id)).all()  # type: ignore[arg-type]
    assert written == ([] if on_postgres else [(str(i), tech.id) for i in chosen])


def test_insert_rows_leaves_out_columns_that_are_null_in_every_row_and_says_which_it_wrote(engine: Engine) -> None:
    """An import's record names every optional column; those NULL in the whole batch (with no default) are left
    out of the statement, which stores the same rows. Columns with a default are always written."""
    from biobank.models import Donor

    table = Donor.__table__  # type: ignore[attr-defined]
    rows = [{"code": f"RA-{9000 + i}", "age_at_death": 60 + i if i % 2 else None, "cause_of_death": None,
             "hardy_scale": None} for i in range(60)]
    with session_scope(engine) as session:
        written = bulk.insert_rows(session, table, rows)
    assert "cause_of_death" not in written and "hardy_scale" not in written
    assert {"code", "age_at_death", "sex"} <= set(written)  # age: NULL in some rows only; sex: a default
    with Session(engine) as session:
        got = session.execute(select(table.c.code, table.c.age_at_death, table.c.cause_of_death, table.c.hardy_scale,
                                     table.c.status).where(table.c.code.like("RA-9%")).order_by(table.c.code)).all()
    assert got == [(row["code"], row["age_at_death"], None, None, "enrolled") for row in rows]


@pytest.mark.parametrize("count", [3, 12_000])
def test_key_in_selects_exactly_the_keys_given(engine: Engine, count: int) -> None:
    """Lookups by thousands of codes go as one parameter (ANY(array) / json_each): awkward text matches only itself."""
    from biobank.models import Donor

    table = Donor.__table__  # type: ignore[attr-defined]
    codes = [f"RA-{8000 + i}" for i in range(20)]
    with session_scope(engine) as session:
        bulk.insert_rows(session, table, [{"code": code} for code in codes])
    wanted = codes[::3] + [f"RA-{8000 + i}'" for i in range(count)] + ["ra-8001", "RA-8001 ", "µ\"\\"]
    with Session(engine) as session:
        dialect = session.get_bind().dialect.name
        found = session.execute(select(table.c.code).where(bulk.key_in(table.c.code, wanted, dialect))).scalars()
        assert sorted(found) == sorted(codes[::3])
        ids = session.execute(select(table.c.id).where(table.c.code.in_(codes[:4]))).scalars().all()
        by_id = session.execute(select(table.c.code).where(bulk.key_in(table.c.id, [*ids, -1], dialect))).scalars()
        assert sorted(by_id) == codes[:4]
    if dialect == "sqlite":
        with pytest.raises(TypeError):
            bulk.key_in(table.c.code, [1.5], dialect)


def test_a_batch_split_file_keeps_its_order_and_in_file_parents_across_batches(
    engine: Engine, tech: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of three rows (prepared on the helper thread while the previous one is written): parents named in an
    earlier batch, or earlier in the same batch, get their ids; ids follow the file's order."""
    from biobank.imports import engine as import_engine
    from tests.support.factories import collect, make_case

    monkeypatch.setattr(import_engine, "WRITE_ROWS", 3)
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    lines = ["code,parent_code,donor_code,sampling_site,storage_format,quantity,collected_at"]
    for n in range(4):
        lines.append(f"P{n},,RA-0001,L02-A,snap_frozen,50 mg,2026-03-14 05:0{n}")
        lines.append(f"P{n}.1,P{n},,,snap_frozen,5 mg,")  # names the row just before (same batch, or it closes it)
        if n:
            lines.append(f"P{n}.2,P{n - 1},,,snap_frozen,5 mg,")  # names a row of an earlier batch
    report = do_import(engine, tech, "specimens", "\n".join(lines) + "\n")
    assert report.ok, report.errors
    with engine.connect() as conn:
        got = conn.execute(text("SELECT s.code, p.code FROM specimen s LEFT JOIN specimen p ON p.id = s.parent_id "
                                "WHERE s.code LIKE 'P%' ORDER BY s.id")).all()
    assert [code for code, _ in got] == [line.split(",")[0] for line in lines[1:]]
    assert all(parent == (code.split(".")[0] if code.endswith(".1") else f"P{int(code[1]) - 1}")
               for code, parent in got if parent is not None)
    assert sum(parent is None for _, parent in got) == 4


def test_a_failure_while_preparing_a_later_batch_rolls_back_the_batches_already_written(
    engine: Engine, tech: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper thread's error comes out in the import (a refusal in the report), and the rows of the batches
    written before it are rolled back with the rest: nothing half-written."""
    from biobank.domain.errors import BiobankError
    from biobank.imports import engine as import_engine
    from tests.support.dbtools import snapshot
    from tests.support.factories import collect, make_case

    monkeypatch.setattr(import_engine, "WRITE_ROWS", 2)
    calls = {"n": 0}
    real = import_engine.prepare_rows

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise BiobankError("simulated failure while preparing")
        return real(*args, **kwargs)

    monkeypatch.setattr(import_engine, "prepare_rows", failing)
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    before = snapshot(engine)
    content = "code,donor_code,sampling_site,storage_format,quantity\n" + "".join(
        f"F{n},RA-0001,L02-A,snap_frozen,5 mg\n" for n in range(7))
    report = do_import(engine, tech, "specimens", content)
    assert not report.ok and "simulated failure while preparing" in report.errors[0].message
    assert calls["n"] == 3  # two batches were prepared (and written) before the failure
    assert snapshot(engine) == before


def test_refresh_statistics_analyses_only_tables_that_changed_a_lot(engine: Engine, backend: str) -> None:
    """PostgreSQL: a table filled since its last analysis gets planner statistics before an import's lookups; a
    table barely changed is left alone. SQLite: nothing to do."""
    import time

    from biobank.db.engine import STALE_ROWS, refresh_statistics
    from biobank.models import Donor

    table = Donor.__table__  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        bulk.insert_rows(session, table, [{"code": f"RA-{10000 + i}"} for i in range(STALE_ROWS + 500)])
    if backend == "sqlite":
        with Session(engine) as session:
            assert refresh_statistics(session, ["donor", "sampling_site"]) == []
        return
    engine.dispose()  # the writing backend exits and hands over its counts to the statistics
    with engine.connect() as conn:
        for _ in range(100):
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            changed = conn.execute(text("SELECT n_mod_since_analyze FROM pg_stat_user_tables "
                                        "WHERE relname = 'donor' AND schemaname = current_schema()")).scalar()
            if changed and changed >= STALE_ROWS:
                break
            time.sleep(0.1)
        conn.rollback()
    with Session(engine) as session:
        assert refresh_statistics(session, ["donor", "sampling_site"]) == ["donor"]
        tuples = session.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'donor' "
                                      "AND relnamespace = current_schema()::regnamespace")).scalar()
        assert tuples is not None and tuples >= STALE_ROWS + 500
