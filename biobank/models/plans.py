"""Analysis plans (DOMAIN.md §2 "Analysis plan", §6): which specimens of which donors go to sequencing, and why.

The database holds what it can: the vocabularies as named CHECKs, an approved plan always names its approver, a
specimen can only join a plan through its own donor (composite foreign keys), and a plan's contents cannot change
once it left draft (triggers from :mod:`biobank.db.ddl`, created by migration 0004).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, UniqueConstraint
from sqlmodel import Field

from biobank.db.engine import UTCDateTime
from biobank.models.base import Tracked, not_blank, one_of, safe_code


class PlanPurpose(StrEnum):
    phylogeny = "phylogeny"
    migration_history = "migration_history"
    model_vs_tumour = "model_vs_tumour"


class Assay(StrEnum):
    wgs = "wgs"
    wes = "wes"
    panel = "panel"
    rna_seq = "rna_seq"


#: Assays that sequence DNA (the others sequence RNA).
DNA_ASSAYS = frozenset({Assay.wgs, Assay.wes, Assay.panel})


class PlanStatus(StrEnum):
    draft = "draft"
    approved = "approved"
    submitted = "submitted"


class PlanRole(StrEnum):
    tumour = "tumour"
    germline_normal = "germline_normal"
    normal_tissue = "normal_tissue"
    #: Material grown in a model (PDX, organoid, cell line) or made from it, compared with its source region.
    model = "model"


#: The longest reason a plan gives for leaving its primary tumour unsampled (``primary_unsampled_reason``).
PRIMARY_UNSAMPLED_LENGTH = 500


class AnalysisPlan(Tracked, table=True):
    __tablename__ = "analysis_plan"
    __table_args__ = (
        safe_code("code_safe", "code"),
        not_blank("name_not_blank", "name"),
        one_of("purpose", "purpose", PlanPurpose),
        one_of("assay", "assay", Assay),
        one_of("status", "status", PlanStatus),
        CheckConstraint("target_depth IS NULL OR target_depth > 0", name="target_depth_positive"),
        CheckConstraint(
            "status = 'draft' OR (approved_by_id IS NOT NULL AND approved_at IS NOT NULL)",
            name="approved_has_approver",
        ),
        CheckConstraint(
            "NOT (unknown_primary AND primary_site_code IS NOT NULL)", name="primary_site_or_unknown"
        ),
        not_blank("primary_unsampled_reason_not_blank", "primary_unsampled_reason"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    name: str = Field(unique=True, max_length=200)
    purpose: str = Field(max_length=24)
    assay: str = Field(max_length=12)
    target_depth: float | None = None
    status: str = Field(default=PlanStatus.draft.value, max_length=12)
    primary_site_code: str | None = Field(default=None, foreign_key="anatomical_site.code", max_length=40)
    unknown_primary: bool = Field(default=False)
    description: str | None = Field(default=None, max_length=1000)
    #: Why the primary tumour is not sampled (DOMAIN.md §6 rule 15); None when the plan declares nothing.
    primary_unsampled_reason: str | None = Field(default=None, max_length=PRIMARY_UNSAMPLED_LENGTH)
    approved_by_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT")
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PlanDonor(Tracked, table=True):
    __tablename__ = "plan_donor"
    __table_args__ = (UniqueConstraint("plan_id", "donor_id"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="analysis_plan.id", ondelete="RESTRICT", index=True)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)


class PlanSpecimen(Tracked, table=True):
    """A specimen in a plan with its role; the composite keys tie it to a donor of the plan.

    Taking a specimen out of a draft sets ``included`` to false (an audited update) rather than deleting the row.
    """

    __tablename__ = "plan_specimen"
    __table_args__ = (
        UniqueConstraint("plan_id", "specimen_id"),
        ForeignKeyConstraint(
            ["plan_id", "donor_id"], ["plan_donor.plan_id", "plan_donor.donor_id"], ondelete="RESTRICT"
        ),
        ForeignKeyConstraint(
            ["specimen_id", "donor_id"], ["specimen.id", "specimen.donor_id"], ondelete="RESTRICT"
        ),
        one_of("role", "role", PlanRole),
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(index=True)
    donor_id: int = Field(index=True)
    specimen_id: int = Field(index=True)
    role: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=300)
    included: bool = Field(default=True)
