"""Pure cell coercers for spreadsheet imports: one raw cell in, a typed value (and maybe a note) out.

Every coercer takes the raw cell as :mod:`biobank.imports.read` yields it (``str`` from CSV; ``str``, ``int``,
``float``, ``bool``, ``datetime``, ``date``, ``time``, ``timedelta`` or ``None`` from Excel) and returns
``Coerced(value, note)``, or raises :class:`CellError`. Nothing here touches a database or guesses silently: when a
value is read in a way the user might not expect, the ``note`` says how.

Empty cells: ``None``, blank or whitespace-only text and the tokens ``NA``, ``N/A``, ``n.a.``, ``-``, ``--``,
``null``, ``none``, ``nan`` and Excel's ``#N/A`` (any case) coerce to ``Coerced(None)``. Other Excel error values
(``#DIV/0!``, ``#VALUE!``, ``#REF!`` ...) are errors: a formula failed and the value is unknown.

Numbers (:func:`integer`, :func:`decimal`, :func:`percent`, the number in :func:`quantity`):
``12``, ``-3.5``, ``+2``, ``−2`` (minus sign), ``.5``, ``1e6``, ``2.5E-3``; decimal comma ``1,5`` / ``0,125`` /
``,5``; thousands separators ``1,234,567`` / ``1,234.5`` / ``1.234.567`` / ``1.234,5`` / ``1 234`` / ``1'234``.
``1,500`` (one comma, three digits after it) is rejected as ambiguous: it is 1500 in one locale and 1.5 in another.

Dates and times (:func:`calendar_date`, :func:`date_time`, :func:`time_of_day`); ``TIME`` is ``H:MM``, ``H:MM:SS`` or
``H:MM:SS.ffffff``, optionally followed by ``AM``/``PM``:

- ISO 8601: ``2024-03-17``, ``2024-03-17T14:30``, ``2024-03-17 14:30:05``, with an optional offset ``Z``, ``+01``,
  ``+0100`` or ``+01:00``; ISO basic ``20240317`` (date only). An explicit offset wins over the lab's zone.
- ``dd/mm/yyyy``, ``dd.mm.yyyy``, ``dd-mm-yyyy`` [``TIME``]: day first by default; ``dayfirst=False`` reads
  ``mm/dd/yyyy``. When both readings are valid dates (``03/04/2024``) the note says which one was taken.
- ``yyyy/mm/dd``, ``yyyy.mm.dd``, ``yyyy-m-d`` [``TIME``].
- ``17 Mar 2024``, ``17-Mar-2024``, ``17 March 2024``, ``March 17, 2024`` [``TIME``] (English month names).
- Excel serial day numbers (1900 date system, fraction = time of day) from 3654 (1910-01-01) on, as numbers or
  digit strings; and the ``datetime``/``date``/``time`` objects openpyxl returns for cells formatted as dates.

Two-digit years are rejected (``03/04/24``): the century cannot be told for dates of diagnosis decades back.
``dateutil.parser.parse`` is deliberately not used: it accepts almost anything and guesses silently.
Naive date-times are wall-clock times in the lab's zone; a wall time that happens twice (clocks go back) or never
(clocks go forward) is an error, and results are UTC-aware.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, NamedTuple, TypeVar

from dateutil.tz import datetime_ambiguous, datetime_exists

from biobank.domain.vocab import (
    FORMAT_ABBREVIATION,
    BonePhenotype,
    ConsentGiver,
    DecalcificationAgent,
    Fixative,
    ImagingResponse,
    Laterality,
    LesionKind,
    MaterialType,
    QuantityUnit,
    ReceptorStatus,
    Response,
    Sex,
    SiteKind,
    StorageFormat,
    TissueStatus,
    TreatmentIntent,
)

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

UTC = dt.UTC


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
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
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


# --------------------------------------------------------------------------------------------------------- text


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


# ------------------------------------------------------------------------------------------------------ numbers

_NUM_FLAGS = re.ASCII
_PLAIN = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", _NUM_FLAGS)
_DECIMAL_COMMA = re.compile(r"([+-]?)([0-9]*),([0-9]+)", _NUM_FLAGS)
_COMMA_THOUSANDS = re.compile(r"([+-]?)([0-9]{1,3}(?:,[0-9]{3})+)(\.[0-9]+)?", _NUM_FLAGS)
_DOT_THOUSANDS = re.compile(r"([+-]?)([0-9]{1,3}(?:\.[0-9]{3})+)(,[0-9]+)?", _NUM_FLAGS)
_SPACE_THOUSANDS = re.compile(r"([+-]?)([0-9]{1,3}(?:[ \u00a0\u202f'’][0-9]{3})+)([.,][0-9]+)?")
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
    elif m := _COMMA_THOUSANDS.fullmatch(s):
        sign, whole, frac = m.groups()
        number = f"{sign}{whole.replace(',', '')}{frac or ''}"
        note = f"'{text}' read as {number} (thousands separator)"
    elif m := _DOT_THOUSANDS.fullmatch(s):
        sign, whole, frac = m.groups()
        number = f"{sign}{whole.replace('.', '')}{('.' + frac[1:]) if frac else ''}"
        note = f"'{text}' read as {number} (thousands separator)"
    elif m := _SPACE_THOUSANDS.fullmatch(s):
        sign, whole, frac = m.groups()
        number = f"{sign}{re.sub(r'[^0-9]', '', whole)}{('.' + frac[1:]) if frac else ''}"
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


_TRUE = frozenset({"yes", "y", "true", "t", "1", "x", "✓", "✔", "☑"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})


def boolean(raw: object) -> Coerced[bool]:
    """Yes/no: ``yes``, ``y``, ``true``, ``1``, ``x`` (a ticked box) and ``no``, ``n``, ``false``, ``0``."""
    expected = "yes or no"
    if raw is None:
        return Coerced(None)
    if isinstance(raw, bool):
        return Coerced(raw)
    if isinstance(raw, int | float | Decimal):
        if _is_nan(raw):
            return Coerced(None)
        if _is_finite(raw) and raw in (0, 1):
            return Coerced(bool(raw))
        raise CellError(expected, f"{_show(raw)} is not yes/no (use yes, no, 1, 0 or x)")
    if isinstance(raw, str):
        cleaned = _clean(raw, expected)
        if cleaned is None:
            return Coerced(None)
        key = cleaned.casefold()
        if key in _TRUE:
            return Coerced(True, f"'{cleaned}' read as yes" if key in {"x", "✓", "✔", "☑"} else None)
        if key in _FALSE:
            return Coerced(False)
    raise CellError(expected, f"{_show(raw)} is not yes/no (use yes, no, 1, 0 or x)")


# --------------------------------------------------------------------------------------------------- vocabulary

_KEY_JUNK = re.compile(r"[\s_\-‐‑‒–—]+")


def vocab_key(text: str) -> str:
    """Matching key: case-, space-, hyphen- and underscore-insensitive (``Snap-Frozen`` = ``snap_frozen``)."""
    return _KEY_JUNK.sub("", _trim(text).casefold())


#: Spellings seen in lab spreadsheets, per vocabulary and value. Matching uses :func:`vocab_key`, so case, spaces,
#: hyphens and underscores need not be listed; the enum values themselves always match. Storage formats also accept
#: their label abbreviations (``vocab.FORMAT_ABBREVIATION``) except the ambiguous ``FF``.
SYNONYM_GROUPS: dict[type[StrEnum], dict[str, tuple[str, ...]]] = {
    StorageFormat: {
        "fresh": ("fresh tissue", "fresh in medium", "medium", "culture medium"),
        "snap_frozen": (
            "snap frozen",
            "snap",
            "LN2",
            "LN",
            "liquid nitrogen",
            "snap frozen in LN2",
            "flash frozen",
            "fresh frozen",
        ),
        "oct": (
            "OCT",
            "O.C.T.",
            "O.C.T",
            "OCT embedded",
            "OCT block",
            "frozen in OCT",
            "Tissue-Tek",
            "Tissue-Tek OCT",
        ),
        "ffpe": (
            "FFPE",
            "FFPE block",
            "formalin-fixed paraffin-embedded",
            "formalin fixed, paraffin embedded",
            "paraffin",
            "paraffin block",
            "paraffin embedded",
        ),
        "rnalater": ("RNA later", "RNAlater", "RNAL"),
        "viable_cryo": (
            "viable",
            "viable cryo",
            "viable cryopreserved",
            "viably frozen",
            "viable frozen",
            "cryopreserved",
            "DMSO",
            "in DMSO",
            "10% DMSO",
        ),
        "frozen": ("-80", "−80", "-80C", "-80 °C", "−80 °C", "−80C", "minus 80", "freezer", "frozen -80"),
    },
    Sex: {
        "male": ("M", "man", "XY"),
        "female": ("F", "W", "woman", "XX"),
        "unknown": ("U", "unk", "not known", "not recorded"),
        "undifferentiated": ("intersex", "indeterminate"),
        "not_applicable": ("not applicable",),
    },
    MaterialType: {
        "tissue": ("solid tissue", "tumour tissue", "tumor tissue"),
        "whole_blood": ("blood", "WB", "EDTA blood", "peripheral blood"),
        "plasma": ("blood plasma", "EDTA plasma"),
        "buffy_coat": ("buffy", "BC"),
        "bone_marrow": ("marrow", "BM", "bone marrow aspirate", "marrow aspirate", "BMA"),
        "dna": ("gDNA", "genomic DNA", "cfDNA", "ctDNA"),
        "rna": ("total RNA",),
        "cells": ("cell", "cell suspension", "single cell suspension", "cell pellet", "PBMC", "PBMCs"),
        "section": (
            "sections",
            "tissue section",
            "slide",
            "slides",
            "unstained slide",
            "unstained slides",
            "H&E slide",
            "curl",
            "curls",
            "scroll",
            "scrolls",
        ),
    },
    LesionKind: {
        "primary": ("primary tumour", "primary tumor", "prim"),
        "metastasis": ("met", "mets", "metastatic", "metastases", "metastatic lesion", "distant metastasis"),
        "local_recurrence": ("recurrence", "LR", "locoregional recurrence"),
        "lymph_node": ("LN", "node", "nodal", "lymph node metastasis", "nodal metastasis", "LN met"),
    },
    DecalcificationAgent: {
        "edta": ("EDTA decal", "Osteosoft"),
        "formic_acid": ("formic", "HCOOH"),
        "hydrochloric_acid": ("HCl", "hydrochloric", "RDO"),
        "nitric_acid": ("nitric", "HNO3"),
        "other_acid": ("acid", "strong acid"),
    },
    QuantityUnit: {
        "mg": ("milligram", "milligrams"),
        "ul": ("µl", "μl", "microlitre", "microlitres", "microliter", "microliters"),
        "cells": ("cell",),
        "sections": ("section", "slide", "slides"),
        "blocks": ("block",),
        "ng": ("nanogram", "nanograms"),
    },
    ReceptorStatus: {
        "positive": ("+", "pos", "pos.", "+ve"),
        "negative": ("−", "neg", "neg.", "-ve", "−ve"),
        "equivocal": ("equiv", "borderline"),
        "low": ("HER2-low", "low positive", "weakly positive"),
        "unknown": ("unk", "not known", "not tested", "not done"),
    },
    Laterality: {
        "left": ("L", "lt", "left side"),
        "right": ("R", "rt", "right side"),
        "bilateral": ("bilat", "both", "L+R", "L&R", "left and right"),
        "midline": ("central", "median"),
        "not_applicable": ("not applicable",),
        "unknown": ("unk", "not known"),
    },
    Fixative: {
        "nbf": ("NBF", "10% NBF", "neutral buffered formalin", "10% neutral buffered formalin"),
        "formalin": ("formaldehyde",),
        "aldehyde": ("PFA", "paraformaldehyde", "glutaraldehyde"),
        "alcohol": ("ethanol", "methanol", "70% ethanol"),
        "paxgene": ("PAXgene Tissue", "PAXgene fixative"),
    },
    TissueStatus: {
        "tumour": ("tumor", "T"),
        "normal": ("N",),
        "adjacent_normal": ("adjacent normal tissue", "NAT", "normal adjacent", "adjacent"),
    },
    SiteKind: {
        "tumour_region": ("tumor region", "tumour", "tumor"),
        "normal_tissue": ("normal",),
        "germline_blood": ("germline",),
        "bone_marrow": ("marrow", "bone marrow aspirate"),
        "premortem_blood": ("premortem", "pre-mortem blood", "antemortem blood"),
    },
    BonePhenotype: {
        "osteolytic": ("lytic",),
        "osteoblastic": ("blastic", "sclerotic", "osteosclerotic"),
        "mixed": ("mixed lytic/blastic", "lytic/blastic"),
    },
    Response: {
        "complete": ("CR", "complete response"),
        "partial": ("PR", "partial response"),
        "stable": ("SD", "stable disease"),
        "progressive": ("PD", "progression", "progressive disease"),
        "not_evaluable": ("NE",),
        "unknown": ("unk",),
    },
    ImagingResponse: {
        "progressing": ("progression", "progressive", "PD"),
        "stable": ("SD",),
        "responding": ("response", "PR", "CR"),
        "unknown": ("unk",),
    },
    TreatmentIntent: {
        "neoadjuvant": ("neo-adjuvant", "neoadj"),
        "adjuvant": ("adj",),
        "curative": ("curative intent",),
        "palliative": ("palliation",),
        "unknown": ("unk",),
    },
    ConsentGiver: {
        "donor": ("patient", "self"),
        "next_of_kin": ("NOK", "family", "relative"),
        "legal_representative": ("LAR", "legal guardian"),
    },
}

#: Flat lookup built from :data:`SYNONYM_GROUPS`: spelling -> vocabulary member.
SYNONYMS: dict[type[StrEnum], dict[str, StrEnum]] = {
    enum_cls: {spelling: enum_cls(value) for value, spellings in groups.items() for spelling in spellings}
    for enum_cls, groups in SYNONYM_GROUPS.items()
}
SYNONYMS[StorageFormat].update({abbr: fmt for fmt, abbr in FORMAT_ABBREVIATION.items() if abbr != "FF"})

#: Spellings that must not be guessed: each maps to the message shown to the user.
AMBIGUOUS: dict[type[StrEnum], dict[str, str]] = {
    StorageFormat: {
        "FF": "'FF' means fresh frozen in some labs and FFPE in others: write snap_frozen or ffpe",
        "cryo": "'cryo' may mean snap frozen or viable cryopreserved: write snap_frozen or viable_cryo",
        "formalin": "'formalin' is a fixative, not a storage format: write ffpe for a paraffin block",
    },
    ReceptorStatus: {
        "-": "'-' may mean negative or not tested: write negative, or leave the cell empty",
    },
    Sex: {},
}


class VocabCoercer(Generic[E]):
    """Coerces cells to one vocabulary; built by :func:`vocab`."""

    def __init__(self, enum_cls: type[E], synonyms: Mapping[str, E | str] | None = None) -> None:
        self.enum_cls = enum_cls
        self.name = enum_cls.__name__
        self.allowed: tuple[str, ...] = tuple(member.value for member in enum_cls)
        self.lookup: dict[str, E] = {}
        for member in enum_cls:
            self._add(member.value, member, overwrite=True)
        for spelling, target in {**SYNONYMS.get(enum_cls, {}), **(synonyms or {})}.items():
            self._add(spelling, enum_cls(target), overwrite=spelling in (synonyms or {}))
        self.ambiguous = {vocab_key(k): v for k, v in AMBIGUOUS.get(enum_cls, {}).items() if vocab_key(k)}
        self._ambiguous_exact = {k.strip().casefold(): v for k, v in AMBIGUOUS.get(enum_cls, {}).items()}
        self.expected = f"one of {', '.join(self.allowed)}"

    def _add(self, spelling: str, member: E, *, overwrite: bool) -> None:
        key = vocab_key(spelling)
        if not key:
            raise ValueError(f"synonym {spelling!r} for {self.name} is empty after normalisation")
        if not overwrite and self.lookup.get(key, member) != member:
            raise ValueError(f"synonym {spelling!r} for {self.name} clashes with {self.lookup[key].value}")
        self.lookup[key] = member

    def __call__(self, raw: object) -> Coerced[E]:
        if raw is None:
            return Coerced(None)
        if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
            raise CellError(
                self.expected, f"{_show(raw)} is not a {self._label}; allowed: {', '.join(self.allowed)}"
            )
        if isinstance(raw, float | Decimal):
            if not _is_finite(raw):
                return Coerced(None) if _is_nan(raw) else self._unknown(raw)
            raw_text = _number_text(raw)
        else:
            raw_text = str(raw)
        exact = _trim(raw_text).casefold()
        if exact in self._ambiguous_exact:
            raise CellError(self.expected, self._ambiguous_exact[exact])
        cleaned = _clean(raw_text, self.expected)
        if cleaned is None:
            return Coerced(None)
        key = vocab_key(cleaned)
        if key in self.ambiguous:
            raise CellError(self.expected, self.ambiguous[key])
        member = self.lookup.get(key)
        if member is None:
            return self._unknown(raw)
        note = None if cleaned == member.value else f"'{cleaned}' read as {member.value}"
        return Coerced(member, note)

    @property
    def _label(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", " ", self.name).lower()

    def _unknown(self, raw: object) -> Coerced[E]:
        raise CellError(
            self.expected, f"{_show(raw)} is not a known {self._label}; allowed: {', '.join(self.allowed)}"
        )


_VOCAB_CACHE: dict[type[StrEnum], VocabCoercer[Any]] = {}


def vocab(enum_cls: type[E], synonyms: Mapping[str, E | str] | None = None) -> VocabCoercer[E]:
    """A coercer for one vocabulary: its values, :data:`SYNONYMS` for it, then ``synonyms`` (which win on clash)."""
    if synonyms:
        return VocabCoercer(enum_cls, synonyms)
    if enum_cls not in _VOCAB_CACHE:
        _VOCAB_CACHE[enum_cls] = VocabCoercer(enum_cls)
    return _VOCAB_CACHE[enum_cls]


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


# -------------------------------------------------------------------------------------------------- dates, times

EXCEL_EPOCH = dt.datetime(1899, 12, 30)
#: Serial numbers accepted as Excel dates: 1910-01-01 to 9999-12-31. Smaller numbers are years or counts, not dates.
EXCEL_SERIAL_MIN = 3654
EXCEL_SERIAL_MAX = 2958465

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}

_TIME = r"(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]{1,6}))?)?(?:\s*(?P<ampm>[ap])\.?m\.?)?"
_TAIL = rf"(?:(?:\s+|\s*[T,]\s*)(?:{_TIME}))?"
_ISO = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[T ](?P<time>[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,6})?)?)(?P<off>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?",
    re.IGNORECASE | re.ASCII,
)
_ISO_BASIC = re.compile(r"(?:19|20)[0-9]{2}[01][0-9][0-3][0-9]", re.ASCII)
_DMY = re.compile(
    rf"(?P<a>[0-9]{{1,2}})(?P<sep>[./-])(?P<b>[0-9]{{1,2}})(?P=sep)(?P<y>[0-9]{{2,4}}){_TAIL}", re.I | re.A
)
_YMD = re.compile(
    rf"(?P<y>[0-9]{{4}})(?P<sep>[./-])(?P<m>[0-9]{{1,2}})(?P=sep)(?P<d>[0-9]{{1,2}}){_TAIL}", re.I | re.A
)
_D_MON_Y = re.compile(
    rf"(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?[\s-]+(?P<mon>[a-z]+)\.?,?[\s-]+(?P<y>[0-9]{{2,4}}){_TAIL}",
    re.I | re.A,
)
_MON_D_Y = re.compile(
    rf"(?P<mon>[a-z]+)\.?\s+(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>[0-9]{{2,4}}){_TAIL}", re.I | re.A
)
_TIME_ONLY = re.compile(_TIME, re.I | re.A)
_HHMM = re.compile(r"([01][0-9]|2[0-3])([0-5][0-9])", re.A)

_MAX_DATE_CHARS = 64
DATE_EXPECTED = "a date such as 2024-03-17, 17/03/2024 or 17 Mar 2024"
DATETIME_EXPECTED = "a date and time such as 2024-03-17 14:30 or 17/03/2024 14:30"
TIME_EXPECTED = "a time of day such as 14:30"


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A date read from text: the wall-clock time if any, the explicit offset if any, and a note."""

    day: dt.date
    time: dt.time | None = None
    offset: dt.tzinfo | None = None
    note: str | None = None


