"""The bulk import engine: a registry of *kinds* (what a spreadsheet row becomes) and one function that imports a
file of one kind with every rule checked before anything is written.

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

Adding a kind is adding one class to a module and calling :func:`register` (``placements`` is built like this):

.. code-block:: python

    @register
    class Placements(Kind):
        name = "placements"
        title = "Storage placements"
        table = Placement.__table__
        order = 80                                   # after specimens in a full load
        key = ("specimen_code",)                     # natural key: file columns
        identity = frozenset({"specimen_id"})        # table columns an upsert may not change
        columns = (
            text_col("specimen_code", "Code of the specimen placed", required=True),
            text_col("container_code", "Code of the box or bag", required=True),
            text_col("position", "Grid position such as A1 (empty for containers without a grid)"),
        )

        def check(self, row):                        # row-local rules; raise biobank.domain.errors (invalid(...))
            ...

        def resolve(self, res, rows):                # set-based lookups; set row.record / row.existing or row.fail()
            ...

        def export_rows(self, session):             # the current table in template format (round trip)
            ...

The spec's columns give the template (:mod:`biobank.imports.templates`), the CLI and the dashboard page for free.
The kinds live in :mod:`biobank.imports.kinds`. A self-referencing kind names its in-file key with :meth:`Kind.natural`
(a code by default; a passage's is its model and label).
"""

from __future__ import annotations

import csv
import io
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from sqlalchemy import Table, insert, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from biobank.db.bulk import PreparedRows, key_in, prepare_rows
from biobank.db.engine import refresh_statistics
from biobank.domain.errors import BiobankError
from biobank.imports import coerce as c
from biobank.imports.read import ImportFormatError, iter_rows
from biobank.models import User
from biobank.models.audit import act_as, record_bulk, record_inserted
from biobank.models.base import utcnow
from biobank.services.auth import Action, require

Mode = Literal["create", "upsert"]
MODES: tuple[str, ...] = ("create", "upsert")
#: Rows validated per chunk (one set of lookups per chunk).
CHUNK_ROWS = 5000
#: Rows per INSERT executemany.
WRITE_ROWS = 5000
#: At most this many errors and notes are kept for the report (all are counted).
MAX_REPORTED = 20_000
_CACHE_LIMIT = 50_000


# ------------------------------------------------------------------------------------------------ report types


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in the file (the lead's "ImportError"; named so as not to shadow Python's builtin).

    ``row`` is the spreadsheet row number (0 for the file as a whole), ``column`` the header, ``value`` the raw
    cell as text, ``expected`` what would have been accepted, ``message`` the whole sentence.
    """

    row: int
    column: str
    value: str
    expected: str
    message: str


@dataclass(frozen=True, slots=True)
class RowNote:
    """A cell read in a way its author might not expect (``'LN2' read as snap_frozen``)."""

    row: int
    column: str
    note: str


@dataclass
class ImportReport:
    kind: str
    mode: str
    dry_run: bool
    filename: str | None = None
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    notes: list[RowNote] = field(default_factory=list)
    error_count: int = 0
    note_count: int = 0
    file_notes: list[str] = field(default_factory=list)
    written: bool = False

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(error)

    def add_note(self, note: RowNote) -> None:
        self.note_count += 1
        if len(self.notes) < MAX_REPORTED:
            self.notes.append(note)

    def summary(self) -> str:
        verb = "would insert" if self.dry_run or not self.ok else "inserted"
        upd = "would update" if self.dry_run or not self.ok else "updated"
        text = (
            f"{self.kind}: {self.rows} row(s) read; {verb} {self.inserted}, {upd} {self.updated}, "
            f"unchanged {self.unchanged}; {self.error_count} error(s), {self.note_count} note(s)"
        )
        if not self.ok:
            text += "; nothing was written"
        elif self.dry_run:
            text += "; dry run, nothing was written"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "file": self.filename,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "written": self.written,
            "error_count": self.error_count,
            "note_count": self.note_count,
            "errors": [_slots(e) for e in self.errors],
            "notes": [_slots(n) for n in self.notes],
            "file_notes": self.file_notes,
        }


def _slots(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


ERROR_CSV_COLUMNS = ("row", "column", "value", "expected", "message")


def errors_csv(report: ImportReport, *, include_notes: bool = False) -> str:
    """The error report as CSV (``row,column,value,expected,message``); notes too when asked (``expected`` = note)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*ERROR_CSV_COLUMNS, "severity") if include_notes else ERROR_CSV_COLUMNS)
    for e in report.errors:
        cells = (e.row, e.column, e.value, e.expected, e.message)
        writer.writerow((*cells, "error") if include_notes else cells)
    if include_notes:
        for n in report.notes:
            writer.writerow((n.row, n.column, "", "", n.note, "note"))
    return out.getvalue()


