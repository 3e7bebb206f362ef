"""CancerModels.org submission of derived models: the sheets of the CancerModels.org metadata dictionary, as CSV
files and one workbook laid out like the submission template.

**Dictionary.** The version is a setting (``BIOBANK_CANCERMODELS_DICTIONARY_VERSION``, default 2.1, the version in
production); only versions whose lectern dictionary ships in ``biobank/data/cancermodels-dictionary-<v>.json`` are
accepted. Sheets, columns and their order, required fields, code lists and patterns are read from it, and every
value written is checked against it here before a file is written; CancerModels.org's own validator (the lectern
client, ``tests/judges/lectern``) accepts the result in the test suite. Version 2.1 has the sheets ``patient``,
``patient_sample``, ``sharing``, ``pdx_model``, ``model_validation`` and ``cell_model``.

**Rows and keys.** One ``patient`` row per donor (the pseudonymous donor code is the patient id); one
``patient_sample`` and one ``sharing`` row per model (``sample_id`` is the code of the patient specimen the model was
grown from; ``patient_sample`` and ``sharing`` reference each other by ``model_id``); PDX models in ``pdx_model``,
organoids and cell lines in ``cell_model``. ``pdx_model`` and ``cell_model`` reference ``model_validation``, so
every model has at least one validation row: one per QC technique recorded, or a single "not determined" row.

**De-identification** (DOMAIN.md: the donor by a pseudonymous code, times relative to death, no free-text notes).
``collection_date`` is always "Not provided": the dictionary accepts only ``MMM YYYY`` (or "Not provided" /
"Not collected"), and the month of a rapid-autopsy collection is the month of death, a date element that
de-identification removes (a year alone would be allowed but the dictionary's pattern refuses it). What the field is
for, the time between collections of one patient, is carried by ``collection_event`` and
``months_since_collection_1``, computed from times relative to death (the autopsy is one event; a pre-mortem draw is
another). Ages are whole years. No notes are exported: ``comments`` says only where the material came from.

**Unknown values.** A required field the biobank holds no value for gets the dictionary's "Not provided"; an
optional one is left blank (never an invented fact). Four required fields have code lists without "Not provided":
``plate_coating`` comes from the recorded culture matrix (Matrigel and BME are one matrix in the biobank and
``matrigel`` in the dictionary) and ``other_plate_coating`` is "none" (the biobank records one matrix); an organoid
or cell line without a recorded matrix cannot be described, so it is left out (listed in ``excluded``) or refused
when named. ``supplier_type`` ("academic") and the ``sharing`` contact and ``accessibility`` come from the
:class:`Submitter` (accessibility defaults to "academia", the narrowest: the consent covers sharing outside the
institution, not commercial use). Free text (diagnosis, medium, sites, strain names) is fitted to the dictionary's
patterns, which allow ASCII letters, digits and some punctuation: accents are dropped and other characters removed.

**Consent.** A withdrawn donor's models, or a donor without consent to model derivation and external sharing, are
never exported: named explicitly they raise a :class:`~biobank.domain.errors.ConsentError`, otherwise they are left
out and listed in ``excluded``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.domain.errors import ConsentError, NotFoundError, invalid
from biobank.domain.vocab_derived import (
    GROWTH_PROPERTIES_LABEL,
    GrowthProperties,
    Matrix,
    ModelKind,
    ModelStatus,
    MycoplasmaResult,
)
from biobank.models import (
    AnatomicalSite,
    Autopsy,
    DerivedModel,
    Donor,
    Lesion,
    SamplingSite,
    Specimen,
    TreatmentLine,
)
from biobank.services.derived import model_qc_rows
from biobank.services.donors import consent_state

#: Consent a submission to an external public catalogue needs.
EXPORT_SCOPES = ("model_derivation", "external_sharing")
NOT_PROVIDED = "Not provided"
WORKBOOK = "cancermodels_submission.xlsx"
#: The template's description rows (column A, ``Field``); the submission service drops rows starting with ``#``.
TEMPLATE_ROWS = ("#Description", "#Example", "#Format Requirements", "#Essential?")

TUMOUR_TYPE = {
    "primary": "primary",
    "metastasis": "metastatic",
    "lymph_node": "metastatic",
    "local_recurrence": "recurrent",
}
SEX = {"female": "female", "male": "male", "undifferentiated": "other"}
SAMPLE_TYPE = {"fragment": "tissue fragment", "cell_suspension": "cell suspension"}
SAMPLE_STATE = {"fresh": "fresh", "viable_cryo": "frozen"}
CELL_TYPE = {ModelKind.organoid: "organoid", ModelKind.cell_line: "cell line"}
PLATE_COATING = {Matrix.matrigel_bme: "matrigel", Matrix.collagen: "collagen", Matrix.none: "none"}
AVAILABILITY = {
    ModelStatus.established: "available",
    ModelStatus.cryobanked: "available",
    ModelStatus.discontinued: "discontinued",
}
#: A treatment that ended this close to a collection (or has no end) was ongoing at the collection.
TREATED_AT_COLLECTION_DAYS = 30


# ------------------------------------------------------------------------------------------------ the dictionary


@dataclass(frozen=True)
class FieldSpec:
    """One field of a dictionary schema, with what lectern checks (required, code list, pattern)."""

    name: str
    required: bool
    code_list: tuple[str, ...] | None
    pattern: re.Pattern[str] | None
    description: str
    example: str
    format: str

    def accepts(self, value: str) -> bool:
        """Whether lectern accepts ``value`` (blank counts as absent); JavaScript's ``RegExp.test`` is a search."""
        if value == "":
            return not self.required
        if self.code_list is not None and value.lower() not in {c.lower() for c in self.code_list}:
            return False
        return self.pattern is None or (self.pattern.search(value) is not None and "\n" not in value)

    def fit(self, text: str) -> str:
        """Free text made to match a character-class pattern: accents dropped, other characters and extra spaces
        removed, cut to the pattern's length."""
        if self.accepts(text) or self.pattern is None:
            return text
        plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        pattern = self.pattern
        kept = " ".join("".join(c for c in plain if pattern.search(c)).split())
        limit = re.search(r"\{0,(\d+)\}\$$", pattern.pattern)
        return kept[: int(limit.group(1))].rstrip() if limit else kept


