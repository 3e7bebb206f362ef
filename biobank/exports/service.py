"""Every export, from the same query functions: select, check consent (and a plan's rules), write in memory, record.

:func:`export` (or :func:`export_files`, its keyword form) returns ``{relative path: bytes}`` so the CLI writes them
under ``-o`` and the dashboard offers them as downloads (a zip for folders). Who may export: ``Action.export`` (PIs
and admins), since an export hands a donor's data to a pipeline or another institution. Every export is recorded in
the export log (:mod:`biobank.exports.log`) with the :class:`ExportRequest` that made it.

Selections: ``plan_code`` (the plan's included specimens, with their roles; refused while the plan has rule errors),
or donors and/or specimens. For the sequencing targets (sarek, clonal, MACHINA, Metient) donors without named
specimens get their suggested selection (:func:`biobank.services.planning.suggest`) for ``assay``; for the exchange
targets (Phenopackets, FHIR, tables) every specimen of the donors is exported, and cBioPortal keeps the sequenced
level (:func:`biobank.exports.formats.cbioportal.sequenced_samples`). Nothing selected means the whole cohort for
the exchange targets, less withdrawn donors and donors without consent. Material grown in a model is left out of the
patient-tissue targets (:data:`PATIENT_TISSUE_TARGETS`) unless ``include_models`` or a plan names it; the others
carry it, marked.

Consent: sequencing targets need consent to genomic sequencing, the others consent to research use; a withdrawn
donor never appears.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain import vocab
from biobank.domain.errors import ValidationError, invalid
from biobank.domain.vocab import ConsentScope
from biobank.exports import log as export_log
from biobank.exports.formats import (
    SAMPLE_ROLES,
    STORAGE_TEMPERATURES,
    VOCABULARIES,
    ExportValidationError,
    cbioportal,
    clonal,
    fhir,
    is_model_material,
    migration,
    phenopacket,
    sarek,
    tables,
)
from biobank.models import User
from biobank.queries import exports as query
from biobank.services import planning
from biobank.services.auth import Action, require
from biobank.services.plan_rules import PlanRulesError, run_rules

SEQUENCING_TARGETS = ("sarek", "clonal", "machina", "metient")
#: Targets that describe the patient's tumour and could carry material grown in a model (PDX, organoid): it is left
#: out of them unless asked for (``include_models``) or named by a plan (whose rules judge each specimen's role). The
#: site-based targets (clonal, MACHINA, Metient) have no place for it at all: their writers always leave it out and
#: say so in the folder's NOTES.txt.
PATIENT_TISSUE_TARGETS = ("sarek", "cbioportal")
EXCHANGE_TARGETS = ("cbioportal", "phenopackets", "fhir", "tables")
TARGETS = SEQUENCING_TARGETS + EXCHANGE_TARGETS
#: What each target writes, one sentence: the help of its ``biobank export TARGET`` command (each has one).
DESCRIPTIONS = {
    "sarek": (
        "nf-core/sarek samplesheet from FASTQ pairs or BAM/CRAM files, validated by sarek's schema, cross-row and "
        "start-up rules (a template only when asked for)."
    ),
    "clonal": (
        "Sample table per donor for clonal deconvolution (PyClone-VI tumour_content, site, site category; "
        "CONIPHER's CASE_ID, SAMPLE, ACF, PLOIDY) into a folder."
    ),
    "machina": "MACHINA inputs per donor (frequency-file samples and sites, colour map, -p primary) into a folder.",
    "metient": "Metient sample/site table per donor (site index, label, category, purity) into a folder.",
    "cbioportal": "cBioPortal study folder (meta files, clinical patient and sample files).",
    "phenopackets": "GA4GH Phenopacket v2 JSON per donor into a folder.",
    "fhir": "HL7 FHIR Bundle of Patient and Specimen resources (MIABIS-on-FHIR codes).",
    "tables": (
        "Every entity as CSV, Parquet and Excel with a data dictionary "
        "(the whole cohort when nothing is chosen)."
    ),
}
#: Targets written as one file (the others are folders).
SINGLE_FILE = {
    "sarek": "samplesheet.csv",
    "fhir": "bundle.json",
}

def _vocabulary(enum: type[vocab.StrEnum]) -> str:
    return "|".join(vocab.values(enum))


_DAYS = "days before death (whole days; larger is earlier)"
_IDENTIFIED = "; only in identified exports, dropped from de-identified ones"
_UTC = " (CSV +00:00; Excel: a date-time cell shown with UTC)"
#: The tables export's data dictionary: ``column`` (or ``table.column`` where one table's column means
#: something else) -> (type, meaning, vocabulary). Every column of every table the export writes must be here:
#: the writer refuses a column without a type and a meaning (``complete_dictionary``): it never goes stale.
DICTIONARY_MEANINGS: dict[str, tuple[str, str, str]] = {
    # donors
    "donor_code": ("string", "pseudonymous donor code (never a name or hospital number)", ""),
    "sex": ("string", "sex of the donor (MIABIS)", _vocabulary(vocab.Sex)),
    "age_at_death": ("integer", "age at death in completed years", ""),
    "primary_diagnosis": ("string", "primary diagnosis as recorded (free text)", ""),
    "icdo3_topography": ("string", "ICD-O-3 topography code of the primary tumour (e.g. C50.9)", ""),
    "icdo3_morphology": ("string", "ICD-O-3 morphology code of the primary tumour (e.g. 8500/3)", ""),
    "primary_site_code": (
        "string",
        "anatomical site code of the primary tumour (the site vocabulary); empty: unknown primary",
        "",
    ),
    "primary_site_label": ("string", "anatomical site of the primary tumour, in words", ""),
    "primary_site_uberon": ("string", "UBERON id of the primary tumour's anatomical site", ""),
    "diagnosis_days_before_death": ("integer", f"first diagnosis, {_DAYS}", ""),
    "cause_of_death": ("string", "cause of death as recorded", ""),
    "death_at": ("datetime", "time of death, UTC" + _UTC + _IDENTIFIED, ""),
    "donors.status": ("string", "donor status", _vocabulary(vocab.DonorStatus)),
    "withdrawn": ("boolean", "consent withdrawn (the donor's material is blocked from every new use)", ""),
    "research_use": ("boolean", "the latest consent covers research use", ""),
    "genomic_sequencing": ("boolean", "the latest consent covers genomic sequencing, germline included", ""),
    "model_derivation": ("boolean", "the latest consent covers deriving models (organoids, xenografts)", ""),
    "external_sharing": ("boolean", "the latest consent covers sharing data outside the institution", ""),
    "recontact": ("boolean", "the latest consent allows recontacting the family", ""),
    # lesions
    "lesion_code": ("string", "lesion code within the donor (L01, L02...)", ""),
    "lesions.site_code": ("string", "anatomical site code of the lesion (the site vocabulary)", ""),
    "laterality": ("string", "side of the anatomical site", _vocabulary(vocab.Laterality)),
    "lesions.kind": ("string", "kind of lesion", _vocabulary(vocab.LesionKind)),
    "bone_phenotype": ("string", "phenotype of a bone lesion", _vocabulary(vocab.BonePhenotype)),
    "size_mm": ("number", "largest diameter of the lesion, mm", ""),
    "imaging_response": ("string", "last imaging response of the lesion", _vocabulary(vocab.ImagingResponse)),
    "er_status": (
        "string",
        "oestrogen receptor status tested on the lesion",
        _vocabulary(vocab.ReceptorStatus),
    ),
    "pr_status": (
        "string",
        "progesterone receptor status tested on the lesion",
        _vocabulary(vocab.ReceptorStatus),
    ),
    "her2_status": ("string", "HER2 status tested on the lesion", _vocabulary(vocab.ReceptorStatus)),
    # sampling sites
    "region_code": ("string", "sampling-site code (region L01-A, normal N01, germline blood GB1...)", ""),
    "sampling_sites.kind": ("string", "kind of sampling site", _vocabulary(vocab.SiteKind)),
    "tissue_status": ("string", "tumour, normal or adjacent-normal tissue", _vocabulary(vocab.TissueStatus)),
    "distance_to_tumour_mm": ("number", "distance of a normal tissue from the nearest tumour, mm", ""),
    "site_code": ("string", "anatomical site code (the site vocabulary: label, UBERON, ICD-O-3)", ""),
    "sampling_sites.hours_after_death": ("number", "hours from death to excision (negative: before)", ""),
    # specimens (and the samples frame)
    "specimen_code": ("string", "specimen code (the sample ID pipelines see)", ""),
    "parent_code": ("string", "specimen this one was split or made from; empty for a primary specimen", ""),
    "lineage": (
        "string",
        "primary (cut from the site), aliquot (same material) or derivative (new material)",
        _vocabulary(vocab.Lineage),
    ),
    "material_type": ("string", "material of the specimen", _vocabulary(vocab.MaterialType)),
    "storage_format": ("string", "preservation of the specimen", _vocabulary(vocab.StorageFormat)),
    "parent_storage_format": (
        "string",
        "preservation of the parent specimen",
        _vocabulary(vocab.StorageFormat),
    ),
    "specimens.status": ("string", "specimen status", _vocabulary(vocab.SpecimenStatus)),
    "specimens.collected_by": (
        "string", "who collected the specimen (a technician's name or initials, not the user who entered it)"
        + _IDENTIFIED, ""),
    "specimens.notes": ("string", "free-text notes on the specimen" + _IDENTIFIED, ""),
    "site_kind": ("string", "kind of the sampling site the specimen came from", _vocabulary(vocab.SiteKind)),
    "lesion_kind": ("string", "kind of the lesion the specimen came from", _vocabulary(vocab.LesionKind)),
    "site_label": ("string", "anatomical site the specimen came from, in words", ""),
    "site_uberon": ("string", "UBERON id of the anatomical site", ""),
    "site_category_vocab": ("string", "category of the anatomical site (bone, visceral...)", ""),
    "collected_at": (
        "datetime",
        "time the specimen was collected, UTC" + _UTC + _IDENTIFIED,
        "",
    ),
    "hours_after_death": (
        "number",
        "hours from death to collection (negative: before death); for material grown in a model, the "
        "passage's collection, not a post-mortem interval",
        "",
    ),
    "pmi_hours": ("number", "post-mortem interval: stabilised (else excised) minus death, hours", ""),
    "pmi_basis": ("string", "what the post-mortem interval is measured to", "stabilised|excised"),
    "tumour_cellularity_pct": (
        "number",
        "tumour cellularity %: the specimen's review, else its parent's, else its region's",
        "",
    ),
    "cellularity_source": ("string", "whose review the tumour cellularity is", "specimen|parent|region"),
    "quantity": ("number", "quantity when made, in unit", ""),
    "quantity_remaining": ("number", "quantity left, in unit", ""),
    "unit": ("string", "unit of quantity", _vocabulary(vocab.QuantityUnit)),
    "concentration_ng_ul": ("number", "nucleic-acid concentration, ng/µL", ""),
    "yield_ng": ("number", "nucleic-acid yield, ng", ""),
    "a260_280": ("number", "A260/280 purity ratio", ""),
    "din": ("number", "DNA integrity number (0-10)", ""),
    "rin": ("number", "RNA integrity number (0-10)", ""),
    "dv200_pct": ("number", "share of RNA fragments over 200 nucleotides, % (DV200)", ""),
    "fixative": ("string", "fixative", _vocabulary(vocab.Fixative)),
    "decalcification_agent": ("string", "decalcification agent", _vocabulary(vocab.DecalcificationAgent)),
    "decalcification_hours": ("number", "decalcification time, hours", ""),
    "freeze_thaw_count": ("integer", "freeze-thaw cycles so far", ""),
    "storage_temperature": (
        "string",
        "MIABIS storage temperature where the specimen is stored",
        "|".join(STORAGE_TEMPERATURES),
    ),
    "role": ("string", "role of the specimen in the analysis", "|".join(SAMPLE_ROLES)),
    "model_code": (
        "string",
        "derived model the specimen was grown in (or made from material grown in); empty: the "
        "patient's own material",
        "",
    ),
    "model_kind": (
        "string",
        "kind of derived model; empty: the patient's own material",
        "|".join(VOCABULARIES["model_kind"]),
    ),
    "passage": ("string", "model passage the specimen comes from (P0: first engraftment or plating)", ""),
    "passage_number": ("integer", "number of the model passage", ""),
    "host": ("string", "host strain of a patient-derived xenograft (e.g. NSG)", ""),
    "model_source_code": ("string", "patient specimen the model was derived from", ""),
    # treatment lines
    "line_number": ("integer", "treatment line number (1 first)", ""),
    "agents": ("string", "agents given", ""),
    "category": ("string", "treatment category", _vocabulary(vocab.TreatmentCategory)),
    "intent": ("string", "treatment intent", _vocabulary(vocab.TreatmentIntent)),
    "start_days_before_death": ("integer", f"treatment start, {_DAYS}", ""),
    "end_days_before_death": ("integer", f"treatment end, {_DAYS}; empty: given until death or unknown", ""),
    "best_response": ("string", "best response to the line", _vocabulary(vocab.Response)),
    # clinical events
    "clinical_events.kind": ("string", "kind of clinical event", _vocabulary(vocab.ClinicalEventKind)),
    "days_before_death": ("integer", f"when the event happened, {_DAYS}", ""),
    "clinical_events.site_code": ("string", "anatomical site code of the event (the site vocabulary)", ""),
}


class ExportError(ValidationError):
    """An export its target's own rules refuse (the message lists every problem)."""


