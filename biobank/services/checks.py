"""Small input checks shared by the services; each error names the field and value."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from biobank.domain.errors import invalid
from biobank.domain.timing import is_naive


def check_enum(field: str, value: Any, enum: type[StrEnum], *, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if value not in {m.value for m in enum}:
        raise invalid(field, value, f"expected one of {', '.join(m.value for m in enum)}")


def check_range(field: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise invalid(field, value, f"must lie between {low:g} and {high:g}")


def check_positive(field: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise invalid(field, value, "must be positive" if not allow_zero else "cannot be negative")


def require_aware(field: str, value: datetime | None) -> None:
    if value is not None and is_naive(value):
        raise invalid(field, value.isoformat(), "give a time zone (times are stored in UTC)")


def check_order(earlier_field: str, earlier: datetime | None, later_field: str, later: datetime | None) -> None:
    """``later`` may not come before ``earlier`` (impossible times are errors, not warnings)."""
    if earlier is not None and later is not None and later < earlier:
        raise invalid(
            later_field,
            later.isoformat(),
            f"cannot be before {earlier_field} ({earlier.isoformat()})",
        )