@dataclass(frozen=True)
class Dictionary:
    name: str
    version: str
    schemas: dict[str, tuple[FieldSpec, ...]]

    def columns(self, sheet: str) -> list[str]:
        return [f.name for f in self.schemas[sheet]]


def dictionary_resource(version: str) -> str:
    return f"data/cancermodels-dictionary-{version}.json"


@cache
def load_dictionary(version: str | None = None) -> Dictionary:
    """The lectern dictionary of ``version`` (default: the setting) as shipped in the package."""
    version = version or get_settings().cancermodels_dictionary_version
    resource = resources.files("biobank").joinpath(dictionary_resource(version))
    if not resource.is_file():
        raise invalid("cancermodels_dictionary_version", version, "is not a dictionary version biobank ships")
    raw = json.loads(resource.read_text(encoding="utf-8"))
    schemas: dict[str, tuple[FieldSpec, ...]] = {}
    for schema in raw["schemas"]:
        specs = []
        for f in schema["fields"]:
            restrictions = f.get("restrictions") or {}
            meta = f.get("meta") or {}
            regex = restrictions.get("regex")
            codes = restrictions.get("codeList")
            specs.append(
                FieldSpec(
                    name=f["name"],
                    required=bool(restrictions.get("required")),
                    code_list=tuple(str(c) for c in codes) if codes else None,
                    # JavaScript's \w and \d are ASCII: so are Python's with re.ASCII.
                    pattern=re.compile(regex, re.ASCII) if regex else None,
                    description=str(f.get("description") or ""),
                    example=str(meta.get("examples") or ""),
                    format=str(meta.get("format") or ""),
                )
            )
        schemas[schema["name"]] = tuple(specs)
    return Dictionary(name=raw["name"], version=str(raw["version"]), schemas=schemas)


# -------------------------------------------------------------------------------------------------- the export


@dataclass(frozen=True)
class Submitter:
    """Who offers the models (the ``sharing`` sheet and ``supplier_type``): no person is named unless given."""

    name: str = NOT_PROVIDED
    email: str = NOT_PROVIDED
    accessibility: str = "academia"
    supplier_type: str = "academic"