# ------------------------------------------------------------------------------------------------------ columns


@dataclass(frozen=True)
class Context:
    """What coercion depends on besides the cell: the lab's zone for naive times, and day-first dates."""

    tz: tzinfo
    dayfirst: bool = True


Coerce = Callable[[Any, Context], c.Coerced[Any]]


@dataclass(frozen=True)
class Column:
    """One template column: its coercer, whether it must be filled, and the help printed in the template."""

    name: str
    coerce: Coerce
    help: str
    required: bool = False
    vocabulary: tuple[str, ...] = ()
    type: str = "text"
    #: Table columns this file column sets (an upsert updates them only when the column is in the file).
    targets: tuple[str, ...] | None = None

    @property
    def sets(self) -> tuple[str, ...]:
        return self.targets if self.targets is not None else (self.name,)


def text_col(name: str, help: str, *, required: bool = False, max_length: int | None = None,
             targets: tuple[str, ...] | None = None) -> Column:
    def run(raw: Any, _ctx: Context) -> c.Coerced[str]:
        return c.text(raw, max_length=max_length)

    return Column(name, run, help, required, type="text", targets=targets)


def int_col(name: str, help: str, *, required: bool = False, minimum: int | None = None,
            maximum: int | None = None) -> Column:
    def run(raw: Any, _ctx: Context) -> c.Coerced[int]:
        return c.integer(raw, minimum=minimum, maximum=maximum)

    return Column(name, run, help, required, type="whole number")


def num_col(name: str, help: str, *, required: bool = False, minimum: float | None = None,
            maximum: float | None = None) -> Column:
    def run(raw: Any, _ctx: Context) -> c.Coerced[float]:
        return c.decimal(raw, minimum=minimum, maximum=maximum)

    return Column(name, run, help, required, type="number")


def pct_col(name: str, help: str) -> Column:
    def run(raw: Any, _ctx: Context) -> c.Coerced[float]:
        return c.percent(raw)

    return Column(name, run, help, type="percent 0-100")


def bool_col(name: str, help: str, *, required: bool = False) -> Column:
    def run(raw: Any, _ctx: Context) -> c.Coerced[bool]:
        return c.boolean(raw)

    return Column(name, run, help, required, type="yes/no")


def vocab_col(name: str, enum: type[StrEnum], help: str, *, required: bool = False) -> Column:
    coercer = c.vocab(enum)

    def run(raw: Any, _ctx: Context) -> c.Coerced[Any]:
        result = coercer(raw)
        return c.Coerced(None if result.value is None else result.value.value, result.note)

    return Column(name, run, help, required, vocabulary=tuple(m.value for m in enum), type="vocabulary")


def date_col(name: str, help: str, *, required: bool = False) -> Column:
    def run(raw: Any, ctx: Context) -> c.Coerced[Any]:
        return c.calendar_date(raw, dayfirst=ctx.dayfirst)

    return Column(name, run, help, required, type="date")


def datetime_col(name: str, help: str, *, required: bool = False) -> Column:
    def run(raw: Any, ctx: Context) -> c.Coerced[datetime]:
        return c.date_time(raw, tz=ctx.tz, dayfirst=ctx.dayfirst)

    return Column(name, run, help, required, type="date and time (lab time zone unless an offset is given)")


