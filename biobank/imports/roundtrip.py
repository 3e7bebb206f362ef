"""Export the database in template format, one file per kind, so that the files re-import to identical rows.

Values are written the way the importer reads them back without notes: times as ISO 8601 in the lab's time zone
with their offset (a UTC offset in summer would be noted as differing from the lab's),
dates as ISO, numbers with ``repr`` precision, yes/no for booleans, empty for NULL.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlmodel import Session

from biobank.config import get_settings
from biobank.imports.registry import get_kind, kind_names
from biobank.imports.spec import Kind


def _zone() -> tzinfo:
    return get_settings().zone


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(_zone()).isoformat() if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def rows_csv(kind: Kind, rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [col.name for col in kind.columns]
    writer.writerow(names)
    for row in rows:
        writer.writerow([cell(row.get(name)) for name in names])
    return out.getvalue()


def export_kind(session: Session, kind: str | Kind) -> str:
    """The table behind ``kind`` as CSV in its template's columns."""
    spec = kind if isinstance(kind, Kind) else get_kind(kind)
    return rows_csv(spec, spec.export_rows(session))


def export_all(session: Session, folder: Path) -> list[Path]:
    """One ``<kind>.csv`` per kind, in import order; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in kind_names():
        path = folder / f"{name}.csv"
        path.write_text(export_kind(session, name), encoding="utf-8")
        paths.append(path)
    return paths