def _year(text: str, raw: str, expected: str) -> int:
    if len(text) != 4:
        raise CellError(expected, f"{_show(raw)} has a {len(text)}-digit year: write the year in four digits")
    return int(text)


def _make_date(year: int, month: int, day: int, raw: str, expected: str) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CellError(expected, f"{_show(raw)} is not a valid date") from None


def _time_from(m: re.Match[str], raw: str, expected: str) -> dt.time | None:
    if m["h"] is None:
        return None
    hour, minute = int(m["h"]), int(m["mi"])
    second = int(m["s"] or 0)
    micro = int((m["f"] or "0").ljust(6, "0"))
    if m["ampm"]:
        if not 1 <= hour <= 12:
            raise CellError(expected, f"{_show(raw)} has hour {hour} with AM/PM")
        hour = hour % 12 + (12 if m["ampm"].lower() == "p" else 0)
    try:
        return dt.time(hour, minute, second, micro)
    except ValueError:
        raise CellError(expected, f"{_show(raw)} has an impossible time of day") from None


def _parse_date_text(raw: str, *, dayfirst: bool, expected: str) -> _Parsed:
    """Read cleaned text in one of the documented formats; anything else is a CellError."""
    if len(raw) > _MAX_DATE_CHARS:
        raise CellError(expected, f"{_show(raw)} is too long to be a date")
    s = raw
    if m := _ISO.fullmatch(s):
        try:
            parsed = dt.datetime.fromisoformat(s.upper().replace(",", "."))
        except ValueError:
            raise CellError(expected, f"{_show(raw)} is not a valid date") from None
        has_time = m["time"] is not None
        return _Parsed(
            parsed.date(),
            parsed.time() if has_time else None,
            parsed.tzinfo if m["off"] is not None else None,
        )
    if _ISO_BASIC.fullmatch(s):
        day = _make_date(int(s[:4]), int(s[4:6]), int(s[6:]), raw, expected)
        return _Parsed(day, note=f"'{raw}' read as {day.isoformat()}")
    if m := _YMD.fullmatch(s):
        day = _make_date(int(m["y"]), int(m["m"]), int(m["d"]), raw, expected)
        return _Parsed(day, _time_from(m, raw, expected))
    if m := _DMY.fullmatch(s):
        year = _year(m["y"], raw, expected)
        a, b = int(m["a"]), int(m["b"])
        day_n, month_n = (a, b) if dayfirst else (b, a)
        order = "day-first" if dayfirst else "month-first"
        if not 1 <= month_n <= 12:
            other = "month-first" if dayfirst else "day-first"
            raise CellError(
                expected,
                f"{_show(raw)} is not a valid {order} date (no month {month_n}); if this file writes dates "
                f"{other}, import it with {other} dates",
            )
        day = _make_date(year, month_n, day_n, raw, expected)
        note = None
        if a != b and a <= 12 and b <= 12:
            note = f"'{raw}' read {order} as {day.isoformat()}"
        return _Parsed(day, _time_from(m, raw, expected), note=note)
    for pattern in (_D_MON_Y, _MON_D_Y):
        if m := pattern.fullmatch(s):
            month = _MONTHS.get(m["mon"].lower())
            if month is None:
                raise CellError(expected, f"{_show(raw)}: '{m['mon']}' is not an English month name")
            day = _make_date(_year(m["y"], raw, expected), month, int(m["d"]), raw, expected)
            return _Parsed(day, _time_from(m, raw, expected))
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", s, re.A) and len(s) <= 20:
        return _from_serial(float(s), raw, expected)
    raise CellError(expected, f"{_show(raw)} is not {expected}")


