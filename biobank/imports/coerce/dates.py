"""Dates, times of day and moments.

Dates and times (:func:`calendar_date`, :func:`date_time`, :func:`time_of_day`); ``TIME`` is ``H:MM``, ``H:MM:SS`` or
``H:MM:SS.ffffff``, optionally followed by ``AM``/``PM``:

- ISO 8601: ``2024-03-17``, ``2024-03-17T14:30``, ``2024-03-17 14:30:05``, with an optional offset ``Z``, ``+01``,
  ``+0100`` or ``+01:00``; ISO basic ``20240317`` (date only). An explicit offset wins over the lab's zone.
- ``dd/mm/yyyy``, ``dd.mm.yyyy``, ``dd-mm-yyyy`` [``TIME``]: day first by default; ``dayfirst=False`` reads
  ``mm/dd/yyyy``. When both readings are valid dates (``03/04/2024``) the note says which one was taken.
- ``yyyy/mm/dd``, ``yyyy.mm.dd``, ``yyyy-m-d`` [``TIME``].
- ``17 Mar 2024``, ``17-Mar-2024``, ``17 March 2024``, ``March 17, 2024`` [``TIME``] (English month names).
- Excel serial day numbers (1900 date system, fraction = time of day) from 3654 (1910-01-01) on, as numbers or
  digit strings; and the ``datetime``/``date``/``time`` objects openpyxl returns for cells formatted as dates.

Two-digit years are rejected (``03/04/24``): the century cannot be told for dates of diagnosis decades back.
``dateutil.parser.parse`` is deliberately not used: it accepts almost anything and guesses silently.
Naive date-times are wall-clock times in the lab's zone; a wall time that happens twice (clocks go back) or never
(clocks go forward) is an error, and results are UTC-aware.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal

from dateutil.tz import datetime_ambiguous, datetime_exists

from biobank.imports.coerce.cells import CellError, Coerced, _clean, _is_nan, _join, _show
from biobank.imports.coerce.numbers import _number_text

UTC = dt.UTC

EXCEL_EPOCH = dt.datetime(1899, 12, 30)
#: Serial numbers accepted as Excel dates: 1910-01-01 to 9999-12-31. Smaller numbers are years or counts, not dates.
EXCEL_SERIAL_MIN = 3654
EXCEL_SERIAL_MAX = 2958465

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}

_TIME = r"(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]{1,6}))?)?(?:\s*(?P<ampm>[ap])\.?m\.?)?"
_TAIL = rf"(?:(?:\s+|\s*[T,]\s*)(?:{_TIME}))?"
_ISO = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[T ](?P<time>[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,6})?)?)(?P<off>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?",
    re.IGNORECASE | re.ASCII,
)
_ISO_BASIC = re.compile(r"(?:19|20)[0-9]{2}[01][0-9][0-3][0-9]", re.ASCII)
_DMY = re.compile(
    rf"(?P<a>[0-9]{{1,2}})(?P<sep>[./-])(?P<b>[0-9]{{1,2}})(?P=sep)(?P<y>[0-9]{{2,4}}){_TAIL}", re.I | re.A
)
_YMD = re.compile(
    rf"(?P<y>[0-9]{{4}})(?P<sep>[./-])(?P<m>[0-9]{{1,2}})(?P=sep)(?P<d>[0-9]{{1,2}}){_TAIL}", re.I | re.A
)
_D_MON_Y = re.compile(
    rf"(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?[\s-]+(?P<mon>[a-z]+)\.?,?[\s-]+(?P<y>[0-9]{{2,4}}){_TAIL}",
    re.I | re.A,
)
_MON_D_Y = re.compile(
    rf"(?P<mon>[a-z]+)\.?\s+(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>[0-9]{{2,4}}){_TAIL}", re.I | re.A
)
_TIME_ONLY = re.compile(_TIME, re.I | re.A)
_HHMM = re.compile(r"([01][0-9]|2[0-3])([0-5][0-9])", re.A)

_MAX_DATE_CHARS = 64
DATE_EXPECTED = "a date such as 2024-03-17, 17/03/2024 or 17 Mar 2024"
DATETIME_EXPECTED = "a date and time such as 2024-03-17 14:30 or 17/03/2024 14:30"
TIME_EXPECTED = "a time of day such as 14:30"


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A date read from text: the wall-clock time if any, the explicit offset if any, and a note."""

    day: dt.date
    time: dt.time | None = None
    offset: dt.tzinfo | None = None
    note: str | None = None


