"""Finding a row by the code a person typed or scanned: the one place where letter case and stray spaces are
forgiven.

Generated codes are upper case (``RA0001-L01A-SF1``, ``RAP-2026-001``, ``DO-2026-001``), but people type
``rap-1-l01-a-sf1`` and scanners add spaces. :func:`by_code` tries the code as typed (without surrounding spaces),
then in upper case (both use the unique index), and only then any letter case, so a container code the lab wrote in
mixed case (``Shelf-a``) is found too. Two rows differing only in case are never guessed between.

The any-case comparison is ``upper(column) = upper(typed)``, written so that it reads the ``upper(...)`` expression
index of every column looked up here (``biobank.models.indexes.CODE_UPPER_INDEXES``, migration 0018): a code that
does not exist costs an index probe, not a pass over the table. A column newly looked up here gets its index there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.domain.errors import NotFoundError

T = TypeVar("T")


def typed_code(typed: Any) -> str:
    """A code as typed, without the spaces around it (scanners and copy-paste add them)."""
    return str(typed if typed is not None else "").strip()


def by_code(
    session: Session,
    model: type[T],
    column: Any,
    typed: Any,
    *,
    what: str,
    field: str,
    where: Iterable[Any] = (),
    for_update: bool = False,
) -> T:
    """The ``model`` row whose ``column`` holds the code ``typed`` in any letter case (within ``where``), locked
    for the rest of the transaction with ``for_update``; else :class:`NotFoundError` ``"<what> '<code>' not
    found"`` naming ``field``."""
    conditions = list(where)
    code = typed_code(typed)
    for candidate in dict.fromkeys((code, code.upper())):
        statement = select(model).where(column == candidate, *conditions)
        row = session.exec(statement.with_for_update() if for_update else statement).first()
        if row is not None:
            return row
    matches = list(session.exec(select(column).where(func.upper(column) == code.upper(), *conditions).limit(2)))
    if len(matches) == 1:
        statement = select(model).where(column == matches[0], *conditions)
        row = session.exec(statement.with_for_update() if for_update else statement).first()
        if row is not None:
            return row
    raise NotFoundError(f"{what} {code!r} not found", field=field, value=code)


def stored_code(session: Session, column: Any, typed: Any, *, where: Iterable[Any] = ()) -> str:
    """The code as stored for what was typed (any letter case, no surrounding spaces), or the typed code trimmed
    when nothing matches (the caller's own lookup then says it was not found)."""
    conditions = list(where)
    code = typed_code(typed)
    for candidate in dict.fromkeys((code, code.upper())):
        found = session.exec(select(column).where(column == candidate, *conditions).limit(1)).first()
        if found is not None:
            return str(found)
    matches = list(session.exec(select(column).where(func.upper(column) == code.upper(), *conditions).limit(2)))
    return str(matches[0]) if len(matches) == 1 else code
