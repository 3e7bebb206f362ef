"""What an import reports: every problem as a :class:`RowError` (row, column, value, expected), every cell read
in a way its author might not expect as a :class:`RowNote`, and the counts, in one :class:`ImportReport`; and the
error report as CSV (:func:`errors_csv`)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

#: At most this many errors and notes are kept for the report (all are counted).
MAX_REPORTED = 20_000


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
    #: Whether the header was accepted; when not, ``rows`` counts the data rows that were not checked (``None``: the
    #: file could not be read far enough to count them).
    header_ok: bool = True

    @property
    def notes_total(self) -> int:
        """Every note: the rows' (all counted, even past :data:`MAX_REPORTED`) and the file's."""
        return self.note_count + len(self.file_notes)

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
        tally = f"{self.error_count} error(s), {self.notes_total} note(s)"
        if not self.header_ok:
            counted = (f"the header was refused, so none of its {self.rows} data row(s) were checked"
                       if self.rows else "no row was read (the file has no header that could be read and accepted)")
            text = f"{self.kind}: {counted}; {tally}"
        else:
            text = (
                f"{self.kind}: {self.rows} row(s) read; {verb} {self.inserted}, {upd} {self.updated}, "
                f"unchanged {self.unchanged}; {tally}"
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
            "note_count": self.notes_total,
            "row_note_count": self.note_count,
            "header_ok": self.header_ok,
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
