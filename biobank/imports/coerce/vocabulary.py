"""Closed vocabularies: yes/no cells, and the enum vocabularies with the spellings seen in lab spreadsheets
(:data:`SYNONYM_GROUPS`) and those that must not be guessed (:data:`AMBIGUOUS`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, TypeVar

from biobank.domain.vocab import (
    MaterialType,
    StorageFormat,
)
from biobank.imports.coerce.cells import CellError, Coerced, _clean, _is_finite, _is_nan, _show, _trim
from biobank.imports.coerce.numbers import _number_text
from biobank.imports.coerce.spellings import AMBIGUOUS, SYNONYM_GROUPS, SYNONYMS, vocab_key  # noqa: F401  (re-exported)

E = TypeVar("E", bound=StrEnum)

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
        lab = _lab_member(self.enum_cls, raw_text)
        if lab is not None:
            return lab
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
            qualified = _qualified_format(self.enum_cls, cleaned)
            if qualified is not None:
                return qualified
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


def _lab_member(enum_cls: type[E], text: str) -> Coerced[E] | None:
    """A storage format or material type spelled as in the lab's synonyms file (setting ``synonyms_file``), which
    wins over the built-in spellings (a lab may say what its 'FF' means)."""
    if enum_cls not in (StorageFormat, MaterialType):
        return None
    from biobank.imports.vocabulary_ext import active_synonyms

    synonyms = active_synonyms()
    spellings: Mapping[str, StrEnum] = synonyms.formats if enum_cls is StorageFormat else synonyms.materials
    if not spellings:
        return None
    key = vocab_key(text)
    for spelling, member in spellings.items():
        if vocab_key(spelling) == key:
            value = enum_cls(member)
            return Coerced(value, f"'{_trim(text)}' read as {value.value} (the lab's synonyms)")
    return None


def _qualified_format(enum_cls: type[E], text: str) -> Coerced[E] | None:
    """A storage format written with a qualifier ("viable (DMSO)", "Fresh (organoid)"): the format, the qualifier
    in the note. None when ``text`` is not one, or when it also names a material (that needs a material column)."""
    if enum_cls is not StorageFormat:
        return None
    from biobank.domain.errors import ValidationError
    from biobank.imports.vocabulary_ext import match_format

    try:
        found = match_format(text)
    except ValidationError:
        return None
    if found.material_type is not None:
        return None
    return Coerced(enum_cls(found.storage_format), found.reading)


_VOCAB_CACHE: dict[type[StrEnum], VocabCoercer[Any]] = {}


def vocab(enum_cls: type[E], synonyms: Mapping[str, E | str] | None = None) -> VocabCoercer[E]:
    """A coercer for one vocabulary: its values, :data:`SYNONYMS` for it, then ``synonyms`` (which win on clash)."""
    if synonyms:
        return VocabCoercer(enum_cls, synonyms)
    if enum_cls not in _VOCAB_CACHE:
        _VOCAB_CACHE[enum_cls] = VocabCoercer(enum_cls)
    return _VOCAB_CACHE[enum_cls]