def _year(text: str, raw: str, expected: str) -> int:
    if len(text) != 4:
        raise CellError(expected, f"{_show(raw)} has a {len(text)}-digit year: write the year in four digits")
    return int(text)


def _make_date(year: int, month: int, day: int, raw: str, expected: str) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CellError(expected, f"{_show(raw)} is not a valid date") from None


def _time_from(m: re.Match[str], raw: str, expected: str) -> dt.time | None:
    if m["h"] is None:
        return None
    hour, minute = int(m["h"]), int(m["mi"])
    second = int(m["s"] or 0)
    micro = int((m["f"] or "0").ljust(6, "0"))
    if m["ampm"]:
        if not 1 <= hour <= 12:
            raise CellError(expected, f"{_show(raw)} has hour {hour} with AM/PM")
        hour = hour % 12 + (12 if m["ampm"].lower() == "p" else 0)
    try:
        return dt.time(hour, minute, second, micro)
    except ValueError:
        raise CellError(expected, f"{_show(raw)} has an impossible time of day") from None


def _parse_date_text(raw: str, *, dayfirst: bool, expected: str) -> _Parsed:
    """Read cleaned text in one of the documented formats; anything else is a CellError."""
    if len(raw) > _MAX_DATE_CHARS:
        raise CellError(expected, f"{_show(raw)} is too long to be a date")
    s = raw
    if m := _ISO.fullmatch(s):
        try:
            parsed = dt.datetime.fromisoformat(s.upper().replace(",", "."))
        except ValueError:
            raise CellError(expected, f"{_show(raw)} is not a valid date") from None
        has_time = m["time"] is not None
        return _Parsed(
            parsed.date(),
            parsed.time() if has_time else None,
            parsed.tzinfo if m["off"] is not None else None,
        )
    if _ISO_BASIC.fullmatch(s):
        day = _make_date(int(s[:4]), int(s[4:6]), int(s[6:]), raw, expected)
        return _Parsed(day, note=f"'{raw}' read as {day.isoformat()}")
    if m := _YMD.fullmatch(s):
        day = _make_date(int(m["y"]), int(m["m"]), int(m["d"]), raw, expected)
        return _Parsed(day, _time_from(m, raw, expected))
    if m := _DMY.fullmatch(s):
        year = _year(m["y"], raw, expected)
        a, b = int(m["a"]), int(m["b"])
        day_n, month_n = (a, b) if dayfirst else (b, a)
        order = "day-first" if dayfirst else "month-first"
        if not 1 <= month_n <= 12:
            other = "month-first" if dayfirst else "day-first"
            raise CellError(
                expected,
                f"{_show(raw)} is not a valid {order} date (no month {month_n}); if this file writes dates "
                f"{other}, import it with {other} dates",
            )
        day = _make_date(year, month_n, day_n, raw, expected)
        note = None
        if a != b and a <= 12 and b <= 12:
            note = f"'{raw}' read {order} as {day.isoformat()}"
        return _Parsed(day, _time_from(m, raw, expected), note=note)
    for pattern in (_D_MON_Y, _MON_D_Y):
        if m := pattern.fullmatch(s):
            month = _MONTHS.get(m["mon"].lower())
            if month is None:
                raise CellError(expected, f"{_show(raw)}: '{m['mon']}' is not an English month name")
            day = _make_date(_year(m["y"], raw, expected), month, int(m["d"]), raw, expected)
            return _Parsed(day, _time_from(m, raw, expected))
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", s, re.A) and len(s) <= 20:
        return _from_serial(float(s), raw, expected)
    raise CellError(expected, f"{_show(raw)} is not {expected}")