def quantity_col(name: str, help: str, *, required: bool = False, targets: tuple[str, ...] | None = None) -> Column:
    """A quantity with its unit in the cell (``5 mg``); a bare number takes the unit from the ``unit`` column."""

    def run(raw: Any, _ctx: Context) -> c.Coerced[Any]:
        return _amount(raw)

    return Column(name, run, help, required, type="quantity", targets=targets)


def _amount(raw: Any) -> c.Coerced[Any]:
    """A bare number (unit given elsewhere) as ``(value, None)``, or a quantity with a unit as ``(value, unit)``."""
    try:
        number = c.decimal(raw, minimum=0)
    except c.CellError:
        quantity = c.quantity(raw)
        if quantity.value is None:
            return c.Coerced(None)
        return c.Coerced((quantity.value.value, quantity.value.unit.value), quantity.note)
    return c.Coerced(None if number.value is None else (number.value, None), number.note)


# ---------------------------------------------------------------------------------------------------- the kinds


class RowFailed(Exception):
    """Raised by :meth:`Staged.fail` to abandon a row after recording its error."""


@dataclass(eq=False)
class Staged:
    """A row on its way in: coerced ``values`` by file column, then the table ``record`` the kind builds."""

    number: int
    values: dict[str, Any]
    raw: dict[str, Any]
    record: dict[str, Any] | None = None
    #: The current table row with the same natural key (upsert), or None.
    existing: dict[str, Any] | None = None
    #: Table column -> natural key of a row of the same kind earlier in this file (e.g. parent_id -> parent code).
    pending: dict[str, Any] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)

    def error(self, column: str, message: str, *, expected: str = "", value: Any = None) -> None:
        shown = self.raw.get(column) if value is None else value
        self.errors.append(RowError(self.number, column, "" if shown is None else str(shown), expected, message))

    def fail(self, column: str, message: str, *, expected: str = "", value: Any = None) -> RowFailed:
        self.error(column, message, expected=expected, value=value)
        return RowFailed()