#: ``ExportError.field`` of a sarek sheet asked for without input files (and without asking for a template).
MISSING_INPUT_FILES = "input_files"
#: The file a folder export writes when something about it needs saying (each line one note).
NOTES_FILE = "NOTES.txt"


@dataclass(frozen=True)
class ExportRequest:
    """What one export was asked for: the target, the selection (a plan, or donors and/or specimens) and the
    target's options. Rendering and the export log read the same request, so a download recorded on its click
    says what was rendered (:func:`export`, :func:`record_served`)."""

    target: str
    plan_code: str | None = None
    donor_codes: tuple[str, ...] = ()
    specimen_codes: tuple[str, ...] = ()
    assay: str = "wgs"
    fastq_dir: str | None = None
    bam_dir: str | None = None
    template: bool = False
    conipher: bool = False
    fhir_version: int = 4
    identified: bool = False
    include_models: bool = False

    def logged(self) -> dict[str, Any]:
        """The selection and options as the export log keeps them: each one given (not its default), plus the assay
        of a sequencing target and the FHIR release, which say what the files are."""
        kept: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            always = (item.name == "assay" and self.target in SEQUENCING_TARGETS) or (
                item.name == "fhir_version" and self.target == "fhir"
            )
            if item.name != "target" and (always or value != item.default):
                kept[item.name] = list(value) if isinstance(value, tuple) else value
        return kept


