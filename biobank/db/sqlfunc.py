"""Portable SQL expressions the queries need (aggregates stay in the database on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class hours_between(FunctionElement[float]):
    """Hours from the first timestamp to the second: ``hours_between(death_at, stabilised_at)``."""

    type = Float()
    inherit_cache = True
    name = "hours_between"


@compiles(hours_between, "sqlite")
def _hours_sqlite(element: hours_between, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"((julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)})) * 24.0)"


@compiles(hours_between, "postgresql")
def _hours_pg(element: hours_between, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    # date_part gives a double; EXTRACT gives numeric since PostgreSQL 14, several times slower over a million rows.
    return f"(date_part('epoch', {compiler.process(end, **kw)} - {compiler.process(start, **kw)}) / 3600.0)"
