"""A lab's own vocabulary: a synonyms file (setting ``synonyms_file``, TOML, docs/synonyms.md) extending the built-in
spellings of storage formats, material types and anatomical sites, and qualifier phrases ("viable (DMSO)",
"Whole blood EDTA", "Fresh (organoid)") read as a format, perhaps a material, plus a note kept with the specimen.

:func:`match_format` reads a preservation cell as a lab writes it; :func:`load_synonyms` reads a synonyms file
(every error names the key and the file, and the line for TOML syntax errors); :func:`active_synonyms` is the
lab's file from the settings (empty when unset), cached per path and modification time.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process, utils

from biobank.config import get_settings
from biobank.domain.errors import ValidationError
from biobank.domain.vocab import MaterialType, StorageFormat

_SECTIONS = ("formats", "materials", "sites", "qualifiers")


@dataclass(frozen=True)
class Qualifier:
    """What a qualifier phrase means: a storage format, perhaps a material type, and the note kept."""

    storage_format: StorageFormat
    material_type: MaterialType | None = None
    note: str | None = None


@dataclass(frozen=True)
class Synonyms:
    """A lab's spellings: ``formats`` (spelling -> storage format), ``materials`` (spelling -> material type),
    ``sites`` (label -> anatomical-site code) and ``qualifiers`` (phrase -> :class:`Qualifier`)."""

    formats: dict[str, StorageFormat] = field(default_factory=dict)
    materials: dict[str, MaterialType] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    qualifiers: dict[str, Qualifier] = field(default_factory=dict)
    source: str | None = None

    def __bool__(self) -> bool:
        return bool(self.formats or self.materials or self.sites or self.qualifiers)


@dataclass(frozen=True)
class FormatMatch:
    """A preservation cell read: the storage format, the material type when the cell says one (None: not said),
    the note to keep with the specimen (a qualifier such as "DMSO" or "EDTA"), and ``reading``: how the cell was
    read, for the import report (None when written exactly as a format value)."""

    storage_format: StorageFormat
    material_type: MaterialType | None
    note: str | None
    reading: str | None = None


# ------------------------------------------------------------------------------------------------- the file


class SynonymsFileError(ValidationError):
    """A synonyms file that cannot be used; the message names the file and the key (or the line)."""


def _fail(path: Path, key: str, problem: str) -> SynonymsFileError:
    return SynonymsFileError(
        f"synonyms file {path.name}: [{key}] {problem}", field="synonyms_file", value=str(path), reason=problem
    )


def _enum_value(path: Path, key: str, value: Any, enum_cls: type[StorageFormat] | type[MaterialType]) -> Any:
    allowed = ", ".join(m.value for m in enum_cls)
    if not isinstance(value, str):
        raise _fail(path, key, f"must be one of {allowed}, not {value!r}")
    try:
        return enum_cls(value.strip().lower())
    except ValueError:
        raise _fail(path, key, f"{value!r} is not one of {allowed}") from None


def _parse(path: Path, data: dict[str, Any]) -> Synonyms:
    from biobank.domain.sites import load_sites, unknown_site

    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise _fail(path, unknown[0], f"is not a section; the sections are {', '.join(_SECTIONS)}")
    for name in _SECTIONS:
        if name in data and not isinstance(data[name], dict):
            raise _fail(path, name, "must be a table of spelling = value")
    formats = {k: _enum_value(path, f"formats.\"{k}\"", v, StorageFormat) for k, v in data.get("formats", {}).items()}
    materials = {
        k: _enum_value(path, f"materials.\"{k}\"", v, MaterialType) for k, v in data.get("materials", {}).items()
    }
    sites: dict[str, str] = {}
    known = load_sites()
    for label, code in data.get("sites", {}).items():
        key = f"sites.\"{label}\""
        if not isinstance(code, str) or code.strip().upper() not in known:
            raise _fail(path, key, f"{code!r} is {unknown_site(code)}" if isinstance(code, str) else "must be a site code")
        sites[label] = code.strip().upper()
    qualifiers: dict[str, Qualifier] = {}
    for phrase, spec in data.get("qualifiers", {}).items():
        key = f"qualifiers.\"{phrase}\""
        if isinstance(spec, str):
            spec = {"format": spec}
        if not isinstance(spec, dict):
            raise _fail(path, key, "must be a format or a table { format = ..., material = ..., note = ... }")
        extra = sorted(set(spec) - {"format", "material", "note"})
        if extra:
            raise _fail(path, f"{key}.{extra[0]}", "is not a qualifier key; use format, material and note")
        if "format" not in spec:
            raise _fail(path, key, "needs format = one of " + ", ".join(m.value for m in StorageFormat))
        note = spec.get("note")
        if note is not None and not isinstance(note, str):
            raise _fail(path, f"{key}.note", "must be text")
        qualifiers[phrase] = Qualifier(
            _enum_value(path, f"{key}.format", spec["format"], StorageFormat),
            _enum_value(path, f"{key}.material", spec["material"], MaterialType) if "material" in spec else None,
            note.strip() or None if note is not None else None,
        )
    return Synonyms(formats, materials, sites, qualifiers, source=str(path))


_CACHE: dict[tuple[str, int, int], Synonyms] = {}


def load_synonyms(path: Path | str) -> Synonyms:
    """Read a synonyms file (docs/synonyms.md); cached per path, modification time and size.

    Raises :class:`SynonymsFileError` (a ValidationError) naming the file and the key, or the line of a TOML
    syntax error, for a file that is missing, unreadable, malformed or names unknown values.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise SynonymsFileError(
            f"synonyms file {path}: cannot be read ({exc.strerror or exc})", field="synonyms_file", value=str(path)
        ) from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SynonymsFileError(
            f"synonyms file {path.name}: not valid TOML ({exc})", field="synonyms_file", value=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SynonymsFileError(
            f"synonyms file {path.name}: cannot be read as UTF-8 text ({exc})", field="synonyms_file", value=str(path)
        ) from None
    synonyms = _parse(path, data)
    _CACHE.clear()  # keep one file: the lab's
    _CACHE[key] = synonyms
    return synonyms


_EMPTY = Synonyms()


def active_synonyms() -> Synonyms:
    """The lab's synonyms (the ``synonyms_file`` setting), or empty synonyms when the setting is unset."""
    path = get_settings().synonyms_file
    return _EMPTY if path is None else load_synonyms(path)


# ---------------------------------------------------------------------------------------------- qualifiers

#: Built-in qualifier phrases (matched with vocab_key: case, spaces, hyphens and underscores do not matter).
QUALIFIERS: dict[str, Qualifier] = {
    "viable (DMSO)": Qualifier(StorageFormat.viable_cryo, None, "DMSO"),
    "Whole blood EDTA": Qualifier(StorageFormat.frozen, MaterialType.whole_blood, "EDTA"),
    "Fresh (organoid)": Qualifier(StorageFormat.fresh, None, "for organoid derivation"),
    "Fresh (PDX)": Qualifier(StorageFormat.fresh, None, "for PDX derivation"),
    "Fresh (culture)": Qualifier(StorageFormat.fresh, None, "for culture"),
}

#: Words inside a preservation cell that are kept as a note, with what they imply: a format, a material, both
#: or neither (an additive that says nothing about the format on its own).
_QUALIFIER_WORDS: dict[str, tuple[StorageFormat | None, MaterialType | None, str]] = {
    "dmso": (StorageFormat.viable_cryo, None, "DMSO"),
    "edta": (None, None, "EDTA"),
    "k2edta": (None, None, "K2EDTA"),
    "k3edta": (None, None, "K3EDTA"),
    "heparin": (None, None, "heparin"),
    "lithium heparin": (None, None, "lithium heparin"),
    "citrate": (None, None, "citrate"),
    "streck": (None, None, "Streck"),
    "organoid": (StorageFormat.fresh, None, "for organoid derivation"),
    "organoids": (StorageFormat.fresh, None, "for organoid derivation"),
    "for organoid": (StorageFormat.fresh, None, "for organoid derivation"),
    "pdx": (StorageFormat.fresh, None, "for PDX derivation"),
    "for pdx": (StorageFormat.fresh, None, "for PDX derivation"),
    "culture": (StorageFormat.fresh, None, "for culture"),
    "for culture": (StorageFormat.fresh, None, "for culture"),
    "model": (StorageFormat.fresh, None, "for model derivation"),
}
_WORDS_RE = re.compile(
    r"(?i)(?<![\w])(" + "|".join(sorted((re.escape(w) for w in _QUALIFIER_WORDS), key=len, reverse=True)) + r")(?![\w])"
)
_PAREN = re.compile(r"\(([^()]*)\)|\[([^\[\]]*)\]")

#: The format a material is kept in when the cell names only the material ("Plasma", "Whole blood EDTA").
_MATERIAL_FORMAT: dict[MaterialType, StorageFormat] = {
    MaterialType.whole_blood: StorageFormat.frozen,
    MaterialType.plasma: StorageFormat.frozen,
    MaterialType.buffy_coat: StorageFormat.frozen,
    MaterialType.bone_marrow: StorageFormat.frozen,
    MaterialType.dna: StorageFormat.frozen,
    MaterialType.rna: StorageFormat.frozen,
    MaterialType.cells: StorageFormat.frozen,
}


def _key(text: str) -> str:
    from biobank.imports.coerce.spellings import vocab_key

    return vocab_key(text)


def _lookup(enum_cls: type[Any], text: str, lab: dict[str, Any]) -> Any:
    """The member ``text`` names (value, built-in synonym or the lab's), or None."""
    from biobank.imports.coerce.spellings import SYNONYMS

    key = _key(text)
    if not key:
        return None
    for spelling, member in lab.items():
        if _key(spelling) == key:
            return enum_cls(member)
    for member in enum_cls:
        if _key(member.value) == key:
            return member
    for spelling, member in SYNONYMS.get(enum_cls, {}).items():
        if _key(spelling) == key:
            return enum_cls(member)
    return None


def _known_spellings(synonyms: Synonyms) -> list[str]:
    from biobank.imports.coerce.spellings import SYNONYMS

    spellings = [m.value for m in StorageFormat] + [m.value for m in MaterialType]
    spellings += list(SYNONYMS[StorageFormat]) + list(SYNONYMS[MaterialType]) + list(QUALIFIERS)
    spellings += list(synonyms.formats) + list(synonyms.materials) + list(synonyms.qualifiers)
    return list(dict.fromkeys(spellings))


def closest_formats(text: str, synonyms: Synonyms | None = None, limit: int = 3) -> list[str]:
    """The known preservation spellings closest to ``text``, best first."""
    choices = _known_spellings(synonyms if synonyms is not None else active_synonyms())
    found = process.extract(text, choices, scorer=fuzz.WRatio, processor=utils.default_process, limit=limit * 4)
    seen: dict[str, str] = {}
    for spelling, _, _ in found:
        seen.setdefault(_key(spelling), spelling)
    return list(seen.values())[:limit]


def match_format(text: str, *, synonyms: Synonyms | None = None) -> FormatMatch:
    """Read a preservation cell: a storage format (a value or a synonym, built in or the lab's), a qualifier
    phrase, or a format or material with qualifiers ("viable (DMSO)", "Whole blood EDTA", "Fresh (organoid)").

    ``synonyms`` defaults to the lab's (:func:`active_synonyms`). Raises :class:`ValidationError` for empty or
    unknown text (listing the closest known values) and for text that says two different formats.
    """
    syn = synonyms if synonyms is not None else active_synonyms()
    raw = "" if text is None else str(text)
    cleaned = " ".join(raw.split())
    if not cleaned:
        raise ValidationError("Preservation: the cell is empty", field="preservation", value=text,
                              reason="a storage format")
    key = _key(cleaned)

    for phrases, whose in ((syn.qualifiers, "the lab's qualifier"), (QUALIFIERS, "qualifier")):
        for phrase, q in phrases.items():
            if _key(phrase) == key:
                return FormatMatch(q.storage_format, q.material_type, q.note, _reading(cleaned, q, whose))

    fmt = _lookup(StorageFormat, cleaned, syn.formats)
    if fmt is None:
        from biobank.imports.coerce.spellings import AMBIGUOUS

        for spelling, why in AMBIGUOUS[StorageFormat].items():
            if _key(spelling) == key:
                raise ValidationError(f"Preservation '{cleaned}': {why}", field="preservation", value=text,
                                      reason=why)
    if fmt is not None:
        reading = None if cleaned == fmt.value else f"'{cleaned}' read as {fmt.value}"
        return FormatMatch(fmt, None, None, reading)

    # Qualifiers inside the text: "(DMSO)", "EDTA", "for organoid".
    notes: list[str] = []
    implied: list[StorageFormat] = []
    material: MaterialType | None = None

    def take(inner: str) -> str:
        """Keep ``inner`` as a qualifier; what replaces it in the text (a space)."""
        inner = inner.strip()
        if not inner:
            return " "
        word = _QUALIFIER_WORDS.get(inner.casefold())
        if word is not None:
            if word[0] is not None:
                implied.append(word[0])
            notes.append(word[2])
        else:
            notes.append(inner)
        return " "

    def paren(match: re.Match[str]) -> str:
        inner = match.group(1) if match.group(1) is not None else match.group(2) or ""
        rest = _WORDS_RE.sub(lambda m: take(m.group(1)), inner)
        take(rest.strip(" ,;+/-"))
        return " "

    base = _PAREN.sub(paren, cleaned)
    base = _WORDS_RE.sub(lambda m: take(m.group(1)), base)
    base = " ".join(base.strip(" ,;+/-").split())

    fmt = _lookup(StorageFormat, base, syn.formats) if base else None
    if fmt is None and base:
        material = _lookup(MaterialType, base, syn.materials)
        if material is None:
            _unknown(cleaned, syn)
    formats = {f for f in implied if f is not None} | ({fmt} if fmt is not None else set())
    if len(formats) > 1:
        raise ValidationError(
            f"Preservation '{cleaned}' says {' and '.join(sorted(f.value for f in formats))}: write one format",
            field="preservation", value=text, reason="one storage format",
        )
    if formats:
        chosen = formats.pop()
    elif material is not None and material in _MATERIAL_FORMAT:
        chosen = _MATERIAL_FORMAT[material]
    else:
        hint = f"it names the material {material.value} but no storage format" if material else "no storage format"
        _unknown(cleaned, syn, hint=hint)
    note = "; ".join(dict.fromkeys(notes)) or None
    q = Qualifier(chosen, material, note)
    return FormatMatch(chosen, material, note, _reading(cleaned, q, "read"))


def _reading(cleaned: str, q: Qualifier, whose: str) -> str:
    parts = [q.storage_format.value]
    if q.material_type is not None:
        parts.insert(0, q.material_type.value)
    text = f"'{cleaned}' read as {', '.join(parts)}"
    if q.note:
        text += f", note '{q.note}'"
    return text + (f" ({whose})" if whose != "read" else "")


def _unknown(cleaned: str, syn: Synonyms, hint: str | None = None) -> Any:
    closest = closest_formats(cleaned, syn)
    why = f" ({hint})" if hint else ""
    raise ValidationError(
        f"Preservation '{cleaned}' is not a known storage format{why}; closest known: {', '.join(closest)} "
        "(or add it to the lab's synonyms file)",
        field="preservation", value=cleaned,
        reason=f"a storage format; closest known: {', '.join(closest)}",
    )
