"""Every export, from the same query functions: select, check consent (and a plan's rules), write in memory.

:func:`export_files` returns ``{relative path: bytes}`` so the CLI writes them under ``-o`` and the dashboard offers
them as downloads (a zip for folders). Who may export: ``Action.export`` (PIs and admins), since an export hands a donor's
data to a pipeline or another institution.

Selections: ``plan_code`` (the plan's included specimens, with their roles; refused while the plan has rule errors),
or donors and/or specimens. For the sequencing targets (sarek, clonal, MACHINA, Metient) donors without named
specimens get their suggested selection (:func:`biobank.services.planning.suggest`) for ``assay``; for the exchange
targets (cBioPortal, Phenopackets, FHIR, tables) every specimen of the donors is exported. Nothing selected means
the whole cohort for the exchange targets, less withdrawn donors and donors without consent.

Consent: sequencing targets need consent to genomic sequencing, the others consent to research use; a withdrawn
donor never appears.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from sqlmodel import Session

from biobank.domain.errors import ValidationError, invalid
from biobank.domain.vocab import ConsentScope
from biobank.exports.formats import (
    ExportValidationError,
    cbioportal,
    clonal,
    fhir,
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
EXCHANGE_TARGETS = ("cbioportal", "phenopackets", "fhir", "tables")
TARGETS = SEQUENCING_TARGETS + EXCHANGE_TARGETS
#: What each target writes, one sentence: the help of its ``biobank export TARGET`` command (each has one).
DESCRIPTIONS = {
    "sarek": "nf-core/sarek samplesheet, validated by sarek's schema and cross-row rules.",
    "clonal": "Sample table for clonal deconvolution (PyClone-VI tumour_content, site, site category).",
    "machina": "MACHINA leaf labelling per donor (and the -p primary) into a folder.",
    "metient": "Metient sample/site table (anatomical_site_label, site_category).",
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
    "clonal": "clonal_samples.tsv",
    "metient": "metient_samples.tsv",
    "fhir": "bundle.json",
}

#: Meanings of the columns the tables export writes (the rest are inferred by the writer).
DICTIONARY_MEANINGS = {
    "donor_code": ("pseudonymous donor code", ""),
    "sex": ("MIABIS sex", "male|female|unknown|undifferentiated|not_applicable"),
    "age_at_death": ("age at death in years", ""),
    "diagnosis_days_before_death": ("first diagnosis, days before death", ""),
    "specimen_code": ("specimen code (sample ID)", ""),
    "storage_format": ("storage format", "fresh|snap_frozen|oct|ffpe|rnalater|viable_cryo|frozen"),
    "material_type": (
        "material type",
        "tissue|whole_blood|plasma|buffy_coat|bone_marrow|dna|rna|cells|section",
    ),
    "hours_after_death": ("hours from death to excision (negative: before death)", ""),
    "pmi_hours": ("post-mortem interval: stabilised (else excised) minus death, hours", ""),
    "tumour_cellularity_pct": (
        "tumour cellularity %: the specimen's, else its parent's, else its region's",
        "",
    ),
    "start_days_before_death": ("treatment start, days before death", ""),
    "end_days_before_death": ("treatment end, days before death", ""),
    "days_before_death": ("days before death", ""),
    "lesion_code": ("lesion code", ""),
    "region_code": ("sampling-site code (region L01-A, normal N01, blood GB1...)", ""),
}


class ExportError(ValidationError):
    """An export its target's own rules refuse (the message lists every problem)."""


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
) -> query.ExportFrames:
    """The frames an export of ``target`` writes (consent and, for a plan, the rules checked first)."""
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
    target: str,
    frames: query.ExportFrames,
    *,
    fastq_dir: str | Path | None = None,
    conipher: bool = False,
    plan_code: str | None = None,
    entity_tables: dict[str, pd.DataFrame] | None = None,
    identified: bool = False,
) -> dict[str, bytes]:
    """The target's files as ``{relative path: content}`` from the frames (writers validate; errors raised)."""
    donors, samples = frames.donors, frames.samples
    try:
        if target == "sarek":
            return {SINGLE_FILE["sarek"]: sarek.build_sarek(donors, samples, fastq_folder=fastq_dir).encode()}
        if target == "clonal":
            if conipher:
                return {"conipher_samples.tsv": clonal.build_conipher(donors, samples).encode()}
            return {SINGLE_FILE["clonal"]: clonal.build_clonal(donors, samples).encode()}
        if target == "metient":
            return {SINGLE_FILE["metient"]: migration.build_metient(samples).encode()}
        if target == "machina":
            out: dict[str, bytes] = {}
            for donor, item in migration.build_machina(samples).items():
                out[f"{donor}.labeling"] = item.labeling.encode()
                if item.primary:
                    out[f"{donor}.primary"] = (item.primary + "\n").encode()
            return out
        if target == "cbioportal":
            files = cbioportal.build_cbioportal(
                donors,
                samples,
                study_id=_study_id(plan_code),
                name=f"Rapid autopsy {plan_code or 'cohort'}",
                description="Rapid-autopsy specimens exported from the biobank tracker (de-identified)",
            )
            return {name: content.encode() for name, content in files.items()}
        if target == "phenopackets":
            packets = phenopacket.build_phenopackets(donors, samples)
            return {f"{code}.json": content.encode() for code, content in packets.items()}
        if target == "fhir":
            return {SINGLE_FILE["fhir"]: fhir.build_fhir(donors, samples).encode()}
        if target == "tables":
            return _tables(entity_tables or {"donors": donors, "samples": samples}, identified=identified)
    except ExportValidationError as exc:
        raise ExportError(str(exc), field=target) from None
    except ValueError as exc:
        raise ExportError(f"{target} export: {exc}", field=target) from None
    raise invalid("target", target, f"expected one of {', '.join(TARGETS)}")


