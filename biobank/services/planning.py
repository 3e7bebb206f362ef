"""Analysis plans: suggest a default selection for a donor, keep it as a draft, check the rules, approve (PI only).

Who may do what: drafting and editing a plan needs ``Action.plan`` and approving one ``Action.approve``; both belong
to the PI role only. Technicians do not draft plans (choosing what to sequence is the investigator's decision), but
anyone may ask for a suggestion or a rule report: those only read. A withdrawn donor is refused by both.

The suggestion reads every specimen of the donors with one query (:func:`biobank.queries.exports.specimen_records`),
their lesions and models with one small query each, and chooses in Python (DOMAIN.md §6):

- the germline normal: germline blood first (its DNA extract, else buffy coat, else the blood), else the most distant
  normal tissue (never adjacent normal, never marrow, bone or lymph node of a donor with disease there), DNA extract
  preferred, and one that meets the assay's input requirements before one that does not;
- per region of each lesion the best piece that can be sequenced: material grown in a model never counts for its
  region; acid-decalcified material is never proposed for a DNA assay (a region that has nothing else is listed as
  skipped); tumour content first (at least 30 %, then 20-30 %, then unrecorded; below 20 % cannot be used), then
  format (snap-frozen or OCT before RNAlater before FFPE; for WGS any usable frozen piece before FFPE), the extracted
  analyte before tissue, higher cellularity, QC, more nanograms, lower PMI. The reason names what was traded off
  (a better-preserved piece passed over, and why) and a PMI beyond the limit;
- for ``model_vs_tumour``: each established model's latest QC-passed passage material (role ``model``) with the best
  tumour piece of the region the model came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.domain.codes import require_safe
from biobank.domain.errors import ConflictError, invalid
from biobank.domain.sites import unknown_site
from biobank.domain.vocab_derived import ESTABLISHED_OR_BEYOND
from biobank.models import AnatomicalSite, Donor, Lesion, SamplingSite, Specimen, User
from biobank.models.audit import act_as, add_as
from biobank.models.base import utcnow
from biobank.models.derived import DerivedModel, ModelPassage, ModelQC
from biobank.models.plans import (
    DNA_ASSAYS,
    PRIMARY_UNSAMPLED_LENGTH,
    AnalysisPlan,
    Assay,
    PlanDonor,
    PlanPurpose,
    PlanRole,
    PlanSpecimen,
    PlanStatus,
)
from biobank.queries import exports as query
from biobank.services import budget as budgets
from biobank.services import plan_versions, reservations
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum
from biobank.services.inputs import PlanCreate, PlanSettings
from biobank.services.lookup import by_code
from biobank.services.plan_rules import (
    A260_280_RANGE,
    CELLULARITY_EXCLUDE,
    CELLULARITY_WARN,
    MODEL_ROLE,
    ROLES,
    UNAVAILABLE,
    InputRequirements,
    PlanContext,
    PlanRulesError,
    Report,
    _num,
    _origin_format,
    _rows,
    available_ng,
    decal_text,
    germline_problem,
    involvement,
    is_acid,
    is_model,
    model_text,
    resolve_lineage,
    run_rules,
)

#: Tissue formats in order of preference for sequencing (DOMAIN.md §6).
FORMAT_RANK = {"snap_frozen": 0, "oct": 0, "rnalater": 1, "frozen": 1, "ffpe": 2}
FORMAT_TEXT = {
    "snap_frozen": "snap-frozen",
    "oct": "OCT-embedded",
    "rnalater": "RNAlater",
    "frozen": "frozen",
    "ffpe": "FFPE",
    "viable_cryo": "viable-cryopreserved",
    "fresh": "fresh",
}
#: Materials that can be sequenced for a tumour region (fresh and viable material is kept for models).
TUMOUR_MATERIALS = {"dna", "rna", "tissue", "section", "cells"}
GERMLINE_BLOOD_RANK = {"dna": 0, "buffy_coat": 1, "whole_blood": 2}


@dataclass(frozen=True)
class Choice:
    donor_code: str
    specimen_id: int
    specimen_code: str
    role: str
    lesion_code: str | None
    region_code: str
    site_code: str
    site_label: str
    laterality: str
    reason: str


@dataclass
class Suggestion:
    assay: str
    choices: list[Choice]
    skipped: list[str] = field(default_factory=list)
    purpose: str = PlanPurpose.phylogeny.value

    def selection(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"specimen_id": c.specimen_id, "role": c.role, "reason": c.reason} for c in self.choices],
            columns=["specimen_id", "role", "reason"],
        )

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.choices]


# ------------------------------------------------------------------------------------------------ suggestion


def _qc_text(row: dict[str, Any]) -> str:
    parts = []
    amount = available_ng(row) if row.get("material_type") in ("dna", "rna") else None
    if amount is not None:
        parts.append(f"{amount:,.0f} ng")
    for label, key in (("A260/280", "a260_280"), ("DIN", "din"), ("RIN", "rin"), ("DV200", "dv200_pct")):
        value = _num(row.get(key))
        if value is not None:
            parts.append(f"{label} {value:g}" + (" %" if key == "dv200_pct" else ""))
    return ", ".join(parts)


def _format_of(row: Mapping[str, Any]) -> str:
    """The format a piece was preserved in: the tissue's for a patient extract, the vial's own for model material."""
    return str(row.get("storage_format")) if is_model(row) else _origin_format(row)


@dataclass(frozen=True)
class _Judge:
    """Ranks the pieces of one assay at one depth (pure: rows in, keys and reasons out)."""

    assay: str
    depth: float | None
    needs: InputRequirements
    pmi_limit: float
    _keys: dict[int, tuple[Any, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def analyte(self) -> str:
        return "dna" if self.assay in DNA_ASSAYS else "rna"

    def blockers(self, row: dict[str, Any], *, tumour: bool = True) -> list[str]:
        """Why this piece cannot be sequenced for the assay (empty when it can, as far as is known)."""
        out = []
        pct = _num(row.get("tumour_cellularity_pct"))
        if tumour and pct is not None and pct < CELLULARITY_EXCLUDE:
            out.append(f"cellularity {pct:g} % below {CELLULARITY_EXCLUDE:g} %")
        out.extend(self.needs.problems(row, self.assay, self.depth))
        return out

    def qc_score(self, row: dict[str, Any]) -> int:
        """0 when quantity and purity are recorded and good, 1 when unknown or not extracted, 2 when poor."""
        if row.get("material_type") != self.analyte:
            return 1
        ratio = _num(row.get("a260_280"))
        if available_ng(row) is None or ratio is None:
            return 1
        return 0 if A260_280_RANGE[0] <= ratio <= A260_280_RANGE[1] else 2

    def tumour_key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """Sequenceable first, then tumour content, then format (WGS: any usable non-FFPE piece before FFPE)."""
        key = self._keys.get(id(row))
        if key is None:
            key = self._keys[id(row)] = self._tumour_key(row)
        return key

    def _tumour_key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        pct = _num(row.get("tumour_cellularity_pct"))
        content = 2 if pct is None else 0 if pct >= CELLULARITY_WARN else 1
        fmt = FORMAT_RANK.get(_format_of(row), 3)
        pmi = _num(row.get("pmi_hours"))
        return (
            1 if self.blockers(row) else 0,
            (1 if fmt == FORMAT_RANK["ffpe"] else 0) if self.assay == "wgs" else 0,
            content,
            fmt,
            0 if row.get("material_type") == self.analyte else 1,
            -(pct if pct is not None else -1.0),
            self.qc_score(row),
            -(available_ng(row) or 0.0) if row.get("material_type") == self.analyte else 0.0,
            pmi if pmi is not None else math.inf,
            row["specimen_code"],
        )

    def describe(self, row: dict[str, Any]) -> str:
        fmt = FORMAT_TEXT.get(_format_of(row), _format_of(row))
        if row.get("material_type") == self.analyte:
            return f"{self.analyte.upper()} extract of {fmt} {'material' if is_model(row) else 'tissue'}"
        return f"{fmt} {row.get('material_type')} (no {self.analyte.upper()} extracted yet)"

    def pmi_text(self, row: dict[str, Any]) -> str | None:
        pmi = _num(row.get("pmi_hours"))
        if pmi is None or is_model(row) or row.get("site_kind") == "premortem_blood":
            return None
        if pmi > self.pmi_limit:
            return f"PMI {pmi:.1f} h, beyond the {self.pmi_limit:g} h limit"
        return f"PMI {pmi:.1f} h"

    def details(self, row: dict[str, Any]) -> list[str]:
        """QC, decalcification and PMI of a chosen piece, for its reason."""
        bits = []
        qc = _qc_text(row)
        if qc:
            bits.append(qc)
        if row.get("decal_agent") == "edta":
            hours = _num(row.get("decal_hours"))
            bits.append(f"EDTA-decalcified {f'{hours:g} h' if hours is not None else '(hours not recorded)'}")
        pmi = self.pmi_text(row)
        if pmi:
            bits.append(pmi)
        return bits

    def trade_off(self, best: dict[str, Any], candidates: list[dict[str, Any]]) -> str | None:
        """The piece that format alone would have chosen, when ``best`` is another, and why it was passed over."""
        other = min(candidates, key=lambda r: self.tumour_key(r)[3:])  # format, extract, cellularity, QC...
        if other is best:
            return None
        why = self.blockers(other)
        if not why:
            pct = _num(other.get("tumour_cellularity_pct"))
            why = ["cellularity not recorded" if pct is None else f"cellularity only {pct:g} %"]
        fmt = FORMAT_TEXT.get(_format_of(other), _format_of(other))
        what = f"{fmt} {self.analyte.upper()} extract" if other.get("material_type") == self.analyte else fmt
        return f"chosen over {what} {other['specimen_code']} ({'; '.join(why)})"


def suggest_from_frames(
    donors: pd.DataFrame | list[dict[str, Any]],
    specimens: pd.DataFrame | list[dict[str, Any]],
    assay: str,
    *,
    purpose: str = PlanPurpose.phylogeny.value,
    depth: float | None = None,
    lesions: Sequence[Mapping[str, Any]] = (),
    models: Sequence[Mapping[str, Any]] = (),
    pmi_limit_hours: float | None = None,
    requirements: InputRequirements | None = None,
) -> Suggestion:
    """The default selection for these donors (pure: rows in, choices out; frames or records).

    ``lesions`` and ``models`` are :func:`lesion_facts` and :func:`model_facts` rows. A withdrawn donor gets no
    choice, only a skipped line (:func:`suggest` refuses one outright; a page showing an old plan must not fail).
    """
    check_enum("assay", assay, Assay)
    check_enum("purpose", purpose, PlanPurpose)
    if depth is not None:
        PlanSettings.build(target_depth=depth)
    donor_rows = _rows(donors)
    judge = _Judge(
        assay,
        depth,
        requirements or InputRequirements.from_settings(),
        get_settings().pmi_limit_hours if pmi_limit_hours is None else pmi_limit_hours,
    )
    dna = assay in DNA_ASSAYS
    records = resolve_lineage(_rows(specimens))
    involved = involvement(records, lesions)
    choices: list[Choice] = []
    skipped: list[str] = []
    by_donor: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["status"] not in UNAVAILABLE:
            by_donor.setdefault(r["donor_code"], []).append(r)
    for donor, withdrawn in ((str(d["donor_code"]), bool(d.get("withdrawn"))) for d in donor_rows):
        rows = by_donor.get(donor)
        if withdrawn:
            skipped.append(f"{donor}: consent withdrawn, the donor's material is blocked from plans")
            continue
        if not rows:
            skipped.append(f"{donor}: no available specimens")
            continue
        if dna:
            germline = _germline(rows, judge, involved.get(donor, []))
            if germline is None:
                skipped.append(f"{donor}: no germline blood or distant normal tissue available")
            else:
                choices.append(germline)
        regions, acid_only = _tumour_regions(rows, judge)
        for region, agents in sorted(acid_only.items()):
            skipped.append(
                f"{donor} {region}: only acid-decalcified material ({agents}): acid fragments DNA, so no "
                f"{assay} sample"
            )
        if purpose == PlanPurpose.model_vs_tumour:
            facts = [m for m in models if m.get("donor_code") == donor]
            choices_, skipped_ = _model_choices(donor, rows, facts, regions, judge)
            choices.extend(choices_)
            skipped.extend(skipped_)
            continue
        for region in sorted(regions):
            choice, skip = _region_choice(donor, region, regions[region], judge)
            if choice is not None:
                choices.append(choice)
            if skip is not None:
                skipped.append(skip)
    return Suggestion(assay, choices, skipped, purpose)


def _tumour_regions(
    rows: list[dict[str, Any]], judge: _Judge
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """The patient's tumour pieces per region (never model material), and the regions that hold only acid-decalcified
    pieces for a DNA assay (with their agents)."""
    dna = judge.assay in DNA_ASSAYS
    regions: dict[str, list[dict[str, Any]]] = {}
    acid: dict[str, set[str]] = {}
    for r in rows:
        if r["site_kind"] != "tumour_region" or r["material_type"] not in TUMOUR_MATERIALS or is_model(r):
            continue
        if (dna and r["material_type"] == "rna") or (not dna and r["material_type"] == "dna"):
            continue
        region = str(r["region_code"])
        if dna and is_acid(r):
            acid.setdefault(region, set()).add(decal_text(r))
            continue
        regions.setdefault(region, []).append(r)
    return regions, {region: ", ".join(sorted(a)) for region, a in acid.items() if region not in regions}


def _region_choice(
    donor: str, region: str, candidates: list[dict[str, Any]], judge: _Judge
) -> tuple[Choice | None, str | None]:
    """The best piece of a region with its reason, or the line saying why the region is skipped."""
    ranked = sorted(candidates, key=judge.tumour_key)
    best = ranked[0]
    blocked = judge.blockers(best)
    if blocked:
        return None, f"{donor} {region}: no piece can be sequenced; best is {best['specimen_code']}: {'; '.join(blocked)}"
    pct = _num(best.get("tumour_cellularity_pct"))
    bits = [judge.describe(best)]
    if pct is not None:
        source = best.get("cellularity_source")
        bits.append(f"cellularity {pct:g} %" + (f" (from {source})" if source and source != "specimen" else ""))
    else:
        bits.append("cellularity not recorded")
    bits.extend(judge.details(best))
    traded = judge.trade_off(best, ranked)
    if traded:
        bits.append(traded)
    if judge.assay == "wgs" and _format_of(best) == "ffpe":
        bits.append("FFPE for WGS: flagged")
    reason = f"{region}: " + ", ".join(bits) + f"; best of {len(ranked)}"
    return _choice(best, "tumour", reason), None


def _model_choices(
    donor: str,
    rows: list[dict[str, Any]],
    facts: list[Mapping[str, Any]],
    regions: dict[str, list[dict[str, Any]]],
    judge: _Judge,
) -> tuple[list[Choice], list[str]]:
    """Each established model's latest QC-passed passage material, with the best tumour piece of its source region."""
    choices: list[Choice] = []
    skipped: list[str] = []
    chosen_regions: set[str] = set()
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for f in facts:
        by_model.setdefault(str(f["model_code"]), []).append(f)
    if not by_model:
        skipped.append(f"{donor}: no derived model to compare with the tumour")
    material: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if is_model(r) and r["material_type"] in TUMOUR_MATERIALS | {judge.analyte}:
            if r["material_type"] in ("dna", "rna") and r["material_type"] != judge.analyte:
                continue
            material.setdefault((str(r["model_code"]), str(r["passage"])), []).append(r)
    for code, passages in sorted(by_model.items()):
        status = str(passages[0].get("status"))
        if status not in ESTABLISHED_OR_BEYOND:
            skipped.append(f"{donor} {code}: model is {status}, not established")
            continue
        passed = sorted(
            (p for p in passages if p.get("qc_passed") and p.get("passage") is not None),
            key=lambda p: -int(p.get("passage_number") or 0),
        )
        if not passed:
            skipped.append(f"{donor} {code}: no passage passed QC")
            continue
        pick: dict[str, Any] | None = None
        latest = str(passed[0]["passage"])
        for p in passed:
            pieces = [r for r in material.get((code, str(p["passage"])), []) if not judge.blockers(r, tumour=False)]
            if pieces:
                pick = min(pieces, key=lambda r: (
                    0 if r["material_type"] == judge.analyte else 1,
                    FORMAT_RANK.get(str(r.get("storage_format")), 3),
                    -(available_ng(r) or 0.0),
                    r["specimen_code"],
                ))
                break
        if pick is None:
            skipped.append(f"{donor} {code}: no usable material of a QC-passed passage (latest {latest})")
            continue
        which = "the latest QC-passed passage" if str(pick["passage"]) == latest else (
            f"the latest QC-passed passage with material left ({latest} has none)"
        )
        bits = [f"{model_text(pick)} ({status}), {which}", judge.describe(pick), *judge.details(pick)]
        region = str(pick["region_code"])
        bits.append(f"source {pick.get('model_source_code')}, region {region}")
        choices.append(_choice(pick, MODEL_ROLE, "model: " + ", ".join(bits)))
        if region in chosen_regions:
            continue
        if region not in regions:
            skipped.append(f"{donor} {code}: its source region {region} has no patient tumour piece to compare with")
            continue
        tumour, skip = _region_choice(donor, region, regions[region], judge)
        if tumour is not None:
            chosen_regions.add(region)
            choices.append(tumour)
        if skip is not None:
            skipped.append(skip)
    return choices, skipped