def _scope(target: str) -> str:
    return (
        ConsentScope.genomic_sequencing.value
        if target in SEQUENCING_TARGETS
        else ConsentScope.research_use.value
    )


def select_frames(
    session: Session,
    *,
    target: str,
    plan_code: str | None = None,
    donor_codes: Sequence[str] = (),
    specimen_codes: Sequence[str] = (),
    assay: str = "wgs",
    identified: bool = False,
    include_models: bool = False,
) -> query.ExportFrames:
    """The frames an export of ``target`` writes (consent and, for a plan, the rules checked first).

    For a patient-tissue target (:data:`PATIENT_TISSUE_TARGETS`) chosen by donors or specimens, material grown in a
    model is left out (and counted in ``excluded``) unless ``include_models``; every other export carries it, marked.
    """
    frames = _selected(
        session,
        target=target,
        plan_code=plan_code,
        donor_codes=donor_codes,
        specimen_codes=specimen_codes,
        assay=assay,
        identified=identified,
    )
    if target in PATIENT_TISSUE_TARGETS and plan_code is None and not include_models:
        grown = is_model_material(frames.samples)
        if grown.any():
            left = frames.samples.loc[grown, "specimen_code"].tolist()
            frames.samples = frames.samples[~grown].reset_index(drop=True)
            frames.excluded.append(
                f"{len(left)} specimen(s) grown in a model left out (patient tissue only; include_models to add): "
                + ", ".join(left[:5])
                + (", ..." if len(left) > 5 else "")
            )
    return frames


