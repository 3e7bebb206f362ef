"""Analysis plans (DOMAIN.md §2 "Analysis plan", §6): which specimens of which donors go to sequencing, and why.

The database holds what it can: the vocabularies as named CHECKs, an approved plan always names its approver, a
specimen can only join a plan through its own donor (composite foreign keys), and a plan's contents cannot change
once it left draft (triggers from :mod:`biobank.db.ddl`, created by migration 0004).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Text,
    UniqueConstraint,
)
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
    #: Replaced by a newer version (``plan amend``), approved in its place: its reservations are released.
    superseded = "superseded"
    #: Withdrawn before or after approval: its reservations are released.
    cancelled = "cancelled"


#: Statuses in which a plan holds the material it reserved at approval (DOMAIN.md §6 "reservation").
RESERVING_STATUSES = frozenset({PlanStatus.approved, PlanStatus.submitted})


class SampleOutcome(StrEnum):
    """What sequencing made of a plan's sample (a result row); a submitted sample without one is ``submitted``."""

    sequenced = "sequenced"  # data recorded, its QC not judged yet
    passed = "passed"
    failed_qc = "failed_qc"


class ResultTool(StrEnum):
    conipher = "conipher"
    metient = "metient"
    machina = "machina"


class ResultKind(StrEnum):
    clone_tree = "clone_tree"
    migration_graph = "migration_graph"


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
            "status IN ('draft', 'cancelled') OR (approved_by_id IS NOT NULL AND approved_at IS NOT NULL)",
            name="approved_has_approver",
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        not_blank("closed_reason_not_blank", "closed_reason"),
        not_blank("flow_cell_not_blank", "flow_cell"),
        Index("uq_analysis_plan_supersedes_id", "supersedes_id", unique=True),
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
    #: 1 for a new plan; ``plan amend`` copies a plan into version + 1 whose approval supersedes this one.
    version: int = Field(default=1)
    supersedes_id: int | None = Field(default=None, foreign_key="analysis_plan.id", ondelete="RESTRICT")
    #: When and why the plan was superseded or cancelled (its reservations released then); the service sets both.
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_reason: str | None = Field(default=None, max_length=500)
    #: The flow cell kind the budget is computed for (a key of the ``plan_flow_cells`` setting); None: the default.
    flow_cell: str | None = Field(default=None, max_length=40)


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
        one_of("assay", "assay", Assay, nullable=True),
        CheckConstraint("target_depth IS NULL OR target_depth > 0", name="target_depth_positive"),
        not_blank("library_not_blank", "library"),
        CheckConstraint("quantity_reserved IS NULL OR quantity_reserved >= 0", name="reserved_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(index=True)
    donor_id: int = Field(index=True)
    specimen_id: int = Field(index=True)
    role: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=300)
    included: bool = Field(default=True)
    #: This sample's assay, depth (x; million read pairs for RNA-seq) and library kit; None: the plan's own.
    assay: str | None = Field(default=None, max_length=12)
    target_depth: float | None = None
    library: str | None = Field(default=None, max_length=80)
    #: What approval reserved of the specimen, in its unit (None before approval or when nothing is measurable).
    quantity_reserved: float | None = None


class SequencingRun(Tracked, table=True):
    """A sequencing run at a core: its own run id, instrument and flow cell (DOMAIN.md §6 "loop back")."""

    __tablename__ = "sequencing_run"
    __table_args__ = (
        not_blank("run_id_not_blank", "run_id"),
        not_blank("instrument_not_blank", "instrument"),
        CheckConstraint("completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at",
                        name="completed_after_started"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(unique=True, max_length=120)
    instrument: str = Field(max_length=80)
    flow_cell: str | None = Field(default=None, max_length=40)
    flow_cell_id: str | None = Field(default=None, max_length=60)
    centre: str | None = Field(default=None, max_length=120)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SequencingResult(Tracked, table=True):
    """What one run gave for one plan sample: reads, coverage, contamination, purity and ploidy, and its QC outcome.

    A sample's state is its latest result's ``outcome`` (``submitted`` while it has none); ``sequenced`` moves once
    to ``passed`` or ``failed_qc`` (the service refuses any other move).
    """

    __tablename__ = "sequencing_result"
    __table_args__ = (
        UniqueConstraint("plan_specimen_id", "run_id"),
        one_of("outcome", "outcome", SampleOutcome),
        CheckConstraint("read_count IS NULL OR read_count >= 0", name="read_count_not_negative"),
        CheckConstraint("mean_coverage IS NULL OR mean_coverage >= 0", name="coverage_not_negative"),
        CheckConstraint("contamination_pct IS NULL OR (contamination_pct >= 0 AND contamination_pct <= 100)",
                        name="contamination_pct_range"),
        CheckConstraint("purity IS NULL OR (purity >= 0 AND purity <= 1)", name="purity_range"),
        CheckConstraint("ploidy IS NULL OR (ploidy > 0 AND ploidy <= 10)", name="ploidy_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_specimen_id: int = Field(foreign_key="plan_specimen.id", ondelete="RESTRICT", index=True)
    run_id: int = Field(foreign_key="sequencing_run.id", ondelete="RESTRICT", index=True)
    outcome: str = Field(default=SampleOutcome.sequenced.value, max_length=12)
    read_count: int | None = Field(default=None, sa_type=BigInteger)
    mean_coverage: float | None = None
    contamination_pct: float | None = None
    purity: float | None = None
    ploidy: float | None = None
    qc_note: str | None = Field(default=None, max_length=500)


class SequencingFile(Tracked, table=True):
    """A data file of a result (FASTQ, BAM, CRAM, VCF...): where it lives and its checksum."""

    __tablename__ = "sequencing_file"
    __table_args__ = (
        UniqueConstraint("result_id", "uri"),
        not_blank("uri_not_blank", "uri"),
        CheckConstraint("checksum_kind IN ('md5', 'sha256')", name="checksum_kind"),
        not_blank("checksum_not_blank", "checksum"),
        CheckConstraint("size_bytes IS NULL OR size_bytes >= 0", name="size_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    result_id: int = Field(foreign_key="sequencing_result.id", ondelete="RESTRICT", index=True)
    uri: str = Field(max_length=1000)
    file_kind: str | None = Field(default=None, max_length=20)
    checksum_kind: str = Field(max_length=8)
    checksum: str = Field(max_length=128)
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)


class AnalysisResult(Tracked, table=True):
    """A phylogeny or migration tool's output imported for a donor (a CONIPHER clone tree, a Metient or MACHINA
    migration graph): the file as given, with its SHA-256, and what was read from it (``parsed``: edges between
    sampled sites or clones) for drawing on the donor's body map."""

    __tablename__ = "analysis_result"
    __table_args__ = (
        safe_code("code_safe", "code"),
        one_of("tool", "tool", ResultTool),
        one_of("kind", "kind", ResultKind),
        not_blank("file_name_not_blank", "file_name"),
        CheckConstraint("length(sha256) = 64", name="sha256_length"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    donor_id: int = Field(foreign_key="donor.id", ondelete="RESTRICT", index=True)
    plan_id: int | None = Field(default=None, foreign_key="analysis_plan.id", ondelete="RESTRICT", index=True)
    tool: str = Field(max_length=12)
    kind: str = Field(max_length=20)
    file_name: str = Field(max_length=200)
    sha256: str = Field(max_length=64)
    content: str = Field(sa_column=Column(Text, nullable=False))
    parsed: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=500)
