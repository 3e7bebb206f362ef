"""Errors the services raise: each names what was wrong so a page or the CLI can say it in one line.

Messages are in the lab's words: a field by the label its form shows (:mod:`biobank.domain.fields`), a time in the
lab's time zone (``06 Dec 2026 21:27 Europe/London``). The machine names stay on the error (``field``, ``value``) for
import reports, tests and an API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from biobank.domain.fields import field_label, unit_of
from biobank.domain.timing import lab_day, lab_time


class BiobankError(Exception):
    """Base of every error a user can cause; never a bug."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        row: Any = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value
        self.row = row
        #: What was wrong, without the field and value (an import report's "expected" column).
        self.reason = reason if reason is not None else message

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


#: A reason starting with one of these words continues the sentence ("Stabilised (...) cannot be before ...");
#: any other reason follows a colon ("Lesion (X1): lesion codes look like 'L01'").
_CONTINUES = frozenset(
    {"cannot", "can", "must", "is", "are", "needs", "need", "has", "have", "was", "were", "may", "should", "lies"}
)


def shown_time(value: datetime | date, *, with_zone: bool = False) -> str:
    """A time or a day as messages show it: ``06 Dec 2026 21:27`` in the lab's zone, ``06 Dec 2026`` for a day."""
    if isinstance(value, datetime):
        try:
            from biobank.config import get_settings  # pydantic-settings: only when a time is told

            return lab_time(value, get_settings().zone, with_zone=with_zone)
        except OverflowError:  # too near year 1 or 9999 to convert to the lab's zone
            return value.isoformat()
    return lab_day(value)


def shown(value: Any) -> str:
    """A value as a message shows it (empty for nothing): times in the lab's zone, numbers with thousands
    separators, text as typed (cut short when long)."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return shown_time(value, with_zone=True)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e16:
            return f"{int(value):,}"
        return f"{value:,.6g}"
    if isinstance(value, str):
        text = value.strip()
        return text if len(text) <= 60 else text[:59] + "…"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(s for s in (shown(v) for v in value) if s)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={shown(v)}" for k, v in value.items())
    return str(value)


def sentence(field: str | None, value: Any, reason: str) -> str:
    """``<Label> (<value>) <reason>``: the field by its form label, its value as the lab reads it, then why."""
    subject = field_label(field)
    value_text = shown(value)
    unit = unit_of(field)
    if unit and value_text and isinstance(value, int | float) and not isinstance(value, bool):
        value_text = f"{value_text} {unit}"
    head = f"{subject} ({value_text})" if subject and value_text else subject or value_text
    if not head:
        return reason
    first = reason.split(" ", 1)[0]
    return f"{head} {reason}" if first in _CONTINUES else f"{head}: {reason}"


def invalid(field: str, value: Any, reason: str, *, row: Any = None) -> ValidationError:
    """A ValidationError whose message names the row, the field (by its label) and value, and why; ``field`` keeps
    the machine name."""
    where = f"{row}: " if row is not None else ""
    return ValidationError(f"{where}{sentence(field, value, reason)}", field=field, value=value, row=row, reason=reason)
