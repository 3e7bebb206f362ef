"""Template columns: what a spreadsheet column of a kind is called, how its cells are read (a coercer from
:mod:`biobank.imports.coerce`), whether it must be filled, and the help the template prints.

The builders (:func:`text_col`, :func:`vocab_col`, :func:`quantity_col` ...) are what a kind's ``columns`` are made of.
A column that fills a field of a service's input model names the model (``model=RegionCollect``) and takes that
field's declared length or range from it (:func:`biobank.services.inputs.limits`) rather than restating it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from biobank.imports import coerce as c
from biobank.services.inputs import Limits, limits


@dataclass(frozen=True)
class Context:
    """What coercion depends on besides the cell: the lab's zone for naive times, and day-first dates."""

    tz: tzinfo
    dayfirst: bool = True


Coerce = Callable[[Any, Context], c.Coerced[Any]]


@dataclass(frozen=True)
class Column:
    """One template column: its coercer, whether it must be filled, and the help printed in the template."""

    name: str
    coerce: Coerce
    help: str
    required: bool = False
    vocabulary: tuple[str, ...] = ()
    type: str = "text"
    #: Table columns this file column sets (an upsert updates them only when the column is in the file).
    targets: tuple[str, ...] | None = None
    #: The length or range its cells are held to (the input model's, for a column that fills one of its fields).
    limits: Limits = dataclasses.field(default_factory=Limits)

    @property
    def sets(self) -> tuple[str, ...]:
        return self.targets if self.targets is not None else (self.name,)


def declared(model: type | None, name: str, field: str | None = None) -> Limits:
    """The limits ``model`` declares for the field a column fills (``field``, else the column's own name)."""
    return limits(model, field or name) if model is not None else Limits()


def text_col(name: str, help: str, *, required: bool = False, model: type | None = None, field: str | None = None,
             max_length: int | None = None, targets: tuple[str, ...] | None = None) -> Column:
    """Text; its length limit is the input model's (``model``), or ``max_length`` for text no service takes."""
    length = declared(model, name, field).max_length if model is not None else max_length

    def run(raw: Any, _ctx: Context) -> c.Coerced[str]:
        return c.text(raw, max_length=length)

    return Column(name, run, help, required, type="text", targets=targets, limits=Limits(max_length=length))


def int_col(name: str, help: str, *, required: bool = False, model: type | None = None,
            field: str | None = None, minimum: int | None = None) -> Column:
    """A whole number within the range ``model`` declares for it (``minimum`` for a number no service takes)."""
    bounds = declared(model, name, field) if model is not None else Limits(minimum=minimum)
    low = None if bounds.minimum is None else int(bounds.minimum) + (1 if bounds.exclusive_minimum else 0)
    high = None if bounds.maximum is None else int(bounds.maximum)

    def run(raw: Any, _ctx: Context) -> c.Coerced[int]:
        return c.integer(raw, minimum=low, maximum=high)

    return Column(name, run, help, required, type="whole number", limits=Limits(minimum=low, maximum=high))


def num_col(name: str, help: str, *, required: bool = False, model: type | None = None,
            field: str | None = None) -> Column:
    """A number within the range ``model`` declares for it (an exclusive minimum is checked by the model)."""
    bounds = declared(model, name, field)
    if model is None:
        raise ValueError(f"column {name}: a number's range comes from the input model that declares it")

    def run(raw: Any, _ctx: Context) -> c.Coerced[float]:
        return c.decimal(raw, minimum=bounds.minimum, maximum=bounds.maximum)

    return Column(name, run, help, required, type="number", limits=bounds)


def pct_col(name: str, help: str) -> Column:
    def run(raw: Any, _ctx: Context) -> c.Coerced[float]:
        return c.percent(raw)

    return Column(name, run, help, type="percent 0-100")


def bool_col(name: str, help: str, *, required: bool = False) -> Column:
    def run(raw: Any, _ctx: Context) -> c.Coerced[bool]:
        return c.boolean(raw)

    return Column(name, run, help, required, type="yes/no")


def vocab_col(name: str, enum: type[StrEnum], help: str, *, required: bool = False) -> Column:
    coercer = c.vocab(enum)

    def run(raw: Any, _ctx: Context) -> c.Coerced[Any]:
        result = coercer(raw)
        return c.Coerced(None if result.value is None else result.value.value, result.note)

    return Column(name, run, help, required, vocabulary=tuple(m.value for m in enum), type="vocabulary")


def date_col(name: str, help: str, *, required: bool = False) -> Column:
    def run(raw: Any, ctx: Context) -> c.Coerced[Any]:
        return c.calendar_date(raw, dayfirst=ctx.dayfirst)

    return Column(name, run, help, required, type="date")


def datetime_col(name: str, help: str, *, required: bool = False) -> Column:
    def run(raw: Any, ctx: Context) -> c.Coerced[datetime]:
        return c.date_time(raw, tz=ctx.tz, dayfirst=ctx.dayfirst)

    return Column(name, run, help, required, type="date and time (lab time zone unless an offset is given)")


def quantity_col(name: str, help: str, *, required: bool = False, targets: tuple[str, ...] | None = None) -> Column:
    """A quantity with its unit in the cell (``5 mg``); a bare number takes the unit from the ``unit`` column."""

    def run(raw: Any, _ctx: Context) -> c.Coerced[Any]:
        return _amount(raw)

    return Column(name, run, help, required, type="quantity", targets=targets)


def _amount(raw: Any) -> c.Coerced[Any]:
    """A bare number (unit given elsewhere) as ``(value, None)``, or a quantity with a unit as ``(value, unit)``."""
    try:
        number = c.decimal(raw, minimum=0)
    except c.CellError:
        quantity = c.quantity(raw)
        if quantity.value is None:
            return c.Coerced(None)
        return c.Coerced((quantity.value.value, quantity.value.unit.value), quantity.note)
    return c.Coerced(None if number.value is None else (number.value, None), number.note)
