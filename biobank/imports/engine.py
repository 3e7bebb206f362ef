"""The bulk import engine: one function that imports a file of one *kind* (what a spreadsheet row becomes), all or
nothing, with every error of the file reported.

How an import runs (:func:`run_import`):

1. **Validate every row.** Rows stream from :func:`biobank.imports.read.iter_rows` in chunks; every cell goes through
   its column's coercer (:mod:`biobank.imports.coerce`); then the kind's row checks (the services' own helpers from
   :mod:`biobank.services.checks`, :mod:`biobank.domain.codes` ...); then the kind resolves the chunk's references
   (donor codes, lesion codes, parent specimen codes...) with one set-based query per chunk and builds the table
   records. Every problem becomes a :class:`RowError` (row, column, value, expected) and every coercion note a
   :class:`RowNote`; nothing stops at the first error.
2. **Write as it goes, keep all or nothing.** While no row has failed, each validated chunk is written in a savepoint
   of the caller's transaction as soon as it is checked (on PostgreSQL by a helper thread, while the next chunk is
   read and checked: :class:`_Stream`; the next chunk's lookups wait for it only when they reach the database,
   :class:`_Gated`; Python's cyclic garbage collector waits meanwhile, :func:`_collector_paused`), in batches of 5,000 rows (``COPY`` on PostgreSQL, one ``INSERT ... SELECT``
   over a JSON array on SQLite: :func:`biobank.db.bulk.insert_prepared`). Each new row's audit row, and a
   specimen's first custody event, are written by the database from the rows just inserted (one ``INSERT ...
   SELECT`` per batch: :func:`biobank.models.audit.record_inserted`); updates are audited with their old and new
   values (:func:`biobank.models.audit.record_bulk`). The first failed row stops the writing (the rest is still
   validated, so every error is reported) and the savepoint is rolled back: nothing of the file stays. A database
   constraint or trigger that refuses a chunk does the same and is reported as an error. A dry run writes and
   checks everything the same way, the database's own constraints included, then rolls it all back. Kinds
   recorded through their services (``write_spilled``) are validated whole first, spilled to a temporary file and
   then written.
3. **Modes.** ``create`` refuses rows whose natural key already exists; ``upsert`` updates them, but only the
   columns present in the file whose value differs (an unchanged row writes nothing, not even an audit row), and
   never the identity columns (a row cannot move a specimen to another donor).

The validation pass is :mod:`biobank.imports.validate`; the write pass is here. A kind's spec is a
:class:`~biobank.imports.spec.Kind` (:mod:`biobank.imports.spec`); the kinds live in :mod:`biobank.imports.kinds`
and are looked up by name in :mod:`biobank.imports.registry`.
"""

from __future__ import annotations

import gc
import pickle
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Literal, cast

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
from biobank.queries.search import code_index_deferred
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
    """Validate ``source`` (a path, bytes or a binary file) as a file of ``kind``, writing it as it goes in a
    savepoint of the caller's transaction; the savepoint is kept unless the file has an error, the database refused
    a row, or this is a dry run (then everything written is rolled back). Never commits; returns the report (errors
    are in it, not raised). The caller commits (``session_scope``); an error report means nothing stays written.
    ``progress`` (see :data:`ImportProgress`) is told of every row read and every chunk written.
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
    through_services = getattr(spec, "write_spilled", None)  # a kind recorded through its services (registry)
    savepoint = session.begin_nested()
    act_as(session, actor)
    stream: _Stream | None = None
    try:
        with tempfile.TemporaryFile() as spill, code_index_deferred(session.connection()), _collector_paused():
            if through_services is None:
                stream = _Stream(spec, session, actor, savepoint, report,
                                 None if progress is None else (lambda n: progress("write", n, None)))
                # The validation pass reaches the database only through the resolver, which waits for the writer
                # first: a chunk's lookups are built in Python while the chunk before is still being written.
                res.session = cast(Session, _Gated(session, stream.wait))
                sink, barrier = stream.submit, None
            else:
                sink, barrier = (lambda writes: pickle.dump(writes, spill, protocol=pickle.HIGHEST_PROTOCOL)), None
            try:
                counted = None if progress is None else (lambda n: progress("validate", n, None))
                validate(spec, source, filename, sheet, ctx, res, report, sink, counted, barrier)
            except ImportFormatError as exc:
                report.add_error(RowError(0, "", "", "a CSV, TSV or .xlsx file", exc.message))
            finally:
                if stream is not None:
                    stream.close()
            if progress is not None and stream is not None and report.ok:
                progress("write", 0, report.inserted + report.updated)  # the total, known once every row is read
            if through_services is not None and report.ok:
                spill.seek(0)
                through_services(session, spill, actor)
                if progress is not None:
                    progress("write", report.inserted + report.updated, report.inserted + report.updated)
            if report.ok:
                session.flush()
    except (IntegrityError, BiobankError) as exc:
        _refuse(report, savepoint, exc)
    if stream is not None and stream.refused:
        report.inserted = report.updated = 0
    if savepoint.is_active and (not report.ok or dry_run):
        savepoint.rollback()  # every row written so far goes; a dry run has had the database check them too
    if not report.ok or dry_run:
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


_COLLECTOR_LOCK = threading.Lock()
_COLLECTOR = {"imports": 0, "was_enabled": True}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector waits while imports run (in this process), and resumes after the last one.

    A full collection walks every object the import holds (its rows, records and reports: hundreds of thousands)
    and stops every thread meanwhile, the writer's too: measured on 100,000 specimens, the database sat idle about
    1.5 s between the writer's statements. The import's rows hold no reference cycles and are freed by reference
    counting as they go; whatever cyclic garbage there is waits for the collector's next run after the import."""
    with _COLLECTOR_LOCK:
        if _COLLECTOR["imports"] == 0:
            _COLLECTOR["was_enabled"] = gc.isenabled()
            gc.disable()
        _COLLECTOR["imports"] += 1
    try:
        yield
    finally:
        with _COLLECTOR_LOCK:
            _COLLECTOR["imports"] -= 1
            if _COLLECTOR["imports"] == 0 and _COLLECTOR["was_enabled"]:
                gc.enable()


