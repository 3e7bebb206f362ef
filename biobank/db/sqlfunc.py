"""Portable SQL expressions the queries need (aggregates stay in the database on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class _Elapsed(FunctionElement[float]):
    """Time from the first value to the second, in the subclass's unit, computed by the database."""

    type = Float()
    inherit_cache = True
    #: How many of the unit make a day.
    per_day: ClassVar[float]
    #: Whether the operands are dates (PostgreSQL subtracts dates to whole days, timestamps to an interval).
    dates: ClassVar[bool]


class hours_between(_Elapsed):
    """Hours from the first timestamp to the second: ``hours_between(death_at, stabilised_at)``."""

    inherit_cache = True
    name = "hours_between"
    per_day = 24.0
    dates = False


class days_between(_Elapsed):
    """Days from the first date to the second: ``days_between(initiated_on, established_on)``."""

    inherit_cache = True
    name = "days_between"
    per_day = 1.0
    dates = True


@compiles(_Elapsed, "sqlite")
def _elapsed_sqlite(element: _Elapsed, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    scale = "" if element.per_day == 1 else f" * {element.per_day!r}"
    return f"((julianday({end}) - julianday({start})){scale})"


@compiles(_Elapsed, "postgresql")
def _elapsed_pg(element: _Elapsed, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    if element.dates:
        scale = "" if element.per_day == 1 else f" * {element.per_day!r}"
        return f"(({end} - {start}){scale})"
    # date_part gives a double; EXTRACT gives numeric since PostgreSQL 14, several times slower over a million rows.
    return f"(date_part('epoch', {end} - {start}) / {86400.0 / element.per_day!r})"
