"""HL7 FHIR R5 ``Bundle`` (type ``collection``) of ``Patient`` and ``Specimen`` resources, built and re-validated
with ``fhir.resources`` (v8, R5, pydantic v2).

Codes follow MIABIS on FHIR (BBMRI-cz/miabis-on-fhir 1.0.0, canonical ``https://fhir.bbmri-eric.eu``; written for
R4, so no profile is claimed in ``meta.profile``):

- ``Specimen.type``: MIABIS detailed sample type, code system
  ``https://fhir.bbmri-eric.eu/CodeSystem/miabis-detailed-samply-type-cs`` (the IG's own spelling, "samply"), e.g.
  ``TissueFreshFrozen``, ``TissueFixed``, ``PostMortemTissue``, ``WholeBlood``, ``Plasma``, ``BuffyCoat``,
  ``BoneMarrowAspirate``, ``DNA``, ``RNA``, ``PrimaryCells``, ``Other``; tissue collected after death also carries
  SNOMED CT 258484005 "Postmortem tissue specimen".
- storage temperature: on ``Specimen.processing.extension``, url
  ``https://fhir.bbmri-eric.eu/StructureDefinition/miabis-sample-storage-temperature-extension``, a CodeableConcept
  from ``https://fhir.bbmri-eric.eu/CodeSystem/miabis-storage-temperature-cs`` (``RT``, ``2to10``, ``-18to-35``,
  ``-60to-85``, ``LN``, ``Other``).

De-identified: ``collection.collected[x]`` and ``Patient.deceasedDateTime`` are omitted; the collection time relative
to death is an extension on ``Specimen.collection`` (``valueDuration`` in hours, UCUM ``h``; negative before death)
and the age at death an extension on ``Patient`` (``valueAge``, UCUM ``a``). ``collection.method`` is SNOMED CT
29240004 "Autopsy examination" for post-mortem material; ``collection.bodySite`` is an R5 ``CodeableReference``
with the UBERON coding (system ``http://purl.obolibrary.org/obo/uberon.owl``).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
from fhir.resources.bundle import Bundle
from fhir.resources.patient import Patient
from fhir.resources.specimen import Specimen

from biobank.domain import vocab
from biobank.exports.formats import Problem, check_frames, refuse_problems
from biobank.exports.formats._common import integer, number, text
from biobank.exports.formats._files import write_file

MIABIS_BASE = "https://fhir.bbmri-eric.eu"
MIABIS_SAMPLE_TYPE_SYSTEM = f"{MIABIS_BASE}/CodeSystem/miabis-detailed-samply-type-cs"
MIABIS_STORAGE_TEMPERATURE_SYSTEM = f"{MIABIS_BASE}/CodeSystem/miabis-storage-temperature-cs"
MIABIS_STORAGE_TEMPERATURE_EXTENSION = (
    f"{MIABIS_BASE}/StructureDefinition/miabis-sample-storage-temperature-extension"
)
SNOMED = "http://snomed.info/sct"
UBERON_SYSTEM = "http://purl.obolibrary.org/obo/uberon.owl"
UCUM = "http://unitsofmeasure.org"

AUTOPSY_EXAMINATION = ("29240004", "Autopsy examination")
POSTMORTEM_TISSUE = ("258484005", "Postmortem tissue specimen")

#: MIABIS detailed sample type codes used here, with the IG's display.
MIABIS_SAMPLE_TYPES: dict[str, str] = {
    "TissueFreshFrozen": "Tissue (fresh frozen)",
    "TissueFixed": "Tissue (fixed)",
    "PostMortemTissue": "Post-mortem tissue",
    "WholeBlood": "Whole blood",
    "Plasma": "Plasma",
    "BuffyCoat": "Buffy coat",
    "BoneMarrowAspirate": "Bone marrow aspirate",
    "DNA": "DNA",
    "RNA": "RNA",
    "PrimaryCells": "Primary cells",
    "Organoid": "Organoids",
    "Other": "Other",
}
MIABIS_STORAGE_TEMPERATURES: dict[str, str] = {
    "RT": "Room temperature",
    "2to10": "between 2 and 10 degrees Celsius",
    "-18to-35": "between -18 and -35 degrees Celsius",
    "-60to-85": "between -60 and -85 degrees Celsius",
    "LN": "liquid nitrogen, -150 to -196 degrees Celsius",
    "Other": "any other temperature or long time storage information",
}
MATERIAL_SAMPLE_TYPE = {
    "whole_blood": "WholeBlood",
    "plasma": "Plasma",
    "buffy_coat": "BuffyCoat",
    "bone_marrow": "BoneMarrowAspirate",
    "dna": "DNA",
    "rna": "RNA",
    "cells": "PrimaryCells",
}
GENDER = {"male": "male", "female": "female", "undifferentiated": "other", "unknown": "unknown"}

NAMESPACE = uuid.UUID("6f0c1e44-5d55-4c5e-9a35-2b3f1f3c9a10")  # fixed: fullUrls are stable across exports

DONOR_REQUIRED = ("donor_code", "sex", "age_at_death")
SAMPLE_REQUIRED = (
    "specimen_code",
    "donor_code",
    "parent_code",
    "material_type",
    "storage_format",
    "site_label",
    "site_uberon",
    "laterality",
    "hours_after_death",
    "storage_temperature",
)


def sample_type_code(material_type: str, storage_format: str, hours_after_death: float | None) -> str:
    """MIABIS detailed sample type for a specimen (tissue and sections by storage format, as vocab maps it)."""
    if material_type in MATERIAL_SAMPLE_TYPE:
        return MATERIAL_SAMPLE_TYPE[material_type]
    if material_type in ("tissue", "section"):
        miabis = vocab.FORMAT_MAPPING[vocab.StorageFormat(storage_format)][1]
        if miabis in MIABIS_SAMPLE_TYPES:
            return miabis
        # "Tissue" (fresh, viable) has no detailed code: autopsy tissue is post-mortem tissue.
        return "PostMortemTissue" if hours_after_death is not None and hours_after_death >= 0 else "Other"
    return "Other"


def fhir_id(code: str) -> str:
    """A FHIR id (``[A-Za-z0-9.-]{1,64}``) for a code."""
    out = "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in code)
    return out[:64] or "x"


def full_url(resource_type: str, code: str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{resource_type}/{code}')}"


def patient_resource(donor: pd.Series, *, identifier_system: str, extension_base: str) -> Patient:
    code = str(donor["donor_code"])
    data: dict[str, Any] = {
        "id": fhir_id(code),
        "identifier": [{"system": identifier_system, "value": code}],
        "gender": GENDER.get(str(donor["sex"]), "unknown"),
        "deceasedBoolean": True,
    }
    age = integer(donor["age_at_death"])
    if age is not None:
        data["extension"] = [
            {
                "url": f"{extension_base}/age-at-death",
                "valueAge": {"value": age, "unit": "a", "system": UCUM, "code": "a"},
            }
        ]
    return Patient.model_validate(data)


def specimen_resource(
    s: pd.Series,
    *,
    identifier_system: str,
    extension_base: str,
    in_bundle: set[str],
) -> Specimen:
    code = str(s["specimen_code"])
    hours = number(s["hours_after_death"])
    material, storage = str(s["material_type"]), str(s["storage_format"])
    type_code = sample_type_code(material, storage, hours)
    codings = [
        {"system": MIABIS_SAMPLE_TYPE_SYSTEM, "code": type_code, "display": MIABIS_SAMPLE_TYPES[type_code]}
    ]
    if material in ("tissue", "section") and hours is not None and hours >= 0:
        codings.append({"system": SNOMED, "code": POSTMORTEM_TISSUE[0], "display": POSTMORTEM_TISSUE[1]})
    data: dict[str, Any] = {
        "id": fhir_id(code),
        "identifier": [{"system": identifier_system, "value": code}],
        "type": {"coding": codings, "text": f"{material}, {storage}"},
        "subject": {"reference": full_url("Patient", str(s["donor_code"]))},
    }
    parent = text(s["parent_code"])
    if parent:
        if parent in in_bundle:
            data["parent"] = [{"reference": full_url("Specimen", parent)}]
        else:
            data["parent"] = [{"identifier": {"system": identifier_system, "value": parent}}]

    collection: dict[str, Any] = {}
    if hours is not None:
        collection["extension"] = [
            {
                "url": f"{extension_base}/collected-after-death",
                "valueDuration": {"value": round(hours, 4), "unit": "h", "system": UCUM, "code": "h"},
            }
        ]
        if hours >= 0:
            collection["method"] = {
                "coding": [
                    {"system": SNOMED, "code": AUTOPSY_EXAMINATION[0], "display": AUTOPSY_EXAMINATION[1]}
                ]
            }
        else:
            collection["method"] = {"text": "pre-mortem collection"}
    uberon = text(s["site_uberon"])
    site_text = text(s["site_label"])
    side = text(s["laterality"])
    if side in ("left", "right", "bilateral") and site_text:
        site_text = f"{site_text} ({side})"
    if uberon or site_text:
        concept: dict[str, Any] = {}
        if uberon:
            concept["coding"] = [{"system": UBERON_SYSTEM, "code": uberon, "display": text(s["site_label"])}]
        if site_text:
            concept["text"] = site_text
        collection["bodySite"] = {"concept": concept}
    if collection:
        data["collection"] = collection

    temperature = text(s["storage_temperature"])
    processing: dict[str, Any] = {"description": f"storage format: {storage}"}
    if temperature:
        processing["extension"] = [
            {
                "url": MIABIS_STORAGE_TEMPERATURE_EXTENSION,
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": MIABIS_STORAGE_TEMPERATURE_SYSTEM,
                            "code": temperature,
                            "display": MIABIS_STORAGE_TEMPERATURES[temperature],
                        }
                    ]
                },
            }
        ]
    data["processing"] = [processing]
    return Specimen.model_validate(data)


def bundle_resource(
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    identifier_system: str = "urn:biobank",
    extension_base: str = "urn:biobank:fhir:StructureDefinition",
) -> Bundle:
    """The Bundle object: every donor's Patient, then every Specimen."""
    check_frames(donors, samples, export="FHIR", donor_columns=DONOR_REQUIRED, sample_columns=SAMPLE_REQUIRED)
    donor_system = f"{identifier_system}:donor"
    specimen_system = f"{identifier_system}:specimen"
    entries: list[dict[str, Any]] = []
    for _, d in donors.iterrows():
        entries.append(
            {
                "fullUrl": full_url("Patient", str(d["donor_code"])),
                "resource": patient_resource(
                    d, identifier_system=donor_system, extension_base=extension_base
                ),
            }
        )
    in_bundle = {str(c) for c in samples["specimen_code"]}
    for _, s in samples.iterrows():
        entries.append(
            {
                "fullUrl": full_url("Specimen", str(s["specimen_code"])),
                "resource": specimen_resource(
                    s, identifier_system=specimen_system, extension_base=extension_base, in_bundle=in_bundle
                ),
            }
        )
    return Bundle.model_validate({"type": "collection", "entry": entries})