def _from_serial(serial: float, raw: object, expected: str) -> _Parsed:
    """An Excel 1900-system serial day number; the fraction is the time of day."""
    if not math.isfinite(serial) or not EXCEL_SERIAL_MIN <= serial < EXCEL_SERIAL_MAX + 1:
        hint = " (a year alone is not a date)" if 1000 <= serial <= 2999 else ""
        raise CellError(
            expected,
            f"{_show(raw)} is not a date{hint}; numbers are read as Excel serial days from "
            f"{EXCEL_SERIAL_MIN} (1910-01-01)",
        )
    stamp = EXCEL_EPOCH + dt.timedelta(milliseconds=round(serial * 86_400_000))
    shown = raw if isinstance(raw, str) else _number_text(round(serial, 6))
    if stamp.time() == dt.time(0):
        return _Parsed(stamp.date(), None, note=f"Excel serial {shown} read as {stamp.date().isoformat()}")
    text = stamp.isoformat(sep=" ", timespec="milliseconds" if stamp.microsecond else "seconds")
    return _Parsed(stamp.date(), stamp.time(), note=f"Excel serial {shown} read as {text}")


def _parse_any(raw: object, *, dayfirst: bool, expected: str) -> _Parsed | None:
    if raw is None:
        return None
    if isinstance(raw, dt.datetime):
        return _Parsed(raw.date(), raw.time())
    if isinstance(raw, dt.date):
        return _Parsed(raw)
    if isinstance(raw, bool):
        raise CellError(expected, f"{'TRUE' if raw else 'FALSE'} is not a date")
    if isinstance(raw, int | float | Decimal):
        if _is_nan(raw):
            return None
        try:
            serial = float(raw)
        except OverflowError:
            serial = math.inf
        return _from_serial(serial, raw, expected)
    if isinstance(raw, str):
        cleaned = _clean(raw, expected)
        if cleaned is None:
            return None
        return _parse_date_text(cleaned, dayfirst=dayfirst, expected=expected)
    raise CellError(expected, f"{_show(raw)} is not a date")


def calendar_date(raw: object, *, dayfirst: bool = True) -> Coerced[dt.date]:
    """A calendar date (formats in the module docstring); a time part, if present, is dropped with a note."""
    parsed = _parse_any(raw, dayfirst=dayfirst, expected=DATE_EXPECTED)
    if parsed is None:
        return Coerced(None)
    note = parsed.note
    if (
        parsed.time is not None
        and parsed.time != dt.time(0)
        and not (note and note.startswith("Excel serial"))
    ):
        note = _join(note, f"time {parsed.time.isoformat(timespec='minutes')} ignored")
    return Coerced(parsed.day, note)


def _zone_name(tz: dt.tzinfo) -> str:
    return str(getattr(tz, "key", None) or tz)


def localise(
    naive: dt.datetime, tz: dt.tzinfo, *, expected: str = DATETIME_EXPECTED, shown: str | None = None
) -> dt.datetime:
    """A wall-clock time in ``tz`` as a UTC-aware datetime; raises CellError when DST makes it ambiguous or absent."""
    shown = shown or naive.isoformat(sep=" ", timespec="minutes")
    try:
        exists = datetime_exists(naive, tz)
        ambiguous = datetime_ambiguous(naive, tz)
        value = naive.replace(tzinfo=tz).astimezone(UTC)
    except (OverflowError, ValueError):
        raise CellError(expected, f"'{shown}' is out of range") from None
    if not exists:
        raise CellError(
            expected, f"'{shown}' does not exist in {_zone_name(tz)}: the clocks went forward over it"
        )
    if ambiguous:
        raise CellError(
            expected,
            f"'{shown}' happens twice in {_zone_name(tz)} (the clocks went back): give the UTC offset, "
            f"e.g. {naive.isoformat(timespec='minutes')}{_offset_text(naive.replace(tzinfo=tz).utcoffset())}",
        )
    return value


