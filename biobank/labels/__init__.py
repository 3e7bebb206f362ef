"""Specimen label rendering: PDF sheets for laser label stock and ZPL II for Zebra printers.

Pure functions, no database: callers build :class:`LabelData` from whatever they hold and pick a format from
:data:`LABEL_FORMATS`. Sheets print on the lab's paper size (``BIOBANK_PAPER_SIZE``, A4 or Letter) unless the caller
names one.
"""

from __future__ import annotations

from .formats import LABEL_FORMATS, PAGE_SIZES_MM, SYMBOLOGIES, LabelFormat, SheetLayout, TextLine, fit_sheet
from .layout import resolve_paper
from .model import CODE_PATTERN, MAX_CODE_LENGTH, LabelData
from .render import ZEBRA_DOTS_PER_MM, render_pdf, render_zpl

__all__ = [
    "CODE_PATTERN",
    "LABEL_FORMATS",
    "MAX_CODE_LENGTH",
    "PAGE_SIZES_MM",
    "SYMBOLOGIES",
    "ZEBRA_DOTS_PER_MM",
    "LabelData",
    "LabelFormat",
    "SheetLayout",
    "TextLine",
    "fit_sheet",
    "render_pdf",
    "render_zpl",
    "resolve_paper",
]