@dataclass
class CancerModelsExport:
    sheets: dict[str, pd.DataFrame]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (model code, why)
    dictionary_version: str = ""

    @property
    def models(self) -> list[str]:
        frames = [self.sheets["pdx_model"]["model_id"], self.sheets["cell_model"]["model_id"]]
        return sorted(set(pd.concat(frames).tolist()))


class _Unfit(Exception):
    """A model the dictionary cannot describe (a required coded value the biobank does not hold)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def build_sheets(
    session: Session,
    *,
    model_codes: Sequence[str] | None = None,
    include_unestablished: bool = False,
    submitter: Submitter | None = None,
    version: str | None = None,
) -> CancerModelsExport:
    """The dictionary's sheets for the established models (all, or those named)."""
    dictionary = load_dictionary(version)
    submitter = _checked_submitter(dictionary, submitter or Submitter())
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
    sheets, unfit = _Builder(session, dictionary, submitter).sheets(chosen)
    for code, problem in unfit:
        if model_codes:
            raise invalid(problem.field, None, problem.reason, row=f"model {code}")
        excluded.append((code, f"{problem.field}: {problem.reason}"))
    return CancerModelsExport(sheets, excluded, dictionary.version)


def _checked_submitter(dictionary: Dictionary, submitter: Submitter) -> Submitter:
    """The submitter's values as the dictionary allows them, or an error naming the field."""
    checks = (
        ("sharing", "name", submitter.name),
        ("sharing", "email", submitter.email),
        ("sharing", "accessibility", submitter.accessibility),
        ("pdx_model", "supplier_type", submitter.supplier_type),
    )
    for sheet, name, value in checks:
        spec = _spec(dictionary, sheet, name)
        if not value.strip() or not spec.accepts(value):
            allowed = (
                f"one of {', '.join(spec.code_list)}" if spec.code_list else f"text matching {spec.format}"
            )
            raise invalid(
                name, value, f"is not accepted by CancerModels.org {dictionary.version}: expected {allowed}"
            )
    return submitter


def _spec(dictionary: Dictionary, sheet: str, name: str) -> FieldSpec:
    return next(f for f in dictionary.schemas[sheet] if f.name == name)


