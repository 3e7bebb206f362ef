"""Reads of the loop back from sequencing (DOMAIN.md §6): each plan sample's state, and the regions sequenced.

A sample of a plan is ``planned`` while its plan is approved (or was superseded before submission), ``submitted`` once
the plan is submitted, then its latest result's outcome (``sequenced``, ``passed`` or ``failed_qc``). Superseded plans keep their samples' states:
data that came back for an old version still exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import Select, select
from sqlmodel import Session, col

from biobank.models import AnalysisPlan, Donor, Lesion, PlanSpecimen, SamplingSite, Specimen
from biobank.models.plans import PlanStatus, SampleOutcome, SequencingResult, SequencingRun

#: The plan statuses whose samples have a sequencing state.
STATE_STATUSES = (PlanStatus.approved.value, PlanStatus.submitted.value, PlanStatus.superseded.value)

#: Every state a sample can be in, from least to most advanced (``failed_qc`` is an end like ``passed``).
SAMPLE_STATES = ("planned", "submitted", *(o.value for o in SampleOutcome))

#: States meaning data came back for the sample, best first (``sequenced_regions``).
DATA_STATES = (SampleOutcome.passed.value, SampleOutcome.sequenced.value)

#: What a sample's latest result says (empty before one is recorded).
_RESULT_COLUMNS = [
    "run_id",
    "results",
    "read_count",
    "mean_coverage",
    "contamination_pct",
    "purity",
    "ploidy",
    "qc_note",
]

STATE_COLUMNS = [
    "plan_code",
    "plan_status",
    "plan_id",
    "plan_specimen_id",
    "donor_id",
    "donor_code",
    "specimen_id",
    "specimen_code",
    "material_type",
    "sampling_site_id",
    "region_code",
    "site_code",
    "lesion_id",
    "lesion_code",
    "role",
    "assay",
    "target_depth",
    "state",
    *_RESULT_COLUMNS,
]


def sample_states(
    session: Session, plan_ids: Iterable[int] | None = None, donor_ids: Iterable[int] | None = None
) -> pd.DataFrame:
    """One row per included sample of an approved, submitted or superseded plan (optionally only ``plan_ids`` /
    ``donor_ids``), with its state and its latest result (run id, coverage, purity, ploidy...). Two queries."""
    columns: list[Any] = [
        col(AnalysisPlan.code).label("plan_code"),
        col(AnalysisPlan.status).label("plan_status"),
        col(AnalysisPlan.submitted_at).label("submitted_at"),
        col(AnalysisPlan.id).label("plan_id"),
        col(AnalysisPlan.assay).label("plan_assay"),
        col(AnalysisPlan.target_depth).label("plan_depth"),
        col(PlanSpecimen.id).label("plan_specimen_id"),
        col(PlanSpecimen.role).label("role"),
        col(PlanSpecimen.assay).label("sample_assay"),
        col(PlanSpecimen.target_depth).label("sample_depth"),
        col(Donor.id).label("donor_id"),
        col(Donor.code).label("donor_code"),
        col(Specimen.id).label("specimen_id"),
        col(Specimen.code).label("specimen_code"),
        col(Specimen.material_type).label("material_type"),
        col(SamplingSite.id).label("sampling_site_id"),
        col(SamplingSite.code).label("region_code"),
        col(SamplingSite.site_code).label("site_code"),
        col(Lesion.id).label("lesion_id"),
        col(Lesion.code).label("lesion_code"),
    ]
    statement: Select[Any] = (
        select(*columns)
        .select_from(PlanSpecimen)
        .join(AnalysisPlan, col(AnalysisPlan.id) == col(PlanSpecimen.plan_id))
        .join(Donor, col(Donor.id) == col(PlanSpecimen.donor_id))
        .join(Specimen, col(Specimen.id) == col(PlanSpecimen.specimen_id))
        .join(SamplingSite, col(SamplingSite.id) == col(Specimen.sampling_site_id))
        .outerjoin(Lesion, col(Lesion.id) == col(SamplingSite.lesion_id))
        .where(col(PlanSpecimen.included).is_(True), col(AnalysisPlan.status).in_(STATE_STATUSES))
        .order_by(col(AnalysisPlan.code), col(Donor.code), col(Specimen.code))
    )
    if plan_ids is not None:
        statement = statement.where(col(PlanSpecimen.plan_id).in_(list(plan_ids)))
    if donor_ids is not None:
        statement = statement.where(col(PlanSpecimen.donor_id).in_(list(donor_ids)))
    records: list[dict[str, Any]] = []
    for row in session.execute(statement).mappings():
        record = dict(row)
        plan_assay, plan_depth = record.pop("plan_assay"), record.pop("plan_depth")
        sample_assay, sample_depth = record.pop("sample_assay"), record.pop("sample_depth")
        record["assay"] = sample_assay or plan_assay
        record["target_depth"] = sample_depth if sample_depth is not None else plan_depth
        # a superseded version was submitted or not: its samples went to the core only if it was
        record["state"] = "planned" if record.pop("submitted_at") is None else "submitted"
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[c for c in STATE_COLUMNS if c not in _RESULT_COLUMNS])
    latest = _latest_results(session, [int(r["plan_specimen_id"]) for r in records])
    frame = frame.merge(latest, on="plan_specimen_id", how="left")
    has_result = frame["outcome"].notna()
    frame.loc[has_result, "state"] = frame.loc[has_result, "outcome"]
    frame["results"] = frame["results"].fillna(0).astype(int)
    frame["lesion_id"] = frame["lesion_id"].astype("Int64")
    frame = frame.drop(columns=["outcome"])
    return frame[STATE_COLUMNS].reset_index(drop=True)


def _latest_results(session: Session, plan_specimen_ids: list[int]) -> pd.DataFrame:
    """Each plan sample's latest result (highest id) with its run id, and how many results it has."""
    columns = ["plan_specimen_id", "outcome", *_RESULT_COLUMNS]
    if not plan_specimen_ids:
        return pd.DataFrame(columns=columns)
    rows = session.execute(
        select(
            col(SequencingResult.plan_specimen_id),
            col(SequencingResult.id),
            col(SequencingResult.outcome),
            col(SequencingRun.run_id),
            col(SequencingResult.read_count),
            col(SequencingResult.mean_coverage),
            col(SequencingResult.contamination_pct),
            col(SequencingResult.purity),
            col(SequencingResult.ploidy),
            col(SequencingResult.qc_note),
        )
        .join(SequencingRun, col(SequencingRun.id) == col(SequencingResult.run_id))
        .where(col(SequencingResult.plan_specimen_id).in_(plan_specimen_ids))
        .order_by(col(SequencingResult.plan_specimen_id), col(SequencingResult.id))
    ).all()
    latest: dict[int, dict[str, Any]] = {}
    for r in rows:
        count = latest.get(r[0], {}).get("results", 0) + 1
        latest[r[0]] = {
            "plan_specimen_id": r[0],
            "outcome": r[2],
            "run_id": r[3],
            "results": count,
            "read_count": r[4],
            "mean_coverage": r[5],
            "contamination_pct": r[6],
            "purity": r[7],
            "ploidy": r[8],
            "qc_note": r[9],
        }
    return pd.DataFrame.from_records(list(latest.values()), columns=columns)


