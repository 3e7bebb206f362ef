"""CancerModels.org / PDX-MI submission sheets for derived models: ``patient``, ``patient_sample``, ``pdx_model``,
``cell_model`` and ``model_validation``, as CSV files and one Excel workbook with a sheet each.

Column names and code lists are those of the CancerModels.org metadata dictionary, version 1.0 (the dictionary the
CancerModels.org validator loads: ``PDCMFinder/pdcm-lectern-validator``,
``tests/integration/test_files/CancerModels_dictionary_1.0.json``). Later dictionary versions add optional
columns; the required ones are unchanged.

De-identified: the donor's pseudonymous code is the patient id; the collection date is month and year (as the
dictionary asks); no free-text notes except the model's comments. A withdrawn donor's models, or a donor without
consent to model derivation and external sharing, are never exported: named explicitly they raise a
:class:`~biobank.domain.errors.ConsentError`, otherwise they are left out and listed in ``excluded``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import Session, select

from biobank.domain.errors import ConsentError, NotFoundError
from biobank.domain.vocab_derived import GROWTH_PROPERTIES_LABEL, GrowthProperties, ModelKind
from biobank.models import (
    AnatomicalSite,
    DerivedModel,
    Donor,
    Lesion,
    SamplingSite,
    Specimen,
    TreatmentLine,
)
from biobank.services.derived import model_qc_rows
from biobank.services.donors import consent_state

#: Sheet -> columns, in the dictionary's order.
SHEETS: dict[str, tuple[str, ...]] = {
    "patient": (
        "patient_id",
        "sex",
        "history",
        "ethnicity",
        "ethnicity_assessment_method",
        "initial_diagnosis",
        "age_at_initial_diagnosis",
    ),
    "patient_sample": (
        "patient_id",
        "sample_id",
        "collection_date",
        "collection_event",
        "months_since_collection_1",
        "age_in_years_at_collection",
        "diagnosis",
        "tumour_type",
        "primary_site",
        "collection_site",
        "stage",
        "staging_system",
        "grade",
        "grading_system",
        "virology_status",
        "sharable",
        "treatment_naive_at_collection",
        "treated_at_collection",
        "treated_prior_to_collection",
        "model_id",
    ),
    "pdx_model": (
        "model_id",
        "host_strain_name",
        "host_strain_nomenclature",
        "engraftment_site",
        "engraftment_type",
        "sample_type",
        "sample_state",
        "passage_number",
        "publications",
    ),
    "cell_model": (
        "model_id",
        "name",
        "type",
        "growth_properties",
        "parent_id",
        "origin_patient_sample_id",
        "comments",
        "supplier",
        "external_ids",
        "publications",
    ),
    "model_validation": (
        "model_id",
        "validation_technique",
        "description",
        "passages_tested",
        "validation_host_strain_nomenclature",
    ),
}
#: Consent a submission to an external public catalogue needs.
EXPORT_SCOPES = ("model_derivation", "external_sharing")
NOT_PROVIDED = "Not provided"
TUMOUR_TYPE = {
    "primary": "primary",
    "metastasis": "metastatic",
    "lymph_node": "metastatic",
    "local_recurrence": "recurrent",
}
SAMPLE_TYPE = {"fragment": "tissue fragment", "cell_suspension": "cell suspension"}
SAMPLE_STATE = {"fresh": "fresh", "viable_cryo": "frozen"}
CELL_TYPE = {ModelKind.organoid: "organoid", ModelKind.cell_line: "cell line"}


@dataclass
class CancerModelsExport:
    sheets: dict[str, pd.DataFrame]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (model code, why)

    @property
    def models(self) -> list[str]:
        frames = [self.sheets["pdx_model"]["model_id"], self.sheets["cell_model"]["model_id"]]
        return sorted(set(pd.concat(frames).tolist()))


def _age_at_diagnosis(donor: Donor) -> str:
    if donor.age_at_death is None or donor.diagnosis_days_before_death is None:
        return NOT_PROVIDED
    return str(max(int(donor.age_at_death - donor.diagnosis_days_before_death / 365.25), 0))


def _passage_numbers(numbers: Sequence[int]) -> str:
    return ", ".join(str(n) for n in sorted(set(numbers))) or NOT_PROVIDED


def build_sheets(
    session: Session, *, model_codes: Sequence[str] | None = None, include_unestablished: bool = False
) -> CancerModelsExport:
    """The five sheets for the established models (all, or those named)."""
    statement = select(DerivedModel).order_by(DerivedModel.code)
    if model_codes:
        statement = statement.where(DerivedModel.code.in_(list(model_codes)))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
    models = list(session.exec(statement).all())
    if model_codes:
        missing = sorted(set(model_codes) - {m.code for m in models})
        if missing:
            raise NotFoundError(f"model {missing[0]!r} not found", field="model", value=missing[0])
    excluded: list[tuple[str, str]] = []
    chosen: list[DerivedModel] = []
    states: dict[int, Any] = {}
    for model in models:
        donor = session.get(Donor, model.donor_id)
        assert donor is not None
        state = states.setdefault(donor.id or 0, consent_state(session, donor))
        reason = None
        if state.withdrawn:
            reason = f"donor {donor.code}: consent was withdrawn; model exports are blocked"
        elif not all(scope in state.scopes for scope in EXPORT_SCOPES):
            lacking = [s for s in EXPORT_SCOPES if s not in state.scopes]
            reason = f"donor {donor.code}: no consent to {', '.join(lacking)}"
        if reason is not None:
            if model_codes:
                raise ConsentError(f"model {model.code}: {reason}", field="donor", value=donor.code)
            excluded.append((model.code, reason))
            continue
        if model.established_on is None and not include_unestablished:
            if model_codes:
                excluded.append((model.code, f"model is {model.status}, never established"))
            continue
        chosen.append(model)
    return CancerModelsExport(_sheets(session, chosen), excluded)


def _sheets(session: Session, models: list[DerivedModel]) -> dict[str, pd.DataFrame]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SHEETS}
    labels = {s.code: s.label for s in session.exec(select(AnatomicalSite)).all()}
    seen_patients: set[int] = set()
    sample_ids: dict[int, int] = {}
    for model in models:
        donor = session.get(Donor, model.donor_id)
        source = session.get(Specimen, model.source_specimen_id)
        assert donor is not None and source is not None
        site = session.get(SamplingSite, source.sampling_site_id)
        assert site is not None
        lesion = session.get(Lesion, site.lesion_id) if site.lesion_id else None
        treatments = list(session.exec(select(TreatmentLine).where(TreatmentLine.donor_id == donor.id)).all())
        if donor.id not in seen_patients:
            seen_patients.add(donor.id or 0)
            rows["patient"].append(
                {
                    "patient_id": donor.code,
                    "sex": donor.sex
                    if donor.sex in ("female", "male")
                    else ("other" if donor.sex == "undifferentiated" else NOT_PROVIDED),
                    "history": "",
                    "ethnicity": NOT_PROVIDED,
                    "ethnicity_assessment_method": NOT_PROVIDED,
                    "initial_diagnosis": donor.primary_diagnosis or NOT_PROVIDED,
                    "age_at_initial_diagnosis": _age_at_diagnosis(donor),
                }
            )
        # sample_id is the dictionary's unique key: a second model from the same specimen gets a suffix.
        sample_ids[source.id or 0] = sample_ids.get(source.id or 0, 0) + 1
        count = sample_ids[source.id or 0]
        sample_id = source.code if count == 1 else f"{source.code}_{count}"
        collected = site.excised_at
        treated_at_death = any(
            t.end_days_before_death is None or t.end_days_before_death <= 30 for t in treatments
        )
        rows["patient_sample"].append(
            {
                "patient_id": donor.code,
                "sample_id": sample_id,
                "collection_date": collected.strftime("%b %Y") if collected else NOT_PROVIDED,
                "collection_event": "collection event 1",
                "months_since_collection_1": "0",
                "age_in_years_at_collection": str(donor.age_at_death)
                if donor.age_at_death is not None
                else NOT_PROVIDED,
                "diagnosis": donor.primary_diagnosis or NOT_PROVIDED,
                "tumour_type": TUMOUR_TYPE.get(lesion.kind, NOT_PROVIDED) if lesion else NOT_PROVIDED,
                "primary_site": labels.get(donor.primary_site_code or "", NOT_PROVIDED),
                "collection_site": labels.get(site.site_code, site.site_code),
                "stage": "",
                "staging_system": "",
                "grade": "",
                "grading_system": "",
                "virology_status": "",
                "sharable": "yes" if treatments else "no",
                "treatment_naive_at_collection": ("no" if treatments else NOT_PROVIDED),
                "treated_at_collection": ("yes" if treated_at_death else "no")
                if treatments
                else NOT_PROVIDED,
                "treated_prior_to_collection": "yes" if treatments else NOT_PROVIDED,
                "model_id": model.code,
            }
        )
        if model.kind == ModelKind.pdx:
            rows["pdx_model"].append(
                {
                    "model_id": model.code,
                    "host_strain_name": model.host_strain_name or NOT_PROVIDED,
                    "host_strain_nomenclature": model.host_strain_nomenclature or NOT_PROVIDED,
                    "engraftment_site": model.engraftment_site or NOT_PROVIDED,
                    "engraftment_type": model.engraftment_type or NOT_PROVIDED,
                    "sample_type": SAMPLE_TYPE.get(model.tumour_preparation or "", NOT_PROVIDED),
                    "sample_state": SAMPLE_STATE.get(source.storage_format, NOT_PROVIDED),
                    "passage_number": "all",  # one host strain, site and material for every passage
                    "publications": "",
                }
            )
        else:
            growth = (
                GROWTH_PROPERTIES_LABEL[GrowthProperties(model.growth_properties)]
                if model.growth_properties
                else NOT_PROVIDED
            )
            comments = "; ".join(
                part
                for part in (
                    f"medium: {model.medium}" if model.medium else None,
                    f"matrix: {model.matrix}" if model.matrix else None,
                    "derived from rapid-autopsy tissue",
                )
                if part
            )
            rows["cell_model"].append(
                {
                    "model_id": model.code,
                    "name": model.code,
                    "type": CELL_TYPE[ModelKind(model.kind)],
                    "growth_properties": growth,
                    "parent_id": "",
                    "origin_patient_sample_id": sample_id,
                    "comments": comments,
                    "supplier": "",
                    "external_ids": "",
                    "publications": "",
                }
            )
        rows["model_validation"].extend(_validation_rows(session, model))
    return {name: pd.DataFrame(rows[name], columns=list(columns)) for name, columns in SHEETS.items()}


def _validation_rows(session: Session, model: DerivedModel) -> list[dict[str, Any]]:
    tests = [(qc, passage.number) for qc, passage in model_qc_rows(session, model)]
    host = model.host_strain_nomenclature or (
        NOT_PROVIDED if model.kind == ModelKind.pdx else "Not applicable"
    )
    rows = []

    def add(technique: str, description: str, numbers: list[int]) -> None:
        if numbers:
            rows.append(
                {
                    "model_id": model.code,
                    "validation_technique": technique,
                    "description": description,
                    "passages_tested": _passage_numbers(numbers),
                    "validation_host_strain_nomenclature": host,
                }
            )

    for method in ("STR", "SNP"):
        hits = [
            (qc.identity_match_pct, n)
            for qc, n in tests
            if qc.identity_method == method and qc.identity_match_pct is not None
        ]
        if hits:
            best = max(pct for pct, _ in hits)
            add(
                f"{method} fingerprinting",
                f"{method} profile matched to the donor's germline DNA: best match {best:g} %",
                [n for _, n in hits],
            )
    histology = [(qc.histology_concordant, n) for qc, n in tests if qc.histology_concordant is not None]
    if histology:
        verdict = "concordant" if all(ok for ok, _ in histology) else "not concordant in some passages"
        add(
            "histology",
            f"histology of the model compared with the donor's tumour: {verdict}",
            [n for _, n in histology],
        )
    origin = [(qc.not_mouse_or_ebv_origin, n) for qc, n in tests if qc.not_mouse_or_ebv_origin is not None]
    if origin:
        verdict = (
            "human tumour, not of mouse or EBV-lymphoma origin"
            if all(ok for ok, _ in origin)
            else "mouse or EBV origin found"
        )
        add("human tumour origin (mouse and EBV exclusion)", verdict, [n for _, n in origin])
    mouse = [(qc.mouse_content_pct, n) for qc, n in tests if qc.mouse_content_pct is not None]
    if mouse:
        add(
            "mouse content",
            f"mouse cell or read content at most {max(p for p, _ in mouse):g} %",
            [n for _, n in mouse],
        )
    myco = [(qc.mycoplasma, n) for qc, n in tests if qc.mycoplasma != "not_tested"]
    if myco:
        verdict = "negative" if all(r == "negative" for r, _ in myco) else "positive in some passages"
        add("mycoplasma testing", f"mycoplasma {verdict}", [n for _, n in myco])
    return rows


def write_csv(export: CancerModelsExport, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in export.sheets.items():
        path = directory / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def write_excel(export: CancerModelsExport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in export.sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
    return path


WORKBOOK = "cancermodels_submission.xlsx"


def export_models(
    session: Session,
    directory: Path,
    *,
    model_codes: Sequence[str] | None = None,
    include_unestablished: bool = False,
) -> tuple[CancerModelsExport, list[Path]]:
    """Write ``<sheet>.csv`` for each sheet and the workbook into ``directory``; returns what was written."""
    export = build_sheets(session, model_codes=model_codes, include_unestablished=include_unestablished)
    paths = write_csv(export, directory)
    paths.append(write_excel(export, directory / WORKBOOK))
    return export, paths
