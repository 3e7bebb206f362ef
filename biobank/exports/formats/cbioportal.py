"""cBioPortal study folder: ``meta_study.txt``, clinical meta files and clinical patient/sample data files.

Format (cBioPortal documentation, "File Formats", sections Cancer Study and Clinical Data):

- ``meta_study.txt``: ``type_of_cancer``, ``cancer_study_identifier``, ``name``, ``description`` (+ optional
  ``add_global_case_list``, ``reference_genome``, ``citation``, ``pmid``, ``groups``).
- ``meta_clinical_patient.txt`` / ``meta_clinical_sample.txt``: ``cancer_study_identifier``,
  ``genetic_alteration_type: CLINICAL``, ``datatype: PATIENT_ATTRIBUTES`` / ``SAMPLE_ATTRIBUTES``,
  ``data_filename``.
- ``data_clinical_*.txt``: tab-separated; four ``#`` header rows (display names, descriptions, datatypes
  STRING/NUMBER/BOOLEAN, priorities) then the attribute row (upper case), then data. ``PATIENT_ID`` (and
  ``SAMPLE_ID`` in the sample file) required, letters/digits/``.``/``_``/``-`` only; ``MUTATION_COUNT`` and
  ``FRACTION_GENOME_ALTERED`` are banned (cBioPortal computes them). Survival status values carry ``0:``/``1:``.

De-identified: no dates. ``OS_MONTHS`` is the time from first diagnosis to death (days / 30.4375); ``AGE`` (age at
diagnosis, as cBioPortal defines it) is approximate: age at death minus the years from diagnosis to death.

Samples at the sequenced level
------------------------------
A cBioPortal sample is what molecular data (a MAF's ``Tumor_Sample_Barcode``, an expression column) is keyed by:
the analyte that was or will be sequenced, not every aliquot, block and section the biobank holds. So:

- a plan's export (``sequenced_level=False``): the plan's included specimens as they are (the planner already chose
  one analyte per region, and the germline normal);
- any other export (donors, specimens, the cohort; :func:`sequenced_samples`): per sampling site (a lesion's region,
  a normal tissue, the germline blood...), every DNA and RNA extract made there, where an extract split into
  aliquots (or re-extracted from an extract of the same material) counts once, under the extract it came from;
  a site with no extract gives one representative specimen, the one a planner would pick (DOMAIN.md §6: highest
  tumour cellularity, then snap-frozen or OCT before RNAlater before FFPE, then tissue before other material, then
  the primary specimen before its aliquots and derivatives, then the code). Material grown in a model is its own
  site: each model passage gives its extracts, else one representative, never merged with the patient's tissue.

Material grown in a model (PDX, organoid, cell line; see :func:`biobank.exports.formats.is_model_material`) is
never the patient's tissue: its ``SAMPLE_TYPE`` is ``Xenograft``, ``Organoid`` or ``Cell line`` (the values
cBioPortal's sample icons recognise), ``HOURS_AFTER_DEATH`` is NA (a passage is not a post-mortem interval), and
when any is exported the sample file gains ``MODEL_ID``, ``PASSAGE``, ``PASSAGE_NUMBER``, ``MOUSE_STRAIN``
(cBioPortal's own attribute for a PDX host) and ``MODEL_SOURCE_SAMPLE_ID`` (the patient specimen the model came
from).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from biobank.exports.formats import Problem, check_frames, is_model_material, refuse_problems
from biobank.exports.formats._common import SAFE_ID, integer, number, text
from biobank.exports.formats._files import write_folder

DAYS_PER_MONTH = 365.25 / 12
MISSING = "NA"
DATATYPES = ("STRING", "NUMBER", "BOOLEAN")
BANNED = ("MUTATION_COUNT", "FRACTION_GENOME_ALTERED")
#: cBioPortal's longest sample stable id (``MAX_SAMPLE_STABLE_ID_LENGTH`` in its validator).
MAX_SAMPLE_ID_LENGTH = 63
#: Values cBioPortal reads as empty: never allowed in the four header rows (its ``NULL_VALUES``, lower case).
NULL_VALUES = (
    "",
    "na",
    "[not applicable]",
    "[not available]",
    "[pending]",
    "[discrepancy]",
    "[completed]",
    "[null]",
)
#: Attributes cBioPortal defines itself: the level ("patient"/"sample"/None: either) and datatype it requires.
PREDEFINED: dict[str, tuple[str | None, str | None]] = {
    "AGE": ("patient", "NUMBER"),
    "CANCER_TYPE": (None, "STRING"),
    "CANCER_TYPE_DETAILED": (None, "STRING"),
    "DFS_STATUS": ("patient", "STRING"),
    "DFS_MONTHS": ("patient", "NUMBER"),
    "GENDER": ("patient", "STRING"),
    "METASTATIC_SITE": ("sample", "STRING"),
    "OS_STATUS": ("patient", "STRING"),
    "OS_MONTHS": ("patient", "NUMBER"),
    "OTHER_SAMPLE_ID": ("sample", "STRING"),
    "PRIMARY_SITE": ("sample", "STRING"),
    "SAMPLE_CLASS": ("sample", "STRING"),
    "SAMPLE_TYPE": ("sample", "STRING"),
    "SEX": ("patient", "STRING"),
    "TUMOR_SITE": ("patient", "STRING"),
    "TUMOR_TYPE": ("sample", "STRING"),
}
OS_STATUS_VALUES = ("LIVING", "DECEASED", "0:LIVING", "1:DECEASED")

#: Materials that are an extracted analyte: each one is a sample of its own (DOMAIN.md §6).
EXTRACTS = ("dna", "rna")
#: A site's representative when nothing was extracted there: the planner's order of formats (DOMAIN.md §6) ...
FORMAT_RANK = {"snap_frozen": 0, "oct": 0, "rnalater": 1, "frozen": 1, "ffpe": 2}
#: ... then material that is sequenced as it is before material that is kept for other uses ...
MATERIAL_RANK = {"tissue": 0, "buffy_coat": 0, "whole_blood": 1, "section": 1, "cells": 1, "bone_marrow": 2}
#: ... then the specimen cut from the site before its aliquots and derivatives.
LINEAGE_RANK = {"primary": 0, "aliquot": 1, "derivative": 2}
#: ``SAMPLE_TYPE`` of material grown in a model (cBioPortal's sample icons know Xenograft and Organoid).
MODEL_SAMPLE_TYPE = {"pdx": "Xenograft", "organoid": "Organoid", "cell_line": "Cell line"}

META_STUDY = "meta_study.txt"
META_PATIENT = "meta_clinical_patient.txt"
META_SAMPLE = "meta_clinical_sample.txt"
DATA_PATIENT = "data_clinical_patient.txt"
DATA_SAMPLE = "data_clinical_sample.txt"
FILES = (META_STUDY, META_PATIENT, META_SAMPLE, DATA_PATIENT, DATA_SAMPLE)


@dataclass(frozen=True)
class Attribute:
    """One clinical attribute: the four header rows plus the attribute name."""

    name: str
    display: str
    description: str
    datatype: str = "STRING"
    priority: int = 1


PATIENT_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("PATIENT_ID", "Patient Identifier", "Pseudonymous donor code"),
    Attribute("SEX", "Sex", "Sex of the donor", priority=9),
    Attribute(
        "AGE",
        "Diagnosis Age",
        "Approximate age at first diagnosis in years (age at death minus years from diagnosis to death)",
        "NUMBER",
        8,
    ),
    Attribute("AGE_AT_DEATH", "Age at Death", "Age at death in completed years", "NUMBER"),
    Attribute("OS_STATUS", "Overall Survival Status", "Overall survival status"),
    Attribute(
        "OS_MONTHS",
        "Overall Survival (Months)",
        "Overall survival in months since initial diagnosis",
        "NUMBER",
    ),
    Attribute("PRIMARY_DIAGNOSIS", "Primary Diagnosis", "Primary diagnosis"),
    Attribute("ICD_O_3_SITE", "ICD-O-3 Site", "ICD-O-3 topography code of the primary tumour"),
    Attribute("ICD_O_3_HISTOLOGY", "ICD-O-3 Histology", "ICD-O-3 morphology code of the primary tumour"),
    Attribute(
        "TUMOR_SITE", "Primary Tumor Site", "Anatomical site of the primary tumour (NA: unknown primary)"
    ),
    Attribute("CAUSE_OF_DEATH", "Cause of Death", "Cause of death"),
)

SAMPLE_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("PATIENT_ID", "Patient Identifier", "Pseudonymous donor code"),
    Attribute("SAMPLE_ID", "Sample Identifier", "Specimen code"),
    Attribute("SAMPLE_TYPE", "Sample Type", "Primary, Metastasis, Recurrence or Normal"),
    Attribute(
        "CANCER_TYPE", "Cancer Type", "Cancer type (primary diagnosis); NA for normal samples", priority=3000
    ),
    Attribute("PRIMARY_SITE", "Primary Tumor Site", "Anatomical site of the donor's primary tumour"),
    Attribute("METASTATIC_SITE", "Metastatic Site", "Anatomical site of the metastasis sampled"),
    Attribute("SAMPLE_SITE", "Sampled Site", "Anatomical site the specimen was taken from"),
    Attribute("LESION_ID", "Lesion", "Lesion code within the donor"),
    Attribute("REGION_ID", "Region", "Region (sampling site) code within the donor"),
    Attribute("SAMPLE_ROLE", "Sample Role", "tumour, germline_normal or normal_tissue"),
    Attribute("MATERIAL_TYPE", "Material Type", "Material of the specimen"),
    Attribute("STORAGE_FORMAT", "Storage Format", "Preservation of the specimen"),
    Attribute(
        "TUMOR_PURITY", "Tumor Purity (%)", "Tumour cellularity on pathology review, percent", "NUMBER"
    ),
    Attribute(
        "HOURS_AFTER_DEATH",
        "Hours After Death",
        "Collection time in hours after death (post-mortem interval; negative before death; "
        "NA for model material)",
        "NUMBER",
    ),
)

#: Sample attributes added when the study holds material grown in a model (NA on the patient's own material).
MODEL_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("MODEL_ID", "Model", "Derived model (PDX, organoid, cell line) the sample was grown in"),
    Attribute("PASSAGE", "Passage", "Model passage the sample comes from (P0: first engraftment or plating)"),
    Attribute("PASSAGE_NUMBER", "Passage Number", "Number of the model passage", "NUMBER"),
    Attribute("MOUSE_STRAIN", "Mouse Strain", "Host strain of a patient-derived xenograft"),
    Attribute(
        "MODEL_SOURCE_SAMPLE_ID", "Model Source Specimen", "Patient specimen the model was derived from"
    ),
)

SEX = {"male": "Male", "female": "Female", "undifferentiated": "Undifferentiated"}
SAMPLE_TYPE = {
    "primary": "Primary",
    "metastasis": "Metastasis",
    "lymph_node": "Metastasis",
    "local_recurrence": "Recurrence",
}

DONOR_REQUIRED = (
    "donor_code",
    "sex",
    "age_at_death",
    "primary_diagnosis",
    "icdo3_topography",
    "icdo3_morphology",
    "primary_site_label",
    "diagnosis_days_before_death",
    "cause_of_death",
)
SAMPLE_REQUIRED = (
    "specimen_code",
    "donor_code",
    "role",
    "lesion_code",
    "lesion_kind",
    "region_code",
    "site_label",
    "material_type",
    "storage_format",
    "tumour_cellularity_pct",
    "hours_after_death",
)


def _cell(value: Any) -> str:
    s = text(value)
    if s is None:
        return MISSING
    return re.sub(r"[\t\r\n]+", " ", s)


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return MISSING
    value = round(value, digits)
    return str(int(value)) if float(value).is_integer() else str(value)


def clinical_file(attributes: tuple[Attribute, ...], rows: list[dict[str, str]]) -> str:
    """A clinical data file: four ``#`` header rows, the attribute row, then one line per row."""
    lines = [
        "#" + "\t".join(a.display for a in attributes),
        "#" + "\t".join(a.description for a in attributes),
        "#" + "\t".join(a.datatype for a in attributes),
        "#" + "\t".join(str(a.priority) for a in attributes),
        "\t".join(a.name for a in attributes),
    ]
    lines += ["\t".join(_cell(row.get(a.name)) for a in attributes) for row in rows]
    return "\n".join(lines) + "\n"