def _from_serial(serial: float, raw: object, expected: str) -> _Parsed:
    """An Excel 1900-system serial day number; the fraction is the time of day."""
    if not math.isfinite(serial) or not EXCEL_SERIAL_MIN <= serial < EXCEL_SERIAL_MAX + 1:
        hint = " (a year alone is not a date)" if 1000 <= serial <= 2999 else ""
        raise CellError(
            expected,
            f"{_show(raw)} is not a date{hint}; numbers are read as Excel serial days from "
            f"{EXCEL_SERIAL_MIN} (1910-01-01)",
        )
    stamp = EXCEL_EPOCH + dt.timedelta(milliseconds=round(serial * 86_400_000))
    shown = raw if isinstance(raw, str) else _number_text(round(serial, 6))
    if stamp.time() == dt.time(0):
        return _Parsed(stamp.date(), None, note=f"Excel serial {shown} read as {stamp.date().isoformat()}")
    text = stamp.isoformat(sep=" ", timespec="milliseconds" if stamp.microsecond else "seconds")
    return _Parsed(stamp.date(), stamp.time(), note=f"Excel serial {shown} read as {text}")


def _parse_any(raw: object, *, dayfirst: bool, expected: str) -> _Parsed | None:
    if raw is None:
        return None
    if isinstance(raw, dt.datetime):
        return _Parsed(raw.date(), raw.time())
    if isinstance(raw, dt.date):
        return _Parsed(raw)
    if isinstance(raw, bool):
        raise CellError(expected, f"{'TRUE' if raw else 'FALSE'} is not a date")
    if isinstance(raw, int | float | Decimal):
        if _is_nan(raw):
            return None
        try:
            serial = float(raw)
        except OverflowError:
            serial = math.inf
        return _from_serial(serial, raw, expected)
    if isinstance(raw, str):
        cleaned = _clean(raw, expected)
        if cleaned is None:
            return None
        return _parse_date_text(cleaned, dayfirst=dayfirst, expected=expected)
    raise CellError(expected, f"{_show(raw)} is not a date")


