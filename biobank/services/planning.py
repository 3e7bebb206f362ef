"""Analysis plans: suggest a default selection for a donor, keep it as a draft, check the rules, approve (PI only).

Who may do what: drafting and editing a plan needs ``Action.plan`` and approving one ``Action.approve``; both belong
to the PI role only. Technicians do not draft plans (choosing what to sequence is the investigator's decision), but
anyone may ask for a suggestion or a rule report: those only read.

The suggestion reads every specimen of the donors with one query (:func:`biobank.queries.exports.specimen_frame`) and
chooses in Python:

- the germline normal: germline blood first (its DNA extract, else buffy coat, else the blood), else the most distant
  normal tissue (never adjacent normal, never bone marrow), DNA extract preferred;
- per region of each lesion the best specimen for the assay: snap-frozen or OCT before RNAlater before FFPE; the
  extracted analyte (DNA for DNA assays, RNA for RNA-seq) before unextracted tissue; highest tumour cellularity;
  enough nucleic acid of good quality (A260/280, DIN); lower PMI. Acid-decalcified material is never proposed for
  WGS and regions below 20 % cellularity are skipped (each skip explained).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from sqlmodel import Session, select

from biobank.domain.codes import require_safe
from biobank.domain.errors import ConflictError, invalid
from biobank.domain.sites import unknown_site
from biobank.models import AnatomicalSite, Donor, User
from biobank.models.audit import act_as, add_as
from biobank.models.base import utcnow
from biobank.models.plans import (
    DNA_ASSAYS,
    AnalysisPlan,
    Assay,
    PlanDonor,
    PlanPurpose,
    PlanRole,
    PlanSpecimen,
    PlanStatus,
)
from biobank.queries import exports as query
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum
from biobank.services.inputs import PlanCreate, PlanSettings
from biobank.services.lookup import by_code
from biobank.services.plan_rules import (
    _ACID,
    A260_280_RANGE,
    CELLULARITY_EXCLUDE,
    MIN_DIN_WGS,
    MIN_INPUT_NG,
    UNAVAILABLE,
    PlanContext,
    PlanRulesError,
    Report,
    _num,
    _origin_format,
    _rows,
    available_ng,
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
    for label, key in (("A260/280", "a260_280"), ("DIN", "din"), ("RIN", "rin")):
        value = _num(row.get(key))
        if value is not None:
            parts.append(f"{label} {value:g}")
    return ", ".join(parts)


def _qc_score(row: dict[str, Any], assay: str) -> int:
    """0 when quantity and quality are good, 1 when unknown, 2 when known to be poor."""
    if row.get("material_type") not in ("dna", "rna"):
        return 1
    amount = available_ng(row)
    ratio = _num(row.get("a260_280"))
    din = _num(row.get("din"))
    if amount is None or ratio is None:
        return 1
    poor = amount < MIN_INPUT_NG.get(assay, 0) or not A260_280_RANGE[0] <= ratio <= A260_280_RANGE[1]
    if assay == "wgs" and din is not None and din < MIN_DIN_WGS:
        poor = True
    return 2 if poor else 0


def _describe(row: dict[str, Any], analyte: str) -> str:
    fmt = FORMAT_TEXT.get(_origin_format(row), _origin_format(row))
    if row.get("material_type") == analyte:
        what = f"{analyte.upper()} extract of {fmt} tissue"
    else:
        what = f"{fmt} {row.get('material_type')} (no {analyte.upper()} extracted yet)"
    return what


def _tumour_key(row: dict[str, Any], analyte: str, assay: str) -> tuple[Any, ...]:
    pct = _num(row.get("tumour_cellularity_pct"))
    pmi = _num(row.get("pmi_hours"))
    return (
        FORMAT_RANK.get(_origin_format(row), 3),
        0 if row.get("material_type") == analyte else 1,
        -(pct if pct is not None else -1.0),
        _qc_score(row, assay),
        -(available_ng(row) or 0.0) if row.get("material_type") == analyte else 0.0,
        pmi if pmi is not None else math.inf,
        row["specimen_code"],
    )


def suggest_from_frames(
    donors: pd.DataFrame | list[dict[str, Any]], specimens: pd.DataFrame | list[dict[str, Any]], assay: str
) -> Suggestion:
    """The default selection for these donors (pure: rows in, choices out; frames or records)."""
    check_enum("assay", assay, Assay)
    dna = assay in DNA_ASSAYS
    analyte = "dna" if dna else "rna"
    choices: list[Choice] = []
    skipped: list[str] = []
    by_donor: dict[str, list[dict[str, Any]]] = {}
    for r in _rows(specimens):
        if r["status"] not in UNAVAILABLE:
            by_donor.setdefault(r["donor_code"], []).append(r)
    for donor in (d["donor_code"] for d in _rows(donors)):
        records = by_donor.get(donor)
        if not records:
            skipped.append(f"{donor}: no available specimens")
            continue
        if dna:
            germline = _germline(records)
            if germline is None:
                skipped.append(f"{donor}: no germline blood or distant normal tissue available")
            else:
                choices.append(germline)
        regions: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            if r["site_kind"] != "tumour_region" or r["material_type"] not in TUMOUR_MATERIALS:
                continue
            if (dna and r["material_type"] == "rna") or (not dna and r["material_type"] == "dna"):
                continue
            if assay == "wgs" and r.get("decalcification_agent") in _ACID:
                continue
            regions.setdefault(str(r["region_code"]), []).append(r)
        for region in sorted(regions):
            candidates = sorted(regions[region], key=lambda r: _tumour_key(r, analyte, assay))
            best = candidates[0]
            pct = _num(best.get("tumour_cellularity_pct"))
            if pct is not None and pct < CELLULARITY_EXCLUDE:
                skipped.append(
                    f"{donor} {region}: best tumour cellularity {pct:g} % is below {CELLULARITY_EXCLUDE:g} %"
                )
                continue
            bits = [_describe(best, analyte)]
            if pct is not None:
                source = best.get("cellularity_source")
                bits.append(
                    f"cellularity {pct:g} %"
                    + (f" (from {source})" if source and source != "specimen" else "")
                )
            else:
                bits.append("cellularity not recorded")
            qc = _qc_text(best)
            if qc:
                bits.append(qc)
            pmi = _num(best.get("pmi_hours"))
            if pmi is not None:
                bits.append(f"PMI {pmi:.1f} h")
            reason = f"{region}: " + ", ".join(bits) + f"; best of {len(candidates)}"
            choices.append(_choice(best, "tumour", reason))
    return Suggestion(assay, choices, skipped)


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
        reason=reason[:300],
    )


def _germline(records: list[dict[str, Any]]) -> Choice | None:
    blood = [
        r for r in records if r["site_kind"] == "germline_blood" and r["material_type"] in GERMLINE_BLOOD_RANK
    ]
    if blood:
        best = min(
            blood,
            key=lambda r: (
                GERMLINE_BLOOD_RANK[r["material_type"]],
                _qc_score(r, "wgs"),
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
        and r["tissue_status"] == "normal"
        and distance(r) >= 20
        and r["material_type"] in ("dna", "tissue")
        and r.get("decalcification_agent") not in _ACID
    ]
    if not tissue:
        return None
    best = min(
        tissue,
        key=lambda r: (
            0 if r["material_type"] == "dna" else 1,
            FORMAT_RANK.get(_origin_format(r), 3),
            -distance(r),
            _num(r.get("pmi_hours")) or math.inf,
            r["specimen_code"],
        ),
    )
    far = "an organ without tumour" if distance(best) == math.inf else f"{distance(best):g} mm from tumour"
    reason = f"germline normal: {_describe(best, 'dna')} of {best['site_label']} ({far}); no germline blood available"
    return _choice(best, "germline_normal", reason)


def suggest(session: Session, *, donor_codes: Sequence[str], assay: str) -> Suggestion:
    """The default plan for these donors: two queries (donors, specimens), then Python."""
    check_enum("assay", assay, Assay)
    ids = query.donor_ids_for(session, donor_codes)
    donors = query.donor_frame(session, donor_ids=ids)
    return suggest_from_frames(donors, query.specimen_records(session, donor_ids=ids), assay)


def suggest_and_check(
    session: Session, *, donor_codes: Sequence[str], assay: str, purpose: str = PlanPurpose.phylogeny.value
) -> tuple[Suggestion, Report]:
    """The suggestion and the rule report of a plan holding it: two queries for both, then Python."""
    check_enum("purpose", purpose, PlanPurpose)
    ids = query.donor_ids_for(session, donor_codes)
    donors = query.donor_frame(session, donor_ids=ids)
    records = query.specimen_records(session, donor_ids=ids)
    suggestion = suggest_from_frames(donors, records, assay)
    ctx = PlanContext(purpose=purpose, assay=assay, donors=donors, specimens=records, selection=suggestion.selection())
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
) -> AnalysisPlan:
    """A draft plan for these donors, filled with the suggestion unless ``use_suggestion`` is false."""
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
) -> AnalysisPlan:
    """Change a draft's target depth and primary site (or mark the primary unknown), as the rules may ask."""
    require(actor, Action.plan)
    plan = _get_draft(session, plan_code)
    _check_settings(session, target_depth, primary_site_code, unknown_primary)
    act_as(session, actor)
    if target_depth is not None:
        plan.target_depth = target_depth
    plan.primary_site_code = primary_site_code
    plan.unknown_primary = unknown_primary
    session.flush()
    return plan


