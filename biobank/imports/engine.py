"""The bulk import engine: one function that imports a file of one *kind* (what a spreadsheet row becomes) with
every rule checked before anything is written.

How an import runs (:func:`run_import`):

1. **Validate the whole file first.** Rows stream from :func:`biobank.imports.read.iter_rows` in chunks; every cell
   goes through its column's coercer (:mod:`biobank.imports.coerce`); then the kind's row checks (the services'
   own helpers from :mod:`biobank.services.checks`, :mod:`biobank.domain.codes` ...); then the kind resolves the row's
   references (donor codes, lesion codes, parent specimen codes...) with one set-based query per chunk and builds
   the table record. Every problem becomes a :class:`RowError` (row, column, value, expected) and every coercion
   note a :class:`RowNote`; nothing stops at the first error. Validated records are spilled to a temporary file, so
   memory holds only what reference resolution needs (natural keys seen so far, the in-file parents).
2. **Write everything or nothing.** Only when no row has an error (and it is not a dry run) are the spilled records
   written, in the caller's transaction, in batches of 5,000 rows (``COPY`` on PostgreSQL, one ``INSERT ... SELECT``
   over a JSON array on SQLite: :func:`biobank.db.bulk.insert_rows`). Each new row's audit row, and a specimen's first
   custody event, are written by the database from the rows just inserted (one ``INSERT ... SELECT`` per batch:
   :func:`biobank.models.audit.record_inserted`); updates are audited with their old and new values
   (:func:`biobank.models.audit.record_bulk`). A database constraint that still refuses something rolls the whole import
   back and is reported as an error.
3. **Modes.** ``create`` refuses rows whose natural key already exists; ``upsert`` updates them, but only the
   columns present in the file whose value differs (an unchanged row writes nothing, not even an audit row), and
   never the identity columns (a row cannot move a specimen to another donor).

The validation pass is :mod:`biobank.imports.validate`; the write pass is here. A kind's spec is a
:class:`~biobank.imports.spec.Kind` (:mod:`biobank.imports.spec`); the kinds live in :mod:`biobank.imports.kinds`
and are looked up by name in :mod:`biobank.imports.registry`.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from biobank.config import get_settings
from biobank.db.bulk import PreparedRows, insert_prepared, next_ids, prepare_rows
from biobank.db.engine import refresh_statistics, sqlite_statistics
from biobank.db.integrity import translate_integrity_error
from biobank.domain.errors import BiobankError
from biobank.domain.plain import plain
from biobank.imports.columns import Context
from biobank.imports.read import ImportFormatError
from biobank.imports.registry import KINDS, get_kind, import_kind_names, kind_names
from biobank.imports.report import ImportReport, RowError, RowNote, errors_csv
from biobank.imports.spec import Kind, Resolver
from biobank.imports.validate import validate
from biobank.models import User
from biobank.models.audit import act_as, record_bulk, record_inserted
from biobank.models.base import utcnow
from biobank.services.auth import Action, require

# Callers import the entry point, its report and the kind lookups from here.
__all__ = [
    "MODES",
    "WRITE_ROWS",
    "ImportProgress",
    "ImportReport",
    "Mode",
    "RowError",
    "RowNote",
    "errors_csv",
    "get_kind",
    "kind_names",
    "kinds_reference",
    "run_import",
]

Mode = Literal["create", "upsert"]
#: ``progress(phase, advance, total)``: called as an import goes; ``phase`` is ``"validate"`` (reading, coercing and
#: checking rows: ``advance`` rows, ``total`` None as the row count is not known before the end) or ``"write"``
#: (``advance`` rows written of ``total``).
ImportProgress = Callable[[str, int, "int | None"], object]
MODES: tuple[str, ...] = ("create", "upsert")
#: Rows per INSERT executemany.
WRITE_ROWS = 5000


# ------------------------------------------------------------------------------------------------------ running


def run_import(
    session: Session,
    *,
    actor: User | None,
    kind: str | Kind,
    source: Any,
    filename: str | None = None,
    mode: str = "create",
    dry_run: bool = False,
    tz: tzinfo | None = None,
    dayfirst: bool = True,
    sheet: str | None = None,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Validate ``source`` (a path, bytes or a binary file) as a file of ``kind`` and, unless it has errors or this is
    a dry run, write it in the caller's transaction. Never commits; returns the report (errors are in it, not
    raised). The caller commits (``session_scope``); an error report means nothing was written. ``progress`` (see
    :data:`ImportProgress`) is told of every row read and every batch written.
    """
    require(actor, Action.enter)
    spec = kind if isinstance(kind, Kind) else get_kind(kind)
    if mode not in MODES:
        raise BiobankError(f"mode={mode!r}: choose create or upsert")
    if tz is None:
        tz = get_settings().zone
    if filename is None and isinstance(source, str | Path):
        filename = Path(source).name
    report = ImportReport(spec.name, mode, dry_run, filename)
    ctx = Context(tz, dayfirst)
    res = Resolver(session, ctx, mode)
    # Lookups go by key sets into the kind's table and the tables it points to: plan them on current statistics.
    refresh_statistics(session, [spec.table.name, *(fk.column.table.name for fk in spec.table.foreign_keys)])
    with tempfile.TemporaryFile() as spill:
        try:
            counted = None if progress is None else (lambda n: progress("validate", n, None))
            validate(spec, source, filename, sheet, ctx, res, report, spill, counted)
        except ImportFormatError as exc:
            report.add_error(RowError(0, "", "", "a CSV, TSV or .xlsx file", exc.message))
        if not report.ok or dry_run:
            return report
        spill.seek(0)
        savepoint = session.begin_nested()
        try:
            act_as(session, actor)
            writer = getattr(spec, "write_spilled", None)  # a kind recorded through its services (registry)
            total = report.inserted + report.updated
            if writer is not None:
                writer(session, spill, actor)
                if progress is not None:
                    progress("write", total, total)
            else:
                _write(spec, session, spill, actor, report,
                       None if progress is None else (lambda n: progress("write", n, total)))
            session.flush()
        except IntegrityError as exc:
            savepoint.rollback()
            _refused(report, str(translate_integrity_error(exc)))
            return report
        except BiobankError as exc:
            savepoint.rollback()
            _refused(report, str(exc))
            return report
        savepoint.commit()
    sqlite_statistics(session.connection())  # the planner's view of the tables just filled, committed with them
    report.written = True
    return report


