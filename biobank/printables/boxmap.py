"""Box maps: a box drawn as its grid (row letters down the side, column numbers across the top, each specimen's
code in its cell) to tape to the freezer door or take to the bench, then the box's contents as a list.

A numbered container (slide box, cassette drawer) is drawn ten positions to a row with each position's number
in its cell; a bag or bin, which has no positions, as its specimens by code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Flowable, Spacer
from sqlmodel import Session

from biobank.domain.errors import invalid
from biobank.domain.storage.coords import LETTERS
from biobank.domain.storage.kinds import TEMPERATURE_LABEL, TemperatureClass, spec
from biobank.domain.vocab import FORMAT_ABBREVIATION, SpecimenStatus, StorageFormat
from biobank.labels.service import FORMAT_TEXT
from biobank.printables.document import (
    BOLD,
    FONT,
    GRID_GREY,
    HEADING,
    PT_PER_MM,
    build,
    grid_table,
    para,
    plain,
    quantity,
    title_block,
    usable_width,
)
from biobank.queries import storage as storage_reads
from biobank.queries.specimens import natural_key

#: Positions per printed row for a numbered container (1 x N) and for one without positions.
NUMBERED_PER_ROW = 10
UNGRIDDED_PER_ROW = 6
#: Cell size limits in millimetres: big enough to read a code, small enough that a 10 x 10 box fits a page.
MAX_CELL_MM = 24.0
MIN_CELL_MM = 11.0
ROW_LABEL_MM = 7.0
COLUMN_LABEL_MM = 6.0
#: Font sizes tried for a code, largest first; below the last one the code is broken wherever needed.
CODE_SIZES_PT = (7.5, 7.0, 6.5, 6.0, 5.5, 5.0, 4.5)
DETAIL_PT = 5.0
CORNER_PT = 4.5
PADDING_PT = 2.0
STATUS_MARKS = {
    SpecimenStatus.in_use.value: "out",
    SpecimenStatus.reserved.value: "reserved",
    SpecimenStatus.depleted.value: "depleted",
    SpecimenStatus.disposed.value: "disposed",
}
EMPTY_FILL = colors.Color(0.95, 0.95, 0.95)
MUTED = colors.Color(0.4, 0.4, 0.4)


@dataclass(frozen=True)
class Cell:
    code: str
    detail: str
    corner: str = ""


@dataclass(frozen=True)
class GridRow:
    label: str
    cells: tuple[Cell | None, ...]


_BREAKS = re.compile(r"(?<=[-_.])")


def fit_code(code: str, width_pt: float, height_pt: float) -> tuple[float, list[str]]:
    """The largest font size and line breaks (after ``-``, ``_`` or ``.`` when possible) that fit ``code`` into
    a ``width_pt`` x ``height_pt`` box."""
    parts = [p for p in _BREAKS.split(code) if p]
    for size in CODE_SIZES_PT:
        lines: list[str] = []
        for part in parts:
            if lines and stringWidth(lines[-1] + part, FONT, size) <= width_pt:
                lines[-1] += part
            else:
                lines.append(part)
        fits = all(stringWidth(line, FONT, size) <= width_pt for line in lines)
        if fits and len(lines) * size * 1.15 <= height_pt:
            return size, lines
    size = CODE_SIZES_PT[-1]
    lines = [""]
    for char in code:  # the last resort: break anywhere, the full code still printed
        if stringWidth(lines[-1] + char, FONT, size) > width_pt and lines[-1]:
            lines.append("")
        lines[-1] += char
    return size, lines


class BoxGrid(Flowable):
    """The grid of a box: optional column labels across the top, optional row labels down the side. A grid
    taller than the space left on a page splits between rows, repeating the column labels."""

    def __init__(self, columns: list[str] | None, rows: list[GridRow], cell_w: float, cell_h: float) -> None:
        super().__init__()
        self.columns = columns
        self.rows = rows
        self.cell_w = cell_w
        self.cell_h = cell_h
        self.label_w = ROW_LABEL_MM * PT_PER_MM if any(r.label for r in rows) else 0.0
        self.header_h = COLUMN_LABEL_MM * PT_PER_MM if columns else 0.0

    @property
    def n_cols(self) -> int:
        return max((len(r.cells) for r in self.rows), default=0)

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        self.width = self.label_w + self.n_cols * self.cell_w
        self.height = self.header_h + len(self.rows) * self.cell_h
        return self.width, self.height

    def split(self, available_width: float, available_height: float) -> list[Flowable]:
        fit = int((available_height - self.header_h) // self.cell_h)
        if fit < 1 or fit >= len(self.rows):
            return []
        return [
            BoxGrid(self.columns, self.rows[:fit], self.cell_w, self.cell_h),
            BoxGrid(self.columns, self.rows[fit:], self.cell_w, self.cell_h),
        ]

    def draw(self) -> None:
        canvas = self.canv
        top = self.height  # flowable coordinates: y grows upwards from the bottom of the grid
        if self.columns:
            canvas.setFont(BOLD, 8)
            canvas.setFillColor(colors.black)
            for c, text in enumerate(self.columns):
                x = self.label_w + (c + 0.5) * self.cell_w
                canvas.drawCentredString(x, top - self.header_h + 1.6 * PT_PER_MM, text)
        for r, row in enumerate(self.rows):
            y_top = top - self.header_h - r * self.cell_h
            if row.label:
                canvas.setFont(BOLD, 8)
                canvas.setFillColor(colors.black)
                canvas.drawCentredString(self.label_w / 2, y_top - self.cell_h / 2 - 3, row.label)
            for c, cell in enumerate(row.cells):
                self._draw_cell(self.label_w + c * self.cell_w, y_top, cell)

    def _draw_cell(self, x: float, y_top: float, cell: Cell | None) -> None:
        canvas = self.canv
        canvas.setStrokeColor(GRID_GREY)
        canvas.setLineWidth(0.5)
        canvas.setFillColor(colors.white if cell and cell.code else EMPTY_FILL)
        canvas.rect(x, y_top - self.cell_h, self.cell_w, self.cell_h, stroke=1, fill=1)
        if cell is None:
            return
        inner_w = self.cell_w - 2 * PADDING_PT
        if cell.corner:
            canvas.setFont(FONT, CORNER_PT)
            canvas.setFillColor(MUTED)
            canvas.drawString(x + PADDING_PT, y_top - PADDING_PT - CORNER_PT, cell.corner)
        if not cell.code:
            return
        reserved = (DETAIL_PT * 1.3 if cell.detail else 0) + (CORNER_PT * 1.2 if cell.corner else 0)
        size, lines = fit_code(cell.code, inner_w, self.cell_h - 2 * PADDING_PT - reserved)
        leading = size * 1.15
        block = len(lines) * leading
        corner_room = CORNER_PT * 1.2 if cell.corner else 0
        detail_room = DETAIL_PT * 1.3 if cell.detail else 0
        middle = y_top - corner_room - (self.cell_h - corner_room - detail_room) / 2
        baseline = middle + block / 2 - size * 0.82
        canvas.setFont(FONT, size)
        canvas.setFillColor(colors.black)
        for line in lines:
            canvas.drawCentredString(x + self.cell_w / 2, baseline, line)
            baseline -= leading
        if cell.detail:
            canvas.setFont(FONT, DETAIL_PT)
            canvas.setFillColor(MUTED)
            canvas.drawCentredString(x + self.cell_w / 2, y_top - self.cell_h + PADDING_PT + 0.5, cell.detail)


def _detail(cell: dict[str, Any]) -> str:
    try:
        abbreviation = FORMAT_ABBREVIATION[StorageFormat(cell["storage_format"])]
    except ValueError:
        abbreviation = cell["storage_format"]
    mark = STATUS_MARKS.get(cell["status"])
    return f"{abbreviation} {mark}" if mark else abbreviation


def grid_rows(view: dict[str, Any]) -> tuple[list[str] | None, list[GridRow]]:
    """The printed grid of a :func:`~biobank.queries.storage.box_view`: column labels and rows of cells."""
    cells = view["cells"]
    if view["rows"] and view["scheme"] != "numbered":
        by_position = {(c["row"], c["col"]): c for c in cells}
        rows = []
        for r in range(1, view["rows"] + 1):
            row = [by_position.get((r, c)) for c in range(1, view["cols"] + 1)]
            rows.append(GridRow(LETTERS[r - 1], tuple(Cell(c["code"], _detail(c)) if c else None for c in row)))
        return [str(c) for c in range(1, view["cols"] + 1)], rows
    if view["rows"]:  # numbered: positions 1..N, ten to a row, each cell numbered
        by_number = {c["col"]: c for c in cells}
        numbered = [
            Cell(by_number[n]["code"], _detail(by_number[n]), str(n)) if n in by_number else Cell("", "", str(n))
            for n in range(1, view["cols"] + 1)
        ]
        per_row = NUMBERED_PER_ROW
        return None, [GridRow("", tuple(numbered[i : i + per_row])) for i in range(0, len(numbered), per_row)]
    loose = [Cell(c["code"], _detail(c)) for c in sorted(cells, key=lambda c: natural_key(c["code"]))]
    return None, [
        GridRow("", tuple(loose[i : i + UNGRIDDED_PER_ROW])) for i in range(0, len(loose), UNGRIDDED_PER_ROW)
    ]


def render_box_map(view: dict[str, Any], *, printed_at: datetime | None = None, paper: str | None = None) -> bytes:
    """The PDF of a box as its grid, then its contents, from a :func:`~biobank.queries.storage.box_view`."""
    if not view["holds_specimens"]:
        raise invalid("box", view["code"], f"a {view['kind']} holds containers, not specimens: choose a box")
    try:
        temperature = TEMPERATURE_LABEL[TemperatureClass(view["temperature"])]
    except ValueError:
        temperature = "no temperature class"
    fill = f"{view['occupied']}/{view['capacity']} occupied" if view["capacity"] else f"{view['occupied']} specimen(s)"
    title = f"Box map: {view['code']}"
    lines = [
        f"{view['path']} · {spec(view['kind']).label} · {temperature} · {fill}",
        "Formats: " + ", ".join(f"{FORMAT_ABBREVIATION[f]} {FORMAT_TEXT[f]}" for f in StorageFormat)
        + "; 'out': checked out.",
    ]
    columns, rows = grid_rows(view)
    width = usable_width(paper)
    n_cols = max((len(r.cells) for r in rows), default=1)
    label_w = ROW_LABEL_MM * PT_PER_MM if columns else 0.0
    cell_w = min((width - label_w) / n_cols, MAX_CELL_MM * PT_PER_MM)
    cell_h = max(min(cell_w, MAX_CELL_MM * PT_PER_MM), MIN_CELL_MM * PT_PER_MM)
    story: list[Flowable] = [*title_block(title, lines)]
    if rows:
        story.append(BoxGrid(columns, rows, cell_w, cell_h))
    else:
        story.append(para("The box is empty."))
    if view["cells"]:
        story += [Spacer(1, 4 * PT_PER_MM), para("Contents", HEADING)]
        table_rows = [
            [c["position"] or "", c["code"], c["donor"], plain(c["storage_format"]).replace("_", " "),
             c["status"].replace("_", " "), quantity(c["quantity_remaining"], c["unit"])]
            for c in view["cells"]
        ]
        story.append(grid_table(["Pos.", "Specimen", "Donor", "Format", "Status", "Remaining"], table_rows,
                                [14, 52, 24, 30, 24, 26]))
    return build(story, title=title, kind=title, printed_at=printed_at, paper=paper)


def box_map_pdf(session: Session, box_code: str, *, printed_at: datetime | None = None) -> bytes:
    """The box map of ``box_code`` on the lab's paper (a download button's data)."""
    return render_box_map(storage_reads.box_view(session, box_code), printed_at=printed_at)

