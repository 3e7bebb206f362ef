"""Numbers, percentages and quantities with their units.

Numbers (:func:`integer`, :func:`decimal`, :func:`percent`, the number in :func:`quantity`):
``12``, ``-3.5``, ``+2``, ``−2`` (minus sign), ``.5``, ``1e6``, ``2.5E-3``; decimal comma ``1,5`` / ``0,125`` /
``,5``; thousands separators ``1,234,567`` / ``1,234.5`` / ``1.234.567`` / ``1.234,5`` / ``1 234`` / ``1'234``.
``1,500`` (one comma, three digits after it) is rejected as ambiguous: it is 1500 in one locale and 1.5 in another.

Quantities carry their unit in the cell (``5 mg``, ``0.2 ml`` -> 200 ul, ``2x10^6 cells``) or take it from a separate
unit column; the unit spellings are in :data:`UNIT_SPELLINGS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from decimal import Decimal
from typing import NamedTuple

from biobank.domain.vocab import QuantityUnit
from biobank.imports.coerce.cells import (
    CellError,
    Coerced,
    PercentCell,
    _clean,
    _join,
    _show,
    _trim,
    is_empty,
)

_NUM_FLAGS = re.ASCII
_PLAIN = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", _NUM_FLAGS)
_DECIMAL_COMMA = re.compile(r"([+-]?)([0-9]*),([0-9]+)", _NUM_FLAGS)
_COMMA_THOUSANDS = re.compile(r"([+-]?)([0-9]{1,3}(?:,[0-9]{3})+)(\.[0-9]+)?", _NUM_FLAGS)
_DOT_THOUSANDS = re.compile(r"([+-]?)([0-9]{1,3}(?:\.[0-9]{3})+)(,[0-9]+)?", _NUM_FLAGS)
_SPACE_THOUSANDS = re.compile(r"([+-]?)([0-9]{1,3}(?:[ \u00a0\u202f'’][0-9]{3})+)([.,][0-9]+)?")
_THOUSANDS = (_COMMA_THOUSANDS, _DOT_THOUSANDS, _SPACE_THOUSANDS)
_MAX_NUMBER_CHARS = 64  # also keeps every pattern below linear on garbage cells
_MAX_ADJUSTED = 15  # 10^15: far beyond any count, mass or volume a biobank records
_MIN_ADJUSTED = -30


def _format_number(value: Decimal) -> str:
    """``Decimal`` without exponent or trailing zeros: 1000000, 1.5, 0.001 (huge or odd values as ``str``)."""
    if not value.is_finite() or (value != 0 and not -30 <= value.adjusted() <= 30):
        return str(value)
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _number_text(raw: int | float | Decimal) -> str:
    """A number as a spreadsheet shows it: 1001.0 -> '1001', 0.1 -> '0.1'."""
    if isinstance(raw, float):
        return _format_number(Decimal(repr(raw))) if math.isfinite(raw) else repr(raw)
    return _format_number(Decimal(raw))


def _without_thousands(s: str) -> str | None:
    """``s`` without its thousands separators (comma, dot, space or apostrophe) and with a decimal point, or None
    when it is not written with thousands separators."""
    for pattern in _THOUSANDS:
        if m := pattern.fullmatch(s):
            sign, whole, frac = m.groups()
            return f"{sign}{re.sub(r'[^0-9]', '', whole)}{('.' + frac[1:]) if frac else ''}"
    return None


def _parse_number_text(text: str, expected: str) -> tuple[Decimal, str | None]:
    """Parse cleaned number text under the decimal-comma and thousands rules in the module docstring."""
    if len(text) > _MAX_NUMBER_CHARS:
        raise CellError(expected, f"{_show(text)} is too long to be a number")
    s = text.replace("\u2212", "-").replace("\u2013", "-")
    note: str | None = None
    if _PLAIN.fullmatch(s):
        number = s
    elif m := _DECIMAL_COMMA.fullmatch(s):
        sign, whole, frac = m.groups()
        if len(frac) == 3 and 1 <= len(whole) <= 3 and not whole.startswith("0"):
            raise CellError(
                expected,
                f"{_show(text)} is ambiguous: 1,500 means 1500 with a thousands comma and 1.5 with a decimal "
                f"comma; write {whole}{frac} or {_format_number(Decimal(f'{whole}.{frac}'))}",
            )
        number = f"{sign}{whole or '0'}.{frac}"
        note = f"'{text}' read as {number} (decimal comma)"
    elif (grouped := _without_thousands(s)) is not None:
        number = grouped
        note = f"'{text}' read as {number} (thousands separator)"
    else:
        raise CellError(expected, f"{_show(text)} is not a number")
    return _checked(Decimal(number), text, expected), note


def _checked(value: Decimal, raw: object, expected: str) -> Decimal:
    if not value.is_finite():
        raise CellError(expected, f"{_show(raw)} is not a finite number")
    if value != 0 and not _MIN_ADJUSTED <= value.adjusted() <= _MAX_ADJUSTED:
        raise CellError(expected, f"{_show(raw)} is out of range for a spreadsheet value")
    return value


def _number(raw: object, expected: str) -> tuple[Decimal | None, str | None]:
    """A raw cell as an exact ``Decimal`` (floats through their shortest repr), or None when empty."""
    if raw is None:
        return None, None
    if isinstance(raw, bool):
        raise CellError(expected, f"{'TRUE' if raw else 'FALSE'} is a yes/no value, not a number")
    if isinstance(raw, int):
        return _checked(Decimal(raw), raw, expected), None
    if isinstance(raw, float):
        if math.isnan(raw):
            return None, None
        if not math.isfinite(raw):
            raise CellError(expected, f"{_show(raw)} is not a finite number")
        return _checked(Decimal(repr(float(raw))), raw, expected), None
    if isinstance(raw, Decimal):
        if raw.is_nan():
            return None, None
        return _checked(raw, raw, expected), None
    if isinstance(raw, str):
        cleaned = _clean(raw, expected)
        if cleaned is None:
            return None, None
        return _parse_number_text(cleaned, expected)
    raise CellError(expected, f"{_show(raw)} is not a number")


def _bounds(value: Decimal, raw: object, expected: str, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < Decimal(repr(minimum)):
        raise CellError(expected, f"{_show(raw)} is below the minimum {minimum}")
    if maximum is not None and value > Decimal(repr(maximum)):
        raise CellError(expected, f"{_show(raw)} is above the maximum {maximum}")


def integer(raw: object, *, minimum: int | None = None, maximum: int | None = None) -> Coerced[int]:
    """A whole number; ``12.0`` is fine (Excel stores every number as a float), ``12.5`` is not."""
    expected = "a whole number"
    value, note = _number(raw, expected)
    if value is None:
        return Coerced(None)
    if value != value.to_integral_value():
        raise CellError(expected, f"{_show(raw)} is not a whole number")
    _bounds(value, raw, expected, minimum, maximum)
    return Coerced(int(value), note)


def decimal(raw: object, *, minimum: float | None = None, maximum: float | None = None) -> Coerced[float]:
    """A number, returned as ``float``."""
    expected = "a number"
    value, note = _number(raw, expected)
    if value is None:
        return Coerced(None)
    _bounds(value, raw, expected, minimum, maximum)
    return Coerced(float(value), note)


def percent(raw: object) -> Coerced[float]:
    """A percentage 0-100: ``45%``, ``45 %``, ``45``, or an Excel cell formatted as percent (:class:`PercentCell`)."""
    expected = "a percentage from 0 to 100"
    note: str | None = None
    if isinstance(raw, PercentCell):
        value, _ = _number(float(raw), expected)
        if value is None:
            return Coerced(None)
        value = value * 100
    elif isinstance(raw, str) and _trim(raw).endswith("%"):
        value, note = _number(_trim(raw)[:-1], expected)
        if value is None:
            raise CellError(expected, f"{_show(raw)} is not a percentage")
    else:
        value, note = _number(raw, expected)
        if value is None:
            return Coerced(None)
        if 0 < value < 1:
            note = _join(
                note, f"{_show(raw)} read as {_format_number(value)} % (not {_format_number(value * 100)} %)"
            )
    if not 0 <= value <= 100:
        raise CellError(expected, f"{_show(raw)} is not between 0 and 100 %")
    return Coerced(float(value), note)


# ----------------------------------------------------------------------------------------------------- quantity


class Quantity(NamedTuple):
    value: float
    unit: QuantityUnit


#: Unit spellings (after :func:`_unit_key`) -> (stored unit, factor to multiply the number by).
UNIT_SPELLINGS: dict[str, tuple[QuantityUnit, Decimal]] = {}
#: Spellings that name a different thing counted the same way (a slide holds one section): always noted.
_RENAMED_UNITS = frozenset({"slide", "slides", "curl", "curls"})


def _unit_key(text: str) -> str:
    return re.sub(r"[\s.]+", "", text.casefold())


def _units(unit: QuantityUnit, factor: str, *spellings: str) -> None:
    for spelling in spellings:
        UNIT_SPELLINGS[_unit_key(spelling)] = (unit, Decimal(factor))


_units(QuantityUnit.mg, "1", "mg", "mgs", "milligram", "milligrams", "milligramme", "milligrammes")
_units(QuantityUnit.mg, "1000", "g", "gram", "grams", "gramme", "grammes")
_units(QuantityUnit.ng, "1", "ng", "nanogram", "nanograms")
_units(QuantityUnit.ng, "1000", "µg", "μg", "ug", "mcg", "microgram", "micrograms")
_units(QuantityUnit.ng, "0.001", "pg", "picogram", "picograms")
_units(
    QuantityUnit.ul, "1", "ul", "µl", "μl", "mcl", "microlitre", "microlitres", "microliter", "microliters"
)
_units(QuantityUnit.ul, "1000", "ml", "millilitre", "millilitres", "milliliter", "milliliters", "cc")
_units(QuantityUnit.cells, "1", "cell", "cells")
_units(QuantityUnit.sections, "1", "section", "sections", "sect", "slide", "slides", "curl", "curls")
_units(QuantityUnit.blocks, "1", "block", "blocks", "blk")

_QUANTITY = re.compile(
    r"(?P<number>.*?[0-9])"
    r"(?:\s*[x×*]\s*10\s*(?:\^|\*\*)\s*(?P<power>[+-]?[0-9]{1,2}))?"
    r"\s*(?P<unit>[^\W\d_][^\d]*)?"
)
_MAX_QUANTITY_CHARS = 100
QUANTITY_EXPECTED = "a quantity with a unit, e.g. '5 mg' or '200 ul'"


def _parse_unit(text: str, expected: str, what: str = "unit") -> tuple[QuantityUnit, Decimal]:
    found = UNIT_SPELLINGS.get(_unit_key(text))
    if found is None:
        allowed = ", ".join(u.value for u in QuantityUnit)
        raise CellError(expected, f"{_show(text)} is not a known {what}; allowed: {allowed} (also g, ml, µg)")
    return found


def quantity(
    raw: object,
    *,
    default_unit: object = None,
    units: Collection[QuantityUnit] | None = None,
) -> Coerced[Quantity]:
    """A non-negative amount with a unit (``5 mg``, ``0.2 ml`` -> 200 ul, ``1e6 cells``, ``2x10^6 cells``).

    ``default_unit`` (a ``QuantityUnit``, or the raw cell of a separate unit column, which may say ``ml``) applies
    when the cell holds a bare number; a unit in the cell that contradicts it is an error. ``units`` restricts the
    stored units accepted.
    """
    expected = QUANTITY_EXPECTED
    if raw is None:
        return Coerced(None)
    default: tuple[QuantityUnit, Decimal] | None = None
    if default_unit is not None and not is_empty(default_unit):
        if not isinstance(default_unit, str):
            raise CellError(expected, f"{_show(default_unit)} in the unit column is not a unit")
        default = _parse_unit(default_unit, expected, "unit in the unit column")
    number_note: str | None = None
    unit_text: str | None = None
    if isinstance(raw, str):
        cleaned = _clean(raw, expected)
        if cleaned is None:
            return Coerced(None)
        m = _QUANTITY.fullmatch(cleaned) if len(cleaned) <= _MAX_QUANTITY_CHARS else None
        if m is None:
            raise CellError(expected, f"{_show(raw)} is not a quantity")
        number, number_note = _parse_number_text(_trim(m["number"]), expected)
        if m["power"] is not None:
            number = _checked(number.scaleb(int(m["power"])), raw, expected)
        unit_text = _trim(m["unit"]) if m["unit"] else None
    else:
        parsed, number_note = _number(raw, expected)
        if parsed is None:
            return Coerced(None)
        number = parsed
    if number < 0:
        raise CellError("a quantity of zero or more", f"{_show(raw)} is negative")
    if unit_text is not None:
        unit, factor = _parse_unit(unit_text, expected)
        if default is not None and default[0] != unit:
            raise CellError(
                expected, f"{_show(raw)} is in {unit.value} but the unit column says {default_unit}"
            )
        renamed = _unit_key(unit_text) in _RENAMED_UNITS
        shown = _show(raw)
    elif default is not None:
        unit, factor = default
        renamed = False
        shown = f"'{_number_text(number)} {default_unit}'"
    else:
        raise CellError(expected, f"{_show(raw)} has no unit (write e.g. '{_number_text(number)} mg')")
    if units is not None and unit not in units:
        allowed = ", ".join(u.value for u in units)
        raise CellError(
            f"a quantity in {allowed}", f"{_show(raw)} is in {unit.value}; allowed here: {allowed}"
        )
    value = number * factor
    note = number_note
    if factor != 1 or renamed:
        note = _join(note, f"{shown} read as {_format_number(value)} {unit.value}")
    return Coerced(Quantity(float(value), unit), note)
