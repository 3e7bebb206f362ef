"""Where each piece of one label goes, shared by the PDF and ZPL renderers.

Text is measured with reportlab's metrics for Helvetica, the font the PDF uses. Zebra's scalable font 0 is a
condensed face and runs narrower at the same height, so text fitted here also fits on the printer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import getAscentDescent, stringWidth

from biobank.config import get_settings

from .formats import LABEL_FORMATS, PAGE_SIZES_MM, SYMBOLOGIES, TEXT_GAP_MM, LabelFormat
from .model import LabelData, check_code

PT_PER_MM = 72 / 25.4
ELLIPSIS = "\u2026"


def resolve_format(fmt: str | LabelFormat) -> LabelFormat:
    """The :class:`LabelFormat` named ``fmt`` (or ``fmt`` itself), else ``ValueError`` listing the known ones."""
    if isinstance(fmt, LabelFormat):
        return fmt
    try:
        return LABEL_FORMATS[fmt]
    except (KeyError, TypeError):
        raise ValueError(f"unknown label format {fmt!r}; choose one of {', '.join(LABEL_FORMATS)}") from None


def resolve_paper(paper: str | None = None) -> str:
    """The paper to print on: ``paper`` (any letter case), else the lab's setting (``BIOBANK_PAPER_SIZE``)."""
    chosen = get_settings().paper_size if paper is None else paper
    for name in PAGE_SIZES_MM:
        if isinstance(chosen, str) and chosen.lower() == name.lower():
            return name
    raise ValueError(f"unknown paper size {chosen!r}; choose one of {', '.join(PAGE_SIZES_MM)}")


def resolve_symbology(fmt: LabelFormat, symbology: str | None) -> str:
    chosen = fmt.symbology if symbology is None else symbology
    if chosen not in SYMBOLOGIES:
        raise ValueError(f"unknown symbology {chosen!r}; choose one of {', '.join(SYMBOLOGIES)}")
    return chosen