def calendar_date(raw: object, *, dayfirst: bool = True) -> Coerced[dt.date]:
    """A calendar date (formats in the module docstring); a time part, if present, is dropped with a note."""
    parsed = _parse_any(raw, dayfirst=dayfirst, expected=DATE_EXPECTED)
    if parsed is None:
        return Coerced(None)
    note = parsed.note
    if (
        parsed.time is not None
        and parsed.time != dt.time(0)
        and not (note and note.startswith("Excel serial"))
    ):
        note = _join(note, f"time {parsed.time.isoformat(timespec='minutes')} ignored")
    return Coerced(parsed.day, note)


def _zone_name(tz: dt.tzinfo) -> str:
    return str(getattr(tz, "key", None) or tz)


def localise(
    naive: dt.datetime, tz: dt.tzinfo, *, expected: str = DATETIME_EXPECTED, shown: str | None = None
) -> dt.datetime:
    """A wall-clock time in ``tz`` as a UTC-aware datetime; raises CellError when DST makes it ambiguous or absent."""
    shown = shown or naive.isoformat(sep=" ", timespec="minutes")
    try:
        exists = datetime_exists(naive, tz)
        ambiguous = datetime_ambiguous(naive, tz)
        value = naive.replace(tzinfo=tz).astimezone(UTC)
    except (OverflowError, ValueError):
        raise CellError(expected, f"'{shown}' is out of range") from None
    if not exists:
        raise CellError(
            expected, f"'{shown}' does not exist in {_zone_name(tz)}: the clocks went forward over it"
        )
    if ambiguous:
        raise CellError(
            expected,
            f"'{shown}' happens twice in {_zone_name(tz)} (the clocks went back): give the UTC offset, "
            f"e.g. {naive.isoformat(timespec='minutes')}{_offset_text(naive.replace(tzinfo=tz).utcoffset())}",
        )
    return value