def _add_donors(session: Session, plan: AnalysisPlan, donors: pd.DataFrame, *, use_suggestion: bool) -> None:
    for donor_id in donors["donor_id"]:
        session.add(PlanDonor(plan_id=_id(plan), donor_id=int(donor_id)))
    session.flush()
    if use_suggestion and not donors.empty:
        specimens = query.specimen_records(session, donor_ids=donors["donor_id"].tolist())
        suggestion = suggest_from_frames(donors, specimens, plan.assay)
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


def set_specimens(
    session: Session,
    *,
    actor: User | None,
    plan_code: str,
    selection: Sequence[tuple[str, str, str | None]],
) -> AnalysisPlan:
    """Make the draft's included specimens exactly ``selection`` (``(specimen code, role, reason)``).

    Specimens left out stay as rows with ``included`` false, so every change is an audited update.
    """
    require(actor, Action.plan)
    plan = _get_draft(session, plan_code)
    donor_ids, _ = query.plan_selection(session, plan)
    codes = [code for code, _, _ in selection]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise invalid("specimen", duplicates[0], "listed twice")
    found = query.specimen_ids_for(session, codes)
    for code, role, reason in selection:
        check_enum("role", role, PlanRole)
        if reason is not None and len(reason.strip()) > REASON_LENGTH:
            raise invalid("reason", reason, f"is {len(reason.strip()):,} characters long; at most {REASON_LENGTH}")
        if found[code][1] not in donor_ids:
            raise invalid("specimen", code, f"its donor is not in plan {plan_code}; add the donor first")
    existing = {
        ps.specimen_id: ps
        for ps in session.exec(select(PlanSpecimen).where(PlanSpecimen.plan_id == plan.id)).all()
    }
    act_as(session, actor)
    wanted = {found[code][0]: (role, reason) for code, role, reason in selection}
    for specimen_id, row in existing.items():
        if specimen_id not in wanted and row.included:
            row.included = False
            session.add(row)
    for code, role, reason in selection:
        specimen_id, donor_id = found[code]
        current = existing.get(specimen_id)
        if current is None:
            session.add(
                PlanSpecimen(
                    plan_id=_id(plan),
                    donor_id=donor_id,
                    specimen_id=specimen_id,
                    role=str(role),
                    reason=(reason or "").strip() or None,
                )
            )
        else:
            current.included = True
            current.role = str(role)
            if reason and reason.strip():
                current.reason = reason.strip()
            session.add(current)
    session.flush()
    return plan