def check_labels(labels: Sequence[LabelData]) -> list[LabelData]:
    """Validate the batch up front so that a bad label never leaves a half-printed sheet."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise TypeError("labels must be a sequence of LabelData")
    items = list(labels)
    if not items:
        raise ValueError("no labels to render: the list is empty")
    for i, item in enumerate(items):
        if not isinstance(item, LabelData):
            raise TypeError(f"labels[{i}] is a {type(item).__name__}, not LabelData")
        check_code(item.code)
    return items


#: Hyphens and minus signs that word processors put into codes and dates, which Windows-1252 lacks.
_HYPHENS = frozenset("\u2010\u2011\u2012\u2212")


def _printable(c: str) -> str:
    if c in _HYPHENS:
        return "-"
    if unicodedata.category(c)[0] in "CZ":
        return " "
    try:
        c.encode("cp1252")
    except UnicodeEncodeError:
        return "?"
    return c


def clean_text(text: str) -> str:
    """Normalise free text for printing.

    Compatibility forms are folded (NFKC); control characters and runs of whitespace become single spaces (a
    newline in a site note must not start a new line on a 12 mm label); characters outside Windows-1252, which
    neither the PDF's standard Helvetica nor Zebra's built-in font can draw, become ``?`` so the label shows
    that something was there instead of silently dropping it.
    """
    text = unicodedata.normalize("NFKC", text)
    return " ".join("".join(_printable(c) for c in text).split())


def font_name(bold: bool) -> str:
    return "Helvetica-Bold" if bold else "Helvetica"


def text_width_mm(text: str, bold: bool, size_pt: float) -> float:
    return stringWidth(text, font_name(bold), size_pt) / PT_PER_MM


def truncate_end(text: str, bold: bool, size_pt: float, width_mm: float) -> str:
    """``text`` if it fits ``width_mm``, else its longest prefix that fits with an ellipsis appended."""
    if text_width_mm(text, bold, size_pt) <= width_mm:
        return text
    for n in range(len(text) - 1, 0, -1):
        candidate = text[:n].rstrip() + ELLIPSIS
        if text_width_mm(candidate, bold, size_pt) <= width_mm:
            return candidate
    return ELLIPSIS if text_width_mm(ELLIPSIS, bold, size_pt) <= width_mm else ""


def truncate_middle(text: str, bold: bool, size_pt: float, width_mm: float) -> str:
    """Shorten by cutting the middle: specimen codes of one donor share their start and differ at the end
    (``...-SF1`` vs ``...-SF2``), so both ends must stay visible."""
    if text_width_mm(text, bold, size_pt) <= width_mm:
        return text
    for keep in range(len(text) - 1, 1, -1):
        head = (keep + 1) // 2
        candidate = text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]
        if text_width_mm(candidate, bold, size_pt) <= width_mm:
            return candidate
    return truncate_end(text, bold, size_pt, width_mm)


def wrap(text: str, bold: bool, size_pt: float, width_mm: float, max_lines: int) -> list[str]:
    """Word-wrap ``text`` into at most ``max_lines`` lines of ``width_mm``; the last one is shortened if needed."""
    if max_lines <= 1:
        return [truncate_end(text, bold, size_pt, width_mm)]
    lines = simpleSplit(text, font_name(bold), size_pt, width_mm * PT_PER_MM)
    if len(lines) > max_lines:
        rest = " ".join(lines[max_lines - 1 :])
        lines = [*lines[: max_lines - 1], rest]
    return [truncate_end(line, bold, size_pt, width_mm) for line in lines]


@dataclass(frozen=True)
class PlacedText:
    """One printed line. Positions are in mm from the label's top-left corner; ``top_mm`` is the top of the line
    box, whose height is ``pitch_mm``, and ``baseline_mm`` where the glyphs sit."""

    text: str
    x_mm: float
    top_mm: float
    width_mm: float
    pitch_mm: float
    size_pt: float
    bold: bool

    @property
    def font(self) -> str:
        return font_name(self.bold)

    @property
    def baseline_mm(self) -> float:
        ascent, descent = getAscentDescent(self.font, self.size_pt)  # descent is negative
        glyphs_mm = (ascent - descent) / PT_PER_MM
        return self.top_mm + (self.pitch_mm - glyphs_mm) / 2 + ascent / PT_PER_MM


@dataclass(frozen=True)
class LabelPlan:
    """Everything a renderer needs for one label; the barcode box is a square of ``barcode_mm``."""

    code: str
    symbology: str
    barcode_x_mm: float
    barcode_y_mm: float
    barcode_mm: float
    lines: tuple[PlacedText, ...]


def plan_label(label: LabelData, fmt: LabelFormat, symbology: str) -> LabelPlan:
    """Lay out ``label`` on ``fmt``: fill each text region top-down, fitting every line to its width."""
    values = {
        "code": label.code,
        "donor": clean_text(label.donor),
        "site": clean_text(label.site),
        "storage_format": clean_text(label.storage_format),
        "date": clean_text(label.date),
        "extra": clean_text(label.extra),
    }
    pad = fmt.padding_mm
    regions = {
        "above": (pad, fmt.inner_width_mm),
        "beside": (fmt.beside_x_mm, fmt.beside_width_mm),
        "below": (pad, fmt.inner_width_mm),
    }
    placed: dict[str, list[tuple[str, float, float, bool]]] = {"above": [], "beside": [], "below": []}
    for line in fmt.lines:
        text = "  ".join(values[f] for f in line.fields if values[f])
        if not text:
            continue
        width = regions[line.region][1]
        size = fmt.font_size_pt(line)
        pitch = fmt.pitch_mm(line)
        if line.is_code:
            # Shrink the code before shortening it: a person must be able to read it in full.
            natural = text_width_mm(text, line.bold, size)
            if natural > width:
                size = max(fmt.min_font_pt, size * width / natural * 0.999)  # 0.999: float rounding
            parts = [truncate_middle(text, line.bold, size, width)]
        else:
            parts = wrap(text, line.bold, size, width, line.max_lines)
        placed[line.region].extend((part, pitch, size, line.bold) for part in parts if part)

    def stack(region: str, top: float) -> list[PlacedText]:
        x, width = regions[region]
        out = []
        for text, pitch, size, bold in placed[region]:
            out.append(PlacedText(text, x, top, width, pitch, size, bold))
            top += pitch
        return out

    barcode_top = fmt.barcode_top_mm
    beside_height = sum(p for _, p, _, _ in placed["beside"])
    # Centre the column next to the barcode on it, so a label without the optional line still looks balanced.
    beside_top = barcode_top + max(0.0, (fmt.barcode_mm - beside_height) / 2)
    lines = [
        *stack("above", pad),
        *stack("beside", beside_top),
        *stack("below", barcode_top + fmt.barcode_mm + TEXT_GAP_MM),
    ]
    return LabelPlan(label.code, symbology, pad, barcode_top, fmt.barcode_mm, tuple(lines))