def meta_file(fields: Mapping[str, Any]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields.items() if v is not None)


def patient_rows(donors: pd.DataFrame) -> list[dict[str, str]]:
    rows = []
    for _, d in donors.iterrows():
        age = integer(d["age_at_death"])
        days = number(d["diagnosis_days_before_death"])
        diagnosis_age = None if age is None or days is None else age - days / 365.25
        rows.append(
            {
                "PATIENT_ID": str(d["donor_code"]),
                "SEX": SEX.get(str(d["sex"]), MISSING),
                "AGE": _num(diagnosis_age, 1),
                "AGE_AT_DEATH": _num(None if age is None else float(age), 0),
                "OS_STATUS": "1:DECEASED",
                "OS_MONTHS": _num(None if days is None else days / DAYS_PER_MONTH, 2),
                "PRIMARY_DIAGNOSIS": d["primary_diagnosis"],
                "ICD_O_3_SITE": d["icdo3_topography"],
                "ICD_O_3_HISTOLOGY": d["icdo3_morphology"],
                "TUMOR_SITE": d["primary_site_label"],
                "CAUSE_OF_DEATH": d["cause_of_death"],
            }
        )
    return rows


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _model_value(row: Mapping[str, Any], column: str) -> Any:
    return row.get(column)


def sample_rows(donors: pd.DataFrame, samples: pd.DataFrame) -> list[dict[str, str]]:
    donor = {str(d["donor_code"]): d for _, d in donors.iterrows()}
    grown = is_model_material(samples)
    rows = []
    for s, model in zip(_records(samples), grown.tolist(), strict=True):
        d = donor[str(s["donor_code"])]
        tumour = s["role"] == "tumour"
        kind = text(s["lesion_kind"])
        origin = SAMPLE_TYPE.get(kind or "", MISSING) if tumour else "Normal"
        stype = MODEL_SAMPLE_TYPE.get(text(_model_value(s, "model_kind")) or "", "Model") if model else origin
        pct = number(s["tumour_cellularity_pct"])
        row = {
            "PATIENT_ID": str(s["donor_code"]),
            "SAMPLE_ID": str(s["specimen_code"]),
            "SAMPLE_TYPE": stype,
            "CANCER_TYPE": d["primary_diagnosis"] if tumour else None,
            "PRIMARY_SITE": d["primary_site_label"] if tumour else None,
            "METASTATIC_SITE": s["site_label"] if tumour and origin == "Metastasis" else None,
            "SAMPLE_SITE": s["site_label"],
            "LESION_ID": s["lesion_code"],
            "REGION_ID": s["region_code"],
            "SAMPLE_ROLE": s["role"],
            "MATERIAL_TYPE": s["material_type"],
            "STORAGE_FORMAT": s["storage_format"],
            "TUMOR_PURITY": _num(pct, 1),
            # a passage is collected weeks after death: not a post-mortem interval
            "HOURS_AFTER_DEATH": MISSING if model else _num(number(s["hours_after_death"]), 2),
        }
        if model:
            row |= {
                "MODEL_ID": _model_value(s, "model_code"),
                "PASSAGE": _model_value(s, "passage"),
                "PASSAGE_NUMBER": _num(number(_model_value(s, "passage_number")), 0),
                "MOUSE_STRAIN": _model_value(s, "host"),
                "MODEL_SOURCE_SAMPLE_ID": _model_value(s, "model_source_code"),
            }
        rows.append(row)
    return rows