def date_time(raw: object, *, tz: dt.tzinfo, dayfirst: bool = True) -> Coerced[dt.datetime]:
    """A moment as a UTC-aware datetime; naive values are wall-clock times in the lab zone ``tz``."""
    expected = DATETIME_EXPECTED
    if isinstance(raw, dt.time):
        raise CellError(expected, f"{_show(raw)} is a time without a date")
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        raise CellError(expected, f"{_show(raw)} is a date without a time")
    if isinstance(raw, dt.datetime) and raw.utcoffset() is not None:
        try:
            return Coerced(raw.astimezone(UTC))
        except (OverflowError, ValueError):
            raise CellError(expected, f"{_show(raw)} is out of range") from None
    parsed = _parse_any(raw, dayfirst=dayfirst, expected=expected)
    if parsed is None:
        return Coerced(None)
    time = parsed.time
    if time is None:
        if not (parsed.note and parsed.note.startswith("Excel serial")):
            raise CellError(expected, f"{_show(raw)} has a date but no time")
        time = dt.time(0)
    naive = dt.datetime.combine(parsed.day, time)
    if parsed.offset is None:
        shown = raw if isinstance(raw, str) else None
        return Coerced(localise(naive, tz, shown=shown), parsed.note)
    try:
        value = naive.replace(tzinfo=parsed.offset).astimezone(UTC)
    except (OverflowError, ValueError):
        raise CellError(expected, f"{_show(raw)} is out of range") from None
    note = parsed.note
    try:
        lab_offset = value.astimezone(tz).utcoffset()
    except (OverflowError, ValueError):
        lab_offset = None
    given = naive.replace(tzinfo=parsed.offset).utcoffset()
    if lab_offset is not None and given != lab_offset:
        note = _join(
            note,
            f"offset {_offset_text(given)} in the cell used, not {_zone_name(tz)} ({_offset_text(lab_offset)})",
        )
    return Coerced(value, note)