class Kind:
    """A declarative import spec; see the module docstring. Subclasses set the class attributes."""

    name: ClassVar[str]
    noun: ClassVar[str]  # one row, in error messages ("specimen")
    title: ClassVar[str]
    help: ClassVar[str] = ""
    table: ClassVar[Table]
    order: ClassVar[int]
    columns: ClassVar[tuple[Column, ...]]
    key: ClassVar[tuple[str, ...]]
    identity: ClassVar[frozenset[str]] = frozenset()
    #: Whether rows may name another row of the same file (``pending``); such rows must come later in the file.
    self_referencing: ClassVar[bool] = False

    def check(self, row: Staged) -> None:
        """Row-local rules; raise a :class:`~biobank.domain.errors.BiobankError` (``invalid(field, value, why)``)."""

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        """Set-based lookups for a chunk of checked rows: set ``record`` and ``existing`` or record errors."""
        raise NotImplementedError

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        """The table's current rows in template format (for the export → import round trip)."""
        raise NotImplementedError

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """Side effects of new rows (custody events, status changes), in the same transaction."""

    def natural(self, record: dict[str, Any]) -> Any:
        """The in-file key a self-referencing kind's rows are named by (``pending`` values): its ``code``."""
        return record["code"]

    def column(self, name: str) -> Column:
        return self._by_name()[name]

    @classmethod
    def _by_name(cls) -> dict[str, Column]:
        cache = cls.__dict__.get("_columns_by_name")
        if cache is None:
            cache = {col.name: col for col in cls.columns}
            cls._columns_by_name = cache  # type: ignore[attr-defined]
        return cache

    def key_of(self, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        key = tuple(values.get(name) for name in self.key)
        return None if any(part is None for part in key) else key


KINDS: dict[str, Kind] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Add a kind to the registry (a class decorator)."""
    KINDS[cls.name] = cls()
    return cls


def get_kind(name: str) -> Kind:
    from biobank.imports import kinds as _kinds  # noqa: F401  (registers the foundation kinds)

    kind = KINDS.get(name.strip().lower().replace("-", "_"))
    if kind is None:
        raise BiobankError(f"kind={name!r}: not an import kind; choose one of {', '.join(kind_names())}")
    return kind


def kind_names() -> list[str]:
    from biobank.imports import kinds as _kinds  # noqa: F401

    return [k.name for k in sorted(KINDS.values(), key=lambda k: k.order)]


# -------------------------------------------------------------------------------------------------- resolution


class Resolver:
    """Set-based lookups shared by the kinds during one import, with small caches of what was found."""

    def __init__(self, session: Session, ctx: Context, mode: str) -> None:
        self.session = session
        self.ctx = ctx
        self.mode = mode
        self.cache: dict[str, dict[Any, Any]] = {}
        #: Per-kind state that must outlive a chunk (e.g. specimens defined earlier in the file).
        self.state: dict[str, Any] = {}

    def lookup(
        self,
        name: str,
        keys: Iterable[Any],
        fetch: Callable[[list[Any]], Mapping[Any, Any]],
    ) -> dict[Any, Any]:
        """``{key: found}`` for ``keys`` (missing keys absent), fetching only keys not cached yet, 500 at a time."""
        cache = self.cache.setdefault(name, {})
        wanted = {k for k in keys if k is not None}
        missing = [k for k in wanted if k not in cache]
        for start in range(0, len(missing), 500):
            batch = missing[start : start + 500]
            found = fetch(batch)
            for k in batch:
                cache[k] = found.get(k)
        if len(cache) > 4 * _CACHE_LIMIT:
            keep = {k: cache[k] for k in wanted if k in cache}
            cache.clear()
            cache.update(keep)
        return {k: cache[k] for k in wanted if cache.get(k) is not None}

    def rows_by(self, table: Table, columns: Sequence[str], keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Full rows of ``table`` whose ``columns`` equal one of ``keys`` (one query per 500 keys)."""
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        cols = [table.c[name] for name in columns]
        # A one-column key set goes as one parameter (biobank.db.bulk.key_in), thousands of keys per query; composite
        # keys as IN lists of 500.
        dialect = self.session.get_bind().dialect.name
        single = len(cols) == 1
        size = 10_000 if single else 500
        for start in range(0, len(keys), size):
            batch = keys[start : start + size]
            where = key_in(cols[0], [k[0] for k in batch], dialect) if single else tuple_(*cols).in_(batch)
            for row in self.session.execute(table.select().where(where)).mappings():
                out[tuple(row[name] for name in columns)] = dict(row)
        return out


# ------------------------------------------------------------------------------------------------------ running


def _coerce_cached(column: Column, ctx: Context, cache: dict[Any, Any], raw: Any) -> c.Coerced[Any]:
    """Coerce with a per-column memo: bulk files repeat the same vocabulary words, units and dates."""
    hashable = isinstance(raw, str | int | float)
    if hashable:
        hit = cache.get(raw)
        if hit is not None:
            if isinstance(hit, c.CellError):
                raise hit
            return hit  # type: ignore[no-any-return]
    try:
        result = column.coerce(raw, ctx)
    except c.CellError as exc:
        if hashable:
            if len(cache) > _CACHE_LIMIT:
                cache.clear()
            cache[raw] = exc
        raise
    if hashable:
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        cache[raw] = result
    return result


def _shown(raw: Any) -> str:
    if raw is None:
        return ""
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= 80 else text[:79] + "…"


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
) -> ImportReport:
    """Validate ``source`` (a path, bytes or a binary file) as a file of ``kind`` and, unless it has errors or this is
    a dry run, write it in the caller's transaction. Never commits; returns the report (errors are in it, not
    raised). The caller commits (``session_scope``); an error report means nothing was written.
    """
    require(actor, Action.enter)
    spec = kind if isinstance(kind, Kind) else get_kind(kind)
    if mode not in MODES:
        raise BiobankError(f"mode={mode!r}: choose create or upsert")
    if tz is None:
        from biobank.config import get_settings

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
            _validate(spec, source, filename, sheet, ctx, res, report, spill)
        except ImportFormatError as exc:
            report.add_error(RowError(0, "", "", "a CSV, TSV or .xlsx file", exc.message))
        if not report.ok or dry_run:
            return report
        spill.seek(0)
        savepoint = session.begin_nested()
        try:
            act_as(session, actor)
            _write(spec, session, spill, actor, report)
            session.flush()
        except IntegrityError as exc:
            savepoint.rollback()
            from biobank.db.integrity import translate_integrity_error

            _refused(report, str(translate_integrity_error(exc)))
            return report
        except BiobankError as exc:
            savepoint.rollback()
            _refused(report, str(exc))
            return report
        savepoint.commit()
    report.written = True
    return report