def _tables(frames: dict[str, pd.DataFrame], *, identified: bool) -> dict[str, bytes]:
    rows = [
        {
            "table": t,
            "column": c,
            "type": None,
            "meaning": DICTIONARY_MEANINGS[c][0],
            "vocabulary": DICTIONARY_MEANINGS[c][1],
        }
        for t, f in frames.items()
        for c in f.columns
        if c in DICTIONARY_MEANINGS
    ]
    dictionary = pd.DataFrame(rows, columns=list(tables.DICTIONARY_COLUMNS))
    with tempfile.TemporaryDirectory(prefix="biobank-tables-") as tmp:
        written = tables.write_tables(frames, tmp, dictionary=dictionary, deidentified=not identified)
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
    conipher: bool = False,
    identified: bool = False,
) -> dict[str, bytes]:
    """Select, check and render one export; see the module docstring for who may export what."""
    require(actor, Action.export)
    frames = select_frames(
        session,
        target=target,
        plan_code=plan_code,
        donor_codes=donor_codes,
        specimen_codes=specimen_codes,
        assay=assay,
        identified=identified,
    )
    entity = None
    if target == "tables":
        ids = query.donor_ids_for(session, frames.donors["donor_code"].tolist())
        entity = query.entity_frames(session, ids, identified=identified)
        if plan_code is not None or specimen_codes:
            chosen = set(frames.samples["specimen_code"])
            entity["specimens"] = entity["specimens"][
                entity["specimens"]["specimen_code"].isin(chosen)
            ].reset_index(drop=True)
    return render(
        target,
        frames,
        fastq_dir=fastq_dir,
        conipher=conipher,
        plan_code=plan_code,
        entity_tables=entity,
        identified=identified,
    )


def write_files(files: dict[str, bytes], target: str, output: str | Path) -> list[Path]:
    """Write a single-file target to ``output`` (a file), a folder target into ``output`` (a folder)."""
    out = Path(output)
    if target in SINGLE_FILE and len(files) == 1:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(next(iter(files.values())))
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        p = out / name
        p.write_bytes(content)
        paths.append(p)
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
    "SEQUENCING_TARGETS",
    "SINGLE_FILE",
    "TARGETS",
    "ExportError",
    "export_files",
    "render",
    "select_frames",
    "write_files",
    "zip_files",
]