def plan_context(session: Session, plan: AnalysisPlan) -> PlanContext:
    """Everything the rules read about a plan: three queries (plan selection, donors, specimens)."""
    donor_ids, selection = query.plan_selection(session, plan)
    return PlanContext(
        purpose=plan.purpose,
        assay=plan.assay,
        donors=query.donor_frame(session, donor_ids=donor_ids),
        specimens=query.specimen_records(session, donor_ids=donor_ids),
        selection=selection,
        primary_site_code=plan.primary_site_code,
        unknown_primary=plan.unknown_primary,
    )


def check_plan(session: Session, plan_code: str) -> Report:
    """The rule report of a plan (reads only)."""
    return run_rules(plan_context(session, get_plan(session, plan_code)))


def approve_plan(session: Session, *, actor: User | None, plan_code: str) -> Report:
    """Approve a draft (PI): refused while any rule reports an error, consent re-checked now."""
    user = require(actor, Action.approve)
    plan = _get_draft(session, plan_code)
    report = run_rules(plan_context(session, plan))
    if not report.ok:
        raise PlanRulesError(plan_code, report)
    act_as(session, actor)
    plan.status = PlanStatus.approved.value
    plan.approved_by_id = user.id
    plan.approved_at = utcnow()
    session.add(plan)
    session.flush()
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
    "Choice",
    "Donor",
    "Suggestion",
    "add_donors",
    "approve_plan",
    "check_plan",
    "create_plan",
    "plan_context",
    "set_specimens",
    "submit_plan",
    "suggest",
    "suggest_and_check",
    "suggest_from_frames",
]