def kinds_reference() -> str:
    """Every import kind as a Markdown table (name, what a row is, required columns), from the registry: the list
    ``docs/import-kinds.md`` holds (``tests/imports/test_import_reporting.py`` keeps the two equal)."""
    lines = ["| kind | what a row is | required columns |", "|---|---|---|"]
    for name in import_kind_names():
        spec = KINDS.get(name)
        if spec is None:  # a kind read through a mapping file (collection_log): no template, no fixed columns
            lines.append(f"| `{name}` | a lab's own wide log, read through a mapping file (`--map MAP.toml`; "
                         f"`--suggest-map` writes a first one) | named by the mapping file |")
            continue
        required = ", ".join(f"`{col.name}`" for col in spec.columns if col.required) or "—"
        about = " ".join(f"{spec.title}: {spec.help}".split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {about} | {required} |")
    return "\n".join(lines) + "\n"


def _refused(report: ImportReport, message: str) -> None:
    report.add_error(RowError(0, "", "", "", f"the database refused the import: {message}"))
    report.inserted = report.updated = 0


# ------------------------------------------------------------------------------------------------ the write pass


def _write(
    spec: Kind, session: Session, spill: Any, actor: User | None, report: ImportReport,
    written: Callable[[int], object] | None = None,
) -> None:
    """Write the spilled, validated rows in file order. A helper thread reads and prepares the next batch (records,
    driver values) while the database writes the current one; all statements run here, in the caller's thread."""
    actor_id = actor.id if actor is not None else None
    now = utcnow()
    written_ids: dict[Any, int] = {}
    dialect = session.get_bind().dialect.name
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="biobank-import") as pool:
        ahead = _Ahead(pool, _prepared_writes(spec, spill, actor_id, now, dialect))
        while (item := ahead.get()) is not _END:
            op, payload = item
            if op == "insert":
                # the next batch is prepared while the database derives this one's audit rows and custody events
                _insert_batch(spec, session, payload, written_ids, actor, on_written=ahead.start)
                if written is not None:
                    written(len(payload.records))
                continue
            ahead.start()
            _update_rows(spec, session, payload, actor_id, now)
            if written is not None:
                written(len(payload))


def _update_rows(spec: Kind, session: Session, payload: list[Any], actor_id: int | None, now: datetime) -> None:
    table = spec.table
    tracked = "created_by_id" in table.c
    versioned = "version" in table.c
    audit = []
    for _op, _number, changes, old, _pending in payload:
        assert old is not None
        values = dict(changes)
        if tracked:
            values["updated_at"] = now
            values["updated_by_id"] = actor_id
        statement = update(table).where(table.c.id == old["id"])
        if versioned:
            values["version"] = table.c.version + 1
        session.execute(statement.values(**values))
        audit.append((old["id"], {k: [plain(old.get(k)), plain(v)] for k, v in changes.items()}))
    record_bulk(session, table.name, audit, "update")


@dataclass
class _Batch:
    """Rows to insert together: their records, the in-file references still to replace by ids (row index ->
    {column: natural key}), and the driver values prepared from the records."""

    records: list[dict[str, Any]]
    pending: list[tuple[int, dict[str, Any]]]
    prepared: PreparedRows


