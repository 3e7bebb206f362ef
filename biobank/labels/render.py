"""Render specimen labels as a PDF sheet (laser label stock) or as ZPL II (Zebra thermal printers).

Both renderers are pure functions of their input: no database, no files, no printer. They validate the whole
batch before producing anything, so a bad code never leaves a partly printed sheet.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from reportlab.lib.colors import black, lightgrey
from reportlab.pdfgen.canvas import Canvas

from .formats import LabelFormat
from .layout import (
    ELLIPSIS,
    PT_PER_MM,
    LabelPlan,
    check_labels,
    plan_label,
    resolve_format,
    resolve_paper,
    resolve_symbology,
)
from .model import LabelData
from .symbols import QUIET_MODULES, dark_runs, datamatrix_size, matrix, qr_version

__all__ = ["ZEBRA_DOTS_PER_MM", "render_pdf", "render_zpl"]


# -- PDF ---------------------------------------------------------------------------------------------------------


def render_pdf(
    labels: Sequence[LabelData],
    fmt: str | LabelFormat = "cryotube",
    symbology: str | None = None,
    *,
    skip: int = 0,
    outline: bool = False,
    paper: str | None = None,
) -> bytes:
    """A PDF of label sheets for ``fmt``, one label per cell, filled row by row over as many pages as needed.

    Each label carries a 2-D barcode encoding exactly ``code`` (the format's default symbology unless
    ``symbology`` is given) and the human-readable code, donor, date, site, storage format and optional extra
    line, each shortened to fit so nothing is drawn outside the label. ``skip`` leaves the first cells of the
    first sheet empty, so a partly used sheet can go back into the printer. ``outline`` draws the label edges in
    light grey, for checking alignment on plain paper before using label stock. The sheets are ``paper`` (A4 or
    Letter), by default the lab's paper size setting. The PDF is byte-for-byte reproducible for the same input.
    """
    items = check_labels(labels)
    lf = resolve_format(fmt)
    sym = resolve_symbology(lf, symbology)
    page = resolve_paper(paper)
    sheet = lf.sheet_for(page)
    cells = sheet.cells
    if not isinstance(skip, int) or not 0 <= skip < cells:
        raise ValueError(f"skip must be between 0 and {cells - 1} for a {lf.name} sheet on {page}, not {skip!r}")

    page_w_mm, page_h_mm = sheet.page_size_mm
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(page_w_mm * PT_PER_MM, page_h_mm * PT_PER_MM), invariant=True)
    canvas.setTitle(f"Specimen labels ({lf.name})")
    canvas.setAuthor("biobank")
    canvas.setCreator("biobank.labels")
    for i, label in enumerate(items):
        slot = (i + skip) % cells
        if i and slot == 0:
            canvas.showPage()
        x_mm, y_mm = lf.cell_origin_mm(slot, page)
        _draw_label(canvas, lf, plan_label(label, lf, sym), x_mm, y_mm, page_h_mm, outline)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


def _draw_label(
    canvas: Canvas, lf: LabelFormat, plan: LabelPlan, x0: float, y0: float, page_h: float, outline: bool
) -> None:
    """Draw one label whose top-left corner is (x0, y0) mm from the page's top-left corner."""

    def px(x_mm: float) -> float:
        return (x0 + x_mm) * PT_PER_MM

    def py(y_mm: float) -> float:  # PDF's y axis points up from the page bottom
        return (page_h - y0 - y_mm) * PT_PER_MM

    canvas.saveState()
    # Belt and braces: everything is fitted already, but a clip guarantees nothing lands on the neighbour label.
    clip = canvas.beginPath()
    clip.rect(px(0), py(lf.height_mm), lf.width_mm * PT_PER_MM, lf.height_mm * PT_PER_MM)
    canvas.clipPath(clip, stroke=0, fill=0)

    modules = matrix(plan.symbology, plan.code)
    quiet = QUIET_MODULES[plan.symbology]
    module_mm = plan.barcode_mm / (len(modules) + 2 * quiet)
    bx = plan.barcode_x_mm + quiet * module_mm
    by = plan.barcode_y_mm + quiet * module_mm
    path = canvas.beginPath()
    for row, col, length in dark_runs(modules):
        top = by + row * module_mm
        path.rect(
            px(bx + col * module_mm),
            py(top + module_mm),
            length * module_mm * PT_PER_MM,
            module_mm * PT_PER_MM,
        )
    canvas.setFillColor(black)
    canvas.drawPath(path, stroke=0, fill=1)

    for line in plan.lines:
        canvas.setFont(line.font, line.size_pt)
        canvas.drawString(px(line.x_mm), py(line.baseline_mm), line.text)
    canvas.restoreState()

    if outline:
        canvas.saveState()
        canvas.setStrokeColor(lightgrey)
        canvas.setLineWidth(0.25)
        canvas.rect(
            px(0), py(lf.height_mm), lf.width_mm * PT_PER_MM, lf.height_mm * PT_PER_MM, stroke=1, fill=0
        )
        canvas.restoreState()


