"""The export log (issue 17): every export that left the database, who made it, when, what it carried and the
SHA-256 of each file, so the recipients of a donor's data can be told after a withdrawal.

Both tables are append-only, like the audit log and the chain of custody: triggers refuse UPDATE and DELETE on
SQLite and PostgreSQL (migration 0012), and the application's PostgreSQL login may only INSERT and SELECT
(:mod:`biobank.db.roles`). A withdrawn donor's exports stay listed: that is what they are kept for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from biobank.db.engine import UTCDateTime
from biobank.models.base import not_blank, utcnow


class ExportRecord(SQLModel, table=True):
    """One export: its target, the selection as asked (plan, donors, specimens, options), the counts of donors and
    specimens it carried, and its files as ``[{"name", "bytes", "sha256"}]``."""

    __tablename__ = "export_record"
    __table_args__ = (
        not_blank("target_not_blank", "target"),
        CheckConstraint("donor_count >= 0", name="donor_count_not_negative"),
        CheckConstraint("specimen_count >= 0", name="specimen_count_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    exported_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="RESTRICT", index=True)
    target: str = Field(max_length=32, index=True)
    selection: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    donor_count: int = Field(default=0)
    specimen_count: int = Field(default=0)
    files: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class ExportDonor(SQLModel, table=True):
    """A donor an export carried: a donor's exports are found through the index on ``donor_id``."""

    __tablename__ = "export_donor"
    __table_args__ = (UniqueConstraint("export_record_id", "donor_id"),)

    id: int | None = Field(default=None, primary_key=True)
    export_record_id: int = Field(foreign_key="export_record.id", ondelete="RESTRICT")
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
