"""Post-mortem intervals (DOMAIN.md §3): pure functions over timezone-aware datetimes."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum


def is_naive(value: datetime) -> bool:
    """A datetime without a usable zone: refused everywhere rather than guessed."""
    return value.tzinfo is None or value.utcoffset() is None


def as_utc(value: datetime) -> datetime:
    """The same moment in UTC; a naive datetime is refused (``ValueError``), never read as local or UTC."""
    if is_naive(value):
        raise ValueError(f"naive datetime {value.isoformat()} refused: give a time zone")
    return value.astimezone(UTC)


def lab_time(value: datetime, zone: tzinfo, *, with_zone: bool = False) -> str:
    """A moment as the lab reads it: ``06 Dec 2026 21:27`` in the lab's zone (``... Europe/London`` with the zone)."""
    local = value if is_naive(value) else value.astimezone(zone)
    shown = local.strftime("%d %b %Y %H:%M")
    return f"{shown} {zone}" if with_zone else shown


def lab_day(value: date) -> str:
    """A day as the lab reads it: ``06 Dec 2026``."""
    return value.strftime("%d %b %Y")


def lab_today(now: datetime, zone: tzinfo) -> date:
    """The calendar day ``now`` falls on in the lab's zone (a day typed in a form is a lab day, not a UTC day)."""
    return as_utc(now).astimezone(zone).date()


def day_of(value: datetime | date, zone: tzinfo) -> date:
    """The lab day of a moment, or the day itself."""
    return value.astimezone(zone).date() if isinstance(value, datetime) else value


class PmiBasis(StrEnum):
    stabilised = "stabilised"
    excised = "excised"  # stabilisation time unknown: the PMI is a lower bound, and we say so


@dataclass(frozen=True)
class SpecimenPMI:
    interval: timedelta
    basis: PmiBasis

    @property
    def hours(self) -> float:
        return self.interval.total_seconds() / 3600

    def describe(self) -> str:
        note = "" if self.basis is PmiBasis.stabilised else " (from excision: stabilisation time unknown)"
        return f"{self.hours:.1f} h{note}"


def _require_aware(**values: datetime | None) -> None:
    for name, value in values.items():
        if value is not None and is_naive(value):
            raise ValueError(f"{name} must be timezone-aware")


def specimen_pmi(
    death_at: datetime | None, excised_at: datetime | None, stabilised_at: datetime | None
) -> SpecimenPMI | None:
    """PMI = stabilised − death; when stabilisation is unknown, excised − death (and the basis says so).

    None when the time of death is unknown or the material was taken before death (a pre-mortem draw has no PMI).
    """
    _require_aware(death_at=death_at, excised_at=excised_at, stabilised_at=stabilised_at)
    if death_at is None:
        return None
    if stabilised_at is not None:
        interval, basis = stabilised_at - death_at, PmiBasis.stabilised
    elif excised_at is not None:
        interval, basis = excised_at - death_at, PmiBasis.excised
    else:
        return None
    if interval < timedelta(0):
        return None
    return SpecimenPMI(interval, basis)


def warm_pmi(death_at: datetime | None, refrigerated_at: datetime | None) -> timedelta | None:
    """Time the body spent warm: refrigerated − death."""
    _require_aware(death_at=death_at, refrigerated_at=refrigerated_at)
    if death_at is None or refrigerated_at is None:
        return None
    return refrigerated_at - death_at


def cold_interval(refrigerated_at: datetime | None, excised_at: datetime | None) -> timedelta | None:
    """Time in the cold before excision: excised − refrigerated (None if excised before refrigeration)."""
    _require_aware(refrigerated_at=refrigerated_at, excised_at=excised_at)
    if refrigerated_at is None or excised_at is None or excised_at < refrigerated_at:
        return None
    return excised_at - refrigerated_at


@dataclass(frozen=True)
class CaseFigures:
    pmi_at_start: timedelta | None
    last_specimen_pmi: timedelta | None
    median_pmi: timedelta | None
    share_within_target: float | None
    specimens: int
    beyond_limit: int


def case_figures(
    death_at: datetime | None,
    start_at: datetime | None,
    pmis: Sequence[timedelta],
    *,
    target: timedelta,
    limit: timedelta,
) -> CaseFigures:
    """Summary of one autopsy: PMI at start, of the last specimen, the median, and the share within target."""
    _require_aware(death_at=death_at, start_at=start_at)
    at_start = start_at - death_at if death_at is not None and start_at is not None else None
    if not pmis:
        return CaseFigures(at_start, None, None, None, 0, 0)
    seconds = sorted(p.total_seconds() for p in pmis)
    return CaseFigures(
        pmi_at_start=at_start,
        last_specimen_pmi=timedelta(seconds=seconds[-1]),
        median_pmi=timedelta(seconds=statistics.median(seconds)),
        share_within_target=sum(1 for p in pmis if p <= target) / len(pmis),
        specimens=len(pmis),
        beyond_limit=sum(1 for p in pmis if p > limit),
    )


#: PMI bands used by filters and take-rate metrics: (label, lower bound inclusive, upper bound exclusive), hours.
PMI_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-4 h", 0.0, 4.0),
    ("4-6 h", 4.0, 6.0),
    ("6-8 h", 6.0, 8.0),
    ("8-12 h", 8.0, 12.0),
    ("12+ h", 12.0, float("inf")),
)


def pmi_band(hours: float | None) -> str:
    """The band a PMI (in hours) falls in; 'unknown' without one."""
    if hours is None or hours != hours:  # None or NaN
        return "unknown"
    for label, low, high in PMI_BANDS:
        if low <= hours < high:
            return label
    return "unknown"


def pmi_flag(hours: float | None, *, target_hours: float, limit_hours: float) -> str:
    """'within target', 'past target' or 'past limit' (the board's warnings)."""
    if hours is None:
        return "unknown"
    if hours > limit_hours:
        return "past limit"
    if hours > target_hours:
        return "past target"
    return "within target"