def _refuse(report: ImportReport, savepoint: Any, exc: Exception) -> None:
    """The database (or a service) refused a write: every row written so far goes, and the refusal is an error."""
    if savepoint.is_active:
        savepoint.rollback()
    message = str(translate_integrity_error(exc)) if isinstance(exc, IntegrityError) else str(exc)
    report.add_error(RowError(0, "", "", "", f"the database refused the import: {message}"))
    report.inserted = report.updated = 0


# ------------------------------------------------------------------------------------------------ the write pass


class _Gated:
    """The import's session as the validation pass sees it (:attr:`Resolver.session`): any use of it first waits
    for the writer (``gate``), so a lookup sees every chunk before it written and the connection is never used by
    two threads at once; asking for its bind (the dialect) does not wait. Until a kind's resolve reaches the
    database, it builds its records while the writer writes the chunk before."""

    __slots__ = ("_gate", "_session")
    _FREE = frozenset({"get_bind", "bind"})

    def __init__(self, session: Session, gate: Callable[[], object]) -> None:
        self._session = session
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        if name not in self._FREE:
            self._gate()
        return getattr(self._session, name)


class _Stream:
    """Writes each validated chunk in the import's savepoint while the next chunk is read, coerced and checked.

    :meth:`submit` hands a chunk's writes (in file order) to a writer; :meth:`wait` returns when it is written, and is
    called before the validation pass queries the database again (the connection is the import's one: the resolver's
    session waits first, :class:`_Gated`) and at the end. On PostgreSQL the writer is a helper thread, so the server
    inserts, checks and indexes one chunk (the driver lets go of the interpreter meanwhile) while Python validates
    the next; on SQLite, whose engine runs in this process, the chunk is written at once. A kind whose
    ``after_insert`` nothing later in the import reads (``Kind.after_insert_later``: the specimens' custody events)
    has it written for a chunk when the next chunk is handed over, so the server writes it while this thread
    prepares that chunk's rows. A refusal (a constraint, a trigger) rolls the savepoint back and is reported; the
    rows after it are still validated, so every error of the file is reported, and nothing more is written.
    Progress is reported from the caller's thread only (a dashboard's bar cannot be moved from another thread)."""

    def __init__(self, spec: Kind, session: Session, actor: User | None, savepoint: Any, report: ImportReport,
                 written: Callable[[int], object] | None) -> None:
        self.spec, self.session, self.actor, self.savepoint, self.report = spec, session, actor, savepoint, report
        self.written = written
        self.refused = False
        self.actor_id = actor.id if actor is not None else None
        self.now = utcnow()
        self.dialect = session.get_bind().dialect.name
        self.earlier: set[Any] = set()  # in-file keys of the rows already written (self-referencing kinds)
        self.written_ids: dict[Any, int] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="biobank-import") \
            if self.dialect == "postgresql" else None
        self.pending: list[Future[int]] = []
        self.later = self.pool is not None and spec.after_insert_later
        self.after: list[list[tuple[int, dict[str, Any]]]] = []  # inserted rows whose after_insert is still to come
        self.broken = False  # set by the writer thread when a job failed: the jobs queued behind it do nothing

    def submit(self, writes: list[Any]) -> None:
        """Write ``writes`` (one chunk); its batches' driver values are prepared here, so the writer thread's
        time is the database's."""
        self.wait()
        if self.refused:
            return
        if self.after:
            self._queue(self._after_insert, self.after)  # the server writes these while the chunk is prepared
            self.after = []
        try:
            items = list(_chunk_writes(self.spec, writes, self.actor_id, self.now, self.dialect, self.earlier))
        except BiobankError as exc:
            self.wait()
            if not self.refused:
                self.refused = True
                _refuse(self.report, self.savepoint, exc)
            return
        self._queue(self._write, items)

    def _queue(self, job: Callable[[Any], int], payload: Any) -> None:
        if self.pool is None:
            self._finished(lambda: job(payload))
        else:
            self.pending.append(self.pool.submit(self._guarded, job, payload))

    def _guarded(self, job: Callable[[Any], int], payload: Any) -> int:
        """Run in the writer thread: ``job`` unless one queued before it failed (its refusal is being reported)."""
        if self.broken:
            return 0
        try:
            return job(payload)
        except BaseException:
            self.broken = True
            raise

    def wait(self) -> None:
        while self.pending:
            self._finished(self.pending.pop(0).result)

    def close(self) -> None:
        try:
            self.wait()
            if self.after and not self.refused:
                self._queue(self._after_insert, self.after)
                self.wait()
        finally:
            self.after = []
            if self.pool is not None:
                self.pool.shutdown(wait=True)

    def _finished(self, result: Callable[[], int]) -> None:
        try:
            count = result()
        except (IntegrityError, BiobankError) as exc:
            if not self.refused:  # a job queued behind the failed one did nothing
                self.refused = True
                _refuse(self.report, self.savepoint, exc)
            return
        if self.written is not None and count and not self.refused:
            self.written(count)

    def _write(self, items: list[tuple[str, Any]]) -> int:
        count = 0
        for op, payload in items:
            if op == "insert":
                inserted = _insert_batch(self.spec, self.session, payload, self.written_ids)
                if self.later:
                    self.after.append(inserted)
                else:
                    self.spec.after_insert(self.session, inserted, self.actor)
                count += len(payload.records)
            else:
                _update_rows(self.spec, self.session, payload, self.actor_id, self.now)
                count += len(payload)
        self.session.flush()
        return count

    def _after_insert(self, batches: list[list[tuple[int, dict[str, Any]]]]) -> int:
        for inserted in batches:
            self.spec.after_insert(self.session, inserted, self.actor)
        self.session.flush()
        return 0


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


