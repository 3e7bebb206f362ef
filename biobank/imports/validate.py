"""The validation pass of an import (:func:`validate`): the whole file is read, coerced, checked and resolved, every
error reported; each chunk's valid writes go to the engine as soon as the chunk is checked (while no row has failed),
so they are written while the next chunk is read.

Rows stream from :func:`biobank.imports.read.iter_rows` in chunks; every cell goes through its column's coercer; then
the kind's row checks; then the kind resolves the chunk's references with one set-based query per chunk and builds the
table records. Every problem becomes a :class:`~biobank.imports.report.RowError` and every coercion note a
:class:`~biobank.imports.report.RowNote`; nothing stops at the first error. The records of valid rows (inserts, and
the changed columns of upserts) go to ``sink`` for the write pass (:mod:`biobank.imports.engine`), one list per
chunk, in file order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from biobank.domain.errors import BiobankError, shown
from biobank.imports import coerce as c
from biobank.imports.columns import Column, Context
from biobank.imports.read import iter_rows
from biobank.imports.report import ImportReport, RowError, RowNote
from biobank.imports.spec import CACHE_LIMIT, Kind, Resolver, RowFailed, Staged

#: Rows validated per chunk (one set of lookups per chunk).
CHUNK_ROWS = 5000
#: Rows of the first chunk: fewer, so the engine's writer has its first rows to write sooner.
FIRST_CHUNK_ROWS = 1000


def validate(
    spec: Kind,
    source: Any,
    filename: str | None,
    sheet: str | None,
    ctx: Context,
    res: Resolver,
    report: ImportReport,
    sink: Callable[[list[Any]], object],
    progress: Callable[[int], object] | None = None,
    barrier: Callable[[], object] | None = None,
) -> None:
    """Read, coerce, check and resolve every row of ``source`` as a file of ``spec``: problems and notes go to
    ``report``, the writes of valid rows to ``sink`` (one list per chunk, while no row has failed). Writes nothing
    to the database itself. ``progress`` is called with 1 for every row read; ``barrier`` before each chunk's
    lookups (the engine's writer finishes the chunk before, on the same connection).

    Every error of a row is reported, not only the first: every cell is coerced; every value that reads is checked
    against its field's limits (each field on its own); the kind's rules, which relate cells to each other, run when
    all of the row's cells read."""
    report.header_ok = False  # until the header is read and accepted
    rows = iter_rows(source, filename=filename, sheet=sheet)
    with rows:
        columns = _check_header(spec, rows.headers, rows.header_row, report)
        report.file_notes.extend(rows.notes)
        if columns is None:
            for _row in rows:  # not checked, but counted: the summary says how many rows wait for a good header
                report.rows += 1
                if progress is not None:
                    progress(1)
            return
        report.header_ok = True
        present = frozenset(col.name for col in columns)
        res.state["present"] = present
        plan: list[tuple[Column, dict[Any, Any]]] = [(col, {}) for col in columns]
        seen: dict[tuple[Any, ...], int] = {}
        chunk: list[Staged] = []
        size = min(FIRST_CHUNK_ROWS, CHUNK_ROWS)
        for source_row in rows:
            report.rows += 1
            chunk.append(_coerce_row(spec, plan, ctx, source_row.number, source_row.cells, report))
            if progress is not None:
                progress(1)
            if len(chunk) >= size:
                _finish_chunk(spec, chunk, res, seen, report, sink, present, barrier)
                chunk, size = [], CHUNK_ROWS
        if chunk:
            _finish_chunk(spec, chunk, res, seen, report, sink, present, barrier)
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


def _coerce_cached(column: Column, ctx: Context, cache: dict[Any, Any], raw: Any) -> c.Coerced[Any]:
    """Coerce with a per-column memo: bulk files repeat the same vocabulary words, units and dates."""
    hashable = isinstance(raw, str | int | float)
    if hashable:
        hit = cache.get(raw)
        if hit is not None:
            if isinstance(hit, c.CellError):
                raise hit
            return hit
    try:
        result = column.coerce(raw, ctx)
    except c.CellError as exc:
        if hashable:
            if len(cache) > CACHE_LIMIT:
                cache.clear()
            cache[raw] = exc
        raise
    if hashable:
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        cache[raw] = result
    return result


def _shown(raw: Any) -> str:
    if raw is None:
        return ""
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= 80 else text[:79] + "…"


def _finish_chunk(
    spec: Kind,
    chunk: list[Staged],
    res: Resolver,
    seen: dict[tuple[Any, ...], int],
    report: ImportReport,
    sink: Callable[[list[Any]], object],
    present: frozenset[str],
    barrier: Callable[[], object] | None,
) -> None:
    good: list[Staged] = []
    for row in chunk:
        if spec.input_model is not None:
            _check_fields(spec, row)
        if not row.errors:
            try:
                spec.check(row)  # may fill derived key parts (a region's code from lesion and label)
            except RowFailed:
                pass
            except BiobankError as exc:
                _row_error(row, exc)
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
        if barrier is not None:
            barrier()
        spec.resolve(res, good)
        for row in good:
            if not row.errors and row.record is None:
                row.error("", "row could not be resolved")
    writes: list[tuple[str, int, dict[str, Any], dict[str, Any] | None, dict[str, Any]]] = []
    for row in chunk:
        if row.errors:
            for error in row.errors:
                report.add_error(_as_typed(row, error))
            continue
        assert row.record is not None
        if row.existing is None:
            report.inserted += 1
            writes.append(("insert", row.number, row.record, None, row.pending))
            continue
        if res.mode == "create":
            shown = "/".join(str(v) for v in (row.values.get(k) for k in spec.key))
            report.add_error(RowError(row.number, spec.key[-1], shown, "a new key (or upsert mode)",
                                      f"{spec.noun} {shown} already exists; choose upsert mode to update "
                                      "existing rows"))
            continue
        changes = _changes(spec, row, present)
        if changes is None:
            for error in row.errors:
                report.add_error(_as_typed(row, error))
            continue
        if changes:
            report.updated += 1
            writes.append(("update", row.number, changes, {"id": row.existing["id"],
                                                             **{k: row.existing.get(k) for k in changes}}, {}))
        else:
            report.unchanged += 1
    if report.ok and writes:
        sink(writes)


def _check_fields(spec: Kind, row: Staged) -> None:
    """Each value that read against its field's declared limits, each on its own: every bad field is an error."""
    assert spec.input_model is not None
    failed = {error.column for error in row.errors}
    if not failed:
        try:  # the usual row: every field fits, one call
            spec.input_model.check_fields(row.values)
            return
        except BiobankError:
            pass  # then field by field, to name every bad one
    for name, value in row.values.items():
        if value is None or name in failed:
            continue
        try:
            spec.input_model.check_fields({name: value})
        except BiobankError as exc:
            _row_error(row, exc)


def _row_error(row: Staged, exc: BiobankError) -> None:
    """The error of a rule as a report line: its column, and its value as the cell was typed (a time in the lab's
    zone when the value is not a cell of the row)."""
    column = (exc.field or "").split(".")[-1] if exc.field else ""
    row.error(column, str(exc), value=_echo(row, column, exc.value), expected=_expected(exc))


def _as_typed(row: Staged, error: RowError) -> RowError:
    """The error with its value as the cell was typed: a kind's lookups report the value they compared (a time in
    UTC), the person fixing the file looks for what they typed."""
    raw = row.raw.get(error.column) if error.column else None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return error
    typed = shown(raw) if isinstance(raw, datetime | date) else _shown(raw)
    return error if typed == error.value else replace(error, value=typed)


def _echo(row: Staged, column: str, value: Any) -> Any:
    raw = row.raw.get(column) if column else None
    if raw is not None and not (isinstance(raw, str) and not raw.strip()):
        return _shown(raw) if not isinstance(raw, datetime | date) else shown(raw)
    if isinstance(value, datetime | date):
        return shown(value)
    return value


def _expected(exc: BiobankError) -> str:
    """What was wrong without the field and value the report's other columns show."""
    return exc.reason


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