def _selected(
    session: Session,
    *,
    target: str,
    plan_code: str | None,
    donor_codes: Sequence[str],
    specimen_codes: Sequence[str],
    assay: str,
    identified: bool,
) -> query.ExportFrames:
    if target not in TARGETS:
        raise invalid("target", target, f"expected one of {', '.join(TARGETS)}")
    if plan_code is not None and (donor_codes or specimen_codes):
        raise invalid("plan", plan_code, "give a plan or donors/specimens, not both")
    if plan_code is not None:
        plan = planning.get_plan(session, plan_code)
        plan_code = plan.code
        report = run_rules(planning.plan_context(session, plan))
        if not report.ok:
            raise PlanRulesError(plan_code, report, action="export")
        return query.export_frames(session, plan_code=plan_code, scope=_scope(target), identified=identified)
    if target in SEQUENCING_TARGETS:
        if not donor_codes and not specimen_codes:
            raise invalid("selection", None, f"a {target} export needs a plan, donors or specimens")
        if donor_codes and not specimen_codes:
            suggestion = planning.suggest(session, donor_codes=donor_codes, assay=assay)
            return query.export_frames(
                session,
                donor_codes=donor_codes,
                selection=suggestion.selection(),
                scope=_scope(target),
                identified=identified,
            )
    return query.export_frames(
        session,
        donor_codes=donor_codes,
        specimen_codes=specimen_codes,
        scope=_scope(target),
        identified=identified,
    )