def _choice(row: dict[str, Any], role: str, reason: str) -> Choice:
    return Choice(
        donor_code=str(row["donor_code"]),
        specimen_id=int(row["specimen_id"]),
        specimen_code=str(row["specimen_code"]),
        role=role,
        lesion_code=row["lesion_code"] if isinstance(row.get("lesion_code"), str) else None,
        region_code=str(row["region_code"]),
        site_code=str(row["site_code"]),
        site_label=str(row["site_label"]),
        laterality=str(row["laterality"]),
        reason=reason[:REASON_LENGTH],
    )


def _germline(records: list[dict[str, Any]], judge: _Judge, involved: list[str]) -> Choice | None:
    blood = [
        r for r in records
        if r["site_kind"] == "germline_blood" and r["material_type"] in GERMLINE_BLOOD_RANK and not is_model(r)
    ]
    if blood:
        best = min(
            blood,
            key=lambda r: (
                1 if judge.blockers(r, tumour=False) else 0,
                GERMLINE_BLOOD_RANK[r["material_type"]],
                judge.qc_score(r),
                -(available_ng(r) or 0),
                r["specimen_code"],
            ),
        )
        what = {
            "dna": "DNA extract of germline blood",
            "buffy_coat": "buffy coat (no DNA extracted yet)",
            "whole_blood": "whole blood (no DNA extracted yet)",
        }
        qc = _qc_text(best)
        reason = (
            f"germline normal: {what[best['material_type']]}"
            + (f", {qc}" if qc else "")
            + "; blood is preferred"
        )
        return _choice(best, "germline_normal", reason)

    def distance(r: dict[str, Any]) -> float:
        d = _num(r.get("distance_to_tumour_mm"))
        return math.inf if d is None else d

    tissue = [
        r
        for r in records
        if r["site_kind"] == "normal_tissue"
        and r["material_type"] in ("dna", "tissue")
        and not is_model(r)
        and not is_acid(r)
        and germline_problem(r, involved) is None
    ]
    if not tissue:
        return None
    best = min(
        tissue,
        key=lambda r: (
            1 if judge.blockers(r, tumour=False) else 0,
            0 if r["material_type"] == "dna" else 1,
            FORMAT_RANK.get(_origin_format(r), 3),
            -distance(r),
            _num(r.get("pmi_hours")) or math.inf,
            r["specimen_code"],
        ),
    )
    far = "an organ without tumour" if distance(best) == math.inf else f"{distance(best):g} mm from tumour"
    bits = [f"germline normal: {judge.describe(best) if judge.analyte == 'dna' else best['material_type']} of "
            f"{best['site_label']} ({far})", *judge.details(best)]
    return _choice(best, "germline_normal", ", ".join(bits) + "; no germline blood available")


