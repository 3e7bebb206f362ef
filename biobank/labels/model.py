"""What goes on one label."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

#: Specimen codes are printed into barcodes and typed back by people, and travel through ZPL and CSV exports: a
#: deliberately small alphabet keeps every one of those paths free of escaping problems.
CODE_PATTERN = re.compile(r"[A-Za-z0-9._-]+")

#: Longest code accepted. Longer codes would force bigger barcode symbols (smaller modules on the same label)
#: and could not be read by a person on a 32 mm cryo label anyway.
MAX_CODE_LENGTH = 64


def check_code(code: str) -> str:
    """Return ``code`` if it is a valid specimen code, else raise ``ValueError`` saying why."""
    if not isinstance(code, str):
        raise TypeError(f"specimen code must be a str, not {type(code).__name__}")
    if not code:
        raise ValueError("specimen code is empty")
    if len(code) > MAX_CODE_LENGTH:
        raise ValueError(f"specimen code {code[:20]!r}... is longer than {MAX_CODE_LENGTH} characters")
    if not CODE_PATTERN.fullmatch(code):
        bad = sorted({c for c in code if not CODE_PATTERN.fullmatch(c)})
        raise ValueError(
            f"specimen code {code!r} contains {''.join(bad)!r}; only letters, digits, '-', '_' and '.' are allowed"
        )
    return code


@dataclass(frozen=True)
class LabelData:
    """The text printed on one specimen label.

    ``code`` is the only field encoded in the barcode and is validated here so that a bad code fails when the label
    is built, not half-way through a print run. The other fields are free text that is only printed (whitespace
    is collapsed and long text is shortened to fit the label); ``date`` is already formatted by the caller so the
    label shows exactly what the rest of the application shows. ``extra`` is an optional line such as
    ``PLANNED`` for placeholders printed before the autopsy.
    """

    code: str
    donor: str
    site: str
    storage_format: str
    date: str
    extra: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str):
                raise TypeError(f"LabelData.{f.name} must be a str, not {type(value).__name__}")
        check_code(self.code)
