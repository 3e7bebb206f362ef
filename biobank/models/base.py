"""Shared table machinery: the constraint naming convention, audit columns, CHECK helpers, and :func:`fetch_one`
(a row by its code, or NotFoundError)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import CheckConstraint, Table
from sqlmodel import Field, Session, SQLModel
from sqlmodel.sql.expression import SelectOfScalar

from biobank.db.engine import UTCDateTime
from biobank.domain.errors import NotFoundError

T = TypeVar("T")

# Set before any table is declared: every constraint gets a stable name that migrations can refer to.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def pk(row: Any) -> int:
    """A stored row's primary key: typed ``int | None`` by SQLModel, set once the row is flushed."""
    if row.id is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush it first")
    return int(row.id)


def fetch_one(
    session: Session, statement: SelectOfScalar[T], *, what: str, field: str, value: Any, for_update: bool = False
) -> T:
    """The row ``statement`` selects (locked for the rest of the transaction with ``for_update``), or
    :class:`NotFoundError` ``"<what> '<value>' not found"`` naming ``field``."""
    if for_update:
        statement = statement.with_for_update()
    row = session.exec(statement).first()
    if row is None:
        raise NotFoundError(f"{what} {value!r} not found", field=field, value=value)
    return row


class Tracked(SQLModel):
    """Who created or last changed a row, and when (filled by the audit hook, never by hand)."""

    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    created_by_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT")
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_by_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT")


def one_of(name: str, column: str, enum: type[StrEnum], *, nullable: bool = False) -> CheckConstraint:
    """A named CHECK that ``column`` holds a value of ``enum``."""
    allowed = ", ".join(f"'{member.value}'" for member in enum)
    condition = f"{column} IN ({allowed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=name)


def between(name: str, column: str, low: float, high: float) -> CheckConstraint:
    return CheckConstraint(f"{column} IS NULL OR ({column} >= {low} AND {column} <= {high})", name=name)


def not_blank(name: str, column: str) -> CheckConstraint:
    """Codes are never empty strings: NULL or something."""
    return CheckConstraint(f"{column} IS NULL OR length(trim({column})) > 0", name=name)


#: Codes safe for every pipeline: letters, digits, '.', '_', '-' (DOMAIN.md §6 rule 9). Checked in the service;
#: the database checks the cheap part (no spaces, no colons) portably.
def safe_code(name: str, column: str) -> CheckConstraint:
    return CheckConstraint(
        f"{column} IS NULL OR (length({column}) > 0 AND {column} NOT LIKE '% %' AND {column} NOT LIKE '%:%'"
        f" AND {column} NOT LIKE '%/%')",
        name=name,
    )


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model (SQLModel adds ``__table__`` at class creation, unseen by type checkers)."""
    return model.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass for table models  # set by SQLModel's metaclass for table=True models
