"""The one query layer every export, the planner's suggestion and its rules read through (DOMAIN.md §6).

Each function is a handful of joined SELECTs (never a query per row) returning pandas frames:

- :func:`specimen_frame`: every column the planner, the rules and the writers need, one row per specimen;
- :func:`donor_frame`: one row per donor with its consent state (withdrawn, scopes);
- :func:`export_frames`: the ``donors``/``samples`` pair of the :mod:`biobank.exports.formats` contract, for a plan's
  specimens or for any set of donors and specimens, de-identified by default and refusing withdrawn donors and
  donors without consent to the use.

De-identification: the frames carry times as hours after death (``hours_after_death``, ``pmi_hours``) and days
before death; absolute times (``death_at``, ``collected_at``) are blanked unless ``identified=True``.

Tumour cellularity is the specimen's own pathology review, else its parent's, else the mean of the reviews of the
same region (a DNA extract inherits the cellularity of the block it came from); ``cellularity_source`` says which.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Select, case, func, select
from sqlmodel import Session
from sqlmodel import select as sqlmodel_select

from biobank.db.sqlfunc import hours_between
from biobank.domain.errors import ConsentError, NotFoundError
from biobank.domain.vocab import ConsentScope
from biobank.exports.formats import DONOR_COLUMNS, SAMPLE_COLUMNS
from biobank.models import (
    AnatomicalSite,
    Autopsy,
    ClinicalEvent,
    Consent,
    ConsentWithdrawal,
    Donor,
    Lesion,
    SamplingSite,
    Specimen,
    TreatmentLine,
)
from biobank.models.base import fetch_one
from biobank.models.derived import DerivedModel, ModelPassage
from biobank.models.plans import AnalysisPlan, PlanDonor, PlanSpecimen
from biobank.queries import storage as storage_reads
from biobank.services.donors import latest_consents


def _table(model: type) -> Any:
    """A model's table (its columns under ``.c``), typed loosely so Core selects stay readable."""
    return model.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass for table models


_SPECIMEN_TABLE = _table(Specimen)
_ANATOMICAL_SITE_TABLE = _table(AnatomicalSite)
_SPECIMEN: Any = _table(Specimen).c
_DONOR: Any = _table(Donor).c
_SAMPLING_SITE: Any = _table(SamplingSite).c
_LESION: Any = _table(Lesion).c
_AUTOPSY: Any = _table(Autopsy).c
_CONSENT: Any = _table(Consent).c
_CONSENT_WITHDRAWAL: Any = _table(ConsentWithdrawal).c
_TREATMENT_LINE: Any = _table(TreatmentLine).c
_CLINICAL_EVENT: Any = _table(ClinicalEvent).c
_PLAN_DONOR: Any = _table(PlanDonor).c
_PLAN_SPECIMEN: Any = _table(PlanSpecimen).c
_ANALYSIS_PLAN: Any = _table(AnalysisPlan).c
_ANATOMICAL_SITE: Any = _table(AnatomicalSite).c

#: Role a specimen takes in an export that is not a plan (from the kind of its sampling site).
ROLE_BY_SITE_KIND = {
    "tumour_region": "tumour",
    "germline_blood": "germline_normal",
    "normal_tissue": "normal_tissue",
    "bone_marrow": "normal_tissue",
    "premortem_blood": "normal_tissue",
}
#: Order of the roles in an export: the normals first, the patient's tumour, then material grown in a model.
ROLE_ORDER = {"germline_normal": 0, "normal_tissue": 1, "tumour": 2, "model": 3}


def _frame(session: Session, statement: Select[Any]) -> pd.DataFrame:
    result = session.execute(statement)
    return pd.DataFrame(result.all(), columns=list(result.keys()))