def _study_id(plan_code: str | None) -> str:
    return (plan_code or "biobank_export").lower().replace("-", "_").replace(".", "_")


def render(
    request: ExportRequest,
    frames: query.ExportFrames,
    *,
    entity_tables: dict[str, pd.DataFrame] | None = None,
    primary_unsampled_reason: str | None = None,
) -> dict[str, bytes]:
    """The target's files as ``{relative path: content}`` from the frames (writers validate; errors raised).

    ``primary_unsampled_reason``: a plan's declaration that its primary tumour is unsampled, carried into the MACHINA
    and Metient notes."""
    target, plan_code = request.target, request.plan_code
    donors, samples = frames.donors, frames.samples
    try:
        if target == "sarek":
            try:
                sheet = sarek.build_sarek(
                    donors, samples, fastq_folder=request.fastq_dir, bam_folder=request.bam_dir,
                    template=request.template,
                )
            except sarek.MissingInputFilesError as exc:
                raise ExportError(str(exc), field=MISSING_INPUT_FILES) from None
            return {SINGLE_FILE["sarek"]: sheet.encode()}
        if target == "clonal":
            files = clonal.clonal_files(donors, samples, conipher=request.conipher)
            return {name: content.encode() for name, content in files.items()}
        if target == "metient":
            files = migration.metient_files(samples, primary_unsampled_reason=primary_unsampled_reason)
            return {name: content.encode() for name, content in files.items()}
        if target == "machina":
            files, _notes = migration.machina_files(samples, primary_unsampled_reason=primary_unsampled_reason)
            return {name: content.encode() for name, content in files.items()}
        if target == "cbioportal":
            files = cbioportal.build_cbioportal(
                donors,
                samples,
                study_id=_study_id(plan_code),
                name=f"Rapid autopsy {plan_code or 'cohort'}",
                description="Rapid-autopsy specimens exported from the biobank tracker (de-identified)",
                sequenced_level=plan_code is None,  # a plan's specimens are the analytes it sequences
            )
            return {name: content.encode() for name, content in files.items()}
        if target == "phenopackets":
            packets = phenopacket.build_phenopackets(donors, samples)
            return {f"{code}.json": content.encode() for code, content in packets.items()}
        if target == "fhir":
            bundle = fhir.build_fhir(donors, samples, version=request.fhir_version, collection=_collection_info())
            return {SINGLE_FILE["fhir"]: bundle.encode()}
        if target == "tables":
            return _tables(entity_tables or {"donors": donors, "samples": samples}, identified=request.identified)
    except ExportValidationError as exc:
        raise ExportError(str(exc), field=target) from None
    except ValueError as exc:
        raise ExportError(f"{target} export: {exc}", field=target) from None
    raise invalid("target", target, f"expected one of {', '.join(TARGETS)}")