def _site_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    """The sampling site a sample stands for; each model passage is a site of its own."""
    return (
        str(row["donor_code"]),
        str(row["region_code"]),
        text(_model_value(row, "model_code")) or "",
        text(_model_value(row, "passage")) or "",
    )


def _representative_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    pct = number(row["tumour_cellularity_pct"])
    return (
        -pct if pct is not None else 1.0,
        FORMAT_RANK.get(str(row["storage_format"]), 3),
        MATERIAL_RANK.get(str(row["material_type"]), 3),
        LINEAGE_RANK.get(str(row["lineage"]), 3),
        str(row["specimen_code"]),
    )


def sequenced_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """The samples at the sequenced level (see the module docstring), in the frame's order.

    Per sampling site: every DNA/RNA extract that is not a portion of another extract of the same material in the
    frame (an aliquot of an extract is the same analyte), else the one representative specimen of the site.
    """
    if samples.empty:
        return samples
    rows = _records(samples)
    material = {str(r["specimen_code"]): r["material_type"] for r in rows}
    parent = {str(r["specimen_code"]): r["parent_code"] for r in rows}

    def portion_of_extract(code: str) -> bool:
        seen = {code}
        up = text(parent.get(code))
        while up is not None and up in material and up not in seen:
            if material[up] == material[code]:
                return True
            seen.add(up)
            up = text(parent.get(up))
        return False

    sites: dict[tuple[str, ...], list[int]] = {}
    for position, row in enumerate(rows):
        sites.setdefault(_site_key(row), []).append(position)
    keep: set[int] = set()
    for positions in sites.values():
        extracts = [
            p
            for p in positions
            if rows[p]["material_type"] in EXTRACTS and not portion_of_extract(str(rows[p]["specimen_code"]))
        ]
        keep.update(extracts or [min(positions, key=lambda p: _representative_key(rows[p]))])
    return samples.iloc[sorted(keep)].reset_index(drop=True)