# -- ZPL ---------------------------------------------------------------------------------------------------------

#: Zebra print heads are specified in dots per millimetre; "203/300/600 dpi" are 8/12/24 dots per mm exactly.
ZEBRA_DOTS_PER_MM: dict[int, int] = {203: 8, 300: 12, 600: 24}

#: Characters passed through into ^FD unescaped. Everything else (notably ^ and ~, which start ZPL commands, and
#: _ which is the ^FH escape character) is written as _XX hex bytes of its UTF-8 encoding.
_ZPL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .-:/()+#*&'")

#: Escape character for ^BX quality-200 data. Firmware defaults differ ('_' on old, '~' on new), and specimen
#: codes may contain '_', so it is set explicitly to a character codes can never contain.
_BX_ESCAPE = "!"


def zpl_escape(text: str) -> str:
    """Field data for a ``^FH^FD`` field: safe characters as is, everything else as ``_XX`` UTF-8 hex bytes.

    A backslash becomes ``/``: inside ``^FB`` field blocks ``\\&`` means "new line", and a site note like
    ``L\\&R`` must not split the field whichever way the printer orders hex decoding and block formatting.
    """
    text = text.replace("\\", "/")
    return "".join(c if c in _ZPL_SAFE else "".join(f"_{b:02X}" for b in c.encode("utf-8")) for c in text)


def render_zpl(
    labels: Sequence[LabelData],
    fmt: str | LabelFormat = "cryotube",
    dpi: int = 300,
    *,
    symbology: str | None = None,
) -> str:
    """ZPL II for a Zebra printer loaded with ``fmt`` labels: one ``^XA ... ^XZ`` format per label.

    The layout matches the PDF (same plan, converted to printer dots). The printer encodes the barcode itself
    (``^BX`` ECC 200 DataMatrix or ``^BQ`` QR), with the module size chosen as the largest whole number of dots
    that fits the barcode box, because thermal printers print whole dots and fractional modules distort. Text
    fields use ``^CI28`` (UTF-8) and ``^FH`` hex escapes, so ``^``, ``~`` and ``_`` in free text cannot break or
    inject commands.
    """
    items = check_labels(labels)
    lf = resolve_format(fmt)
    sym = resolve_symbology(lf, symbology)
    if dpi not in ZEBRA_DOTS_PER_MM:
        raise ValueError(
            f"unsupported printer resolution {dpi!r} dpi; choose one of {sorted(ZEBRA_DOTS_PER_MM)}"
        )
    dots_per_mm = ZEBRA_DOTS_PER_MM[dpi]
    return "".join(_zpl_label(plan_label(label, lf, sym), lf, dots_per_mm) for label in items)


def _zpl_label(plan: LabelPlan, lf: LabelFormat, dots_per_mm: int) -> str:
    def dots(mm: float) -> int:
        return round(mm * dots_per_mm)

    box = int(plan.barcode_mm * dots_per_mm)
    if plan.symbology == "datamatrix":
        side = datamatrix_size(plan.code)
        module = box // (side + 2 * QUIET_MODULES["datamatrix"])
        inset = (box - module * side) // 2
        barcode = (
            f"^FO{dots(plan.barcode_x_mm) + inset},{dots(plan.barcode_y_mm) + inset}"
            f"^BXN,{module},200,{side},{side},6,{_BX_ESCAPE}^FD{plan.code}^FS"
        )
    else:
        side = 17 + 4 * qr_version(plan.code) + 2 * QUIET_MODULES["qr"]
        module = min(10, box // side)
        inset = (box - module * side) // 2 + QUIET_MODULES["qr"] * module
        barcode = (
            f"^FO{dots(plan.barcode_x_mm) + inset},{dots(plan.barcode_y_mm) + inset}"
            f"^BQN,2,{module},M,7^FDMA,{plan.code}^FS"
        )
    if module < 1:
        raise ValueError(f"the {lf.name} barcode box is too small for {plan.code!r} at {dots_per_mm} dots/mm")

    out = [
        "^XA",
        "^CI28",
        f"^PW{dots(lf.width_mm)}",
        f"^LL{dots(lf.height_mm)}",
        "^LH0,0",
        barcode,
    ]
    for line in plan.lines:
        height = max(10, round(line.size_pt / PT_PER_MM * dots_per_mm))  # font 0 is at least 10 dots high
        top = dots(line.top_mm + (line.pitch_mm - line.size_pt / PT_PER_MM) / 2)
        # Three dots instead of the ellipsis, which not every printer font has (and which is wider, so it still fits).
        # ^FB with one line keeps the field inside its width even if the printer's font runs wider than expected.
        out.append(
            f"^FO{dots(line.x_mm)},{top}^A0N,{height},{height}"
            f"^FB{dots(line.width_mm)},1,0,L,0^FH_^FD{zpl_escape(line.text.replace(ELLIPSIS, '...'))}^FS"
        )
    out.append("^XZ")
    return "\n".join(out) + "\n"