def _collection_info() -> fhir.CollectionInfo:
    """Who holds the collection, from the settings (the FHIR export's Organizations and Group)."""
    settings = get_settings()
    return fhir.CollectionInfo(
        biobank_id=settings.biobank_id,
        biobank_name=settings.biobank_name,
        juristic_person=settings.biobank_name,
        collection_id=settings.collection_id,
        collection_name=settings.collection_name,
        contact_email=settings.biobank_contact_email,
        country=settings.biobank_country,
    )


def _tables(frames: dict[str, pd.DataFrame], *, identified: bool) -> dict[str, bytes]:
    """The tables export, every column typed and explained by :data:`DICTIONARY_MEANINGS`."""
    rows = []
    for t, f in frames.items():
        for c in map(str, f.columns):
            entry = DICTIONARY_MEANINGS.get(f"{t}.{c}") or DICTIONARY_MEANINGS.get(c)
            if entry is not None:
                rows.append((t, c, *entry))
    dictionary = pd.DataFrame(rows, columns=list(tables.DICTIONARY_COLUMNS))
    with tempfile.TemporaryDirectory(prefix="biobank-tables-") as tmp:
        written = tables.write_tables(
            frames, tmp, dictionary=dictionary, deidentified=not identified, complete_dictionary=True
        )
        return {p.name: p.read_bytes() for paths in written.values() for p in paths}


def export_files(
    session: Session,
    *,
    actor: User | None,
    target: str,
    plan_code: str | None = None,
    donor_codes: Sequence[str] = (),
    specimen_codes: Sequence[str] = (),
    assay: str = "wgs",
    fastq_dir: str | Path | None = None,
    bam_dir: str | Path | None = None,
    template: bool = False,
    conipher: bool = False,
    fhir_version: int = 4,
    identified: bool = False,
    include_models: bool = False,
    record: bool = True,
) -> dict[str, bytes]:
    """Select, check, render and record one export (:func:`export` of the request these arguments make)."""
    request = ExportRequest(
        target=target,
        plan_code=plan_code,
        donor_codes=tuple(donor_codes),
        specimen_codes=tuple(specimen_codes),
        assay=assay,
        fastq_dir=None if fastq_dir is None else str(fastq_dir),
        bam_dir=None if bam_dir is None else str(bam_dir),
        template=template,
        conipher=conipher,
        fhir_version=fhir_version,
        identified=identified,
        include_models=include_models,
    )
    return export(session, actor=actor, request=request, record=record)


def export(session: Session, *, actor: User | None, request: ExportRequest, record: bool = True) -> dict[str, bytes]:
    """Select, check and render one export; see the module docstring for who may export what.

    The export is recorded in the export log (:mod:`biobank.exports.log`) in the caller's transaction: who, when,
    the selection, the donors and specimens carried and each file's SHA-256. ``record=False`` only renders, for a
    caller that hands the files out later and records them then (:func:`record_served`: a download button).
    """
    require(actor, Action.export)
    frames, entity = _chosen(session, request)
    plan = planning.get_plan(session, request.plan_code) if request.plan_code is not None else None
    files = render(
        request,
        frames,
        entity_tables=entity,
        primary_unsampled_reason=plan.primary_unsampled_reason if plan is not None else None,
    )
    if record:
        _record(session, actor, request, frames, entity, files)
    return files