def build_cbioportal(
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    study_id: str,
    name: str,
    description: str,
    type_of_cancer: str = "mixed",
    reference_genome: str | None = None,
    add_global_case_list: bool = True,
    sequenced_level: bool = True,
) -> dict[str, str]:
    """The study files as ``{file name: content}``; raises :class:`ExportValidationError` when invalid.

    ``sequenced_level``: reduce the samples to the analytes sequenced (:func:`sequenced_samples`); False writes every
    row as given (a plan's chosen specimens).
    """
    check_frames(
        donors,
        samples,
        export="cBioPortal",
        donor_columns=DONOR_REQUIRED,
        sample_columns=(*SAMPLE_REQUIRED, "parent_code", "lineage"),
    )
    if sequenced_level:
        samples = sequenced_samples(samples)
    sample_attributes = SAMPLE_ATTRIBUTES + (MODEL_ATTRIBUTES if is_model_material(samples).any() else ())

    files = {
        META_STUDY: meta_file(
            {
                "type_of_cancer": type_of_cancer,
                "cancer_study_identifier": study_id,
                "name": name,
                "description": description,
                "add_global_case_list": "true" if add_global_case_list else None,
                "reference_genome": reference_genome,
            }
        ),
        META_PATIENT: meta_file(
            {
                "cancer_study_identifier": study_id,
                "genetic_alteration_type": "CLINICAL",
                "datatype": "PATIENT_ATTRIBUTES",
                "data_filename": DATA_PATIENT,
            }
        ),
        META_SAMPLE: meta_file(
            {
                "cancer_study_identifier": study_id,
                "genetic_alteration_type": "CLINICAL",
                "datatype": "SAMPLE_ATTRIBUTES",
                "data_filename": DATA_SAMPLE,
            }
        ),
        DATA_PATIENT: clinical_file(PATIENT_ATTRIBUTES, patient_rows(donors)),
        DATA_SAMPLE: clinical_file(sample_attributes, sample_rows(donors, samples)),
    }
    problems = validate_cbioportal(files)
    refuse_problems("cBioPortal study", problems)
    return files


