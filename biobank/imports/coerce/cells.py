"""What every coercer shares: the result (:class:`Coerced`), the error (:class:`CellError`), Excel's percent
cells, and the rule for empty cells.

Every coercer takes the raw cell as :mod:`biobank.imports.read` yields it (``str`` from CSV; ``str``, ``int``,
``float``, ``bool``, ``datetime``, ``date``, ``time``, ``timedelta`` or ``None`` from Excel) and returns
``Coerced(value, note)``, or raises :class:`CellError`.

Empty cells: ``None``, blank or whitespace-only text and the tokens ``NA``, ``N/A``, ``n.a.``, ``-``, ``--``,
``null``, ``none``, ``nan`` and Excel's ``#N/A`` (any case) coerce to ``Coerced(None)``. Other Excel error values
(``#DIV/0!``, ``#VALUE!``, ``#REF!`` ...) are errors: a formula failed and the value is unknown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Coerced(Generic[T]):
    """A coerced cell: ``value`` is ``None`` for an empty cell; ``note`` says how the raw text was reinterpreted."""

    value: T | None
    note: str | None = None


class CellError(ValueError):
    """A cell that cannot be read as the column's type. ``expected`` is short ("a whole number")."""

    def __init__(self, expected: str, message: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.message = message

    def __str__(self) -> str:
        return self.message


class PercentCell(float):
    """An Excel number shown with a percent format: Excel stores 45 % as 0.45, so :func:`percent` multiplies by 100."""

    __slots__ = ()


Coercer = Callable[[Any], Coerced[Any]]

EMPTY_TOKENS = frozenset({"", "na", "n/a", "n.a.", "n.a", "-", "--", "null", "none", "nan", "#n/a"})
EXCEL_ERRORS = frozenset(
    {
        "#div/0!",
        "#value!",
        "#ref!",
        "#name?",
        "#num!",
        "#null!",
        "#spill!",
        "#calc!",
        "#getting_data",
        "#field!",
    }
)
_EDGE = re.compile(r"^[\s\u200b\ufeff]+|[\s\u200b\ufeff]+$")
_MAX_SHOWN = 60


def _show(raw: object) -> str:
    """The raw value quoted for a message, shortened so one bad cell cannot flood a report."""
    text = raw if isinstance(raw, str) else repr(raw)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return f"'{text}'"


def _trim(text: str) -> str:
    """Strip every kind of Unicode space, zero-width space and stray byte-order mark from both ends."""
    return _EDGE.sub("", text)


def _join(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


def _clean(raw: str, expected: str) -> str | None:
    """Trimmed text, or None for an empty token; Excel error values raise."""
    text = _trim(raw)
    folded = text.casefold()
    if folded in EMPTY_TOKENS:
        return None
    if folded in EXCEL_ERRORS:
        raise CellError(expected, f"{_show(text)} is an Excel error value: the formula in this cell failed")
    return text


def is_empty(raw: object) -> bool:
    """Whether a raw cell counts as empty (``None``, blank, ``NA``, ``N/A``, ``-``, ``null`` ...)."""
    if raw is None:
        return True
    if isinstance(raw, str):
        return _trim(raw).casefold() in EMPTY_TOKENS
    return _is_nan(raw)


def _raise(expected: str, message: str) -> Any:
    raise CellError(expected, message)


def _is_nan(value: object) -> bool:
    if isinstance(value, Decimal):
        return value.is_nan()
    return isinstance(value, float) and math.isnan(value)


def _is_finite(value: int | float | Decimal) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite()
    return not isinstance(value, float) or math.isfinite(value)