def _offset_text(offset: dt.timedelta | None) -> str:
    if offset is None:
        return "?"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def time_of_day(raw: object) -> Coerced[dt.time]:
    """A wall-clock time: ``14:30``, ``14:30:05``, ``2:30 PM``, ``1430`` (with a note), or Excel's time values."""
    expected = TIME_EXPECTED
    if raw is None:
        return Coerced(None)
    if isinstance(raw, dt.datetime):
        return Coerced(raw.time(), f"date part of {raw.isoformat(sep=' ', timespec='minutes')} ignored")
    if isinstance(raw, dt.time):
        return Coerced(raw.replace(tzinfo=None))
    if isinstance(raw, dt.timedelta):
        if dt.timedelta(0) <= raw < dt.timedelta(days=1):
            return Coerced((dt.datetime.min + raw).time())
        raise CellError(expected, f"{_show(raw)} is not a time of day")
    if isinstance(raw, bool | dt.date):
        raise CellError(expected, f"{_show(raw)} is not a time of day")
    if isinstance(raw, float) and math.isnan(raw):
        return Coerced(None)
    if isinstance(raw, float) and 0 <= raw < 1:
        millis = round(raw * 86_400_000)
        if millis >= 86_400_000:
            raise CellError(expected, f"{_show(raw)} is not a time of day")
        value = (dt.datetime.min + dt.timedelta(milliseconds=millis)).time()
        return Coerced(value, f"Excel time {raw!r} read as {value.isoformat(timespec='seconds')}")
    if not isinstance(raw, str):
        raise CellError(expected, f"{_show(raw)} is not a time of day")
    cleaned = _clean(raw, expected)
    if cleaned is None:
        return Coerced(None)
    if len(cleaned) > _MAX_DATE_CHARS:
        raise CellError(expected, f"{_show(raw)} is too long to be a time")
    if m := _TIME_ONLY.fullmatch(cleaned):
        return Coerced(_time_from(m, cleaned, expected))
    if m := _HHMM.fullmatch(cleaned):
        value = dt.time(int(m[1]), int(m[2]))
        return Coerced(value, f"'{cleaned}' read as {value.isoformat(timespec='minutes')}")
    raise CellError(expected, f"{_show(raw)} is not {expected}")


def combine(day: dt.date, time: dt.time, tz: dt.tzinfo) -> dt.datetime:
    """A date column and a time column as one UTC-aware moment (wall clock in ``tz``; DST gaps and overlaps raise)."""
    return localise(dt.datetime.combine(day, time.replace(tzinfo=None)), tz)