def _prepared_writes(
    spec: Kind, spill: Any, actor_id: int | None, now: datetime, dialect: str
) -> Iterator[tuple[str, Any]]:
    """``("insert", _Batch)`` and ``("update", writes)`` in file order, from the spill. Touches no connection."""
    tracked = "created_by_id" in spec.table.c
    earlier: set[Any] = set()  # in-file keys of the rows in batches already handed out (self-referencing kinds)

    def batch_of(records: list[dict[str, Any]], pending: list[tuple[int, dict[str, Any]]]) -> _Batch:
        if spec.self_referencing:
            earlier.update(_natural(spec, rec) for rec in records)
        return _Batch(records, pending, prepare_rows(spec.table, records, dialect))

    while True:
        try:
            writes = pickle.load(spill)
        except EOFError:
            return
        # File order is kept (ids follow the rows); a row naming a row of the same batch closes the batch first.
        records: list[dict[str, Any]] = []
        pending: list[tuple[int, dict[str, Any]]] = []
        keys: set[Any] = set()
        for op, number, record, _old, refs in writes:
            if op != "insert":
                continue
            if refs and any(ref in keys for ref in refs.values()):
                yield "insert", batch_of(records, pending)
                records, pending, keys = [], [], set()
            rec = dict(record)
            for column, ref in refs.items():
                if ref not in earlier and ref not in keys:
                    raise BiobankError(f"row {number}: names a row that is not earlier in the file ({ref})")
                rec[column] = ref  # replaced by the id once written
            if refs:
                pending.append((len(records), refs))
            if tracked:
                rec["created_at"] = now
                rec["created_by_id"] = actor_id
            records.append(rec)
            if spec.self_referencing:
                keys.add(_natural(spec, rec))
            if len(records) >= WRITE_ROWS:
                yield "insert", batch_of(records, pending)
                records, pending, keys = [], [], set()
        if records:
            yield "insert", batch_of(records, pending)
        updates = [w for w in writes if w[0] == "update"]
        if updates:
            yield "update", updates


class _Ahead:
    """The items of an iterator, the next one computed on a helper thread from when :meth:`start` is called until
    :meth:`get` takes it: while the database works on the current batch (the drivers release the interpreter lock
    while they wait for it), preparing the next one costs the import no time. Exceptions come out of :meth:`get`."""

    def __init__(self, pool: ThreadPoolExecutor, items: Iterator[Any]) -> None:
        self._pool = pool
        self._items = items
        self._next: Any = None

    def start(self) -> None:
        if self._next is None:
            self._next = self._pool.submit(next, self._items, _END)

    def get(self) -> Any:
        self.start()
        item = self._next.result()
        self._next = None
        return item


_END = object()


def _insert_batch(
    spec: Kind,
    session: Session,
    batch: _Batch,
    written_ids: dict[Any, int],
    actor: User | None,
    *,
    on_written: Callable[[], None] | None = None,
) -> None:
    table = spec.table
    names = batch.prepared.names
    for index, refs in batch.pending:
        for column, ref in refs.items():
            batch.records[index][column] = batch.prepared.params[index][names.index(column)] = written_ids[ref]
    ids, columns = _insert_ids(session, table, batch)
    if on_written is not None:
        on_written()
    if spec.self_referencing:
        for rec, new_id in zip(batch.records, ids, strict=True):
            written_ids[_natural(spec, rec)] = new_id
    record_inserted(session, table, ids, columns=columns)
    spec.after_insert(session, list(zip(ids, batch.records, strict=True)), actor)


def _insert_ids(session: Session, table: Table, batch: _Batch) -> tuple[list[int], list[str] | None]:
    """Insert ``batch``; return the new ids in order and the columns given values (None: all).

    PostgreSQL: ids are drawn from the table's sequence first, then the rows go in by ``COPY``. SQLite would fall
    back to one statement per row for ordered ``RETURNING``; there the import holds the write lock (``BEGIN
    IMMEDIATE``) so the rowids are the next ones after the current maximum, which is checked after the insert.
    Other databases: ``INSERT ... RETURNING`` with SQLAlchemy's ordered insertmanyvalues.
    """
    dialect = session.get_bind().dialect.name
    count = len(batch.records)
    if dialect == "postgresql":
        ids = next_ids(session, table, count)
        return ids, insert_prepared(session, table, batch.prepared, ids=ids)
    if dialect != "sqlite":
        result = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), batch.records)
        return [r[0] for r in result], None

    before = session.execute(select(func.max(table.c.id))).scalar() or 0
    columns = insert_prepared(session, table, batch.prepared)
    found, low, high = session.execute(
        select(func.count(), func.min(table.c.id), func.max(table.c.id)).where(table.c.id > before)
    ).one()
    if (found, low, high) != (count, before + 1, before + count):
        raise BiobankError(f"{table.name}: new ids are not contiguous; import refused (another writer?)")
    return list(range(before + 1, before + count + 1)), columns


def _natural(spec: Kind, record: dict[str, Any]) -> Any:
    """The in-file key a self-referencing kind uses (its ``code`` unless the kind says otherwise)."""
    return spec.natural(record)
