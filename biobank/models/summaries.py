"""Maintained summaries of the cohort (migration 0019, issue 21): written only by database triggers, in the
transaction of the write they follow, so every writer (services, imports, the synthetic loader, corrections) keeps
them exact. Read them; never write them.

- :class:`SpecimenPmi`: per specimen, what the cohort figures need of it, with its PMI in hours and the basis.
- :class:`CohortSummary`: specimens and quantity remaining per donor x anatomical site x post-mortem x lineage x
  format x unit x status x PMI band.
- :class:`SiteSummary`: specimens per sampling site x PMI band.
- :class:`PmiBinSummary`: primary post-mortem specimens per donor x half-hour PMI bin.
- :class:`CasePmiSummary`: the same population per case x half-hour PMI bin, with the sum, minimum and maximum of
  their hours (migration 0022): the cohort page's table of cases.

A PMI band of ``''`` means none (pre-mortem material, no time of death, or a negative interval); a summary row may hold
zero specimens (its last specimen moved away).
"""

from __future__ import annotations

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

#: The histogram bin the triggers keep (hours).
PMI_BIN_HOURS = 0.5


class SpecimenPmi(SQLModel, table=True):
    __tablename__ = "specimen_pmi"
    #: The per-case PMI summary reads a case's histogram population through this index alone.
    __table_args__ = (Index("ix_specimen_pmi_case", "autopsy_id", "pmi_bin", "hours"),)

    specimen_id: int = Field(primary_key=True)
    donor_id: int
    sampling_site_id: int
    autopsy_id: int | None = None
    site_code: str = Field(max_length=40)
    postmortem: bool
    lineage: str = Field(max_length=12)
    storage_format: str = Field(max_length=16)
    unit: str = Field(max_length=10)
    status: str = Field(max_length=12)
    quantity_remaining: float
    #: Hours from death to stabilisation, else excision (None without a time of death); may be negative.
    hours: float | None = None
    #: 'stabilised' or 'excised'.
    basis: str | None = Field(default=None, max_length=12)
    band: str = Field(max_length=12)
    #: floor(hours / 0.5) for primary post-mortem specimens with a PMI, else None.
    pmi_bin: int | None = None


class CohortSummary(SQLModel, table=True):
    __tablename__ = "cohort_summary"
    # the cohort overview's sums by format, unit, site, lineage and status read in index order (migration 0021)
    __table_args__ = (Index("ix_cohort_summary_format_cover", "storage_format", "unit", "site_code", "lineage",
                            "status", "specimens", "quantity_remaining"),)

    donor_id: int = Field(primary_key=True)
    site_code: str = Field(primary_key=True, max_length=40)
    postmortem: bool = Field(primary_key=True)
    lineage: str = Field(primary_key=True, max_length=12)
    storage_format: str = Field(primary_key=True, max_length=16)
    unit: str = Field(primary_key=True, max_length=10)
    status: str = Field(primary_key=True, max_length=12)
    band: str = Field(primary_key=True, max_length=12)
    specimens: int
    quantity_remaining: float


class SiteSummary(SQLModel, table=True):
    __tablename__ = "site_summary"

    donor_id: int = Field(primary_key=True)
    site_code: str = Field(primary_key=True, max_length=40)
    sampling_site_id: int = Field(primary_key=True)
    postmortem: bool = Field(primary_key=True)
    band: str = Field(primary_key=True, max_length=12)
    specimens: int


class PmiBinSummary(SQLModel, table=True):
    __tablename__ = "pmi_bin_summary"

    donor_id: int = Field(primary_key=True)
    pmi_bin: int = Field(primary_key=True)
    specimens: int


class CasePmiSummary(SQLModel, table=True):
    """Per case x half-hour PMI bin (x donor): the primary post-mortem specimens with a PMI in that bin, the sum of
    their hours, and the least and greatest (None once the bin is left empty)."""

    __tablename__ = "case_pmi_summary"

    autopsy_id: int = Field(primary_key=True)
    pmi_bin: int = Field(primary_key=True)
    donor_id: int = Field(primary_key=True)
    specimens: int
    hours_sum: float
    hours_min: float | None = None
    hours_max: float | None = None


class CohortGeneration(SQLModel, table=True):
    """Per donor, a number the triggers advance on every change of what the cohort figures read of that donor (its
    specimens' summary rows, the donor, case, lesions, consent withdrawals, models): their sum keys cached figures."""

    __tablename__ = "cohort_generation"

    donor_id: int = Field(primary_key=True)
    generation: int
