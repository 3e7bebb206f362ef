"""A specimens import file of identical rows for case RA-0001's region L02-A, its import with the progress events it
reported, a rule of the database the import's checks do not know, and what a refusal must leave: for the tests of how
the import streams, overlaps and rolls back."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from biobank.db.engine import session_scope
from biobank.imports.engine import run_import
from biobank.models import User
from tests.conftest import DEATH
from tests.support.dbtools import snapshot

COLUMNS = ["code", "donor_code", "sampling_site", "storage_format", "quantity", "collected_at"]


def specimen_csv(rows: int, bad: dict[int, dict[str, str]] | None = None, *, prefix: str = "S") -> bytes:
    """``rows`` specimen rows (codes ``<prefix>0000``...); ``bad`` replaces cells of some rows (by 0-based index)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    collected = (DEATH + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")
    for i in range(rows):
        row = {"code": f"{prefix}{i:04d}", "donor_code": "RA-0001", "sampling_site": "L02-A",
               "storage_format": "snap_frozen", "quantity": "50 mg", "collected_at": collected, **(bad or {}).get(i, {})}
        writer.writerow([row[c] for c in COLUMNS])
    return out.getvalue().encode()


def import_specimens(engine: Engine, actor: User, content: bytes, **options: Any) -> tuple[Any, list[tuple[str, int]]]:
    """The import's report and the (phase, count) progress events it reported, in one committed unit of work."""
    events: list[tuple[str, int]] = []
    with session_scope(engine) as session:
        report = run_import(session, actor=actor, kind="specimens", source=content, filename="specimens.csv",
                            progress=lambda phase, n, _total: events.append((phase, n)), **options)
    return report, events


def add_database_rule(engine: Engine, name: str, table: str, condition: str, message: str) -> None:
    """A rule of the database the import's checks do not know (as a lab's own trigger would be): a row of ``table``
    for which ``condition`` (SQL over ``NEW``, the same on both databases) holds is refused with ``name: message``."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {condition} "
                              f"BEGIN SELECT RAISE(ABORT, '{name}: {message}'); END"))
        else:
            conn.execute(text(
                f"CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {condition} THEN RAISE EXCEPTION '{name}: {message}' "
                f"USING ERRCODE = 'check_violation', CONSTRAINT = '{name}'; END IF; RETURN NEW; END $$"))
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_fn()"))


def assert_refused_and_taken_back(engine: Engine, actor: User, content: bytes, rule: str, later: tuple[int, str]) -> None:
    """The import of ``content`` is refused by the database's ``rule``, the rows after the refusal are still checked
    (``later``: the (row, column) of an error further down the file is reported), and nothing of it stays."""
    before = snapshot(engine)
    report, _events = import_specimens(engine, actor, content)
    assert not report.ok and not report.written and report.inserted == 0
    messages = [e.message for e in report.errors]
    assert any("the database refused the import" in m and rule in m for m in messages), messages
    assert later in {(e.row, e.column) for e in report.errors}, "rows after the refusal are checked"
    assert snapshot(engine) == before