def _columns(model: type) -> Any:
    """A table model's Core columns (typed loosely, as in :mod:`biobank.queries.exports`)."""
    return model.__table__.c  # type: ignore[attr-defined]  # set by SQLModel's metaclass for table models


def lesion_facts(session: Session, donor_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Every lesion of these donors with its site category, material or not (one query): what the disease involves."""
    if not donor_ids:
        return []
    donor, lesion, site = _columns(Donor), _columns(Lesion), _columns(AnatomicalSite)
    rows = session.execute(
        sa_select(
            donor.code.label("donor_code"),
            lesion.code.label("lesion_code"),
            lesion.kind.label("lesion_kind"),
            lesion.site_code,
            site["label"].label("site_label"),
            site.category.label("site_category"),
        )
        .join_from(Lesion, Donor, donor.id == lesion.donor_id)
        .join(AnatomicalSite, site.code == lesion.site_code)
        .where(lesion.donor_id.in_(list(donor_ids)))
    ).mappings()
    return [dict(r) for r in rows]


def model_facts(session: Session, donor_ids: Sequence[int]) -> list[dict[str, Any]]:
    """One row per passage of these donors' models (a model without a passage: one row, passage NA), with the
    model's status and whether any QC of the passage passed (one query)."""
    if not donor_ids:
        return []
    donor, model, passage = _columns(Donor), _columns(DerivedModel), _columns(ModelPassage)
    specimen, region, qc_row = _columns(Specimen), _columns(SamplingSite), _columns(ModelQC)
    qc = (
        sa_select(qc_row.passage_id, func.max(case((qc_row.passed, 1), else_=0)).label("qc_passed"))
        .group_by(qc_row.passage_id)
        .subquery()
    )
    rows = session.execute(
        sa_select(
            donor.code.label("donor_code"),
            model.code.label("model_code"),
            model.kind.label("model_kind"),
            model.status,
            specimen.code.label("source_code"),
            region.code.label("source_region"),
            passage["label"].label("passage"),
            passage.number.label("passage_number"),
            func.coalesce(qc.c.qc_passed, 0).label("qc_passed"),
        )
        .join_from(DerivedModel, Donor, donor.id == model.donor_id)
        .join(Specimen, specimen.id == model.source_specimen_id)
        .join(SamplingSite, region.id == specimen.sampling_site_id)
        .join(ModelPassage, passage.model_id == model.id, isouter=True)
        .join(qc, qc.c.passage_id == passage.id, isouter=True)
        .where(model.donor_id.in_(list(donor_ids)))
        .order_by(model.code, passage.number)
    ).mappings()
    return [dict(r) | {"qc_passed": bool(r["qc_passed"])} for r in rows]


def _facts(
    session: Session, donor_ids: Sequence[int], records: list[dict[str, Any]], *, purpose: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Lesions and models of the donors; models are read only when there is model material or a comparison."""
    wants_models = purpose == PlanPurpose.model_vs_tumour or any(is_model(r) for r in records)
    return lesion_facts(session, donor_ids), model_facts(session, donor_ids) if wants_models else []


def _read(
    session: Session, donor_codes: Sequence[str], *, assay: str, purpose: str
) -> tuple[pd.DataFrame, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """What a suggestion reads for these donors (refused for a withdrawn donor): donors, specimen records, lesions
    and models."""
    check_enum("assay", assay, Assay)
    check_enum("purpose", purpose, PlanPurpose)
    ids = query.donor_ids_for(session, donor_codes)
    donors = query.donor_frame(session, donor_ids=ids)
    query.refuse_withdrawn(donors, use="plans")
    records = query.specimen_records(session, donor_ids=ids)
    lesions, models = _facts(session, ids, records, purpose=purpose)
    return donors, records, lesions, models


def suggest(
    session: Session,
    *,
    donor_codes: Sequence[str],
    assay: str,
    purpose: str = PlanPurpose.phylogeny.value,
    depth: float | None = None,
) -> Suggestion:
    """The default plan for these donors (refused for a withdrawn donor): a few queries, then Python."""
    donors, records, lesions, models = _read(session, donor_codes, assay=assay, purpose=purpose)
    return suggest_from_frames(
        donors, records, assay, purpose=purpose, depth=depth, lesions=lesions, models=models
    )


def suggest_and_check(
    session: Session,
    *,
    donor_codes: Sequence[str],
    assay: str,
    purpose: str = PlanPurpose.phylogeny.value,
    depth: float | None = None,
) -> tuple[Suggestion, Report]:
    """The suggestion and the rule report of a plan holding it: the same queries for both, then Python."""
    donors, records, lesions, models = _read(session, donor_codes, assay=assay, purpose=purpose)
    suggestion = suggest_from_frames(
        donors, records, assay, purpose=purpose, depth=depth, lesions=lesions, models=models
    )
    ctx = PlanContext(
        purpose=purpose, assay=assay, donors=donors, specimens=records, selection=suggestion.selection(),
        target_depth=depth, lesions=lesions, models=models,
    )
    return suggestion, run_rules(ctx)


# ------------------------------------------------------------------------------------------------------ plans


def _id(plan: AnalysisPlan) -> int:
    assert plan.id is not None, "plan is flushed"
    return plan.id


def get_plan(session: Session, code: str) -> AnalysisPlan:
    """The analysis plan with this code, typed in any letter case."""
    return by_code(session, AnalysisPlan, AnalysisPlan.code, code, what="analysis plan", field="plan")


def _get_draft(session: Session, code: str) -> AnalysisPlan:
    plan = get_plan(session, code)
    code = plan.code
    if plan.status != PlanStatus.draft:
        raise ConflictError(
            f"plan {code} is {plan.status}; only a draft can change", field="status", value=plan.status
        )
    return plan


def unsampled_reason(reason: str | None) -> str | None:
    """A declared reason for leaving the primary unsampled, its whitespace collapsed; None when blank (no
    declaration). Longer than ``analysis_plan.primary_unsampled_reason`` holds is refused, naming the field."""
    text = " ".join((reason or "").split())
    if len(text) > PRIMARY_UNSAMPLED_LENGTH:
        raise invalid(
            "primary_unsampled_reason", reason,
            f"is {len(text):,} characters long; at most {PRIMARY_UNSAMPLED_LENGTH}",
        )
    return text or None


def _check_settings(
    session: Session, target_depth: float | None, primary_site_code: str | None, unknown_primary: bool
) -> None:
    """A plan's target depth is positive and plausible; its primary site is a known site, or unknown (not both)."""
    PlanSettings.build(target_depth=target_depth, primary_site_code=primary_site_code, unknown_primary=unknown_primary)
    if unknown_primary and primary_site_code:
        raise invalid("primary_site_code", primary_site_code, "cannot be given together with unknown primary")
    if primary_site_code is not None and session.get(AnatomicalSite, primary_site_code) is None:
        raise invalid("primary_site_code", primary_site_code, unknown_site(primary_site_code))


def create_plan(
    session: Session,
    *,
    actor: User | None,
    code: str,
    name: str,
    purpose: str,
    assay: str,
    donor_codes: Sequence[str] = (),
    target_depth: float | None = None,
    primary_site_code: str | None = None,
    unknown_primary: bool = False,
    description: str | None = None,
    use_suggestion: bool = True,
    primary_unsampled_reason: str | None = None,
    flow_cell: str | None = None,
) -> AnalysisPlan:
    """A draft plan for these donors, filled with the suggestion unless ``use_suggestion`` is false.

    ``flow_cell`` names the flow cell kind its budget is computed for (:mod:`biobank.services.budget`; None: the
    ``plan_flow_cell`` setting); an unknown kind is refused.

    ``primary_unsampled_reason`` declares that the primary tumour is not sampled, and why (DOMAIN.md §6 rule 15;
    ``analysis_plan.primary_unsampled_reason``, carried into the migration exports' notes).
    """
    require(actor, Action.plan)
    if not name or not name.strip():
        raise invalid("name", name, "give the plan a name")
    PlanCreate.build(code=code, name=name.strip(), purpose=purpose, assay=assay, donor_codes=tuple(donor_codes),
                     target_depth=target_depth, primary_site_code=primary_site_code, unknown_primary=unknown_primary,
                     description=description, use_suggestion=use_suggestion)
    code = code.strip()
    require_safe("code", code)
    check_enum("purpose", purpose, PlanPurpose)
    check_enum("assay", assay, Assay)
    _check_settings(session, target_depth, primary_site_code, unknown_primary)
    if session.exec(select(AnalysisPlan.id).where(AnalysisPlan.code == code)).first() is not None:
        raise ConflictError(f"code={code!r}: a plan with this code already exists", field="code", value=code)
    if session.exec(select(AnalysisPlan.id).where(AnalysisPlan.name == name.strip())).first() is not None:
        raise ConflictError(
            f"name={name.strip()!r}: a plan with this name already exists", field="name", value=name
        )
    reason = unsampled_reason(primary_unsampled_reason)
    cell = _flow_cell(flow_cell)
    ids = query.donor_ids_for(session, list(dict.fromkeys(donor_codes)))
    donors = query.donor_frame(session, donor_ids=ids)
    query.refuse_withdrawn(donors, use="plans")
    plan = add_as(session, actor, AnalysisPlan(
        code=code,
        name=name.strip(),
        purpose=str(purpose),
        assay=str(assay),
        target_depth=target_depth,
        primary_site_code=primary_site_code,
        unknown_primary=unknown_primary,
        description=description,
        primary_unsampled_reason=reason,
        flow_cell=cell,
    ))
    _add_donors(session, plan, donors, use_suggestion=use_suggestion)
    return plan


def update_plan_settings(
    session: Session,
    *,
    actor: User | None,
    plan_code: str,
    target_depth: float | None = None,
    primary_site_code: str | None = None,
    unknown_primary: bool = False,
    primary_unsampled_reason: str | None = None,
) -> AnalysisPlan:
    """Change a draft's target depth and primary site (or mark the primary unknown), as the rules may ask.

    ``primary_unsampled_reason`` declares the primary unsampled with its reason; ``""`` withdraws the declaration
    and None leaves it as it is.
    """
    require(actor, Action.plan)
    plan = _get_draft(session, plan_code)
    _check_settings(session, target_depth, primary_site_code, unknown_primary)
    act_as(session, actor)
    if target_depth is not None:
        plan.target_depth = target_depth
    plan.primary_site_code = primary_site_code
    plan.unknown_primary = unknown_primary
    if primary_unsampled_reason is not None:
        plan.primary_unsampled_reason = unsampled_reason(primary_unsampled_reason)
    session.flush()
    return plan


def set_primary_unsampled(
    session: Session, *, actor: User | None, plan_code: str, reason: str | None
) -> AnalysisPlan:
    """Declare a draft's primary tumour unsampled with ``reason`` (DOMAIN.md §6 rule 15), or withdraw the declaration
    (``reason`` None or blank). The migration exports carry the reason into their notes."""
    require(actor, Action.plan)
    return _set_draft_field(session, actor, plan_code, "primary_unsampled_reason", unsampled_reason(reason))


def _set_draft_field(session: Session, actor: User | None, plan_code: str, name: str, value: str | None) -> AnalysisPlan:
    """Set one setting of a draft (the planner's role needed), writing (and auditing) only a change."""
    require(actor, Action.plan)
    plan = _get_draft(session, plan_code)
    if value != getattr(plan, name):
        act_as(session, actor)
        setattr(plan, name, value)
        session.add(plan)
        session.flush()
    return plan


def _flow_cell(name: str | None) -> str | None:
    """The known flow cell kind ``name`` as the budget spells it; None or blank: None (the default kind)."""
    if name is None or not name.strip():
        return None
    return budgets.BudgetSettings.from_settings().kind(name).name


def set_flow_cell(session: Session, *, actor: User | None, plan_code: str, flow_cell: str | None) -> AnalysisPlan:
    """Name the flow cell kind a draft's budget is computed for (None or blank: the ``plan_flow_cell`` setting); an
    unknown kind is refused, naming the known ones."""
    require(actor, Action.plan)  # the role first: a viewer learns nothing about flow cell kinds
    return _set_draft_field(session, actor, plan_code, "flow_cell", _flow_cell(flow_cell))


def _add_donors(session: Session, plan: AnalysisPlan, donors: pd.DataFrame, *, use_suggestion: bool) -> None:
    for donor_id in donors["donor_id"]:
        session.add(PlanDonor(plan_id=_id(plan), donor_id=int(donor_id)))
    session.flush()
    if use_suggestion and not donors.empty:
        donor_ids = donors["donor_id"].tolist()
        specimens = query.specimen_records(session, donor_ids=donor_ids)
        lesions, models = _facts(session, donor_ids, specimens, purpose=plan.purpose)
        suggestion = suggest_from_frames(
            donors, specimens, plan.assay, purpose=plan.purpose, depth=plan.target_depth, lesions=lesions,
            models=models,
        )
        ids = {r["specimen_id"]: r["donor_id"] for r in specimens}
        plan_id = _id(plan)
        for c in suggestion.choices:
            session.add(
                PlanSpecimen(
                    plan_id=plan_id,
                    donor_id=int(ids[c.specimen_id]),
                    specimen_id=c.specimen_id,
                    role=c.role,
                    reason=c.reason,
                )
            )
        session.flush()


def add_donors(
    session: Session,
    *,
    actor: User | None,
    plan_code: str,
    donor_codes: Sequence[str],
    use_suggestion: bool = True,
) -> AnalysisPlan:
    """Add donors to a draft (with their suggested specimens)."""
    require(actor, Action.plan)
    plan = _get_draft(session, plan_code)
    current, _ = query.plan_selection(session, plan)
    new = [i for i in query.donor_ids_for(session, list(dict.fromkeys(donor_codes))) if i not in current]
    donors = query.donor_frame(session, donor_ids=new)
    query.refuse_withdrawn(donors, use="plans")
    act_as(session, actor)
    _add_donors(session, plan, donors, use_suggestion=use_suggestion)
    return plan


#: The longest reason a plan keeps for a specimen (``plan_specimen.reason``).
REASON_LENGTH = 300


class _Keep:
    """The value a sample already has (a new sample: none, so the plan's assay and the default depth)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclass(frozen=True)
class SampleChoice:
    """One selected specimen: its role and reason, and its own assay, depth (x; million read pairs for RNA-seq) and
    library kit. None for those means the plan's assay and the default depth (:mod:`biobank.services.budget`);
    :data:`KEEP` (the default) leaves what the sample has."""

    code: str
    role: str
    reason: str | None = None
    assay: str | None = KEEP
    target_depth: float | None = KEEP
    library: str | None = KEEP


_CHOICE_FIELDS = ("code", "role", "reason", "assay", "target_depth", "library")


def _sample_choice(item: SampleChoice | Mapping[str, Any] | Sequence[Any]) -> SampleChoice:
    """A selection row as a :class:`SampleChoice`: the dataclass, a mapping of its fields, or a tuple ``(code, role,
    reason)`` (keeps the sample's assay, depth and library) or ``(code, role, reason, assay, depth, library)``."""
    if isinstance(item, SampleChoice):
        return item
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - set(_CHOICE_FIELDS))
        if unknown:
            raise invalid("selection", unknown[0], f"unknown field; expected {', '.join(_CHOICE_FIELDS)}")
        if "code" not in item or "role" not in item:
            raise invalid("selection", dict(item), "each row needs code and role")
        return SampleChoice(**{str(k): v for k, v in item.items()})
    values = tuple(item)
    if len(values) not in (3, 6):
        raise invalid("selection", values, "expected (code, role, reason) or (code, role, reason, assay, depth, "
                      "library)")
    return SampleChoice(*values)


def set_specimens(
    session: Session,
    *,
    actor: User | None,
    plan_code: str,
    selection: Sequence[SampleChoice | Mapping[str, Any] | tuple[Any, ...]],
) -> AnalysisPlan:
    """Make the draft's included specimens exactly ``selection``: :class:`SampleChoice` rows, mappings of its fields,
    or tuples ``(specimen code, role, reason)`` (which keep each sample's assay, depth and library).

    A sample's assay comes from the vocabulary, its depth is positive and at most ``MAX_DEPTH``, its library name at
    most 80 characters; each error names the specimen. Specimens left out stay as rows with ``included`` false, so
    every change is an audited update.
    """
    require(actor, Action.plan)
    plan = _get_draft(session, plan_code)
    donor_ids, _ = query.plan_selection(session, plan)
    choices = [_sample_choice(item) for item in selection]
    codes = [c.code for c in choices]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise invalid("specimen", duplicates[0], "listed twice")
    found = query.specimen_ids_for(session, codes)
    checked: list[tuple[SampleChoice, dict[str, Any]]] = []
    for c in choices:
        check_enum("role", c.role, PlanRole)
        if c.reason is not None and len(c.reason.strip()) > REASON_LENGTH:
            raise invalid("reason", c.reason, f"is {len(c.reason.strip()):,} characters long; at most {REASON_LENGTH}")
        if found[c.code][1] not in donor_ids:
            raise invalid("specimen", c.code, f"its donor is not in plan {plan_code}; add the donor first")
        assay, depth, library = budgets.check_sample(
            c.code,
            None if c.assay is KEEP else c.assay,
            None if c.target_depth is KEEP else c.target_depth,
            None if c.library is KEEP else c.library,
        )
        given = {name: value for name, value, raw in (("assay", assay, c.assay), ("target_depth", depth, c.target_depth),
                                                     ("library", library, c.library)) if raw is not KEEP}
        checked.append((c, given))
    existing = {
        ps.specimen_id: ps
        for ps in session.exec(select(PlanSpecimen).where(PlanSpecimen.plan_id == plan.id)).all()
    }
    act_as(session, actor)
    wanted = {found[c.code][0] for c in choices}
    for specimen_id, row in existing.items():
        if specimen_id not in wanted and row.included:
            row.included = False
            session.add(row)
    for c, given in checked:
        specimen_id, donor_id = found[c.code]
        current = existing.get(specimen_id)
        if current is None:
            current = PlanSpecimen(plan_id=_id(plan), donor_id=donor_id, specimen_id=specimen_id, role=str(c.role),
                                   reason=(c.reason or "").strip() or None)
            for name, value in given.items():
                setattr(current, name, value)
            session.add(current)
        else:
            current.included = True
            current.role = str(c.role)
            if c.reason and c.reason.strip():
                current.reason = c.reason.strip()
            for name, value in given.items():
                setattr(current, name, value)
            session.add(current)
    session.flush()
    return plan


def plan_context(session: Session, plan: AnalysisPlan) -> PlanContext:
    """Everything the rules read about a plan: plan selection, donors, specimens, lesions (and models if any)."""
    donor_ids, selection = query.plan_selection(session, plan)
    records = query.specimen_records(session, donor_ids=donor_ids)
    lesions, models = _facts(session, donor_ids, records, purpose=plan.purpose)
    return PlanContext(
        purpose=plan.purpose,
        assay=plan.assay,
        donors=query.donor_frame(session, donor_ids=donor_ids),
        specimens=records,
        selection=selection,
        primary_site_code=plan.primary_site_code,
        unknown_primary=plan.unknown_primary,
        target_depth=plan.target_depth,
        primary_unsampled_reason=plan.primary_unsampled_reason,
        lesions=lesions,
        models=models,
    )


def plan_budget(session: Session, plan_code: str, *, flow_cell: str | None = None) -> budgets.Budget:
    """A plan's budget (reads only): its samples' Gb at their assay and depth, on ``flow_cell`` (default: the plan's
    kind, else the ``plan_flow_cell`` setting), with each RNA-seq sample's paired DNA sample."""
    plan = get_plan(session, plan_code)
    ctx = plan_context(session, plan)
    return budget_of(ctx, flow_cell=flow_cell or plan.flow_cell)


def budget_of(ctx: PlanContext, *, flow_cell: str | None = None) -> budgets.Budget:
    """The budget of a rule context's selection (pure: what the planner page computes on every toggle)."""
    rows = ctx.selected()
    return budgets.compute(rows, plan_assay=ctx.assay, plan_depth=ctx.target_depth, flow_cell=flow_cell,
                           settings=ctx.budget_settings)


def check_plan(session: Session, plan_code: str) -> Report:
    """The rule report of a plan (reads only)."""
    return run_rules(plan_context(session, get_plan(session, plan_code)))


def approve_plan(session: Session, *, actor: User | None, plan_code: str) -> Report:
    """Approve a draft (PI): refused while any rule reports an error, consent re-checked now. Each included sample
    reserves what it needs (:func:`biobank.services.reservations.reserve_for_approval`: refused when that is more than
    is available); an amendment supersedes the plan it amends (:mod:`biobank.services.plan_versions`)."""
    user = require(actor, Action.approve)
    plan = _get_draft(session, plan_code)
    report = run_rules(plan_context(session, plan))
    if not report.ok:
        raise PlanRulesError(plan_code, report)
    act_as(session, actor)
    # while still a draft (the database refuses plan_specimen writes after): lock, check and reserve the material
    reservations.reserve_for_approval(session, plan, release=plan_versions.released_by(session, plan))
    plan.status = PlanStatus.approved.value
    plan.approved_by_id = user.id
    plan.approved_at = utcnow()
    session.add(plan)
    session.flush()
    plan_versions.supersede_previous(session, plan, when=plan.approved_at)
    return report


def submit_plan(session: Session, *, actor: User | None, plan_code: str) -> AnalysisPlan:
    """Mark an approved plan as submitted to sequencing (consent and rules checked once more)."""
    require(actor, Action.plan)
    plan = get_plan(session, plan_code)
    plan_code = plan.code
    if plan.status != PlanStatus.approved:
        raise ConflictError(
            f"plan {plan_code} is {plan.status}; only an approved plan can be submitted", field="status"
        )
    report = run_rules(plan_context(session, plan))
    if not report.ok:
        raise PlanRulesError(plan_code, report, action="submission")
    act_as(session, actor)
    plan.status = PlanStatus.submitted.value
    plan.submitted_at = utcnow()
    session.add(plan)
    session.flush()
    return plan


__all__ = [
    "KEEP",
    "ROLES",
    "Choice",
    "Donor",
    "SampleChoice",
    "Suggestion",
    "add_donors",
    "approve_plan",
    "budget_of",
    "check_plan",
    "create_plan",
    "lesion_facts",
    "model_facts",
    "plan_budget",
    "plan_context",
    "set_flow_cell",
    "set_primary_unsampled",
    "set_specimens",
    "submit_plan",
    "suggest",
    "suggest_and_check",
    "suggest_from_frames",
    "unsampled_reason",
]
