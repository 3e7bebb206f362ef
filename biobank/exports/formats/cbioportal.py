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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from biobank.exports.formats import Problem, check_frames, refuse_problems
from biobank.exports.formats._common import SAFE_ID, integer, number, text
from biobank.exports.formats._files import write_folder

DAYS_PER_MONTH = 365.25 / 12
MISSING = "NA"
DATATYPES = ("STRING", "NUMBER", "BOOLEAN")
BANNED = ("MUTATION_COUNT", "FRACTION_GENOME_ALTERED")

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
        "Collection time in hours after death (post-mortem interval; negative before death)",
        "NUMBER",
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


def sample_rows(donors: pd.DataFrame, samples: pd.DataFrame) -> list[dict[str, str]]:
    donor = {str(d["donor_code"]): d for _, d in donors.iterrows()}
    rows = []
    for _, s in samples.iterrows():
        d = donor[str(s["donor_code"])]
        tumour = s["role"] == "tumour"
        kind = text(s["lesion_kind"])
        stype = SAMPLE_TYPE.get(kind or "", MISSING) if tumour else "Normal"
        pct = number(s["tumour_cellularity_pct"])
        rows.append(
            {
                "PATIENT_ID": str(s["donor_code"]),
                "SAMPLE_ID": str(s["specimen_code"]),
                "SAMPLE_TYPE": stype,
                "CANCER_TYPE": d["primary_diagnosis"] if tumour else None,
                "PRIMARY_SITE": d["primary_site_label"] if tumour else None,
                "METASTATIC_SITE": s["site_label"] if tumour and stype == "Metastasis" else None,
                "SAMPLE_SITE": s["site_label"],
                "LESION_ID": s["lesion_code"],
                "REGION_ID": s["region_code"],
                "SAMPLE_ROLE": s["role"],
                "MATERIAL_TYPE": s["material_type"],
                "STORAGE_FORMAT": s["storage_format"],
                "TUMOR_PURITY": _num(pct, 1),
                "HOURS_AFTER_DEATH": _num(number(s["hours_after_death"]), 2),
            }
        )
    return rows


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
) -> dict[str, str]:
    """The study files as ``{file name: content}``; raises :class:`ExportValidationError` when invalid."""
    check_frames(
        donors, samples, export="cBioPortal", donor_columns=DONOR_REQUIRED, sample_columns=SAMPLE_REQUIRED
    )

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
        DATA_SAMPLE: clinical_file(SAMPLE_ATTRIBUTES, sample_rows(donors, samples)),
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
        for name, dtype in zip(names, types, strict=False):
            if dtype not in DATATYPES:
                add(None, name, f"{data_name}: datatype {dtype!r} is not one of {', '.join(DATATYPES)}")
        for name, priority in zip(names, header[3] if len(header) > 3 else [], strict=False):
            if not re.fullmatch(r"-?\d+", priority):
                add(None, name, f"{data_name}: priority {priority!r} is not an integer")
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
        key = "SAMPLE_ID" if data_name == DATA_SAMPLE else "PATIENT_ID"
        if key in col_of:
            values = [row[col_of[key]] for row in data if len(row) == width]
            for v in sorted({v for v in values if values.count(v) > 1}):
                add(None, key, f"{data_name}: {v} appears more than once")
            ids[data_name] = values
        if data_name == DATA_SAMPLE and "PATIENT_ID" in col_of:
            ids["sample_patients"] = [row[col_of["PATIENT_ID"]] for row in data if len(row) == width]
    patients = set(ids.get(DATA_PATIENT, []))
    for p in sorted(set(ids.get("sample_patients", [])) - patients):
        add(None, "PATIENT_ID", f"{DATA_SAMPLE}: patient {p} is not in {DATA_PATIENT}")
    return problems