def sequenced_regions(session: Session, donor_ids: Iterable[int]) -> pd.DataFrame:
    """The regions (sampling sites) of ``donor_ids`` with at least one plan sample ``sequenced`` or ``passed``: one
    row each with its best state (``passed`` before ``sequenced``), how many samples are in that state, and their
    specimen codes."""
    columns = [
        "donor_id",
        "donor_code",
        "sampling_site_id",
        "region_code",
        "site_code",
        "lesion_code",
        "state",
        "samples",
        "specimen_codes",
    ]
    states = sample_states(session, donor_ids=list(donor_ids))
    states = states[states["state"].isin(DATA_STATES)]
    if states.empty:
        return pd.DataFrame(columns=columns)
    rank = {state: i for i, state in enumerate(DATA_STATES)}
    states = states.assign(_rank=states["state"].map(rank))
    best = states.groupby("sampling_site_id")["_rank"].transform("min")
    states = states[states["_rank"] == best]
    grouped = (
        states.groupby(["donor_id", "donor_code", "sampling_site_id", "region_code", "site_code", "state"],
                       dropna=False)
        .agg(
            lesion_code=("lesion_code", "first"),
            samples=("specimen_code", "size"),
            specimen_codes=("specimen_code", lambda s: sorted(set(s))),
        )
        .reset_index()
    )
    return grouped[columns].sort_values(["donor_code", "region_code"]).reset_index(drop=True)


def state_counts(session: Session, plan_ids: Iterable[int] | None = None) -> dict[str, int]:
    """How many plan samples are in each state (every state named, zeros included)."""
    frame = sample_states(session, plan_ids=plan_ids)
    counts = frame["state"].value_counts().to_dict() if not frame.empty else {}
    return {state: int(counts.get(state, 0)) for state in SAMPLE_STATES}


__all__ = ["DATA_STATES", "SAMPLE_STATES", "STATE_COLUMNS", "sample_states", "sequenced_regions", "state_counts"]
