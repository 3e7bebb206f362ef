"""Errors the services raise: each names what was wrong so a page or the CLI can say it in one line."""

from __future__ import annotations

from typing import Any


class BiobankError(Exception):
    """Base of every error a user can cause; never a bug."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = None, row: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value
        self.row = row

    def __str__(self) -> str:
        return self.message


class ValidationError(BiobankError):
    """Input that breaks a rule (a field, its value and why)."""


class NotFoundError(BiobankError):
    """A code or id that names nothing."""


class ConflictError(BiobankError):
    """A write that collides with the current state (occupied position, stale edit, duplicate code)."""


class PermissionDeniedError(BiobankError):
    """The acting user's role does not allow the operation."""


class ConsentError(BiobankError):
    """The donor's consent does not cover the use, or was withdrawn."""


def invalid(field: str, value: Any, reason: str, *, row: Any = None) -> ValidationError:
    """A ValidationError whose message names the row, field and value."""
    where = f"{row}: " if row is not None else ""
    return ValidationError(f"{where}{field}={value!r}: {reason}", field=field, value=value, row=row)