def _refused(report: ImportReport, message: str) -> None:
    report.add_error(RowError(0, "", "", "", f"the database refused the import: {message}"))
    report.inserted = report.updated = 0


def _validate(
    spec: Kind,
    source: Any,
    filename: str | None,
    sheet: str | None,
    ctx: Context,
    res: Resolver,
    report: ImportReport,
    spill: Any,
) -> None:
    rows = iter_rows(source, filename=filename, sheet=sheet)
    with rows:
        columns = _check_header(spec, rows.headers, rows.header_row, report)
        report.file_notes.extend(rows.notes)
        if columns is None:
            return
        present = frozenset(col.name for col in columns)
        res.state["present"] = present
        plan: list[tuple[Column, dict[Any, Any]]] = [(col, {}) for col in columns]
        seen: dict[tuple[Any, ...], int] = {}
        chunk: list[Staged] = []
        for source_row in rows:
            report.rows += 1
            chunk.append(_coerce_row(spec, plan, ctx, source_row.number, source_row.cells, report))
            if len(chunk) >= CHUNK_ROWS:
                _finish_chunk(spec, chunk, res, seen, report, spill, present)
                chunk = []
        if chunk:
            _finish_chunk(spec, chunk, res, seen, report, spill, present)
        if report.rows == 0:
            report.add_error(RowError(0, "", "", "at least one data row", "the file has a header but no data rows"))


def _check_header(spec: Kind, headers: Sequence[str], header_row: int, report: ImportReport) -> list[Column] | None:
    known = spec._by_name()
    if not headers:
        report.add_error(RowError(0, "", "", "a header row", "the file is empty: no header row was found"))
        return None
    missing = [col.name for col in spec.columns if col.required and col.name not in headers]
    for name in missing:
        report.add_error(
            RowError(header_row, name, "", f"a column named {name}",
                     f"required column '{name}' is missing (the template lists the columns)")
        )
    for header in headers:
        if header and header not in known:
            report.file_notes.append(f"column '{header}' is not a {spec.name} column; it was ignored")
    if missing:
        return None
    return [known[h] for h in dict.fromkeys(headers) if h in known]


_MEMO_TYPES = frozenset({str, int, float})


def _coerce_row(
    spec: Kind,
    plan: list[tuple[Column, dict[Any, Any]]],
    ctx: Context,
    number: int,
    cells: dict[str, Any],
    report: ImportReport,
) -> Staged:
    values: dict[str, Any] = {}
    row = Staged(number, values, cells)
    get = cells.get
    for col, cache in plan:
        raw = get(col.name)
        # Fast path: a value this column has already read (vocabulary words, units, times repeat in bulk files).
        result = cache.get(raw) if raw.__class__ in _MEMO_TYPES else None
        if (result is not None and result.__class__ is c.Coerced and result.note is None
                and (result.value is not None or not col.required)):
            values[col.name] = result.value
            continue
        try:
            result = _coerce_cached(col, ctx, cache, raw)
        except c.CellError as exc:
            row.errors.append(RowError(number, col.name, _shown(raw), exc.expected, exc.message))
            continue
        except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:  # a coercer bug must not abort
            row.errors.append(RowError(number, col.name, _shown(raw), col.type, f"cannot read this cell ({exc})"))
            continue
        values[col.name] = result.value
        if result.note:
            report.add_note(RowNote(number, col.name, result.note))
        if result.value is None and col.required:
            row.errors.append(RowError(number, col.name, _shown(raw), col.type, f"{col.name} is required"))
    return row