def _chunk_writes(
    spec: Kind, writes: list[Any], actor_id: int | None, now: datetime, dialect: str, earlier: set[Any]
) -> Iterator[tuple[str, Any]]:
    """``("insert", _Batch)`` and ``("update", writes)`` in file order, from one validated chunk. Touches no
    connection. ``earlier`` holds the in-file keys of the rows handed out before (self-referencing kinds)."""
    tracked = "created_by_id" in spec.table.c

    def batch_of(records: list[dict[str, Any]], pending: list[tuple[int, dict[str, Any]]]) -> _Batch:
        if spec.self_referencing:
            earlier.update(_natural(spec, rec) for rec in records)
        return _Batch(records, pending, prepare_rows(spec.table, records, dialect))

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


def _insert_batch(
    spec: Kind,
    session: Session,
    batch: _Batch,
    written_ids: dict[Any, int],
) -> list[tuple[int, dict[str, Any]]]:
    """Insert ``batch`` with its audit rows; return the new rows (id, record) for the kind's ``after_insert``."""
    table = spec.table
    names = batch.prepared.names
    for index, refs in batch.pending:
        for column, ref in refs.items():
            batch.records[index][column] = batch.prepared.params[index][names.index(column)] = written_ids[ref]
    ids, columns = _insert_ids(session, table, batch)
    if spec.self_referencing:
        for rec, new_id in zip(batch.records, ids, strict=True):
            written_ids[_natural(spec, rec)] = new_id
    record_inserted(session, table, ids, columns=columns)
    return list(zip(ids, batch.records, strict=True))


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
