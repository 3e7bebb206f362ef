"""Settings, read once from the environment (prefix ``BIOBANK_``) or a ``.env`` file."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BIOBANK_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///biobank.db",
        description="SQLAlchemy URL; a SQLite file in the working directory by default, PostgreSQL in production.",
    )
    owner_database_url: str | None = Field(
        default=None,
        description="PostgreSQL: the URL of the role that owns the schema, for 'biobank db upgrade' and "
        "'biobank db roles' (database_url is then the application's login, with only the DML it needs).",
    )
    timezone: str = Field(default="Europe/London", description="The lab's time zone, for display and entry.")
    pmi_target_hours: float = Field(default=6.0, gt=0, description="Post-mortem interval the team aims for.")
    pmi_limit_hours: float = Field(
        default=8.0, gt=0, description="Post-mortem interval beyond which material is flagged."
    )
    user: str | None = Field(
        default=None,
        description="Which of the person's signed-in accounts the CLI acts as (read by the --user option itself); "
        "it chooses among stored tokens and proves nothing on its own.",
    )
    demo_mode: bool = Field(default=False, description="Demo mode: the sign-in page lists the demo accounts.")
    session_idle_minutes: int = Field(
        default=30, gt=0, description="Dashboard sessions expire after this idle time."
    )
    session_absolute_hours: float = Field(
        default=12.0, gt=0, le=24 * 30,
        description="A dashboard sign-in ends this long after it began, however active the user is.",
    )
    signin_lockout_after: int = Field(
        default=5, ge=1, le=100,
        description="Failed sign-ins in a row after which an account is locked (until the lockout passes or an "
        "administrator unlocks it).",
    )
    signin_lockout_minutes: float = Field(
        default=15.0, gt=0, le=24 * 60, description="How long a locked account stays locked."
    )
    signin_delay_max_seconds: float = Field(
        default=8.0, ge=0, le=60,
        description="Longest wait before a sign-in is checked after failed ones (0.5 s after the first failure, "
        "doubling with each, per account and per client); 0 turns the delay off.",
    )
    personal_token_days: int = Field(
        default=30, ge=1, le=366,
        description="A personal token (biobank login) expires this many days after it is issued.",
    )
    service_token_days: int = Field(
        default=365, ge=1, le=3660,
        description="The longest life of a service token (biobank tokens create); an administrator may choose less.",
    )
    api_rate_limit_per_minute: int = Field(
        default=600, ge=0, le=1_000_000,
        description="REST API requests one token (or, without a token, one client address) may make per minute in "
        "each API process before it is answered 429 with Retry-After; 0 turns the limit off.",
    )
    api_idempotency_hours: float = Field(
        default=24.0, gt=0, le=24 * 366,
        description="How long the REST API remembers a write's Idempotency-Key (a retry within it replays the first "
        "response).",
    )
    backup_dir: Path | None = Field(
        default=None,
        description="Where biobank db downgrade and biobank restore put the backup they take first (default: beside "
        "a SQLite database file, else the working directory).",
    )
    attachments_dir: Path | None = Field(
        default=None,
        description="The attachment store (photos and documents, files named by their SHA-256): default beside a "
        "SQLite database file (<file stem>-attachments/), else ./attachments.",
    )
    attachment_max_bytes: int = Field(
        default=25_000_000, ge=1, le=2_000_000_000, description="The largest file that may be attached."
    )
    attachment_keep_original: bool = Field(
        default=False,
        description="Keep an image as uploaded (with its EXIF: GPS, device, time) beside the stripped copy; the "
        "original is never shown or exported.",
    )
    attachment_thumbnail_px: int = Field(
        default=256, ge=32, le=2048, description="The longest side of an image attachment's thumbnail."
    )
    checkout_overdue_hours: float = Field(
        default=24.0, gt=0, description="A check-out not returned in time is overdue."
    )
    sqlite_busy_timeout_ms: int = Field(default=15000, ge=0)
    model_qc_required: str = Field(
        default="identity,mycoplasma",
        description="QC a derived model needs before it can be marked established: a comma-separated subset of "
        "identity, mycoplasma, mouse_content, histology, origin (empty: none).",
    )
    model_identity_min_pct: float = Field(
        default=80.0, ge=0, le=100, description="STR/SNP match to the donor's germline that passes identity QC."
    )
    model_mouse_content_max_pct: float = Field(
        default=50.0, ge=0, le=100, description="Mouse cell or read content above which a passage fails QC."
    )
    clock_skew_minutes: float = Field(
        default=5.0, ge=0, le=120,
        description="How far in the future an entered time (excision, stabilisation, custody, passage) may lie, "
        "for clocks that disagree a little; anything later is refused.",
    )
    earliest_date: date = Field(
        default=date(1980, 1, 1),
        description="The earliest day an entered time or day may fall on (consent, death, custody, passages...): "
        "earlier ones are typing mistakes (1900, a clock at the epoch). Set it earlier to enter archival material.",
    )
    paper_size: Literal["A4", "Letter"] = Field(
        default="A4", description="Paper for every printable: label sheets, pick lists, box maps, manifests."
    )
    plan_rule_severity: dict[str, str] = Field(
        default_factory=dict,
        description='Planning-rule severities that differ from the defaults, e.g. {"min_regions_per_lesion": "error"}.',
    )
    plan_input_ng: dict[str, float] = Field(
        default_factory=dict,
        description='Least ng of nucleic acid per assay at its reference depth, where it differs from the defaults '
        '{"wgs": 1000, "wes": 200, "panel": 50, "rna_seq": 300}; below it a plan cannot be approved.',
    )
    plan_input_reference_depth: dict[str, float] = Field(
        default_factory=dict,
        description='Depth (x) those amounts cover, where it differs from {"wgs": 60, "wes": 200, "panel": 1000}; a '
        "deeper plan needs proportionally more input.",
    )
    plan_min_din: dict[str, float] = Field(
        default_factory=dict,
        description='Least DIN per DNA assay, where it differs from {"wgs": 7, "wes": 4, "panel": 3}.',
    )
    plan_min_rin: float = Field(default=7.0, ge=0, le=10, description="RNA-seq of frozen material: least RIN.")
    plan_min_dv200_pct: float = Field(
        default=30.0, ge=0, le=100, description="RNA-seq of FFPE material: DV200 must be above this."
    )
    plan_default_depth: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Default depth per assay and role where it differs from the built-in ones (x; million read pairs '
        'for RNA-seq), e.g. {"wgs": {"tumour": 90, "germline_normal": 30}}.',
    )
    plan_gb_per_depth: dict[str, float] = Field(
        default_factory=dict,
        description="Gb of raw sequence one sample needs per 1x of depth (per million read pairs for RNA-seq), where "
        'it differs from the built-in ones, e.g. {"wgs": 3.3}.',
    )
    plan_flow_cells: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Flow cell kinds for the budget, added to or replacing the built-in ones: {"NAME": {"gb": output '
        'Gb, "lanes": lanes, "cost": cost of one flow cell}}.',
    )
    plan_flow_cell: str = Field(
        default="NovaSeq X 10B", max_length=40, description="The flow cell kind a plan's budget uses unless it names one."
    )
    plan_library_cost: dict[str, float] = Field(
        default_factory=dict,
        description="Cost of one library per assay where it differs from the built-in ones.",
    )
    budget_currency: str = Field(default="USD", max_length=8, description="Currency of every cost in the budget.")
    sequencing_max_contamination_pct: float = Field(
        default=3.0, ge=0, le=100, description="A sequenced sample above this contamination fails QC."
    )
    sequencing_min_coverage_fraction: float = Field(
        default=0.8, gt=0, le=1,
        description="A sequenced DNA sample whose mean coverage is below this fraction of its target depth fails QC.",
    )
    synonyms_file: Path | None = Field(
        default=None,
        description="A lab's own vocabulary (TOML): synonyms for storage formats, materials and anatomical sites, and "
        "qualifier phrases mapped to a format plus a note; extends the built-in synonyms (docs/synonyms.md).",
    )
    site_match_min_score: float = Field(
        default=85.0, ge=0, le=100,
        description="A site label matched below this score (0-100) is an error listing the three best candidates.",
    )
    biobank_id: str = Field(
        default="rapid-autopsy-biobank",
        description="The biobank's identifier in the FHIR (MIABIS) export: its BBMRI-ERIC directory id where it has one.",
    )
    biobank_name: str = Field(default="Rapid autopsy biobank", description="The biobank's name in the FHIR export.")
    collection_id: str = Field(
        default="rapid-autopsy-biobank:collection:autopsy",
        description="The MIABIS collection the FHIR export's Group describes (a BBMRI-ERIC collection id where known).",
    )
    collection_name: str = Field(default="Rapid autopsy collection", description="The collection's name.")
    biobank_country: str = Field(
        default="ZZ", pattern=r"^[A-Z]{2}$",
        description="ISO 3166 country of the biobank (FHIR Organization address); ZZ: not stated.",
    )
    biobank_contact_email: str | None = Field(
        default=None, description="Whom receivers of the FHIR export ask about the collection (an office, not a person)."
    )
    cancermodels_dictionary_version: str = Field(
        default="2.1",
        description="CancerModels.org metadata dictionary the model export follows (biobank models export): a "
        "version whose dictionary ships in biobank/data (cancermodels-dictionary-<version>.json).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone
        return value

    @field_validator("pmi_limit_hours")
    @classmethod
    def _limit_after_target(cls, value: float, info) -> float:
        target = info.data.get("pmi_target_hours")
        if target is not None and value < target:
            raise ValueError("pmi_limit_hours must not be below pmi_target_hours")
        return value

    @field_validator("cancermodels_dictionary_version")
    @classmethod
    def _shipped_dictionary(cls, value: str) -> str:
        shipped = sorted(
            p.stem.removeprefix("cancermodels-dictionary-")
            for p in (Path(__file__).parent / "data").glob("cancermodels-dictionary-*.json")
        )
        if value not in shipped:
            raise ValueError(f"no CancerModels.org dictionary {value!r} ships with biobank; use one of {shipped}")
        return value

    @field_validator("model_qc_required")
    @classmethod
    def _known_model_qc(cls, value: str) -> str:
        known = {"identity", "mycoplasma", "mouse_content", "histology", "origin"}
        unknown = {p.strip() for p in value.split(",") if p.strip()} - known
        if unknown:
            raise ValueError(f"unknown model QC requirement(s) {sorted(unknown)}; use {sorted(known)}")
        return value

    @property
    def model_qc_requirements(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.model_qc_required.split(",") if p.strip())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(minutes=self.clock_skew_minutes)

    @property
    def pmi_target(self) -> timedelta:
        return timedelta(hours=self.pmi_target_hours)

    @property
    def pmi_limit(self) -> timedelta:
        return timedelta(hours=self.pmi_limit_hours)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