def specimen_frame(
    session: Session,
    *,
    donor_ids: Iterable[int] | None = None,
    specimen_ids: Iterable[int] | None = None,
) -> pd.DataFrame:
    """One row per specimen of the given donors (or the given specimens), with site, lesion, QC and PMI: one query."""
    records = specimen_records(session, donor_ids=donor_ids, specimen_ids=specimen_ids)
    frame = pd.DataFrame(
        records,
        columns=[*_specimen_statement().selected_columns.keys(), "storage_temperature", *MODEL_COLUMNS],
    )
    frame["passage_number"] = pd.to_numeric(frame["passage_number"], errors="coerce").astype("Int64")
    for column in ("hours_after_death", "pmi_hours", "tumour_cellularity_pct"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def specimen_records(
    session: Session,
    *,
    donor_ids: Iterable[int] | None = None,
    specimen_ids: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """The rows of :func:`specimen_frame` as plain dicts (what the planner loops over: no pandas per-row cost)."""
    statement = _specimen_statement()
    if donor_ids is not None:
        statement = statement.where(_SPECIMEN.donor_id.in_(list(donor_ids)))
    if specimen_ids is not None:
        statement = statement.where(_SPECIMEN.id.in_(list(specimen_ids)))
    rows = [dict(row) for row in session.execute(statement).mappings()]
    temperatures = _storage_temperatures(session, [r["specimen_id"] for r in rows])
    provenance = model_provenance(session, rows)
    for row, temperature in zip(rows, temperatures, strict=True):
        row["storage_temperature"] = temperature
        grown = provenance.get(row["specimen_id"])
        row.update(grown or NO_MODEL)
        inherited = row["cellularity_source"]
        if grown and (inherited == "region" or (grown["_passage_output"] and inherited == "parent")):
            # The patient's region (or the patient vial a passage grew from) says nothing of the model's tumour content.
            row["tumour_cellularity_pct"] = row["cellularity_source"] = None
        row.pop("_passage_output", None)
        for column in ("hours_after_death", "pmi_hours", "tumour_cellularity_pct"):
            if row[column] is not None:
                row[column] = float(row[column])
    return rows


def _specimen_statement() -> Select[Any]:
    """The one SELECT behind :func:`specimen_frame` and :func:`specimen_records`."""
    parent_table = _SPECIMEN_TABLE.alias("parent")
    parent = parent_table.c
    site_table = _ANATOMICAL_SITE_TABLE.alias("site")
    site = site_table.c
    reviewed = (
        select(
            _SPECIMEN.sampling_site_id.label("site_id"),
            func.avg(_SPECIMEN.tumour_cellularity_pct).label("region_cellularity"),
        )
        .where(_SPECIMEN.tumour_cellularity_pct.is_not(None))
        .group_by(_SPECIMEN.sampling_site_id)
        .subquery()
    )
    own = _SPECIMEN.tumour_cellularity_pct
    statement = (
        select(
            _SPECIMEN.id.label("specimen_id"),
            _SPECIMEN.code.label("specimen_code"),
            _DONOR.id.label("donor_id"),
            _DONOR.code.label("donor_code"),
            _SPECIMEN.parent_id,
            parent.code.label("parent_code"),
            _SPECIMEN.lineage,
            _SPECIMEN.material_type,
            _SPECIMEN.storage_format,
            parent.storage_format.label("parent_storage_format"),
            _SPECIMEN.status,
            _SAMPLING_SITE.id.label("sampling_site_id"),
            _SAMPLING_SITE.kind.label("site_kind"),
            _SAMPLING_SITE.tissue_status,
            _SAMPLING_SITE.distance_to_tumour_mm,
            _LESION.code.label("lesion_code"),
            _LESION.kind.label("lesion_kind"),
            _SAMPLING_SITE.code.label("region_code"),
            _SAMPLING_SITE.site_code,
            site["label"].label("site_label"),
            site.uberon_id.label("site_uberon"),
            site.category.label("site_category_vocab"),
            _SAMPLING_SITE.laterality,
            _SPECIMEN.collected_at,
            hours_between(_AUTOPSY.death_at, _SPECIMEN.collected_at).label("hours_after_death"),
            hours_between(
                _AUTOPSY.death_at, func.coalesce(_SPECIMEN.stabilised_at, _SPECIMEN.collected_at)
            ).label("pmi_hours"),
            case((_SPECIMEN.stabilised_at.is_not(None), "stabilised"), else_="excised").label("pmi_basis"),
            func.coalesce(own, parent.tumour_cellularity_pct, reviewed.c.region_cellularity).label(
                "tumour_cellularity_pct"
            ),
            case(
                (own.is_not(None), "specimen"),
                (parent.tumour_cellularity_pct.is_not(None), "parent"),
                (reviewed.c.region_cellularity.is_not(None), "region"),
                else_=None,
            ).label("cellularity_source"),
            _SPECIMEN.quantity,
            _SPECIMEN.quantity_remaining,
            _SPECIMEN.unit,
            _SPECIMEN.concentration_ng_ul,
            _SPECIMEN.yield_ng,
            _SPECIMEN.a260_280,
            _SPECIMEN.din,
            _SPECIMEN.rin,
            _SPECIMEN.dv200_pct,
            _SPECIMEN.fixative,
            _SPECIMEN.decalcification_agent,
            _SPECIMEN.decalcification_hours,
            _SPECIMEN.freeze_thaw_count,
        )
        .select_from(Specimen)
        .join(Donor, _DONOR.id == _SPECIMEN.donor_id)
        .join(SamplingSite, _SAMPLING_SITE.id == _SPECIMEN.sampling_site_id)
        .join(site_table, site.code == _SAMPLING_SITE.site_code)
        .join(Lesion, _LESION.id == _SAMPLING_SITE.lesion_id, isouter=True)
        .join(Autopsy, _AUTOPSY.donor_id == _DONOR.id, isouter=True)
        .join(parent_table, parent.id == _SPECIMEN.parent_id, isouter=True)
        .join(reviewed, reviewed.c.site_id == _SPECIMEN.sampling_site_id, isouter=True)
        .order_by(_DONOR.code, _SPECIMEN.code)
    )
    return statement


#: Where a specimen grown in a model came from (all NA for the patient's own material): the model, its kind
#: (``pdx|organoid|cell_line``), the passage label and number, the PDX host strain, and the patient specimen the
#: model was derived from. Set on a passage's specimen and on everything made from it (aliquots, extracts).
MODEL_COLUMNS: tuple[str, ...] = (
    "model_code",
    "model_kind",
    "passage",
    "passage_number",
    "host",
    "model_source_code",
)
NO_MODEL: dict[str, Any] = dict.fromkeys(MODEL_COLUMNS)


def model_provenance(session: Session, rows: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """``{specimen id: MODEL_COLUMNS values and _passage_output}`` for the rows that were grown in a model or made from such material.

    A specimen is model material when it, or any ancestor, was produced by a model passage. Lineage never crosses
    donors, so one read of the donors' ``id, parent_id, passage_id`` resolves every ancestor chain; a second reads
    the passages found. Two queries whatever the number of rows.
    """
    donor_ids = sorted({int(r["donor_id"]) for r in rows})
    if not donor_ids:
        return {}
    links: dict[int, tuple[int | None, int | None]] = {}
    for start in range(0, len(donor_ids), 5000):
        chunk = donor_ids[start : start + 5000]
        for sid, parent_id, passage_id in session.execute(
            select(_SPECIMEN.id, _SPECIMEN.parent_id, _SPECIMEN.passage_id).where(_SPECIMEN.donor_id.in_(chunk))
        ).all():
            links[sid] = (parent_id, passage_id)
    if not any(p is not None for _, p in links.values()):
        return {}
    resolved: dict[int, int | None] = {}

    def passage_of(sid: int) -> int | None:
        chain: list[int] = []
        current: int | None = sid
        found: int | None = None
        while current is not None and current not in resolved:
            chain.append(current)
            parent_id, passage_id = links.get(current, (None, None))
            if passage_id is not None:
                found = passage_id
                break
            current = parent_id
        else:
            found = resolved.get(current) if current is not None else None
        for link in chain:
            resolved[link] = found
        return found

    wanted = {int(r["specimen_id"]): passage_of(int(r["specimen_id"])) for r in rows}
    passages = sorted({p for p in wanted.values() if p is not None})
    if not passages:
        return {}
    model_table = _table(DerivedModel).c
    passage_table = _table(ModelPassage).c
    source_table = _SPECIMEN_TABLE.alias("model_source")
    source = source_table.c
    details = {
        row["passage_id"]: row
        for row in session.execute(
            select(
                passage_table.id.label("passage_id"),
                model_table.code.label("model_code"),
                model_table.kind.label("model_kind"),
                passage_table.label.label("passage"),
                passage_table.number.label("passage_number"),
                model_table.host_strain_name.label("host"),
                source.code.label("model_source_code"),
            )
            .join(DerivedModel, model_table.id == passage_table.model_id)
            .join(source_table, source.id == model_table.source_specimen_id)
            .where(passage_table.id.in_(passages))
        ).mappings()
    }
    return {
        sid: {c: details[p][c] for c in MODEL_COLUMNS} | {"_passage_output": links[sid][1] is not None}
        for sid, p in wanted.items()
        if p is not None and p in details
    }


def _storage_temperatures(session: Session, specimen_ids: list[int]) -> list[Any]:
    """MIABIS temperature class per specimen where it is stored, else NA (never guessed)."""
    if not specimen_ids:
        return []
    found = storage_reads.storage_temperatures(session, specimen_ids)
    return [found.get(i) for i in specimen_ids]


def donor_frame(session: Session, *, donor_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """One row per donor: the contract's columns plus ``donor_id``, ``status``, ``withdrawn`` and consent scopes."""
    primary_table = _ANATOMICAL_SITE_TABLE.alias("primary_site")
    primary = primary_table.c
    scopes = latest_consents()  # the latest consent version governs (DOMAIN.md §2 "Consent"), not the union
    statement = (
        select(
            _DONOR.id.label("donor_id"),
            _DONOR.code.label("donor_code"),
            _DONOR.sex,
            _DONOR.age_at_death,
            _DONOR.primary_diagnosis,
            _DONOR.icdo3_topography,
            _DONOR.icdo3_morphology,
            _DONOR.primary_site_code,
            primary["label"].label("primary_site_label"),
            primary.uberon_id.label("primary_site_uberon"),
            _DONOR.diagnosis_days_before_death,
            _DONOR.cause_of_death,
            _AUTOPSY.death_at,
            _DONOR.status,
            _CONSENT_WITHDRAWAL.id.is_not(None).label("withdrawn"),
            *[func.coalesce(scopes.c[s.value], False).label(s.value) for s in ConsentScope],
        )
        .select_from(Donor)
        .join(primary_table, primary.code == _DONOR.primary_site_code, isouter=True)
        .join(Autopsy, _AUTOPSY.donor_id == _DONOR.id, isouter=True)
        .join(ConsentWithdrawal, _CONSENT_WITHDRAWAL.donor_id == _DONOR.id, isouter=True)
        .join(scopes, scopes.c.donor_id == _DONOR.id, isouter=True)
        .order_by(_DONOR.code)
    )
    if donor_ids is not None:
        statement = statement.where(_DONOR.id.in_(list(donor_ids)))
    frame = _frame(session, statement)
    frame["withdrawn"] = frame["withdrawn"].astype(bool)
    for s in ConsentScope:
        frame[s.value] = frame[s.value].astype(int).astype(bool)
    for column in ("age_at_death", "diagnosis_days_before_death"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def donor_ids_for(session: Session, codes: Sequence[str]) -> list[int]:
    """Ids of the donors with these codes; NotFoundError names every unknown code."""
    if not codes:
        return []
    found = dict(session.execute(select(_DONOR.code, _DONOR.id).where(_DONOR.code.in_(list(codes)))).all())
    missing = [c for c in codes if c not in found]
    if missing:
        raise NotFoundError(f"donor(s) not found: {', '.join(missing)}", field="donor", value=missing[0])
    return [found[c] for c in codes]


def specimen_ids_for(session: Session, codes: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``{code: (specimen id, donor id)}``; NotFoundError names every unknown code."""
    if not codes:
        return {}
    rows = session.execute(
        select(_SPECIMEN.code, _SPECIMEN.id, _SPECIMEN.donor_id).where(_SPECIMEN.code.in_(list(codes)))
    ).all()
    found = {code: (sid, did) for code, sid, did in rows}
    missing = [c for c in codes if c not in found]
    if missing:
        raise NotFoundError(
            f"specimen(s) not found: {', '.join(missing)}", field="specimen", value=missing[0]
        )
    return found


def get_plan(session: Session, code: str) -> AnalysisPlan:
    statement = sqlmodel_select(AnalysisPlan).where(_ANALYSIS_PLAN.code == code)
    return fetch_one(session, statement, what="analysis plan", field="plan", value=code)


def plan_selection(session: Session, plan: AnalysisPlan) -> tuple[list[int], pd.DataFrame]:
    """The plan's donor ids and its included specimens as a frame ``specimen_id, role, reason, assay, target_depth,
    library`` (the last three the sample's own; None: the plan's assay and the default depth)."""
    donor_ids = [
        int(d)
        for d in session.execute(select(_PLAN_DONOR.donor_id).where(_PLAN_DONOR.plan_id == plan.id)).scalars()
    ]
    selection = _frame(
        session,
        select(_PLAN_SPECIMEN.specimen_id, _PLAN_SPECIMEN.role, _PLAN_SPECIMEN.reason, _PLAN_SPECIMEN.assay,
               _PLAN_SPECIMEN.target_depth, _PLAN_SPECIMEN.library)
        .where(_PLAN_SPECIMEN.plan_id == plan.id, _PLAN_SPECIMEN.included.is_(True))
        .order_by(_PLAN_SPECIMEN.id),
    )
    return donor_ids, selection


@dataclass
class ExportFrames:
    """The two frames of the writers' contract, plus what the selection left out and why."""

    donors: pd.DataFrame
    samples: pd.DataFrame
    excluded: list[str] = field(default_factory=list)


def refuse_withdrawn(donors: pd.DataFrame, *, use: str) -> None:
    """Refuse withdrawn donors (one message naming them all): their material is blocked from ``use``."""
    withdrawn = donors.loc[donors["withdrawn"], "donor_code"].tolist()
    if withdrawn:
        raise ConsentError(
            f"consent withdrawn for {', '.join(withdrawn)}: their material is blocked from {use}",
            field="donor",
            value=withdrawn[0],
        )


def check_consent(donors: pd.DataFrame, scope: str, *, use: str) -> None:
    """Refuse withdrawn donors and donors whose consent does not cover ``scope`` (one message naming them all)."""
    refuse_withdrawn(donors, use=use)
    lacking = donors.loc[~donors[scope].astype(bool), "donor_code"].tolist()
    if lacking:
        raise ConsentError(
            f"no consent to {scope} for {', '.join(lacking)}: {use} refused", field="consent", value=scope
        )


def export_frames(
    session: Session,
    *,
    plan_code: str | None = None,
    donor_codes: Sequence[str] = (),
    specimen_codes: Sequence[str] = (),
    selection: pd.DataFrame | None = None,
    scope: str = ConsentScope.research_use.value,
    identified: bool = False,
) -> ExportFrames:
    """The ``donors`` and ``samples`` frames for a plan, for donors and/or specimens, or (nothing given) the cohort.

    A withdrawn donor never appears: naming one (or a plan holding one) raises :class:`ConsentError`, and in a
    whole-cohort export withdrawn donors and donors without consent to ``scope`` are left out and listed in
    ``excluded``. ``selection`` (``specimen_id, role``) picks the donors' specimens and their roles explicitly.
    """
    excluded: list[str] = []
    roles: pd.DataFrame | None = None
    if plan_code is not None:
        plan = get_plan(session, plan_code)
        donor_ids, roles = plan_selection(session, plan)
        donors = donor_frame(session, donor_ids=donor_ids)
        check_consent(donors, scope, use=f"export of plan {plan_code}")
        specimens = specimen_frame(session, specimen_ids=roles["specimen_id"].tolist())
    elif selection is not None:
        ids = donor_ids_for(session, donor_codes)
        donors = donor_frame(session, donor_ids=ids)
        check_consent(donors, scope, use="export")
        roles = selection
        specimens = specimen_frame(session, specimen_ids=roles["specimen_id"].tolist())
        specimens = specimens[specimens["donor_id"].isin(ids)]
    elif donor_codes or specimen_codes:
        chosen = specimen_ids_for(session, specimen_codes)
        ids = donor_ids_for(session, donor_codes)
        ids += [d for _, d in chosen.values() if d not in ids]
        donors = donor_frame(session, donor_ids=ids)
        check_consent(donors, scope, use="export")
        if specimen_codes:
            specimens = specimen_frame(session, specimen_ids=[s for s, _ in chosen.values()])
            extra = [
                i for i in donor_ids_for(session, donor_codes) if i not in {d for _, d in chosen.values()}
            ]
            if extra:
                specimens = pd.concat(
                    [specimens, specimen_frame(session, donor_ids=extra)], ignore_index=True
                )
        else:
            specimens = specimen_frame(session, donor_ids=ids)
    else:
        donors = donor_frame(session)
        blocked = donors["withdrawn"] | ~donors[scope].astype(bool)
        excluded = [
            f"{code}: {'consent withdrawn' if w else f'no consent to {scope}'}"
            for code, w in zip(
                donors.loc[blocked, "donor_code"], donors.loc[blocked, "withdrawn"], strict=True
            )
        ]
        donors = donors[~blocked].reset_index(drop=True)
        specimens = specimen_frame(session, donor_ids=donors["donor_id"].tolist())
    if roles is not None:
        specimens = specimens.merge(roles[["specimen_id", "role"]], on="specimen_id", how="inner")
    else:
        specimens["role"] = specimens["site_kind"].map(ROLE_BY_SITE_KIND)
    specimens = specimens.assign(_order=specimens["role"].map(ROLE_ORDER)).sort_values(
        ["donor_code", "_order", "specimen_code"], kind="stable"
    )
    if not identified:
        donors = donors.assign(death_at=pd.Series(pd.NaT, index=donors.index))
        specimens = specimens.assign(collected_at=pd.Series(pd.NaT, index=specimens.index))
    return ExportFrames(
        donors=donors[list(DONOR_COLUMNS)].reset_index(drop=True),
        samples=specimens[list(SAMPLE_COLUMNS)].reset_index(drop=True),
        excluded=excluded,
    )


def _donor_rows(
    session: Session,
    table: Any,
    donor_ids: Sequence[int],
    *,
    columns: Sequence[Any],
    order_by: Any,
    outer_joins: Sequence[tuple[Any, Any]] = (),
) -> pd.DataFrame:
    """The rows of a donor's table (``table``: its columns) for these donors: ``donor_id`` and ``columns``, with
    ``outer_joins`` as (model, on clause), ordered by donor, then ``order_by``."""
    statement = select(table.donor_id, *columns)
    for model, on in outer_joins:
        statement = statement.join(model, on, isouter=True)
    return _frame(session, statement.where(table.donor_id.in_(list(donor_ids))).order_by(table.donor_id, order_by))


def entity_frames(
    session: Session, donor_ids: Sequence[int], *, identified: bool = False
) -> dict[str, pd.DataFrame]:
    """Every entity of the given donors for the tables export: donors, lesions, sampling sites, specimens,
    treatment lines and clinical events (times relative to death)."""
    donors = donor_frame(session, donor_ids=donor_ids)
    specimens = specimen_frame(session, donor_ids=donor_ids)
    codes = dict(zip(donors["donor_id"], donors["donor_code"], strict=True))
    lesions = _donor_rows(
        session,
        _LESION,
        donor_ids,
        columns=(_LESION.code.label("lesion_code"), _LESION.site_code, _LESION.laterality, _LESION.kind,
                 _LESION.bone_phenotype, _LESION.size_mm, _LESION.imaging_response, _LESION.er_status,
                 _LESION.pr_status, _LESION.her2_status),
        order_by=_LESION.code,
    )
    sites = _donor_rows(
        session,
        _SAMPLING_SITE,
        donor_ids,
        columns=(_SAMPLING_SITE.code.label("region_code"), _SAMPLING_SITE.kind, _SAMPLING_SITE.tissue_status,
                 _SAMPLING_SITE.distance_to_tumour_mm, _SAMPLING_SITE.site_code, _SAMPLING_SITE.laterality,
                 _LESION.code.label("lesion_code"),
                 hours_between(_AUTOPSY.death_at, _SAMPLING_SITE.excised_at).label("hours_after_death")),
        order_by=_SAMPLING_SITE.code,
        outer_joins=((Lesion, _LESION.id == _SAMPLING_SITE.lesion_id),
                     (Autopsy, _AUTOPSY.donor_id == _SAMPLING_SITE.donor_id)),
    )
    treatments = _donor_rows(
        session,
        _TREATMENT_LINE,
        donor_ids,
        columns=(_TREATMENT_LINE.line_number, _TREATMENT_LINE.agents, _TREATMENT_LINE.category,
                 _TREATMENT_LINE.intent, _TREATMENT_LINE.start_days_before_death,
                 _TREATMENT_LINE.end_days_before_death, _TREATMENT_LINE.best_response),
        order_by=_TREATMENT_LINE.line_number,
    )
    events = _donor_rows(
        session,
        _CLINICAL_EVENT,
        donor_ids,
        columns=(_CLINICAL_EVENT.kind, _CLINICAL_EVENT.days_before_death, _CLINICAL_EVENT.site_code),
        order_by=_CLINICAL_EVENT.days_before_death.desc(),
    )
    if identified:
        # who collected each specimen (a person's name) and its notes: identified tables only (issue 19)
        people = {
            specimen_id: (collected_by, notes)
            for specimen_id, collected_by, notes in session.execute(
                select(_SPECIMEN.id, _SPECIMEN.collected_by, _SPECIMEN.notes).where(
                    _SPECIMEN.id.in_([int(i) for i in specimens["specimen_id"]])
                )
            ).all()
        }
        specimens = specimens.assign(
            collected_by=pd.Series([people.get(int(i), (None, None))[0] for i in specimens["specimen_id"]],
                                   index=specimens.index, dtype=object),
            notes=pd.Series([people.get(int(i), (None, None))[1] for i in specimens["specimen_id"]],
                            index=specimens.index, dtype=object),
        )
    out: dict[str, pd.DataFrame] = {}
    for name, frame in (
        ("donors", donors.drop(columns=["donor_id"])),
        ("lesions", lesions),
        ("sampling_sites", sites),
        ("specimens", specimens.drop(columns=["specimen_id", "donor_id", "parent_id", "sampling_site_id"])),
        ("treatment_lines", treatments),
        ("clinical_events", events),
    ):
        if "donor_id" in frame.columns:
            frame = frame.assign(donor_code=frame["donor_id"].map(codes)).drop(columns=["donor_id"])
            frame = frame[["donor_code", *[c for c in frame.columns if c != "donor_code"]]]
        if not identified:
            frame = frame.drop(columns=[c for c in ("death_at", "collected_at") if c in frame.columns])
        out[name] = frame.reset_index(drop=True)
    return out


__all__ = [
    "MODEL_COLUMNS",
    "ExportFrames",
    "check_consent",
    "donor_frame",
    "donor_ids_for",
    "entity_frames",
    "export_frames",
    "get_plan",
    "model_provenance",
    "plan_selection",
    "refuse_withdrawn",
    "specimen_frame",
    "specimen_ids_for",
    "specimen_records",
]
