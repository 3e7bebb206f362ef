"""Table models of the foundation: donors and consent, autopsies, lesions, sampling sites, specimens, custody,
users and the audit log (DOMAIN.md §2)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, CheckConstraint, Column, ForeignKeyConstraint, Index, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from biobank.db.engine import UTCDateTime
from biobank.domain import vocab as v
from biobank.models.base import Tracked, between, not_blank, one_of, safe_code, utcnow


class User(SQLModel, table=True):
    __tablename__ = "user_account"
    __table_args__ = (
        one_of("role", "role", v.Role),
        not_blank("username_not_blank", "username"),
        CheckConstraint("username NOT LIKE '% %'", name="username_no_spaces"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    full_name: str | None = Field(default=None, max_length=200)
    role: str = Field(max_length=16)
    password_hash: str | None = Field(default=None, max_length=255)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: a token-only service account (a pipeline, an instrument): no password, signs in with a service token only
    is_service: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    #: failed sign-ins since the last success (the throttle's and the lockout's count)
    failed_signins: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    #: locked after too many failed sign-ins, until an administrator unlocks it or this time passes
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AnatomicalSite(SQLModel, table=True):
    """The site vocabulary, loaded from ``biobank/data/anatomical_sites.csv`` by the migrations."""

    __tablename__ = "anatomical_site"

    code: str = Field(primary_key=True, max_length=40)
    label: str = Field(max_length=120)
    uberon_id: str | None = Field(default=None, max_length=20)
    icdo3_topography: str | None = Field(default=None, max_length=8)
    laterality_applies: bool = Field(default=False)
    parent_code: str | None = Field(default=None, foreign_key="anatomical_site.code", max_length=40)
    category: str = Field(default="other", max_length=32)


class Donor(Tracked, table=True):
    __tablename__ = "donor"
    __table_args__ = (
        safe_code("code_safe", "code"),
        one_of("sex", "sex", v.Sex),
        one_of("status", "status", v.DonorStatus),
        between("age_at_death_range", "age_at_death", 0, 130),
        between("hardy_scale_range", "hardy_scale", 0, 4),
        CheckConstraint(
            "diagnosis_days_before_death IS NULL OR diagnosis_days_before_death >= 0",
            name="diagnosis_before_death",
        ),
        one_of("er_status", "er_status", v.ReceptorStatus, nullable=True),
        one_of("pr_status", "pr_status", v.ReceptorStatus, nullable=True),
        one_of("her2_status", "her2_status", v.ReceptorStatus, nullable=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    sex: str = Field(default=v.Sex.unknown.value, max_length=20)
    age_at_death: int | None = None
    primary_diagnosis: str | None = Field(default=None, max_length=200)
    primary_site_code: str | None = Field(default=None, foreign_key="anatomical_site.code", max_length=40)
    icdo3_topography: str | None = Field(default=None, max_length=8)
    icdo3_morphology: str | None = Field(default=None, max_length=10)
    diagnosis_days_before_death: int | None = None
    er_status: str | None = Field(default=None, max_length=12)
    pr_status: str | None = Field(default=None, max_length=12)
    her2_status: str | None = Field(default=None, max_length=12)
    cause_of_death: str | None = Field(default=None, max_length=200)
    hardy_scale: int | None = None
    status: str = Field(default=v.DonorStatus.enrolled.value, max_length=16)


class Consent(Tracked, table=True):
    __tablename__ = "consent"
    __table_args__ = (
        one_of("given_by", "given_by", v.ConsentGiver),
        one_of("change", "change", v.ConsentChange),
    )

    id: int | None = Field(default=None, primary_key=True)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
    given_by: str = Field(max_length=24)
    consented_on: date
    research_use: bool = Field(default=True)
    genomic_sequencing: bool = Field(default=False)
    model_derivation: bool = Field(default=False)
    external_sharing: bool = Field(default=False)
    recontact: bool = Field(default=False)
    document_ref: str | None = Field(default=None, max_length=120)
    #: The version of the consent form signed (migration 0011), who took the consent, and why this version exists.
    form_version: str | None = Field(default=None, max_length=40)
    taken_by: str | None = Field(default=None, max_length=120)
    change: str = Field(default=v.ConsentChange.initial.value, max_length=20,
                        sa_column_kwargs={"server_default": v.ConsentChange.initial.value})
    reason: str | None = Field(default=None, max_length=500)


class ConsentWithdrawal(Tracked, table=True):
    """A withdrawal blocks new distribution, plans and exports; nothing is deleted."""

    __tablename__ = "consent_withdrawal"
    __table_args__ = (
        one_of("requested_by", "requested_by", v.ConsentGiver),
        one_of("material", "material", v.WithdrawalMaterial),
        not_blank("reason_not_blank", "reason"),
    )

    id: int | None = Field(default=None, primary_key=True)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", unique=True)
    requested_by: str = Field(max_length=24)
    withdrawn_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(max_length=500)
    entered_by_id: int = Field(foreign_key="user_account.id", ondelete="RESTRICT")
    #: What happens to the material held (migration 0011).
    material: str = Field(default=v.WithdrawalMaterial.keep_blocked.value, max_length=24,
                          sa_column_kwargs={"server_default": v.WithdrawalMaterial.keep_blocked.value})


class TreatmentLine(Tracked, table=True):
    __tablename__ = "treatment_line"
    __table_args__ = (
        UniqueConstraint("donor_id", "line_number"),
        CheckConstraint("line_number >= 1", name="line_number_positive"),
        one_of("category", "category", v.TreatmentCategory),
        one_of("intent", "intent", v.TreatmentIntent),
        one_of("best_response", "best_response", v.Response),
        CheckConstraint("start_days_before_death >= 0", name="start_before_death"),
        CheckConstraint(
            "end_days_before_death IS NULL OR (end_days_before_death >= 0"
            " AND end_days_before_death <= start_days_before_death)",
            name="end_after_start",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
    line_number: int
    agents: str = Field(max_length=300)
    category: str = Field(default=v.TreatmentCategory.other.value, max_length=24)
    intent: str = Field(default=v.TreatmentIntent.unknown.value, max_length=16)
    start_days_before_death: int
    end_days_before_death: int | None = None
    best_response: str = Field(default=v.Response.unknown.value, max_length=16)


class ClinicalEvent(Tracked, table=True):
    """Skeletal-related events and other history worth a line on the timeline."""

    __tablename__ = "clinical_event"
    __table_args__ = (
        one_of("kind", "kind", v.ClinicalEventKind),
        CheckConstraint("days_before_death >= 0", name="before_death"),
    )

    id: int | None = Field(default=None, primary_key=True)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
    kind: str = Field(max_length=32)
    days_before_death: int
    site_code: str | None = Field(default=None, foreign_key="anatomical_site.code", max_length=40)
    note: str | None = Field(default=None, max_length=300)


class Autopsy(Tracked, table=True):
    __tablename__ = "autopsy"
    __table_args__ = (
        UniqueConstraint("id", "donor_id"),
        safe_code("case_code_safe", "case_code"),
        one_of("status", "status", v.AutopsyStatus),
        CheckConstraint("status = 'scheduled' OR death_at IS NOT NULL", name="death_time_when_started"),
        CheckConstraint(
            "refrigerated_at IS NULL OR refrigerated_at >= death_at", name="refrigerated_after_death"
        ),
        CheckConstraint("start_at IS NULL OR start_at >= death_at", name="start_after_death"),
        CheckConstraint(
            "end_at IS NULL OR (start_at IS NOT NULL AND end_at >= start_at)", name="end_after_start"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", unique=True)
    case_code: str = Field(unique=True, max_length=32)
    death_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    refrigerated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    start_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    end_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: The start or end was not written down: estimated from the first or last sample (the collection log import).
    start_estimated: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    end_estimated: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    institution: str | None = Field(default=None, max_length=200)
    prosector: str | None = Field(default=None, max_length=120)
    team: str | None = Field(default=None, max_length=300)
    status: str = Field(default=v.AutopsyStatus.scheduled.value, max_length=16)
    #: The death call (migration 0011): where the donor died, who notified the programme and when, and the call
    #: checklist's steps (labels printed, team notified).
    death_place: str | None = Field(default=None, max_length=200)
    death_reported_by: str | None = Field(default=None, max_length=120)
    death_reported_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    labels_printed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    team_notified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Lesion(Tracked, table=True):
    __tablename__ = "lesion"
    __table_args__ = (
        UniqueConstraint("donor_id", "code"),
        UniqueConstraint("id", "donor_id"),
        CheckConstraint("code LIKE 'L%'", name="code_format"),
        safe_code("code_safe", "code"),
        one_of("kind", "kind", v.LesionKind),
        one_of("laterality", "laterality", v.Laterality),
        one_of("bone_phenotype", "bone_phenotype", v.BonePhenotype, nullable=True),
        one_of("imaging_response", "imaging_response", v.ImagingResponse),
        CheckConstraint("size_mm IS NULL OR size_mm > 0", name="size_positive"),
        one_of("er_status", "er_status", v.ReceptorStatus, nullable=True),
        one_of("pr_status", "pr_status", v.ReceptorStatus, nullable=True),
        one_of("her2_status", "her2_status", v.ReceptorStatus, nullable=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
    code: str = Field(max_length=8)
    site_code: str = Field(foreign_key="anatomical_site.code", max_length=40)
    laterality: str = Field(default=v.Laterality.not_applicable.value, max_length=16)
    kind: str = Field(max_length=20)
    bone_phenotype: str | None = Field(default=None, max_length=16)
    size_mm: float | None = None
    imaging_response: str = Field(default=v.ImagingResponse.unknown.value, max_length=16)
    er_status: str | None = Field(default=None, max_length=12)
    pr_status: str | None = Field(default=None, max_length=12)
    her2_status: str | None = Field(default=None, max_length=12)
    description: str | None = Field(default=None, max_length=500)


class SamplingSite(Tracked, table=True):
    """One piece of tissue taken from one place: a region of a lesion, a normal tissue, blood or marrow."""

    __tablename__ = "sampling_site"
    __table_args__ = (
        UniqueConstraint("donor_id", "code"),
        UniqueConstraint("id", "donor_id"),
        ForeignKeyConstraint(
            ["lesion_id", "donor_id"], ["lesion.id", "lesion.donor_id"], ondelete="RESTRICT"
        ),
        ForeignKeyConstraint(
            ["autopsy_id", "donor_id"], ["autopsy.id", "autopsy.donor_id"], ondelete="RESTRICT"
        ),
        safe_code("code_safe", "code"),
        one_of("kind", "kind", v.SiteKind),
        one_of("tissue_status", "tissue_status", v.TissueStatus),
        one_of("laterality", "laterality", v.Laterality),
        CheckConstraint(
            "(kind = 'tumour_region' AND lesion_id IS NOT NULL AND tissue_status = 'tumour')"
            " OR (kind <> 'tumour_region' AND lesion_id IS NULL AND tissue_status <> 'tumour')",
            name="lesion_iff_tumour_region",
        ),
        CheckConstraint(
            "distance_to_tumour_mm IS NULL OR distance_to_tumour_mm >= 0", name="distance_not_negative"
        ),
        CheckConstraint(
            "kind = 'premortem_blood' OR autopsy_id IS NOT NULL", name="autopsy_unless_premortem"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
    autopsy_id: int | None = Field(default=None, index=True)
    lesion_id: int | None = Field(default=None, index=True)
    code: str = Field(max_length=16)
    region_label: str | None = Field(default=None, max_length=8)
    kind: str = Field(max_length=20)
    tissue_status: str = Field(max_length=16)
    distance_to_tumour_mm: float | None = None
    site_code: str = Field(foreign_key="anatomical_site.code", max_length=40)
    laterality: str = Field(default=v.Laterality.not_applicable.value, max_length=16)
    excised_at: datetime = Field(sa_type=UTCDateTime)
    #: The excision time was not written down: the earliest stabilisation of the site's specimens stands for it.
    excised_estimated: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    #: Finer detail than the anatomical site holds, as the prosector wrote it (rib 6, frontal lobe, segment 7).
    site_description: str | None = Field(default=None, max_length=200)
    prosector: str | None = Field(default=None, max_length=120)
    gross_description: str | None = Field(default=None, max_length=500)


class Specimen(Tracked, table=True):
    __tablename__ = "specimen"
    __table_args__ = (
        ForeignKeyConstraint(
            ["sampling_site_id", "donor_id"],
            ["sampling_site.id", "sampling_site.donor_id"],
            ondelete="RESTRICT",
        ),
        ForeignKeyConstraint(
            ["parent_id", "donor_id"], ["specimen.id", "specimen.donor_id"], ondelete="RESTRICT"
        ),
        UniqueConstraint("id", "donor_id"),
        safe_code("code_safe", "code"),
        not_blank("barcode_not_blank", "barcode"),
        one_of("lineage", "lineage", v.Lineage),
        CheckConstraint(
            "(lineage = 'primary' AND parent_id IS NULL) OR (lineage <> 'primary' AND parent_id IS NOT NULL)",
            name="parent_iff_not_primary",
        ),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        one_of("material_type", "material_type", v.MaterialType),
        one_of("storage_format", "storage_format", v.StorageFormat),
        one_of("fixative", "fixative", v.Fixative, nullable=True),
        one_of("decalcification_agent", "decalcification_agent", v.DecalcificationAgent, nullable=True),
        CheckConstraint(
            "decalcification_hours IS NULL OR (decalcification_hours >= 0 AND decalcification_agent IS NOT NULL)",
            name="decalcification_hours_with_agent",
        ),
        CheckConstraint("storage_format <> 'ffpe' OR fixative IS NOT NULL", name="ffpe_has_fixative"),
        one_of("unit", "unit", v.QuantityUnit),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint(
            "quantity_remaining >= 0 AND quantity_remaining <= quantity", name="remaining_within_quantity"
        ),
        CheckConstraint(
            "parent_quantity_used IS NULL OR parent_quantity_used >= 0", name="used_not_negative"
        ),
        CheckConstraint(
            "concentration_ng_ul IS NULL OR concentration_ng_ul >= 0", name="concentration_not_negative"
        ),
        CheckConstraint("freeze_thaw_count >= 0", name="freeze_thaw_not_negative"),
        one_of("status", "status", v.SpecimenStatus),
        CheckConstraint(
            "stabilised_at IS NULL OR stabilised_at >= collected_at", name="stabilised_after_collected"
        ),
        CheckConstraint(
            "fixation_end_at IS NULL OR (stabilised_at IS NOT NULL AND fixation_end_at >= stabilised_at)",
            name="fixation_end_after_start",
        ),
        one_of("er_status", "er_status", v.ReceptorStatus, nullable=True),
        one_of("pr_status", "pr_status", v.ReceptorStatus, nullable=True),
        one_of("her2_status", "her2_status", v.ReceptorStatus, nullable=True),
        between("tumour_cellularity_range", "tumour_cellularity_pct", 0, 100),
        between("necrosis_range", "necrosis_pct", 0, 100),
        CheckConstraint("yield_ng IS NULL OR yield_ng >= 0", name="yield_not_negative"),
        between("a260_280_range", "a260_280", 0, 5),
        between("rin_range", "rin", 0, 10),
        between("din_range", "din", 0, 10),
        between("dv200_range", "dv200_pct", 0, 100),
        between("a260_230_range", "a260_230", 0, 5),
        CheckConstraint("elution_volume_ul IS NULL OR elution_volume_ul > 0", name="elution_volume_positive"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_specimen_site_format", "sampling_site_id", "storage_format"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=64)
    barcode: str | None = Field(default=None, unique=True, max_length=64)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
    sampling_site_id: int = Field(index=True)
    parent_id: int | None = Field(default=None, index=True)
    lineage: str = Field(max_length=12)
    material_type: str = Field(max_length=16)
    storage_format: str = Field(max_length=16)
    collected_at: datetime = Field(sa_type=UTCDateTime)
    #: Who took the specimen at the table, as the lab writes it (initials or a name); not the user who entered it.
    collected_by: str | None = Field(default=None, max_length=120)
    stabilised_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    fixation_end_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    fixative: str | None = Field(default=None, max_length=12)
    decalcification_agent: str | None = Field(default=None, max_length=20)
    decalcification_hours: float | None = None
    quantity: float
    quantity_remaining: float
    unit: str = Field(max_length=10)
    parent_quantity_used: float | None = None
    concentration_ng_ul: float | None = None
    freeze_thaw_count: int = Field(default=0)
    status: str = Field(default=v.SpecimenStatus.available.value, max_length=12)
    er_status: str | None = Field(default=None, max_length=12)
    pr_status: str | None = Field(default=None, max_length=12)
    her2_status: str | None = Field(default=None, max_length=12)
    tumour_cellularity_pct: float | None = None
    necrosis_pct: float | None = None
    pathology_reviewer: str | None = Field(default=None, max_length=120)
    yield_ng: float | None = None
    a260_280: float | None = None
    rin: float | None = None
    din: float | None = None
    dv200_pct: float | None = None
    #: Extraction and pathology details (migration 0011): the method and kit of a DNA/RNA extraction, the elution
    #: volume, the A260/230 ratio, and the slide the pathology review was read from.
    extraction_method: str | None = Field(default=None, max_length=40)
    extraction_kit: str | None = Field(default=None, max_length=120)
    elution_volume_ul: float | None = None
    a260_230: float | None = None
    slide_ref: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=1000)
    version: int = Field(default=1)
    #: Set when the specimen was produced by a passage of a derived model (migration 0003).
    #: ``use_alter``: specimen -> model_passage -> derived_model -> specimen is a cycle of foreign keys.
    passage_id: int | None = Field(
        default=None,
        sa_column=Column(
            sa.Integer,
            sa.ForeignKey("model_passage.id", ondelete="RESTRICT", use_alter=True),
            nullable=True,
            index=True,
        ),
    )


class CustodyEvent(SQLModel, table=True):
    """One link of the chain of custody; a specimen's history is read from these rows."""

    __tablename__ = "custody_event"
    __table_args__ = (
        one_of("kind", "kind", v.CustodyKind),
        Index("ix_custody_event_specimen_time", "specimen_id", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    specimen_id: int = Field(foreign_key="specimen.id", ondelete="RESTRICT")
    kind: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT", index=True)
    from_location: str | None = Field(default=None, max_length=200)
    to_location: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=500)


class AuditLog(SQLModel, table=True):
    """Append-only: triggers refuse UPDATE and DELETE on both databases."""

    __tablename__ = "audit_log"
    __table_args__ = (
        one_of("action", "action", v.AuditAction),
        Index("ix_audit_log_table_row", "table_name", "row_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT", index=True)
    table_name: str = Field(max_length=64)
    row_id: str = Field(max_length=64)
    action: str = Field(max_length=8)
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str | None = Field(default=None, max_length=500)
