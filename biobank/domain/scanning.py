"""A scanned or pasted list of codes read into a work list: a rack scanned tube by tube, a column copied from a
spreadsheet, codes typed with commas. Pure code, no database: :mod:`biobank.services.worklist` looks the codes up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: What separates codes: spaces, tabs, line breaks (a scanner's Enter), commas and semicolons. Codes themselves never
#: hold any of them (DOMAIN.md §4 "Codes").
SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class ScannedCodes:
    """The codes of a scan in the order scanned, each once; ``duplicates`` are those scanned more than once (in any
    letter case), each named once as first scanned."""

    codes: tuple[str, ...]
    duplicates: tuple[str, ...] = ()


def parse_codes(text: str | Iterable[str]) -> ScannedCodes:
    """The codes in ``text`` (or in each of several texts: command-line arguments, a file's lines), separated by
    whitespace, commas or semicolons; a code scanned again in any letter case counts once and is reported."""
    parts = [text] if isinstance(text, str) else list(text)
    seen: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for part in parts:
        for token in SEPARATORS.split(part or ""):
            if not token:
                continue
            key = token.upper()
            if key in seen:
                duplicates.setdefault(key, seen[key])
            else:
                seen[key] = token
    return ScannedCodes(tuple(seen.values()), tuple(duplicates.values()))
