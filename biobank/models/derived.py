"""Derived models (organoids, PDX, cell lines), their passages and their QC (DOMAIN.md §2 "Derived model").

Field names follow PDX-MI and the CancerModels.org dictionary (``pdx_model``, ``cell_model``, ``model_validation``).
Specimens a passage produces are ordinary :class:`~biobank.models.core.Specimen` rows whose ``passage_id`` names
the passage, so storage, custody, QC and exports work on them unchanged.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, UniqueConstraint
from sqlmodel import Field

from biobank.domain import vocab_derived as dv
from biobank.models.base import Tracked, between, not_blank, one_of, safe_code


class DerivedModel(Tracked, table=True):
    __tablename__ = "derived_model"
    __table_args__ = (
        # The source specimen belongs to the same donor as the model (the foundation's composite-key pattern).
        ForeignKeyConstraint(
            ["source_specimen_id", "donor_id"], ["specimen.id", "specimen.donor_id"], ondelete="RESTRICT"
        ),
        UniqueConstraint("id", "donor_id"),
        safe_code("code_safe", "code"),
        one_of("kind", "kind", dv.ModelKind),
        one_of("status", "status", dv.ModelStatus),
        CheckConstraint("established_on IS NULL OR established_on >= initiated_on", name="established_after_initiated"),
        CheckConstraint("failed_on IS NULL OR failed_on >= initiated_on", name="failed_after_initiated"),
        CheckConstraint("ended_on IS NULL OR ended_on >= initiated_on", name="ended_after_initiated"),
        CheckConstraint("failed_on IS NULL OR established_on IS NULL", name="failed_never_established"),
        CheckConstraint("status <> 'failed' OR failed_on IS NOT NULL", name="failed_has_date"),
        CheckConstraint(
            "status NOT IN ('established', 'cryobanked') OR established_on IS NOT NULL", name="established_has_date"
        ),
        CheckConstraint("status <> 'discontinued' OR ended_on IS NOT NULL", name="discontinued_has_date"),
        one_of("engraftment_type", "engraftment_type", dv.EngraftmentType, nullable=True),
        one_of("tumour_preparation", "tumour_preparation", dv.TumourPreparation, nullable=True),
        one_of("matrix", "matrix", dv.Matrix, nullable=True),
        one_of("growth_properties", "growth_properties", dv.GrowthProperties, nullable=True),
        CheckConstraint("kind <> 'pdx' OR host_strain_name IS NOT NULL", name="pdx_has_host_strain"),
        CheckConstraint(
            "kind = 'pdx' OR (host_strain_name IS NULL AND host_strain_nomenclature IS NULL"
            " AND engraftment_site IS NULL AND engraftment_type IS NULL AND tumour_preparation IS NULL"
            " AND NOT humanised)",
            name="pdx_fields_only_pdx",
        ),
        CheckConstraint(
            "kind <> 'pdx' OR (medium IS NULL AND matrix IS NULL AND growth_properties IS NULL)",
            name="culture_fields_not_pdx",
        ),
        CheckConstraint("humanisation_type IS NULL OR humanised", name="humanisation_type_if_humanised"),
        not_blank("host_strain_name_not_blank", "host_strain_name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=64)
    kind: str = Field(max_length=12)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
    source_specimen_id: int = Field(index=True)
    status: str = Field(default=dv.ModelStatus.initiated.value, max_length=16)
    initiated_on: date
    established_on: date | None = None
    failed_on: date | None = None
    ended_on: date | None = None
    # PDX (PDX-MI "PDX model"; CancerModels.org pdx_model)
    host_strain_name: str | None = Field(default=None, max_length=60)
    host_strain_nomenclature: str | None = Field(default=None, max_length=120)
    engraftment_site: str | None = Field(default=None, max_length=120)
    engraftment_type: str | None = Field(default=None, max_length=12)
    tumour_preparation: str | None = Field(default=None, max_length=16)
    humanised: bool = Field(default=False)
    humanisation_type: str | None = Field(default=None, max_length=120)
    # Organoid / cell line (CancerModels.org cell_model)
    medium: str | None = Field(default=None, max_length=200)
    matrix: str | None = Field(default=None, max_length=16)
    growth_properties: str | None = Field(default=None, max_length=24)
    notes: str | None = Field(default=None, max_length=1000)


class ModelPassage(Tracked, table=True):
    """P0 is the first engraftment or plating; every later passage has a parent passage of the same model."""

    __tablename__ = "model_passage"
    __table_args__ = (
        UniqueConstraint("model_id", "label"),
        UniqueConstraint("id", "model_id"),
        # The parent passage belongs to the same model.
        ForeignKeyConstraint(
            ["parent_passage_id", "model_id"], ["model_passage.id", "model_passage.model_id"], ondelete="RESTRICT"
        ),
        CheckConstraint("number >= 0", name="number_not_negative"),
        CheckConstraint(
            "(number = 0 AND parent_passage_id IS NULL) OR (number > 0 AND parent_passage_id IS NOT NULL)",
            name="parent_iff_not_p0",
        ),
        CheckConstraint("parent_passage_id IS NULL OR parent_passage_id <> id", name="not_own_parent"),
        safe_code("label_safe", "label"),
        CheckConstraint("latency_days IS NULL OR latency_days >= 0", name="latency_not_negative"),
        CheckConstraint(
            "doubling_time_hours IS NULL OR doubling_time_hours > 0", name="doubling_time_positive"
        ),
        CheckConstraint(
            "(distributed_on IS NULL AND distributed_to IS NULL)"
            " OR (distributed_on IS NOT NULL AND distributed_to IS NOT NULL)",
            name="distribution_complete",
        ),
        CheckConstraint("distributed_on IS NULL OR distributed_on >= passaged_on", name="distributed_after_passaged"),
    )

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="derived_model.id", ondelete="RESTRICT", index=True)
    number: int
    label: str = Field(max_length=16)
    parent_passage_id: int | None = Field(default=None, index=True)
    passaged_on: date
    mouse_or_vessel_id: str | None = Field(default=None, max_length=64)
    latency_days: int | None = None
    doubling_time_hours: float | None = None
    distributed_on: date | None = None
    distributed_to: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=1000)


class ModelQC(Tracked, table=True):
    """QC of one tested passage; ``passed`` is judged by the service against the thresholds in the settings."""

    __tablename__ = "model_qc"
    __table_args__ = (
        one_of("identity_method", "identity_method", dv.IdentityMethod, nullable=True),
        between("identity_match_range", "identity_match_pct", 0, 100),
        CheckConstraint(
            "identity_match_pct IS NULL OR identity_method IS NOT NULL", name="identity_match_has_method"
        ),
        one_of("mycoplasma", "mycoplasma", dv.MycoplasmaResult),
        between("mouse_content_range", "mouse_content_pct", 0, 100),
    )

    id: int | None = Field(default=None, primary_key=True)
    passage_id: int = Field(foreign_key="model_passage.id", ondelete="RESTRICT", index=True)
    tested_on: date
    identity_method: str | None = Field(default=None, max_length=4)
    identity_match_pct: float | None = None
    mycoplasma: str = Field(default=dv.MycoplasmaResult.not_tested.value, max_length=12)
    mouse_content_pct: float | None = None
    histology_concordant: bool | None = None
    not_mouse_or_ebv_origin: bool | None = None
    passed: bool
    notes: str | None = Field(default=None, max_length=1000)
