"""Reading printed PDFs back with pdfium (the dev dependency the label tests use): page sizes, text in reading
order, text inside a rectangle, the squares a document drew."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pypdfium2 as pdfium

MM = 72 / 25.4  # PDF points per millimetre

Box = tuple[float, float, float, float]  # left, bottom, right, top in points


@contextmanager
def opened(pdf: bytes) -> Iterator[list[pdfium.PdfPage]]:
    """The document's pages, closed again after the block."""
    doc = pdfium.PdfDocument(pdf)
    try:
        yield [doc[index] for index in range(len(doc))]
    finally:
        doc.close()


def page_sizes_mm(pdf: bytes) -> list[tuple[float, float]]:
    with opened(pdf) as sheets:
        return [(round(w / MM, 1), round(h / MM, 1)) for w, h in (page.get_size() for page in sheets)]


def page_text(page: pdfium.PdfPage) -> str:
    """A page's text in reading order, runs of whitespace (a wrapped cell's line break) as one space."""
    return " ".join(_hyphens(page.get_textpage().get_text_range()).split())


def text(pdf: bytes) -> str:
    """Every page's text (:func:`page_text`), pages one after another."""
    with opened(pdf) as sheets:
        return " ".join(page_text(page) for page in sheets)


def in_order(haystack: str, needles: Sequence[str]) -> list[str]:
    """``needles`` sorted by where each first appears in ``haystack`` (all must appear)."""
    missing = [n for n in needles if n not in haystack]
    assert not missing, f"not printed: {missing}"
    return sorted(needles, key=haystack.index)


def squares(page: pdfium.PdfPage, *, min_mm: float, max_mm: float = 1000.0) -> list[Box]:
    """The square shapes drawn on the page whose side is between ``min_mm`` and ``max_mm``, in drawing order."""
    found = []
    for obj in page.get_objects(filter=(pdfium.raw.FPDF_PAGEOBJ_PATH,)):
        left, bottom, right, top = obj.get_bounds()
        width, height = right - left, top - bottom
        if abs(width - height) < 0.5 and min_mm * MM <= width <= max_mm * MM:
            found.append((left, bottom, right, top))
    return found


def text_in(page: pdfium.PdfPage, box: Box) -> str:
    """The text inside ``box``, whitespace removed (a code broken over two lines reads whole)."""
    return "".join(_hyphens(page.get_textpage().get_text_bounded(*box)).split())


def _hyphens(found: str) -> str:
    """pdfium reports a hyphen that ends a line as its soft-hyphen marker (\x02): read it back as the hyphen."""
    return found.replace("\x02", "-")
