"""Attachments (issue 22): photos and documents on records (a gross photo of a lesion at the table, a pathology
report, a consent form, a shipping manifest).

The bytes live in a content-addressed store (:mod:`biobank.attachments.store`, files named by their SHA-256); this
table holds what they are, whose record they belong to and their hashes. Nothing is deleted: a trigger refuses
DELETE (migration 0017), and a mistaken attachment is *retracted* (``state``, audited with the reason).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Index
from sqlmodel import Field

from biobank.db.engine import UTCDateTime
from biobank.models.base import Tracked, not_blank, one_of


class AttachmentTarget(StrEnum):
    donor = "donor"
    case = "case"
    lesion = "lesion"
    sampling_site = "sampling_site"
    specimen = "specimen"
    model = "model"
    passage = "passage"
    distribution = "distribution"
    plan = "plan"


class AttachmentKind(StrEnum):
    gross_photo = "gross_photo"
    histology_image = "histology_image"
    pathology_report = "pathology_report"
    consent_form = "consent_form"
    manifest = "manifest"
    other = "other"


class AttachmentState(StrEnum):
    active = "active"
    retracted = "retracted"


class Attachment(Tracked, table=True):
    """One file attached to one record: ``target`` and ``record_id`` (the row in the target's table), the record's
    code as shown (``target_code``), the donor it falls under (none for an order or a plan), what it is, and the
    SHA-256 of the stored file, its thumbnail and (only when the setting keeps it) the original as uploaded."""

    __tablename__ = "attachment"
    __table_args__ = (
        one_of("target", "target", AttachmentTarget),
        one_of("kind", "kind", AttachmentKind),
        one_of("state", "state", AttachmentState),
        not_blank("target_code_not_blank", "target_code"),
        not_blank("filename_not_blank", "filename"),
        not_blank("caption_not_blank", "caption"),
        not_blank("taken_by_not_blank", "taken_by"),
        CheckConstraint("length(sha256) = 64", name="sha256_length"),
        CheckConstraint("thumbnail_sha256 IS NULL OR length(thumbnail_sha256) = 64", name="thumbnail_sha256_length"),
        CheckConstraint("original_sha256 IS NULL OR length(original_sha256) = 64", name="original_sha256_length"),
        CheckConstraint("size_bytes >= 0", name="size_not_negative"),
        CheckConstraint(
            "state = 'active' OR (retracted_at IS NOT NULL AND retraction_reason IS NOT NULL)",
            name="retraction_recorded",
        ),
        Index("ix_attachment_target_record", "target", "record_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target: str = Field(max_length=16)
    record_id: int
    target_code: str = Field(max_length=120)
    donor_id: int | None = Field(default=None, foreign_key="donor.id", ondelete="RESTRICT", index=True)
    kind: str = Field(max_length=20)
    caption: str | None = Field(default=None, max_length=500)
    taken_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    taken_by: str | None = Field(default=None, max_length=120)
    filename: str = Field(max_length=255)
    media_type: str = Field(max_length=60)
    size_bytes: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64, index=True)
    thumbnail_sha256: str | None = Field(default=None, max_length=64)
    original_sha256: str | None = Field(default=None, max_length=64)
    state: str = Field(default=AttachmentState.active.value, max_length=12)
    retracted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    retracted_by_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT")
    retraction_reason: str | None = Field(default=None, max_length=500)
