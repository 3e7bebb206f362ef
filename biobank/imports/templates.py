"""Blank import templates: CSV with ``#`` comment lines explaining each column, or Excel with a ``columns`` sheet.

The reader skips ``#`` lines before the header, so a filled-in CSV template imports as it is.
"""

from __future__ import annotations

import csv
import io

from biobank.imports.columns import Column
from biobank.imports.registry import get_kind
from biobank.imports.spec import Kind

EXAMPLES: dict[str, str] = {
    "date": "2024-03-17",
    "date and time (lab time zone unless an offset is given)": "2024-03-17 14:30",
    "yes/no": "yes",
    "quantity": "50 mg",
    "percent 0-100": "40",
}


def describe(column: Column) -> str:
    parts = [column.help, "required" if column.required else "optional", column.type]
    if column.vocabulary:
        parts.append("one of: " + ", ".join(column.vocabulary))
    return "; ".join(parts)


def template_csv(kind: str | Kind, *, tz_name: str | None = None) -> str:
    spec = kind if isinstance(kind, Kind) else get_kind(kind)
    out = io.StringIO()
    out.write(f"# biobank import template: {spec.name} ({spec.title}). {spec.help}\n")
    out.write("# Lines starting with # are ignored. Synonyms and case are accepted in vocabulary columns "
              "('snap frozen', 'LN2'); units may be written in cells ('5 mg', '200 ul').\n")
    if tz_name:
        out.write(f"# Times without an offset are read in the lab's time zone ({tz_name}).\n")
    for column in spec.columns:
        out.write(f"# {column.name}: {describe(column)}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([column.name for column in spec.columns])
    return out.getvalue()


def template_xlsx(kind: str | Kind, *, tz_name: str | None = None) -> bytes:
    """A workbook: the first sheet is the (empty) table, the second, ``columns``, explains each column."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    spec = kind if isinstance(kind, Kind) else get_kind(kind)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = spec.name
    sheet.append([column.name for column in spec.columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    info = workbook.create_sheet("columns")
    info.append(["column", "required", "type", "meaning", "vocabulary"])
    for cell in info[1]:
        cell.font = Font(bold=True)
    for column in spec.columns:
        info.append([column.name, "yes" if column.required else "no", column.type, column.help,
                     ", ".join(column.vocabulary)])
    info.append([])
    info.append([f"{spec.title}: {spec.help}"])
    if tz_name:
        info.append([f"Times without an offset are read in the lab's time zone ({tz_name})."])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
