"""What every printable shares: the lab's paper, margins, fonts, a title block, a footer with the page count, a
tick box, and turning free text into something Helvetica can draw.

Documents are built with reportlab's platypus (tables that break across pages and repeat their header) on the one
paper size the lab set (``BIOBANK_PAPER_SIZE``), and are byte-for-byte reproducible for the same data and time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from biobank.config import get_settings
from biobank.labels import PAGE_SIZES_MM, resolve_paper
from biobank.labels.layout import clean_text
from biobank.models.base import utcnow

PT_PER_MM = 72 / 25.4
MARGIN_MM = 15.0
FONT = "Helvetica"
BOLD = "Helvetica-Bold"
GRID_GREY = colors.Color(0.6, 0.6, 0.6)
HEADER_FILL = colors.Color(0.9, 0.9, 0.9)

TITLE = ParagraphStyle("title", fontName=BOLD, fontSize=15, leading=18, spaceAfter=2)
SUBTITLE = ParagraphStyle("subtitle", fontName=FONT, fontSize=9, leading=11.5, textColor=colors.Color(0.25, 0.25, 0.25))
BODY = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=11.5)
HEADING = ParagraphStyle("heading", fontName=BOLD, fontSize=10.5, leading=13, spaceBefore=8, spaceAfter=3)
CELL = ParagraphStyle("cell", fontName=FONT, fontSize=8, leading=9.6)
CELL_BOLD = ParagraphStyle("cell_bold", parent=CELL, fontName=BOLD)
CELL_HEAD = ParagraphStyle("cell_head", parent=CELL, fontName=BOLD)


def page_size(paper: str | None = None) -> tuple[float, float]:
    """Width and height in points of ``paper``, by default the lab's setting."""
    width_mm, height_mm = PAGE_SIZES_MM[resolve_paper(paper)]
    return width_mm * PT_PER_MM, height_mm * PT_PER_MM


def plain(value: Any) -> str:
    """Free text as printed: whitespace collapsed, characters Helvetica lacks shown as ``?`` (as on labels)."""
    return "" if value is None else clean_text(str(value))


def para(value: Any, style: ParagraphStyle = CELL) -> Paragraph:
    """A paragraph of free text (escaped: a recipient called ``A & B <lab>`` prints as written)."""
    return Paragraph(escape(plain(value)), style)


def quantity(value: float | None, unit: str | None = None) -> str:
    if value is None:
        return ""
    return f"{value:g} {unit}".strip() if unit else f"{value:g}"


def local_time(moment: datetime | None) -> str:
    """A moment in the lab's time zone, to the minute (``2026-03-14 09:30``)."""
    if moment is None:
        return ""
    return moment.astimezone(get_settings().zone).strftime("%Y-%m-%d %H:%M")


class Checkbox(Flowable):
    """An empty square to tick by hand."""

    def __init__(self, size_mm: float = 3.6) -> None:
        super().__init__()
        self.size = size_mm * PT_PER_MM

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.size, self.size

    def draw(self) -> None:
        self.canv.setLineWidth(0.7)
        self.canv.rect(0, 0, self.size, self.size, stroke=1, fill=0)


def title_block(title: str, lines: Sequence[str]) -> list[Flowable]:
    """The document's title and a few lines under it (what it is for, where it comes from)."""
    return [para(title, TITLE), *(para(line, SUBTITLE) for line in lines if line), Spacer(1, 3 * PT_PER_MM)]


def facts(rows: Sequence[tuple[str, Any]], width: float) -> Table:
    """Label / value pairs in two columns (empty values left out)."""
    data = [[para(label, CELL_BOLD), para(value, CELL)] for label, value in rows if plain(value)]
    table = Table(data, colWidths=[35 * PT_PER_MM, width - 35 * PT_PER_MM], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    return table


def grid_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], widths_mm: Sequence[float], *, zebra: bool = True
) -> Table:
    """A ruled table whose header repeats on every page; cells may be text or flowables (tick boxes)."""
    data: list[list[Any]] = [[para(h, CELL_HEAD) for h in header]]
    for row in rows:
        data.append([cell if isinstance(cell, Flowable) else para(cell) for cell in row])
    table = Table(data, colWidths=[w * PT_PER_MM for w in widths_mm], repeatRows=1, hAlign="LEFT")
    style: list[tuple[Any, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.4, GRID_GREY),
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), 2.5),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]
    if zebra:
        style.append(("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.Color(0.965, 0.965, 0.965)]))
    table.setStyle(TableStyle(style))
    return table


def usable_width(paper: str | None = None) -> float:
    return page_size(paper)[0] - 2 * MARGIN_MM * PT_PER_MM


def _numbered_canvas(footer: str) -> type[Canvas]:
    """A canvas that writes ``footer · page n of N`` on every page once the page count is known."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                width, _height = self._pagesize
                self.setFont(FONT, 7.5)
                self.setFillColor(colors.Color(0.35, 0.35, 0.35))
                y = (MARGIN_MM / 2) * PT_PER_MM
                self.drawString(MARGIN_MM * PT_PER_MM, y, footer)
                self.drawRightString(width - MARGIN_MM * PT_PER_MM, y, f"page {self._pageNumber} of {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


def footer_text(kind: str, printed_at: datetime | None) -> str:
    return f"{kind} · printed {local_time(printed_at or utcnow())} ({get_settings().timezone}) · biobank"


def build(
    story: list[Flowable], *, title: str, kind: str, printed_at: datetime | None = None, paper: str | None = None
) -> bytes:
    """The PDF of ``story`` on the lab's paper, with a footer naming ``kind``, when it was printed and the pages."""
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=page_size(paper),
        leftMargin=MARGIN_MM * PT_PER_MM,
        rightMargin=MARGIN_MM * PT_PER_MM,
        topMargin=MARGIN_MM * PT_PER_MM,
        bottomMargin=MARGIN_MM * PT_PER_MM,
        title=plain(title),
        author="biobank",
        creator="biobank.printables",
        invariant=True,
    )
    doc.build(story, canvasmaker=_numbered_canvas(footer_text(kind, printed_at)))
    return buf.getvalue()