def write_cbioportal(
    folder: str | Path, donors: pd.DataFrame, samples: pd.DataFrame, **study: Any
) -> list[Path]:
    """Write the study folder (keyword arguments as :func:`build_cbioportal`); return the paths written."""
    return write_folder(folder, build_cbioportal(donors, samples, **study))


# ------------------------------------------------------------------------------------------------- validation


def parse_meta(content: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in content.splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


def read_clinical(content: str) -> tuple[list[list[str]], list[str], list[list[str]]]:
    """(the four header rows without ``#``, the attribute names, the data rows) of a clinical file."""
    lines = content.rstrip("\n").split("\n")
    header = [line[1:].split("\t") for line in lines[:4]]
    names = lines[4].split("\t") if len(lines) > 4 else []
    data = [line.split("\t") for line in lines[5:]]
    return header, names, data


def validate_cbioportal(files: Mapping[str, str]) -> list[Problem]:
    """cBioPortal's loading rules for the meta and clinical files (the checks its validator runs on them)."""
    problems: list[Problem] = []

    def add(row: int | None, field: str | None, message: str) -> None:
        problems.append(Problem(row, field, message))

    missing = [f for f in FILES if f not in files]
    for f in missing:
        add(None, None, f"missing file {f}")
    if missing:
        return problems

    study = parse_meta(files[META_STUDY])
    for key in ("type_of_cancer", "cancer_study_identifier", "name", "description"):
        if not study.get(key):
            add(None, key, f"{META_STUDY}: required field missing")
    study_id = study.get("cancer_study_identifier", "")
    if study_id and not SAFE_ID.match(study_id):
        add(
            None, "cancer_study_identifier", f"{META_STUDY}: {study_id!r} must be letters, digits, . _ - only"
        )
    for meta_name, datatype, data_name in (
        (META_PATIENT, "PATIENT_ATTRIBUTES", DATA_PATIENT),
        (META_SAMPLE, "SAMPLE_ATTRIBUTES", DATA_SAMPLE),
    ):
        meta = parse_meta(files[meta_name])
        expected = {
            "cancer_study_identifier": study_id,
            "genetic_alteration_type": "CLINICAL",
            "datatype": datatype,
            "data_filename": data_name,
        }
        for key, value in expected.items():
            if meta.get(key) != value:
                add(None, key, f"{meta_name}: expected {value!r}, found {meta.get(key)!r}")

    ids: dict[str, list[str]] = {}
    attributes: dict[str, set[str]] = {}
    for data_name, id_columns in (
        (DATA_PATIENT, ("PATIENT_ID",)),
        (DATA_SAMPLE, ("PATIENT_ID", "SAMPLE_ID")),
    ):
        header, names, data = read_clinical(files[data_name])
        lines = files[data_name].rstrip("\n").split("\n")
        if len(lines) < 5 or not all(line.startswith("#") for line in lines[:4]):
            add(None, None, f"{data_name}: the first four rows must start with '#'")
            continue
        if lines[4].startswith("#"):
            add(None, None, f"{data_name}: the fifth row must be the attribute names, not a '#' row")
        width = len(names)
        for n, row in enumerate(header, start=1):
            if len(row) != width:
                add(None, None, f"{data_name}: header row {n} has {len(row)} columns, attribute row {width}")
        for n, row in enumerate(data, start=1):
            if len(row) != width:
                add(n, None, f"{data_name}: {len(row)} columns, attribute row has {width}")
        types = header[2] if len(header) > 2 else []
        level = "sample" if data_name == DATA_SAMPLE else "patient"
        for n, row in enumerate(header):
            for name, value in zip(names, row, strict=False):
                if name not in id_columns and value.strip().lower() in NULL_VALUES:
                    add(None, name, f"{data_name}: header row {n + 1} is empty ({value!r})")
        for name, dtype in zip(names, types, strict=False):
            if dtype not in DATATYPES:
                add(None, name, f"{data_name}: datatype {dtype!r} is not one of {', '.join(DATATYPES)}")
            want_level, want_type = PREDEFINED.get(name, (None, None))
            if want_level is not None and want_level != level:
                add(None, name, f"{data_name}: cBioPortal defines {name} as a {want_level}-level attribute")
            if want_type is not None and dtype != want_type:
                add(None, name, f"{data_name}: cBioPortal defines {name} as {want_type}, found {dtype!r}")
        for name, priority in zip(names, header[3] if len(header) > 3 else [], strict=False):
            if not re.fullmatch(r"-?\d+", priority) or int(priority) < -1:
                add(None, name, f"{data_name}: priority {priority!r} is not an integer of -1 or more")
        for name in names:
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                add(
                    None,
                    name,
                    f"{data_name}: attribute names must be upper case letters, digits, underscores",
                )
            if name in BANNED:
                add(
                    None,
                    name,
                    f"{data_name}: {name} is computed by cBioPortal and must not be in clinical data",
                )
        dup = sorted({n for n in names if names.count(n) > 1})
        for name in dup:
            add(None, name, f"{data_name}: attribute repeated")
        for col in id_columns:
            if col not in names:
                add(None, col, f"{data_name}: required column missing")
        col_of = {name: i for i, name in enumerate(names)}
        for n, row in enumerate(data, start=1):
            if len(row) != width:
                continue
            for col in id_columns:
                if col in col_of and not SAFE_ID.match(row[col_of[col]]):
                    add(n, col, f"{data_name}: {row[col_of[col]]!r} must be letters, digits, . _ - only")
            if "SAMPLE_ID" in col_of and len(row[col_of["SAMPLE_ID"]]) > MAX_SAMPLE_ID_LENGTH:
                add(n, "SAMPLE_ID", f"{data_name}: longer than {MAX_SAMPLE_ID_LENGTH} characters")
            for name, dtype in zip(names, types, strict=False):
                value = row[col_of[name]]
                if value == MISSING:
                    continue
                if dtype == "NUMBER":
                    try:
                        float(value)
                    except ValueError:
                        add(n, name, f"{data_name}: {value!r} is not a number")
                elif dtype == "BOOLEAN" and value.upper() not in ("TRUE", "FALSE"):
                    add(n, name, f"{data_name}: {value!r} is not TRUE or FALSE")
                if name.endswith("_STATUS") and not re.match(r"^[01]:", value):
                    add(n, name, f"{data_name}: survival status {value!r} must start with 0: or 1:")
                if name == "OS_STATUS" and value not in OS_STATUS_VALUES:
                    add(n, name, f"{data_name}: {value!r} is not one of {', '.join(OS_STATUS_VALUES)}")
        key = "SAMPLE_ID" if data_name == DATA_SAMPLE else "PATIENT_ID"
        if key in col_of:
            values = [row[col_of[key]] for row in data if len(row) == width]
            for v in sorted({v for v in values if values.count(v) > 1}):
                add(None, key, f"{data_name}: {v} appears more than once")
            ids[data_name] = values
        if data_name == DATA_SAMPLE and "PATIENT_ID" in col_of:
            ids["sample_patients"] = [row[col_of["PATIENT_ID"]] for row in data if len(row) == width]
        attributes[data_name] = {n for n in names if n not in ("PATIENT_ID", "SAMPLE_ID")}
    for name in sorted(attributes.get(DATA_PATIENT, set()) & attributes.get(DATA_SAMPLE, set())):
        add(None, name, "defined both as a patient-level and as a sample-level attribute")
    patients = set(ids.get(DATA_PATIENT, []))
    for p in sorted(set(ids.get("sample_patients", [])) - patients):
        add(None, "PATIENT_ID", f"{DATA_SAMPLE}: patient {p} is not in {DATA_PATIENT}")
    return problems
