"""Grid coordinates, pure and database-free: ``A1``…``J10`` (letter rows, numbered columns) or ``1``…``N``.

Positions are stored as their canonical text (``A1``, not ``a01``); fill order is row by row, left to right,
which is how a technician fills a box and how consecutive aliquots are laid down.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from enum import StrEnum

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Scheme(StrEnum):
    letter_number = "letter_number"  # rows A.., columns 1.. (A1, B10)
    numbered = "numbered"  # one run of numbers 1..N (slides, cassettes)


_LETTER_NUMBER = re.compile(r"^\s*([A-Za-z])\s*0*(\d+)\s*$")
_NUMBER = re.compile(r"^\s*0*(\d+)\s*$")


class CoordinateError(ValueError):
    """A position that does not exist on the grid; the message names it and the grid."""


@dataclass(frozen=True)
class Grid:
    rows: int
    cols: int
    scheme: Scheme = Scheme.letter_number

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"a grid needs at least one row and one column, not {self.rows}x{self.cols}")
        if self.scheme is Scheme.letter_number and self.rows > len(LETTERS):
            raise ValueError(f"letter rows stop at Z: {self.rows} rows is too many")
        if self.scheme is Scheme.numbered and self.rows != 1:
            raise ValueError("a numbered grid is a single row (1 x N)")

    @property
    def size(self) -> int:
        return self.rows * self.cols

    def describe(self) -> str:
        if self.scheme is Scheme.numbered:
            return f"positions 1-{self.cols}"
        return f"{self.rows}x{self.cols}, A1-{LETTERS[self.rows - 1]}{self.cols}"

    def format(self, row: int, col: int) -> str:
        """Canonical text of the 1-based (row, col)."""
        if not (1 <= row <= self.rows and 1 <= col <= self.cols):
            raise CoordinateError(f"row {row}, column {col} is outside the grid ({self.describe()})")
        if self.scheme is Scheme.numbered:
            return str(col)
        return f"{LETTERS[row - 1]}{col}"

    def parse(self, text: str) -> tuple[int, int]:
        """1-based (row, col) of a position such as ``A1``, ``b07`` or ``12``; CoordinateError if off the grid."""
        if text is None:
            raise CoordinateError("no position given")
        if self.scheme is Scheme.numbered:
            match = _NUMBER.match(str(text))
            if not match:
                raise CoordinateError(f"position {text!r} is not a number ({self.describe()})")
            row, col = 1, int(match.group(1))
        else:
            match = _LETTER_NUMBER.match(str(text))
            if not match:
                raise CoordinateError(f"position {text!r} is not a letter and a number such as A1 ({self.describe()})")
            row, col = LETTERS.index(match.group(1).upper()) + 1, int(match.group(2))
        if not (1 <= row <= self.rows and 1 <= col <= self.cols):
            raise CoordinateError(f"position {text!r} is outside the grid ({self.describe()})")
        return row, col

    def normalise(self, text: str) -> str:
        return self.format(*self.parse(text))

    def index(self, text: str) -> int:
        """0-based place of a position in fill order."""
        row, col = self.parse(text)
        return (row - 1) * self.cols + (col - 1)

    def at_index(self, index: int) -> str:
        if not 0 <= index < self.size:
            raise CoordinateError(f"index {index} is outside the grid ({self.describe()})")
        return self.format(index // self.cols + 1, index % self.cols + 1)

    def positions(self) -> Iterator[str]:
        """Every position in fill order (A1, A2, …, A10, B1, …)."""
        for index in range(self.size):
            yield self.at_index(index)

    def run_from(self, start: str, count: int) -> list[str]:
        """``count`` positions in fill order starting at ``start``; CoordinateError if they run off the grid."""
        first = self.index(start)
        if count < 1:
            raise CoordinateError("count must be at least 1")
        if first + count > self.size:
            raise CoordinateError(
                f"{count} positions from {self.normalise(start)} run off the grid ({self.describe()})"
            )
        return [self.at_index(first + offset) for offset in range(count)]

    def first_free_run(self, occupied: Collection[str], count: int) -> list[str] | None:
        """The first ``count`` consecutive free positions in fill order, or None if there is no such run."""
        taken = {self.index(p) for p in occupied}
        run: list[int] = []
        for index in range(self.size):
            if index in taken:
                run = []
                continue
            run.append(index)
            if len(run) == count:
                return [self.at_index(i) for i in run]
        return None

    def free(self, occupied: Collection[str]) -> list[str]:
        taken = {self.index(p) for p in occupied}
        return [self.at_index(i) for i in range(self.size) if i not in taken]

    def row_label(self, row: int) -> str:
        return "" if self.scheme is Scheme.numbered else LETTERS[row - 1]