def _finish_chunk(
    spec: Kind,
    chunk: list[Staged],
    res: Resolver,
    seen: dict[tuple[Any, ...], int],
    report: ImportReport,
    spill: Any,
    present: frozenset[str],
) -> None:
    good: list[Staged] = []
    for row in chunk:
        if not row.errors:
            try:
                spec.check(row)  # may fill derived key parts (a region's code from lesion and label)
            except RowFailed:
                pass
            except BiobankError as exc:
                column = (exc.field or "").split(".")[-1] if exc.field else ""
                row.error(column, str(exc), value=exc.value, expected=_expected(exc))
        key = spec.key_of(row.values)
        if key is not None:
            first = seen.get(key)
            if first is not None:
                row.error(spec.key[-1], f"duplicate {'/'.join(spec.key)} {'/'.join(map(str, key))}: "
                          f"already given in row {first}", expected="each key once per file")
            else:
                seen[key] = row.number
        if not row.errors:
            good.append(row)
    if good:
        spec.resolve(res, good)
        for row in good:
            if not row.errors and row.record is None:
                row.error("", "row could not be resolved")
    writes: list[tuple[str, int, dict[str, Any], dict[str, Any] | None, dict[str, Any]]] = []
    for row in chunk:
        if row.errors:
            for error in row.errors:
                report.add_error(error)
            continue
        assert row.record is not None
        if row.existing is None:
            report.inserted += 1
            writes.append(("insert", row.number, row.record, None, row.pending))
            continue
        if res.mode == "create":
            shown = "/".join(str(v) for v in (row.values.get(k) for k in spec.key))
            report.add_error(RowError(row.number, spec.key[-1], shown, "a new key (or --mode upsert)",
                                      f"{spec.noun} {shown} already exists; use upsert mode to update it"))
            continue
        changes = _changes(spec, row, present)
        if changes is None:
            for error in row.errors:
                report.add_error(error)
            continue
        if changes:
            report.updated += 1
            writes.append(("update", row.number, changes, {"id": row.existing["id"],
                                                             **{k: row.existing.get(k) for k in changes}}, {}))
        else:
            report.unchanged += 1
    if report.ok and writes:
        pickle.dump(writes, spill, protocol=pickle.HIGHEST_PROTOCOL)


def _expected(exc: BiobankError) -> str:
    message = str(exc)
    return message.split(": ", 1)[1] if ": " in message else message


def _changes(spec: Kind, row: Staged, present: frozenset[str]) -> dict[str, Any] | None:
    """The columns an upsert changes (only those the file has), or None when it would change an identity column."""
    assert row.record is not None and row.existing is not None
    for name in spec.identity:
        if name in row.record and row.record[name] != row.existing.get(name):
            row.error(name, f"{name} of an existing row cannot be changed by an import "
                      f"(it is {row.existing.get(name)!r}, the file says {row.record[name]!r})",
                      expected="the current value")
            return None
    settable = {target for col in spec.columns if col.name in present for target in col.sets}
    return {
        name: value
        for name, value in row.record.items()
        if name in settable and name not in spec.identity and _differs(row.existing.get(name), value)
    }


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        return abs(old - new) > 1e-9 * max(1.0, abs(old))
    return bool(old != new)


def _write(spec: Kind, session: Session, spill: Any, actor: User | None, report: ImportReport) -> None:
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
                continue
            ahead.start()
            _update_rows(spec, session, payload, actor_id, now)


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
        audit.append((old["id"], {k: [_plain(old.get(k)), _plain(v)] for k, v in changes.items()}))
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
    from sqlalchemy import func, select

    from biobank.db.bulk import insert_prepared, next_ids

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


def _plain(value: Any) -> Any:
    from biobank.models.audit import _plain as plain

    return plain(value)
