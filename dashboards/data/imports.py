"""The import page's helpers: dry runs and imports through the engine, and a preview table with errors per row."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlmodel import Session

from biobank.imports.engine import ImportProgress, ImportReport, run_import
from biobank.imports.read import ImportFormatError, iter_rows
from biobank.models import User
from dashboards.data import core as data
from dashboards.shell.actions import Write
from dashboards.shell.session import current_user

PREVIEW_ROWS = 500


def check(kind: str, content: bytes, filename: str, mode: str,
          progress: ImportProgress | None = None) -> ImportReport:
    """A dry run: every row is checked and written, the database's own rules too, then rolled back. In a session
    that takes SQLite's write lock from its start (a read session would have to upgrade its lock mid-import and fail
    if another user had written meanwhile) and is never committed."""
    with Session(data.engine()) as session:
        return run_import(session, actor=current_user(session), kind=kind, source=content, filename=filename,
                          mode=mode, dry_run=True, progress=progress)


def commit(kind: str, content: bytes, filename: str, mode: str,
           progress: ImportProgress | None = None) -> Write[ImportReport]:
    """The real import, as a write for :func:`dashboards.shell.actions.run_write`: one transaction, all rows or none."""

    def write(session: Session, actor: User | None) -> ImportReport:
        return run_import(session, actor=actor, kind=kind, source=content, filename=filename, mode=mode,
                          progress=progress)

    return write


def preview(content: bytes, filename: str, report: ImportReport) -> pd.DataFrame:
    """The first rows as read, with the row number and that row's errors in an ``errors`` column."""
    by_row: dict[int, list[str]] = {}
    for error in report.errors:
        by_row.setdefault(error.row, []).append(f"{error.column}: {error.message}" if error.column else error.message)
    records: list[dict[str, Any]] = []
    try:
        with iter_rows(content, filename=filename) as rows:
            for row in rows:
                cells = {k: ("" if v is None else str(v)) for k, v in row.cells.items()}
                records.append({"row": row.number, "errors": "; ".join(by_row.get(row.number, [])), **cells})
                if len(records) >= PREVIEW_ROWS:
                    break
    except ImportFormatError:
        pass
    return pd.DataFrame(records)


def highlight(frame: pd.DataFrame) -> Any:
    """Rows with errors in pale red, the errors column in bold red."""

    def row_style(row: pd.Series) -> list[str]:
        bad = bool(row.get("errors"))
        return ["background-color: #fde2e1" if bad else "" for _ in row]

    styled = frame.style.apply(row_style, axis=1)
    if "errors" in frame.columns:
        styled = styled.map(lambda v: "color: #b00020; font-weight: bold" if v else "", subset=["errors"])
    return styled
