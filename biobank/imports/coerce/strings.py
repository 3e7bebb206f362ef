"""Free text and codes: trimmed, checked for control characters, optionally length-limited."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from biobank.imports.coerce.cells import CellError, Coerced, _clean, _is_finite, _is_nan, _join, _raise, _show
from biobank.imports.coerce.numbers import _number_text

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def text(raw: object, *, collapse_whitespace: bool = False, max_length: int | None = None) -> Coerced[str]:
    """Trimmed text; ``collapse_whitespace`` also folds inner runs of spaces and line breaks into one space."""
    expected = "text"
    note: str | None = None
    if raw is None:
        return Coerced(None)
    if isinstance(raw, bool):
        value = "TRUE" if raw else "FALSE"
        note = f"Excel {value} read as text"
    elif isinstance(raw, int | float | Decimal):
        if not _is_finite(raw):
            return Coerced(None) if _is_nan(raw) else _raise(expected, f"{_show(raw)} is not text")
        value = _number_text(raw)
        note = f"number read as text '{value}'"
    elif isinstance(raw, dt.datetime | dt.date | dt.time):
        value = raw.isoformat()
        note = f"date/time read as text '{value}'"
    elif isinstance(raw, str):
        cleaned = _clean(raw, expected)
        if cleaned is None:
            return Coerced(None)
        value = cleaned
        if value != raw:
            note = "trimmed spaces"
    else:
        raise CellError(expected, f"{_show(raw)} is not text")
    if _CONTROL.search(value):
        raise CellError(expected, f"{_show(value)} contains control characters")
    if collapse_whitespace:
        collapsed = " ".join(value.split())
        if collapsed != value:
            value = collapsed
            note = _join(note, "collapsed spaces")
    if max_length is not None and len(value) > max_length:
        raise CellError(
            f"text of at most {max_length} characters", f"{_show(value)} is longer than {max_length}"
        )
    return Coerced(value, note)
