"""Small input checks shared by the services, the input models and the import kinds; each error names the field
(by its form label) and the value.

Times: :func:`check_time` is the one rule for an entered time or day: never in the future (beyond the clock skew
the settings allow, ``clock_skew_minutes``) and never before what must come first (stabilisation before excision,
custody before collection, a passage before the model's initiation...).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from biobank.config import get_settings
from biobank.domain.errors import invalid, shown, shown_time
from biobank.domain.fields import field_label
from biobank.domain.timing import day_of, is_naive, lab_today
from biobank.models.base import utcnow

#: A time or day an entered one may not precede: (field name or label, value); None values are skipped.
Earlier = tuple[str, datetime | date | None]


def check_enum(field: str, value: Any, enum: type[StrEnum], *, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if value not in {m.value for m in enum}:
        raise invalid(field, value, f"must be one of: {', '.join(m.value for m in enum)}")


def check_range(field: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise invalid(field, value, f"must lie between {shown(low)} and {shown(high)}")


def check_positive(field: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise invalid(field, value, "must be more than 0" if not allow_zero else "cannot be negative")


def require_aware(field: str, value: datetime | None) -> None:
    if value is not None and is_naive(value):
        raise invalid(field, value.isoformat(), "needs a time zone (times are stored in UTC)")


def _day(value: datetime | date, zone: Any) -> date:
    """The lab day of ``value`` (a naive time: its own date; a time too early to convert: the first day)."""
    if isinstance(value, datetime) and is_naive(value):
        return value.date()
    try:
        return day_of(value, zone)
    except OverflowError:
        return date.min


def future_reason(value: datetime | date, *, now: datetime | None = None) -> str | None:
    """Why ``value`` is refused as lying in the future (later than now plus the allowed clock skew) or before the
    earliest day the biobank records (``earliest_date``: 1900, the epoch's -1 s are typing mistakes), or None."""
    settings = get_settings()
    now = now or utcnow()
    if _day(value, settings.zone) < settings.earliest_date:
        return (f"is before {shown_time(settings.earliest_date)}, the earliest day this biobank records "
                "(BIOBANK_EARLIEST_DATE); check the year")
    latest = now + settings.clock_skew
    if isinstance(value, datetime):
        if is_naive(value) or value <= latest:
            return None
        return f"is in the future (the time now is {shown_time(now)}); enter the time it happened"
    if value <= lab_today(latest, settings.zone):
        return None
    return f"is in the future (today is {shown_time(lab_today(now, settings.zone))}); enter the day it happened"


def not_in_future(field: str, value: datetime | date | None, *, now: datetime | None = None) -> None:
    """Refuse a time or day later than now plus the clock skew the settings allow, or before the earliest day."""
    if value is None:
        return
    reason = future_reason(value, now=now)
    if reason is not None:
        raise invalid(field, value, reason)


def _before(later: datetime | date, earlier: datetime | date) -> bool:
    """``later < earlier``, a day compared with a time by the lab day the time falls on."""
    if isinstance(later, datetime) and isinstance(earlier, datetime):
        return later < earlier
    zone = get_settings().zone
    return day_of(later, zone) < day_of(earlier, zone)


def check_order(
    earlier_field: str, earlier: datetime | date | None, later_field: str, later: datetime | date | None
) -> None:
    """``later`` may not come before ``earlier`` (impossible times are errors, not warnings). ``earlier_field`` is a
    field name, or already a label when it holds a space ("the check-out")."""
    if earlier is None or later is None or not _before(later, earlier):
        return
    name = earlier_field if " " in earlier_field else field_label(earlier_field)
    raise invalid(later_field, later, f"cannot be before {name} ({shown_time(earlier)})")


def check_time(
    field: str, value: datetime | date | None, *, after: Iterable[Earlier] = (), now: datetime | None = None
) -> None:
    """The one rule for an entered time or day: it has a time zone (a time), it is not in the future, and it is
    not before any of ``after`` (field name or label, value)."""
    if value is None:
        return
    if isinstance(value, datetime):
        require_aware(field, value)
    not_in_future(field, value, now=now)
    for earlier_field, earlier in after:
        check_order(earlier_field, earlier, field, value)