def date_time(raw: object, *, tz: dt.tzinfo, dayfirst: bool = True) -> Coerced[dt.datetime]:
    """A moment as a UTC-aware datetime; naive values are wall-clock times in the lab zone ``tz``."""
    expected = DATETIME_EXPECTED
    if isinstance(raw, dt.time):
        raise CellError(expected, f"{_show(raw)} is a time without a date")
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        raise CellError(expected, f"{_show(raw)} is a date without a time")
    if isinstance(raw, dt.datetime) and raw.utcoffset() is not None:
        try:
            return Coerced(raw.astimezone(UTC))
        except (OverflowError, ValueError):
            raise CellError(expected, f"{_show(raw)} is out of range") from None
    parsed = _parse_any(raw, dayfirst=dayfirst, expected=expected)
    if parsed is None:
        return Coerced(None)
    time = parsed.time
    if time is None:
        if not (parsed.note and parsed.note.startswith("Excel serial")):
            raise CellError(expected, f"{_show(raw)} has a date but no time")
        time = dt.time(0)
    naive = dt.datetime.combine(parsed.day, time)
    if parsed.offset is None:
        shown = raw if isinstance(raw, str) else None
        return Coerced(localise(naive, tz, shown=shown), parsed.note)
    try:
        value = naive.replace(tzinfo=parsed.offset).astimezone(UTC)
    except (OverflowError, ValueError):
        raise CellError(expected, f"{_show(raw)} is out of range") from None
    note = parsed.note
    try:
        lab_offset = value.astimezone(tz).utcoffset()
    except (OverflowError, ValueError):
        lab_offset = None
    given = naive.replace(tzinfo=parsed.offset).utcoffset()
    if lab_offset is not None and given != lab_offset:
        note = _join(
            note,
            f"offset {_offset_text(given)} in the cell used, not {_zone_name(tz)} ({_offset_text(lab_offset)})",
        )
    return Coerced(value, note)


def _offset_text(offset: dt.timedelta | None) -> str:
    if offset is None:
        return "?"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def time_of_day(raw: object) -> Coerced[dt.time]:
    """A wall-clock time: ``14:30``, ``14:30:05``, ``2:30 PM``, ``1430`` (with a note), or Excel's time values."""
    expected = TIME_EXPECTED
    if raw is None:
        return Coerced(None)
    if isinstance(raw, dt.datetime):
        return Coerced(raw.time(), f"date part of {raw.isoformat(sep=' ', timespec='minutes')} ignored")
    if isinstance(raw, dt.time):
        return Coerced(raw.replace(tzinfo=None))
    if isinstance(raw, dt.timedelta):
        if dt.timedelta(0) <= raw < dt.timedelta(days=1):
            return Coerced((dt.datetime.min + raw).time())
        raise CellError(expected, f"{_show(raw)} is not a time of day")
    if isinstance(raw, bool | dt.date):
        raise CellError(expected, f"{_show(raw)} is not a time of day")
    if isinstance(raw, float) and math.isnan(raw):
        return Coerced(None)
    if isinstance(raw, float) and 0 <= raw < 1:
        millis = round(raw * 86_400_000)
        if millis >= 86_400_000:
            raise CellError(expected, f"{_show(raw)} is not a time of day")
        value = (dt.datetime.min + dt.timedelta(milliseconds=millis)).time()
        return Coerced(value, f"Excel time {raw!r} read as {value.isoformat(timespec='seconds')}")
    if not isinstance(raw, str):
        raise CellError(expected, f"{_show(raw)} is not a time of day")
    cleaned = _clean(raw, expected)
    if cleaned is None:
        return Coerced(None)
    if len(cleaned) > _MAX_DATE_CHARS:
        raise CellError(expected, f"{_show(raw)} is too long to be a time")
    if m := _TIME_ONLY.fullmatch(cleaned):
        return Coerced(_time_from(m, cleaned, expected))
    if m := _HHMM.fullmatch(cleaned):
        value = dt.time(int(m[1]), int(m[2]))
        return Coerced(value, f"'{cleaned}' read as {value.isoformat(timespec='minutes')}")
    raise CellError(expected, f"{_show(raw)} is not {expected}")


def combine(day: dt.date, time: dt.time, tz: dt.tzinfo) -> dt.datetime:
    """A date column and a time column as one UTC-aware moment (wall clock in ``tz``; DST gaps and overlaps raise)."""
    return localise(dt.datetime.combine(day, time.replace(tzinfo=None)), tz)