class _Builder:
    """The rows of every sheet for a list of models (a donor's treatments and collections read once)."""

    def __init__(self, session: Session, dictionary: Dictionary, submitter: Submitter) -> None:
        self.session = session
        self.dictionary = dictionary
        self.submitter = submitter
        self.labels = {s.code: s.label for s in session.exec(select(AnatomicalSite)).all()}
        self.treatments: dict[int | None, list[TreatmentLine]] = {}

    def sheets(self, models: list[DerivedModel]) -> tuple[dict[str, pd.DataFrame], list[tuple[str, _Unfit]]]:
        rows: dict[str, list[dict[str, str]]] = {name: [] for name in self.dictionary.schemas}
        unfit: list[tuple[str, _Unfit]] = []
        sources = {m.id: self._source(m) for m in models}
        events = self._events(list(sources.values()))
        seen_patients: set[int] = set()
        for model in models:
            donor, specimen, site, lesion = sources[model.id]
            try:
                model_rows = self._model_rows(model, donor, specimen, site, lesion, events)
            except _Unfit as problem:
                unfit.append((model.code, problem))
                continue
            if donor.id not in seen_patients:
                seen_patients.add(donor.id or 0)
                rows["patient"].append(self._patient(donor))
            for sheet, sheet_rows in model_rows.items():
                rows[sheet].extend(sheet_rows)
        frames = {}
        for sheet, sheet_rows in rows.items():
            columns = self.dictionary.columns(sheet)
            checked = [self._checked(sheet, row) for row in sheet_rows]
            frames[sheet] = pd.DataFrame(
                [[r.get(c, "") for c in columns] for r in checked], columns=columns, dtype=str
            )
        return frames, unfit

    def _checked(self, sheet: str, row: dict[str, str]) -> dict[str, str]:
        """The row with free text fitted to the dictionary; a value it would still refuse is an error naming it."""
        specs = {f.name: f for f in self.dictionary.schemas[sheet]}
        unknown = set(row) - set(specs)
        if unknown:  # a field this module fills that the dictionary version does not have
            raise invalid(
                sorted(unknown)[0],
                row[sorted(unknown)[0]],
                f"is not a field of {sheet} in CancerModels.org {self.dictionary.version}",
                row=f"{sheet} {self._key(row)}",
            )
        out = {}
        for name, spec in specs.items():
            value = " ".join(str(row.get(name, "")).split())
            if spec.code_list is None:
                value = spec.fit(value)
            if value == "" and spec.required:
                value = NOT_PROVIDED
            if not spec.accepts(value):
                raise invalid(
                    name,
                    value,
                    f"is not accepted by CancerModels.org {self.dictionary.version} "
                    f"({spec.format or 'see the dictionary'})",
                    row=f"{sheet} {self._key(row)}",
                )
            out[name] = value
        return out

    @staticmethod
    def _key(row: dict[str, str]) -> str:
        return row.get("model_id") or row.get("patient_id") or "row"

    # -- reading

    def _source(self, model: DerivedModel) -> tuple[Donor, Specimen, SamplingSite, Lesion | None]:
        donor = self.session.get(Donor, model.donor_id)
        specimen = self.session.get(Specimen, model.source_specimen_id)
        assert donor is not None and specimen is not None
        site = self.session.get(SamplingSite, specimen.sampling_site_id)
        assert site is not None
        lesion = self.session.get(Lesion, site.lesion_id) if site.lesion_id else None
        return donor, specimen, site, lesion

    def _events(
        self, sources: list[tuple[Donor, Specimen, SamplingSite, Lesion | None]]
    ) -> dict[int, tuple[int, int, int]]:
        """Per sampling site: (collection event number, months since the donor's first collection, days before
        death of the collection). The autopsy is one event; each pre-mortem draw day is another."""
        by_donor: dict[int, list[SamplingSite]] = {}
        for donor, _specimen, site, _lesion in sources:
            by_donor.setdefault(donor.id or 0, []).append(site)
        result: dict[int, tuple[int, int, int]] = {}
        for donor_id, sites in by_donor.items():
            autopsy = self.session.exec(select(Autopsy).where(Autopsy.donor_id == donor_id)).first()
            death = autopsy.death_at if autopsy else None
            days_before: dict[int, int] = {}
            for site in sites:
                before = max((death - site.excised_at).days, 0) if death is not None else 0
                days_before[site.id or 0] = 0 if site.autopsy_id is not None else before
            moments = sorted(set(days_before.values()), reverse=True)  # earliest first
            for site_id, before in days_before.items():
                number = moments.index(before) + 1
                months = round((moments[0] - before) / 30.44)
                result[site_id] = (number, months, before)
        return result

    def _treatments(self, donor: Donor) -> list[TreatmentLine]:
        if donor.id not in self.treatments:
            statement = select(TreatmentLine).where(TreatmentLine.donor_id == donor.id)
            self.treatments[donor.id] = list(self.session.exec(statement).all())
        return self.treatments[donor.id]

    # -- rows

    def _patient(self, donor: Donor) -> dict[str, str]:
        return {
            "patient_id": donor.code,
            "sex": SEX.get(donor.sex, NOT_PROVIDED),
            "initial_diagnosis": donor.primary_diagnosis or "",
            "age_at_initial_diagnosis": _age_at(donor, donor.diagnosis_days_before_death),
            "age_category": ""
            if donor.age_at_death is None
            else ("adult" if donor.age_at_death >= 18 else "pediatric"),
        }

    def _model_rows(
        self,
        model: DerivedModel,
        donor: Donor,
        source: Specimen,
        site: SamplingSite,
        lesion: Lesion | None,
        events: dict[int, tuple[int, int, int]],
    ) -> dict[str, list[dict[str, str]]]:
        event, months, days_before = events[site.id or 0]
        treatments = self._treatments(donor)
        prior = any(t.start_days_before_death > days_before for t in treatments)
        ongoing = any(
            t.start_days_before_death >= days_before
            and (
                t.end_days_before_death is None
                or t.end_days_before_death <= days_before + TREATED_AT_COLLECTION_DAYS
            )
            for t in treatments
        )
        autopsy = site.autopsy_id is not None
        sample = {
            "patient_id": donor.code,
            "sample_id": source.code,
            "collection_date": NOT_PROVIDED,  # the month of death: see the module docstring
            "collection_event": f"collection event {event}",
            "months_since_collection_1": str(months),
            "age_in_years_at_collection": _age_at(donor, days_before),
            "diagnosis": donor.primary_diagnosis or NOT_PROVIDED,
            "tumour_type": TUMOUR_TYPE.get(lesion.kind, NOT_PROVIDED) if lesion else NOT_PROVIDED,
            "primary_site": self.labels.get(donor.primary_site_code or "", NOT_PROVIDED),
            "collection_site": self.labels.get(site.site_code, site.site_code),
            "collection_method": "rapid autopsy" if autopsy else "blood draw",
            "sharable": "yes" if treatments else "no",
            "treatment_naive_at_collection": ("no" if prior or ongoing else "yes")
            if treatments
            else NOT_PROVIDED,
            "treated_at_collection": ("yes" if ongoing else "no") if treatments else NOT_PROVIDED,
            "treated_prior_to_collection": ("yes" if prior else "no") if treatments else NOT_PROVIDED,
            "model_id": model.code,
        }
        sharing = {
            "model_id": model.code,
            "accessibility": self.submitter.accessibility,
            "model_availability": AVAILABILITY.get(ModelStatus(model.status), ""),
            "email": self.submitter.email,
            "name": self.submitter.name,
        }
        origin = "rapid-autopsy tissue" if autopsy else "a pre-mortem blood draw"
        out: dict[str, list[dict[str, str]]] = {"patient_sample": [sample], "sharing": [sharing]}
        if model.kind == ModelKind.pdx:
            out["pdx_model"] = [
                {
                    "model_id": model.code,
                    "host_strain_name": model.host_strain_name or NOT_PROVIDED,
                    "host_strain_nomenclature": model.host_strain_nomenclature or NOT_PROVIDED,
                    "engraftment_site": model.engraftment_site or NOT_PROVIDED,
                    "engraftment_type": model.engraftment_type or NOT_PROVIDED,
                    "sample_type": SAMPLE_TYPE.get(model.tumour_preparation or "", NOT_PROVIDED),
                    "sample_state": SAMPLE_STATE.get(source.storage_format, ""),
                    "passage_number": "all",  # one host strain, site, type and material for every passage
                    "supplier_type": self.submitter.supplier_type,
                }
            ]
        else:
            if model.matrix is None:
                raise _Unfit(
                    "plate_coating",
                    "no culture matrix is recorded; CancerModels.org requires one of "
                    + ", ".join(_spec(self.dictionary, "cell_model", "plate_coating").code_list or ()),
                )
            myco = [qc.mycoplasma for qc, _ in model_qc_rows(self.session, model)]
            tested = [r for r in myco if r != MycoplasmaResult.not_tested]
            contaminated = (
                {"positive": "yes", "negative": "no"}.get(tested[-1], NOT_PROVIDED)
                if tested
                else NOT_PROVIDED
            )
            out["cell_model"] = [
                {
                    "model_id": model.code,
                    "model_name": model.code,
                    "type": CELL_TYPE[ModelKind(model.kind)],
                    "origin_patient_sample_id": source.code,
                    "growth_properties": GROWTH_PROPERTIES_LABEL[GrowthProperties(model.growth_properties)]
                    if model.growth_properties
                    else NOT_PROVIDED,
                    "media_id": NOT_PROVIDED,
                    "growth_media": model.medium or NOT_PROVIDED,
                    "plate_coating": PLATE_COATING[Matrix(model.matrix)],
                    "other_plate_coating": "none",
                    "passage_number": NOT_PROVIDED,
                    "contaminated": contaminated,
                    "contamination_details": "mycoplasma" if contaminated == "yes" else "",
                    "supplier_type": self.submitter.supplier_type,
                    "comments": f"derived from {origin}",
                }
            ]
        out["model_validation"] = self._validation_rows(model)
        return out

    def _validation_rows(self, model: DerivedModel) -> list[dict[str, str]]:
        tests = [(qc, passage.number) for qc, passage in model_qc_rows(self.session, model)]
        pdx = model.kind == ModelKind.pdx
        common = {
            "model_id": model.code,
            # a PDX's validation host; a culture has none (not a mouse strain "not applicable")
            "validation_host_strain_nomenclature": (model.host_strain_nomenclature or NOT_PROVIDED)
            if pdx
            else "",
            "STR_analysis": "yes" if any(qc.identity_method == "STR" for qc, _ in tests) else "",
            "SNP_analysis": "yes" if any(qc.identity_method == "SNP" for qc, _ in tests) else "",
        }
        rows: list[dict[str, str]] = []

        def add(technique: str, description: str, numbers: list[int]) -> None:
            if numbers:
                rows.append(
                    {
                        **common,
                        "validation_technique": technique,
                        "description": description,
                        "passages_tested": ", ".join(str(n) for n in sorted(set(numbers))),
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
        origin = [
            (qc.not_mouse_or_ebv_origin, n) for qc, n in tests if qc.not_mouse_or_ebv_origin is not None
        ]
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
        myco = [(qc.mycoplasma, n) for qc, n in tests if qc.mycoplasma != MycoplasmaResult.not_tested]
        if myco:
            verdict = "negative" if all(r == "negative" for r, _ in myco) else "positive in some passages"
            add("mycoplasma testing", f"mycoplasma {verdict}", [n for _, n in myco])
        if not rows:  # pdx_model and cell_model reference model_validation: say that nothing was validated
            rows.append(
                {
                    **common,
                    "validation_technique": NOT_PROVIDED,
                    "description": "not determined: no validation of the model is recorded",
                    "passages_tested": NOT_PROVIDED,
                }
            )
        return rows


def _age_at(donor: Donor, days_before_death: int | None) -> str:
    """Whole years at a time given in days before death (age at death is whole years, so this is approximate)."""
    if donor.age_at_death is None or days_before_death is None:
        return NOT_PROVIDED
    return str(max(int(donor.age_at_death - days_before_death / 365.25), 0))


# ------------------------------------------------------------------------------------------------------ writing


def write_csv(export: CancerModelsExport, directory: Path) -> list[Path]:
    """One plain table per sheet (``<sheet>.csv``): the header, then the rows."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in export.sheets.items():
        path = directory / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def write_excel(export: CancerModelsExport, path: Path) -> Path:
    """The workbook as the submission template lays it out: column A ``Field``, the description, example, format
    and essential rows (``#...``, dropped by the submission service), then the data with column A blank."""
    from openpyxl import Workbook

    dictionary = load_dictionary(export.dictionary_version or None)
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    for blank in list(book.worksheets):  # a new workbook comes with one empty sheet
        book.remove(blank)
    for name, frame in export.sheets.items():
        sheet = book.create_sheet(name)
        specs = dictionary.schemas[name]
        sheet.append(["Field", *(f.name for f in specs)])
        sheet.append([TEMPLATE_ROWS[0], *(f.description for f in specs)])
        sheet.append([TEMPLATE_ROWS[1], *(f.example for f in specs)])
        sheet.append([TEMPLATE_ROWS[2], *(f.format for f in specs)])
        sheet.append([TEMPLATE_ROWS[3], *("essential" if f.required else "desirable" for f in specs)])
        for row in frame.itertuples(index=False):
            sheet.append([None, *(value or None for value in row)])
    book.save(path)
    return path


def export_models(
    session: Session,
    directory: Path,
    *,
    model_codes: Sequence[str] | None = None,
    include_unestablished: bool = False,
    submitter: Submitter | None = None,
    version: str | None = None,
) -> tuple[CancerModelsExport, list[Path]]:
    """Write ``<sheet>.csv`` for each sheet and the workbook into ``directory``; returns what was written."""
    export = build_sheets(
        session,
        model_codes=model_codes,
        include_unestablished=include_unestablished,
        submitter=submitter,
        version=version,
    )
    paths = write_csv(export, directory)
    paths.append(write_excel(export, directory / WORKBOOK))
    return export, paths
