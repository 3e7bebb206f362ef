"""Specimen label rendering: PDF sheets for laser label stock and ZPL II for Zebra printers.

Pure functions, no database: callers build :class:`LabelData` from whatever they hold and pick a format from
:data:`LABEL_FORMATS`.
"""

from __future__ import annotations

from .formats import LABEL_FORMATS, SYMBOLOGIES, LabelFormat, SheetLayout, TextLine
from .model import CODE_PATTERN, MAX_CODE_LENGTH, LabelData
from .render import ZEBRA_DOTS_PER_MM, render_pdf, render_zpl

__all__ = [
    "CODE_PATTERN",
    "LABEL_FORMATS",
    "MAX_CODE_LENGTH",
    "SYMBOLOGIES",
    "ZEBRA_DOTS_PER_MM",
    "LabelData",
    "LabelFormat",
    "SheetLayout",
    "TextLine",
    "render_pdf",
    "render_zpl",
]
