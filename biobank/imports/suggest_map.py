"""A first mapping file for a lab's collection log (``biobank import collection_log FILE --suggest-map``).

:func:`suggest_map` reads the log's headers and values and guesses which header is which field of the mapping
format (:mod:`biobank.imports.mapping`, docs/collection-log.md): fuzzy header matching ("Date of death", "DOD",
"Weight (mg)" -> quantity with unit mg, "Tech"/"Initials" -> collected_by), value maps for lesion labels ("P",
"M1", "LN"), and a check of every preservation and site value with the matchers the import uses
(:func:`~biobank.imports.vocabulary_ext.match_format`, :func:`~biobank.imports.site_matching.match_site`): what
they read is listed as comments; what they cannot read is a commented-out entry to fill in. Everything it could not
map is returned and written as comments, so the lab edits one file once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process, utils

from biobank.domain.errors import BiobankError
from biobank.domain.vocab import LesionKind
from biobank.imports.read import iter_rows
from biobank.imports.site_matching import match_site
from biobank.imports.vocabulary_ext import active_synonyms, match_format

#: How many data rows are read to learn the values (a log is usually far smaller).
MAX_ROWS = 20_000
#: Distinct values kept per column.
MAX_VALUES = 500
#: A header is mapped to a field when its best spelling scores at least this (0-100).
HEADER_MIN_SCORE = 82

#: Spellings of each field's header seen in collection logs (matched fuzzily, case- and punctuation-blind).
HEADER_SPELLINGS: dict[str, tuple[str, ...]] = {
    "case": ("case", "case id", "case no", "case number", "case code", "autopsy", "autopsy id", "autopsy no",
             "RA", "RA number", "rapid autopsy"),
    "donor": ("patient", "patient id", "donor", "donor id", "subject", "subject id", "participant", "study id",
              "study number", "pt", "pt id"),
    "donor_sex": ("sex", "gender"),
    "death_date": ("date of death", "DOD", "death date", "date died", "died on"),
    "death_time": ("time of death", "TOD", "death time", "time died"),
    "death_at": ("death", "date and time of death", "death date time", "died"),
    "refrigerated_time": ("fridge", "refrigeration", "refrigerated", "body refrigerated", "into fridge",
                          "time into fridge", "fridge time", "refrigeration time", "cold storage"),
    "autopsy_start": ("start", "autopsy start", "start time", "PM start", "post mortem start"),
    "autopsy_end": ("end", "autopsy end", "end time", "finish", "PM end", "post mortem end"),
    "prosector": ("prosector", "pathologist", "dissector"),
    "site": ("site", "anatomical site", "body site", "organ", "location", "tissue site", "sample site", "site label"),
    "laterality": ("side", "laterality"),
    "lesion": ("lesion", "lesion id", "lesion label", "lesion no", "tumour", "tumor", "lesion code"),
    "lesion_kind": ("lesion type", "lesion kind", "type of lesion", "tumour type"),
    "region": ("region", "region label", "piece", "area", "sub region"),
    "preservation": ("preservation", "storage format", "format", "processing", "preserved", "preservation method",
                     "storage type", "sample type", "fixation method"),
    "excised_time": ("excised", "excision", "time excised", "excision time", "time cut", "cut at", "sampled",
                     "sampling time", "time sampled", "collected at", "collection time"),
    "stabilised_time": ("into fixative/LN2", "into fixative", "into LN2", "time into LN2", "stabilised",
                        "stabilized", "time frozen", "frozen at", "time fixed", "fixed at", "stabilisation time",
                        "into fixative or LN2", "time into fixative"),
    "quantity": ("weight", "quantity", "amount", "volume", "mass", "qty", "wt"),
    "unit": ("unit", "units"),
    "pieces": ("pieces", "no of pieces", "n pieces", "tubes", "no of tubes", "aliquots", "count", "blocks"),
    "box": ("box", "container", "freezer box", "box id", "storage box", "box location", "freezer location"),
    "position": ("position", "pos", "well", "slot", "box position"),
    "collected_by": ("tech", "technician", "initials", "collected by", "collector", "taken by", "sampled by"),
    "notes": ("notes", "note", "comments", "comment", "remarks", "free text"),
}

#: Units read from a header: "Weight (mg)", "Volume [mL]", "Amount, ul".
_HEADER_UNIT = re.compile(r"[\(\[]\s*([^\)\]]+?)\s*[\)\]]\s*$|,\s*(\w+)\s*$")
_UNIT_WORDS = {"mg": "mg", "g": "g", "ug": "µg", "µg": "µg", "ng": "ng", "ml": "ml", "ul": "ul", "µl": "ul",
               "μl": "ul", "cells": "cells", "sections": "sections", "slides": "sections", "blocks": "blocks"}

#: Lesion labels as written -> kind, by pattern (the first that matches wins).
_LESION_PATTERNS: tuple[tuple[re.Pattern[str], LesionKind], ...] = (
    (re.compile(r"(?i)^(p|prim|primary|pt)\s*\d*$|primary"), LesionKind.primary),
    (re.compile(r"(?i)^(ln|node)\s*\d*$|lymph|nodal"), LesionKind.lymph_node),
    (re.compile(r"(?i)^(lr|rec|recurrence)\s*\d*$|recurren"), LesionKind.local_recurrence),
    (re.compile(r"(?i)^(m|met|mets)\s*\d*$|metasta"), LesionKind.metastasis),
)

_DEFAULT_PATTERNS = {
    "decalcification": r"(?i)(?P<agent>EDTA|formic|HCl|nitric)[^0-9]*(?P<hours>\d+(?:\.\d+)?)\s*h",
    "fixation_hours": r"(?i)fix\w*\s*(?P<hours>\d+(?:\.\d+)?)\s*h",
}


@dataclass
class _Column:
    header: str
    values: dict[str, int] = field(default_factory=dict)
    filled: int = 0

    def add(self, value: Any) -> None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return
        self.filled += 1
        text = _text(value)
        if text in self.values or len(self.values) < MAX_VALUES:
            self.values[text] = self.values.get(text, 0) + 1


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return " ".join(str(value).split())


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def _bare_header(header: str) -> str:
    return _HEADER_UNIT.sub("", header).strip() or header


def header_unit(header: str) -> str | None:
    """The unit a header names ("Weight (mg)" -> "mg"), or None."""
    match = _HEADER_UNIT.search(header)
    if match is None:
        return None
    word = (match.group(1) or match.group(2) or "").strip().casefold()
    return _UNIT_WORDS.get(word)


def _rule(header: str) -> str | None:
    """Headers read by rule before fuzzy matching: date/time of death and the time columns."""
    h = utils.default_process(_bare_header(header))
    words = set(h.split())
    if "death" in words or "died" in words or h in {"dod", "tod"}:
        if h == "dod" or ("date" in words and "time" not in words):
            return "death_date"
        if h == "tod" or ("time" in words and "date" not in words):
            return "death_time"
        if "date" in words and "time" in words:
            return "death_at"
    if {"fridge", "refrigerated", "refrigeration"} & words:
        return "refrigerated_time"
    if ("into" in words or "time" in words) and ({"ln2", "fixative", "formalin", "fixed", "frozen"} & words):
        return "stabilised_time"
    return None


def guess_columns(headers: Iterable[str]) -> dict[str, tuple[str, float]]:
    """header -> (field, score) for the headers recognised; each field is given to its best header only."""
    choices: dict[str, str] = {}
    for name, spellings in HEADER_SPELLINGS.items():
        for spelling in (name.replace("_", " "), *spellings):
            choices.setdefault(utils.default_process(spelling), name)
    proposals: list[tuple[float, str, str]] = []
    for header in headers:
        ruled = _rule(header)
        if ruled is not None:
            proposals.append((101.0, header, ruled))
            continue
        query = utils.default_process(_bare_header(header))
        if not query:
            continue
        for spelling, score, _ in process.extract(query, list(choices), scorer=fuzz.token_sort_ratio, limit=5):
            if score >= HEADER_MIN_SCORE:
                proposals.append((float(score), header, choices[spelling]))
    taken: dict[str, tuple[str, float]] = {}
    used: set[str] = set()
    for score, header, name in sorted(proposals, key=lambda p: -p[0]):
        if header in taken or name in used:
            continue
        taken[header] = (name, min(score, 100.0))
        used.add(name)
    if "death_at" in used and ({"death_date", "death_time"} & used):
        taken = {h: v for h, v in taken.items() if v[0] != "death_at"}
    return taken


def _lesion_kind(label: str) -> LesionKind | None:
    from biobank.imports.coerce.vocabulary import vocab_key

    key = vocab_key(label)
    for member in LesionKind:
        if vocab_key(member.value) == key:
            return member
    for pattern, kind in _LESION_PATTERNS:
        if pattern.search(label.strip()):
            return kind
    return None


def _date_order(values: Iterable[str]) -> tuple[str, str]:
    """DMY, MDY or YMD from the date cells, and why."""
    day_first = month_first = iso = 0
    for value in values:
        if re.match(r"^\d{4}-\d{1,2}-\d{1,2}", value):
            iso += 1
            continue
        match = re.match(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}", value)
        if match:
            first, second = int(match.group(1)), int(match.group(2))
            if first > 12 >= second:
                day_first += 1
            elif second > 12 >= first:
                month_first += 1
    if month_first and not day_first:
        return "MDY", f"{month_first} date(s) read only month first"
    if day_first:
        return "DMY", f"{day_first} date(s) read only day first"
    if iso:
        return "DMY", "dates are written year first (read so whatever the order)"
    return "DMY", "no date decides; day first assumed: check"


def _read(path: Path) -> tuple[list[str], dict[str, _Column], list[str]]:
    columns: dict[str, _Column] = {}
    rows = iter_rows(path)
    with rows:
        for index, row in enumerate(rows):
            if index == 0:
                for name in rows.headers:
                    columns[name] = _Column(rows.header_labels.get(name, name))
            if index >= MAX_ROWS:
                break
            for name, value in row.cells.items():
                if name in columns:
                    columns[name].add(value)
        headers = [rows.header_labels.get(n, n) for n in rows.headers]
        notes = list(rows.notes)
    if not columns:  # a header and no data rows
        columns = {name: _Column(label) for name, label in zip(rows.headers, headers, strict=True)}
    return headers, {c.header: c for c in columns.values()}, notes


def suggest_map(path: Path | str) -> tuple[str, list[str]]:
    """A first mapping file (TOML text) for the collection log at ``path``, and what it could not map.

    Raises :class:`~biobank.imports.read.ImportFormatError` for a file that cannot be read as a spreadsheet.
    """
    from biobank.imports.mapping import FIELDS, REQUIRED_FIELDS

    path = Path(path)
    headers, columns, file_notes = _read(path)
    guessed = guess_columns(headers)
    synonyms = active_synonyms()
    unmapped: list[str] = []
    out: list[str] = [
        f"# Mapping for {path.name}, suggested by `biobank import collection_log --suggest-map`.",
        "# Check every line, fill in what is marked TODO, then import with",
        f"#   biobank import collection_log {path.name} --map THIS_FILE.toml --dry-run",
        "# The format: docs/collection-log.md. Lines starting with # are comments.",
    ]
    out += [f"# note: {n}" for n in file_notes]
    out += ["", "[columns]"]
    width = max((len(_q(h)) for h in headers), default=10)
    for header in headers:
        if header in guessed:
            name, score = guessed[header]
            how = "by rule" if score > 100 or name in {"death_date", "death_time", "death_at"} else f"score {score:g}"
            out.append(f"{_q(header):<{width}} = {_q(name):<20} # {FIELDS[name]} ({how})")
        else:
            unmapped.append(f"column {header!r}")
            out.append(f"# {_q(header):<{width}} = \"?\"  # TODO: not recognised; map it to a field or leave it out")
    mapped = {name for name, _ in guessed.values()}
    for name in REQUIRED_FIELDS:
        if name not in mapped:
            unmapped.append(f"field {name} (required)")
            out.append(f"# TODO: no column found for {name} (required): {FIELDS[name]}")
    if not ({"death_date", "death_at"} & mapped):
        unmapped.append("field death_date or death_at (required)")
        out.append("# TODO: no column found for the date of death (death_date, or death_at for a date and time)")
    by_field = {name: header for header, (name, _) in guessed.items()}

    # Units: from the header, else a TODO when the quantity cells carry none.
    out += ["", "[units]"]
    quantity_header = by_field.get("quantity")
    if quantity_header is not None:
        unit = header_unit(quantity_header)
        cells = columns[quantity_header].values if quantity_header in columns else {}
        bare = [v for v in cells if re.fullmatch(r"[\d.,\s]+", v)]
        if unit is not None:
            out.append(f"{_q(quantity_header)} = {_q(unit)}  # read from the header")
        elif bare and "unit" not in by_field:
            unmapped.append(f"unit of {quantity_header!r}")
            out.append(f"# {_q(quantity_header)} = \"mg\"  # TODO: {len(bare)} value(s) have no unit; say which")

    # Value maps.
    out += _values_preservation(columns.get(by_field.get("preservation", "")), synonyms, unmapped)
    out += _values_site(columns.get(by_field.get("site", "")), synonyms, unmapped)
    out += _values_lesion(columns.get(by_field.get("lesion", "")), unmapped)

    # Patterns over the notes.
    out += ["", "[patterns]"]
    notes_column = columns.get(by_field.get("notes", ""))
    for name, pattern in _DEFAULT_PATTERNS.items():
        hits = sum(1 for v in (notes_column.values if notes_column else {}) if re.search(pattern, v))
        line = f"{name} = '{pattern}'"
        if hits:
            out.append(f"{line}  # matches {hits} distinct note(s)")
        else:
            out.append(f"# {line}  # matches no note: uncomment if your notes say it")

    # Options.
    order, why = "DMY", "no date column"
    date_header = by_field.get("death_date") or by_field.get("death_at")
    if date_header is not None and date_header in columns:
        order, why = _date_order(columns[date_header].values)
    out += ["", "[options]", f"date_order = {_q(order)}  # {why}",
            "# timezone = \"Europe/London\"  # default: the lab's time zone setting"]
    if unmapped:
        out += ["", "# Could not map:"] + [f"#   - {item}" for item in unmapped]
    return "\n".join(out) + "\n", unmapped


def _values_preservation(column: _Column | None, synonyms: Any, unmapped: list[str]) -> list[str]:
    out = ["", "[values.preservation]  # value as written -> storage format; read without a map where listed"]
    if column is None:
        return out
    for value in sorted(column.values, key=str.casefold):
        try:
            found = match_format(value, synonyms=synonyms)
        except BiobankError as exc:
            unmapped.append(f"preservation {value!r}")
            out.append(f"# {_q(value)} = \"?\"  # TODO: {exc.message}")
            continue
        out.append(f"# {_q(value)}: {found.reading or 'a storage format as written'}")
    return out


def _values_site(column: _Column | None, synonyms: Any, unmapped: list[str]) -> list[str]:
    out = ["", "[values.site]  # label as written -> site code; read without a map where listed"]
    if column is None:
        return out
    for value in sorted(column.values, key=str.casefold):
        try:
            found = match_site(value, synonyms=synonyms)
        except BiobankError as exc:
            unmapped.append(f"site {value!r}")
            best = exc.reason.split("best candidates: ", 1)[-1] if "best candidates" in exc.reason else exc.message
            out.append(f"# {_q(value)} = \"?\"  # TODO: no good match; best: {best}")
            continue
        out.append(f"# {found.note}")
    return out


def _values_lesion(column: _Column | None, unmapped: list[str]) -> list[str]:
    out = ["", "[values.lesion_kind]  # lesion label -> kind; a label not listed imports as 'unknown' (flagged)"]
    if column is None:
        return out
    for value in sorted(column.values, key=str.casefold):
        kind = _lesion_kind(value)
        if kind is None:
            unmapped.append(f"lesion kind of {value!r}")
            out.append(f"# {_q(value)} = \"unknown\"  # TODO: which kind? ({', '.join(k.value for k in LesionKind)})")
        else:
            out.append(f"{_q(value)} = {_q(kind.value)}")
    return out