def record_served(
    session: Session, *, actor: User | None, request: ExportRequest, files: dict[str, bytes]
) -> int:
    """Record files rendered earlier by :func:`export` with ``record=False``, when they are handed out (a download
    button's click): the selection is read again and the files are hashed as served."""
    require(actor, Action.export)
    frames, entity = _chosen(session, request)
    return _record(session, actor, request, frames, entity, files)


def _chosen(
    session: Session, request: ExportRequest
) -> tuple[query.ExportFrames, dict[str, pd.DataFrame] | None]:
    """The export's frames and, for the tables target, every entity of its donors (specimens cut to the chosen
    ones when a plan or specimens were named)."""
    frames = select_frames(
        session,
        target=request.target,
        plan_code=request.plan_code,
        donor_codes=request.donor_codes,
        specimen_codes=request.specimen_codes,
        assay=request.assay,
        identified=request.identified,
        include_models=request.include_models,
    )
    if request.target != "tables":
        return frames, None
    ids = query.donor_ids_for(session, frames.donors["donor_code"].tolist())
    entity = query.entity_frames(session, ids, identified=request.identified)
    if request.plan_code is not None or request.specimen_codes:
        chosen = set(frames.samples["specimen_code"])
        entity["specimens"] = entity["specimens"][entity["specimens"]["specimen_code"].isin(chosen)].reset_index(
            drop=True
        )
    if request.plan_code is not None:  # each specimen's role in the plan (a model sample is marked ``model``)
        roles = dict(zip(frames.samples["specimen_code"], frames.samples["role"], strict=True))
        entity["specimens"] = entity["specimens"].assign(role=entity["specimens"]["specimen_code"].map(roles))
    return frames, entity


def _record(
    session: Session,
    actor: User | None,
    request: ExportRequest,
    frames: query.ExportFrames,
    entity: dict[str, pd.DataFrame] | None,
    files: dict[str, bytes],
) -> int:
    """Write the export's record: the request as asked, the donors and specimens its files carry."""
    specimens = entity["specimens"] if entity is not None and "specimens" in entity else frames.samples
    return export_log.record_export(
        session,
        actor=actor,
        target=request.target,
        selection=request.logged(),
        donor_codes=frames.donors["donor_code"].tolist(),
        specimen_count=len(specimens),
        files=files,
    )


def write_files(
    files: dict[str, bytes], target: str, output: str | Path,
    progress: Callable[[int, int | None], object] | None = None,
) -> list[Path]:
    """Write a single-file target to ``output`` (a file), a folder target into ``output`` (a folder).
    ``progress(done_bytes, total_bytes)`` is told of every file written (a command's progress bar)."""
    out = Path(output)
    total = sum(len(content) for content in files.values())
    if target in SINGLE_FILE and len(files) == 1:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(next(iter(files.values())))
        if progress is not None:
            progress(total, total)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    done = 0
    for name, content in files.items():
        p = out / name
        p.write_bytes(content)
        paths.append(p)
        done += len(content)
        if progress is not None:
            progress(done, total)
    return paths


def zip_files(files: dict[str, bytes], folder: str) -> bytes:
    """A zip of the files under ``folder/`` (for folder downloads)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(f"{folder}/{name}", content)
    return buf.getvalue()


__all__ = [
    "DESCRIPTIONS",
    "EXCHANGE_TARGETS",
    "PATIENT_TISSUE_TARGETS",
    "SEQUENCING_TARGETS",
    "SINGLE_FILE",
    "TARGETS",
    "ExportError",
    "ExportRequest",
    "export",
    "export_files",
    "record_served",
    "render",
    "select_frames",
    "write_files",
    "zip_files",
]