def validate_fhir(content: str) -> list[Problem]:
    """Re-validate the Bundle JSON with ``fhir.resources`` (``Bundle.model_validate_json``) and check that it is a
    collection of Patient/Specimen whose references resolve inside the bundle and whose codes are the ones above."""
    try:
        bundle = Bundle.model_validate_json(content)
    except pydantic.ValidationError as exc:
        return [Problem(None, ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
    problems: list[Problem] = []
    if bundle.type != "collection":
        problems.append(Problem(None, "type", f"expected collection, found {bundle.type!r}"))
    raw = json.loads(content)
    entries = raw.get("entry", [])
    urls = [e.get("fullUrl") for e in entries]
    for dup in sorted({u for u in urls if urls.count(u) > 1}):
        problems.append(Problem(None, "fullUrl", f"{dup} appears more than once"))
    known = set(urls)
    for i, entry in enumerate(entries, start=1):
        res = entry.get("resource", {})
        kind = res.get("resourceType")
        if kind not in ("Patient", "Specimen"):
            problems.append(Problem(i, "resourceType", f"unexpected {kind!r}"))
            continue
        if kind != "Specimen":
            continue
        refs = [res.get("subject", {}), *res.get("parent", [])]
        for ref in refs:
            target = ref.get("reference")
            if target is not None and target not in known:
                problems.append(Problem(i, "reference", f"{res.get('id')}: {target} is not in the bundle"))
        if not res.get("subject"):
            problems.append(Problem(i, "subject", f"{res.get('id')}: subject is required"))
        if "collectedDateTime" in res.get("collection", {}) or "collectedPeriod" in res.get("collection", {}):
            problems.append(
                Problem(
                    i, "collection", f"{res.get('id')}: absolute collection time in a de-identified export"
                )
            )
        miabis = [
            c for c in res.get("type", {}).get("coding", []) if c.get("system") == MIABIS_SAMPLE_TYPE_SYSTEM
        ]
        if len(miabis) != 1 or miabis[0].get("code") not in MIABIS_SAMPLE_TYPES:
            problems.append(Problem(i, "type", f"{res.get('id')}: needs one MIABIS detailed sample type"))
        for proc in res.get("processing", []):
            for ext in proc.get("extension", []):
                if ext.get("url") == MIABIS_STORAGE_TEMPERATURE_EXTENSION:
                    codes = [c.get("code") for c in ext.get("valueCodeableConcept", {}).get("coding", [])]
                    if not codes or any(c not in MIABIS_STORAGE_TEMPERATURES for c in codes):
                        problems.append(
                            Problem(i, "processing", f"{res.get('id')}: bad storage temperature {codes}")
                        )
    return problems


def build_fhir(donors: pd.DataFrame, samples: pd.DataFrame, **options: Any) -> str:
    """The Bundle as JSON text, re-validated; raises :class:`ExportValidationError` when invalid."""
    content = bundle_resource(donors, samples, **options).model_dump_json(indent=2)
    problems = validate_fhir(content)
    refuse_problems("FHIR bundle", problems)
    return content


def write_fhir(path: str | Path, donors: pd.DataFrame, samples: pd.DataFrame, **options: Any) -> Path:
    """Write the Bundle JSON to ``path``; return the path."""
    return write_file(path, build_fhir(donors, samples, **options))
