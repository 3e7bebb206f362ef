"""HL7 FHIR R4 ``transaction`` Bundle with the MIABIS-on-FHIR profiles (BBMRI-ERIC, canonical
``https://fhir.bbmri-eric.eu``), re-validated with the strict R4 models of ``fhir.resources`` (``R4B``: Patient,
Specimen, Condition, Group and Organization are the same as in R4).

What it holds, each resource with its MIABIS profile in ``meta.profile`` and a ``request`` ``PUT Type/id`` (ids are
derived from the codes, so a second upload updates rather than duplicates and references read ``Patient/RA-0001``):

- the collection: a juristic person, the biobank and the collection ``Organization`` (profiles
  ``miabis-juristic-person``, ``miabis-biobank``, ``miabis-collection-organization``) and the collection ``Group``
  (``miabis-collection``: age range, sexes, storage temperatures, material types and ICD-10 diagnoses as
  characteristics, the number of donors, every Specimen as a member through the R5 ``Group.member.entity``
  extension MIABIS uses). Names, identifiers and the contact come from :class:`CollectionInfo`.
- ``Patient`` per donor (``miabis-sample-donor``): gender, ``deceasedBoolean``; the MIABIS dataset-type extension
  comes *first*, since MIABIS readers take the first extension as the dataset type; the age at death follows
  (``valueAge``, UCUM ``a``). No birth or death date (de-identified).
- ``Condition`` per donor with a diagnosis (``miabis-condition``): ``code.coding[0]`` the ICD-10 code derived from
  the ICD-O-3 topography and morphology (:func:`icd10_from_icdo3`: ``C50.9`` stays ``C50.9``, ``C61.9`` becomes
  ``C61``, a melanoma of skin becomes ``C43.x``), then the ICD-O-3 morphology; ``bodySite`` the ICD-O-3 topography
  and UBERON. No ``identifier``: miabis-on-fhir 1.4 writes it back as a single Identifier, which R4 refuses.
- ``Specimen`` per sample (``miabis-sample``): ``type.coding[0]`` the MIABIS detailed sample type (code system
  ``miabis-detailed-samply-type-cs``, the IG's spelling); ``extension[0]`` the sample-collection extension (the
  collection's identifier); ``collection.bodySite`` an R4 CodeableConcept (UBERON); ``processing[0].extension[0]``
  the MIABIS storage temperature; ``parent`` the specimen it was taken from.
  Patient material collected after death: SNOMED CT 258484005 "Postmortem tissue specimen" beside the MIABIS type,
  ``collection.method`` SNOMED CT 29240004 "Autopsy examination", the time relative to death as an extension on
  ``collection`` (``valueDuration`` in hours; negative before death). No ``collectedDateTime``.
  Material grown in a model (PDX, organoid, cell line) is never described as autopsy tissue: no autopsy method,
  no post-mortem type, no hours after death, no body site of the patient; its type is ``Organoid`` for organoids,
  ``CancerCellLine`` for cell lines, and for PDX xenograft tissue the MIABIS type of its preservation
  (``TissueFreshFrozen``, ``TissueFixed``; ``Other`` for viable cryopreserved fragments), since MIABIS has no
  xenograft type; a ``derived-from-model`` extension (model, kind, passage, host) and ``type.text`` say what it is,
  and ``parent`` names the patient specimen the model came from. (A ``note`` would be read as use restrictions by
  MIABIS readers, so none is written.)

Only R4 is written: MIABIS on FHIR profiles R4, and an R5 Bundle would drop the profiles and need a clinical status
for every Condition that the biobank does not record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
from fhir.resources.R4B.bundle import Bundle

from biobank.domain import vocab
from biobank.domain.errors import invalid
from biobank.exports.formats import Problem, check_frames, refuse_problems
from biobank.exports.formats._common import integer, number, text
from biobank.exports.formats._files import write_file

FHIR_VERSIONS = (4,)

MIABIS_BASE = "https://fhir.bbmri-eric.eu"
MIABIS_SAMPLE_TYPE_SYSTEM = f"{MIABIS_BASE}/CodeSystem/miabis-detailed-samply-type-cs"
MIABIS_STORAGE_TEMPERATURE_SYSTEM = f"{MIABIS_BASE}/CodeSystem/miabis-storage-temperature-cs"
MIABIS_STORAGE_TEMPERATURE_EXTENSION = (
    f"{MIABIS_BASE}/StructureDefinition/miabis-sample-storage-temperature-extension"
)
MIABIS_SAMPLE_COLLECTION_EXTENSION = f"{MIABIS_BASE}/StructureDefinition/miabis-sample-collection-extension"
MIABIS_DATASET_TYPE_EXTENSION = f"{MIABIS_BASE}/StructureDefinition/miabis-dataset-type-extension"
MIABIS_DATASET_TYPE_SYSTEM = f"{MIABIS_BASE}/CodeSystem/miabis-dataset-type-CS"
MIABIS_CHARACTERISTIC_SYSTEM = f"{MIABIS_BASE}/CodeSystem/miabis-characteristicCS"
MIABIS_COLLECTION_SAMPLE_TYPE_SYSTEM = f"{MIABIS_BASE}/CodeSystem/miabis-collection-sample-type-cs"
MIABIS_NUMBER_OF_SUBJECTS_EXTENSION = f"{MIABIS_BASE}/StructureDefinition/miabis-number-of-subjects-extension"
MIABIS_DESCRIPTION_EXTENSION = f"{MIABIS_BASE}/StructureDefinition/miabis-organization-description-extension"
#: Group.member.entity of R5, which MIABIS on FHIR uses in R4 (R4 members cannot be Specimens).
GROUP_MEMBER_EXTENSION = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Group.member.entity"
ADMINISTRATIVE_GENDER = "http://hl7.org/fhir/administrative-gender"
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
ICDO3_SYSTEM = "http://terminology.hl7.org/CodeSystem/icd-o-3"
SNOMED = "http://snomed.info/sct"
UBERON_SYSTEM = "http://purl.obolibrary.org/obo/uberon.owl"
UCUM = "http://unitsofmeasure.org"

#: MIABIS profile of each resource kind written here (an Organization carries one of three).
PROFILES: dict[str, str] = {
    "Patient": f"{MIABIS_BASE}/StructureDefinition/miabis-sample-donor",
    "Specimen": f"{MIABIS_BASE}/StructureDefinition/miabis-sample",
    "Condition": f"{MIABIS_BASE}/StructureDefinition/miabis-condition",
    "Group": f"{MIABIS_BASE}/StructureDefinition/miabis-collection",
}
ORGANIZATION_PROFILES: dict[str, str] = {
    "juristic_person": f"{MIABIS_BASE}/StructureDefinition/miabis-juristic-person",
    "biobank": f"{MIABIS_BASE}/StructureDefinition/miabis-biobank",
    "collection": f"{MIABIS_BASE}/StructureDefinition/miabis-collection-organization",
}

AUTOPSY_EXAMINATION = ("29240004", "Autopsy examination")
POSTMORTEM_TISSUE = ("258484005", "Postmortem tissue specimen")
#: The donor's MIABIS dataset type: the donor is in the biobank for their samples.
DONOR_DATASET_TYPE = "BiologicalSamples"

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
    "CancerCellLine": "Cancer cell line",
    "Other": "Other",
}
#: MIABIS collection-level material type of each detailed type (``miabis-collection-sample-type-cs``).
COLLECTION_SAMPLE_TYPES: dict[str, str] = {
    "TissueFreshFrozen": "TissueFrozen",
    "TissueFixed": "TissueFFPE",
    "PostMortemTissue": "PostMortemTissue",
    "WholeBlood": "Blood",
    "Plasma": "Plasma",
    "BuffyCoat": "BuffyCoat",
    "BoneMarrowAspirate": "OtherBodyFluid",
    "DNA": "DNA",
    "RNA": "RNA",
    "PrimaryCells": "PrimaryCells",
    "Organoid": "Other",
    "CancerCellLine": "CancerCellLine",
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
#: Detailed types that say what a model's own material is (extracts keep DNA/RNA).
MODEL_SAMPLE_TYPE = {"organoid": "Organoid", "cell_line": "CancerCellLine"}
MODEL_KIND_TEXT = {"pdx": "PDX xenograft", "organoid": "organoid culture", "cell_line": "cell line"}
GENDER = {"male": "male", "female": "female", "undifferentiated": "other", "unknown": "unknown"}

#: ICD-10 categories with no fourth-character subdivision, whose ICD-O-3 topography ``Cxx.9`` is not an ICD-10 code.
ICD10_THREE_CHARACTER = frozenset(
    {
        "C01",
        "C07",
        "C12",
        "C19",
        "C20",
        "C23",
        "C33",
        "C37",
        "C52",
        "C55",
        "C56",
        "C58",
        "C61",
        "C64",
        "C65",
        "C66",
        "C73",
    }
)
#: ICD-O-3 topographies with no ICD-10 counterpart for a solid tumour: haematopoietic system (C42: ICD-10 has no
#: C42) and lymph nodes (C77: ICD-10 C77 means *secondary* malignant neoplasm of lymph nodes).
ICDO3_NO_ICD10 = frozenset({"C42", "C77"})

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


@dataclass(frozen=True)
class CollectionInfo:
    """Who holds the collection: the MIABIS biobank, its legal entity and the collection (BBMRI-ERIC directory
    identifiers where the biobank has them). The defaults name this tracker's collection; a biobank that registers
    in the BBMRI-ERIC directory passes its own (``ZZ`` is the ISO 3166 code for an unspecified country)."""

    biobank_id: str = "rapid-autopsy-biobank"
    biobank_name: str = "Rapid autopsy biobank"
    juristic_person: str = "Rapid autopsy biobank"
    collection_id: str = "rapid-autopsy-biobank:collection:autopsy"
    collection_name: str = "Rapid autopsy collection"
    description: str = (
        "Tissue, blood and derived material from research autopsies of consented cancer patients, "
        "with the organoid and PDX models grown from them"
    )
    contact_given: str = "Biobank"
    contact_family: str = "Manager"
    contact_email: str | None = None
    country: str = "ZZ"


def icd10_from_icdo3(topography: Any, morphology: Any) -> str | None:
    """The ICD-10 code of a malignant primary tumour from its ICD-O-3 topography and morphology, or None when ICD-10
    places it elsewhere than its site (haematolymphoid, non-malignant, lymph-node or marrow sites).

    The topography keeps its subdivision when ICD-10 has it (``C50.9``) and drops it where ICD-10 has only the
    category (``C61.9`` -> ``C61``); melanoma of skin is C43, mesothelioma C45, Kaposi sarcoma C46.
    """
    site, morph = text(topography), text(morphology)
    if site is None or morph is None or "/" not in morph:
        return None
    histology, behaviour = morph.split("/", 1)
    if behaviour not in ("3", "6", "9") or not histology.isdigit():
        return None  # in situ, benign, uncertain: ICD-10 D codes, not derivable from the site
    h = int(histology)
    site = site.upper()
    category, _, sub = site.partition(".")
    if h >= 9590 or category in ICDO3_NO_ICD10:
        return None
    if 8720 <= h <= 8790 and category == "C44":
        category = "C43"
    elif 9050 <= h <= 9055:
        return {"C38": "C45.0", "C48": "C45.1"}.get(category, "C45.9")
    elif h == 9140:
        return "C46.9"
    if category in ICD10_THREE_CHARACTER or not sub:
        return category
    return f"{category}.{sub}"


def sample_type_code(
    material_type: str, storage_format: str, hours_after_death: float | None, model_kind: str | None = None
) -> str:
    """MIABIS detailed sample type for a specimen (tissue and sections by storage format, as vocab maps it)."""
    if model_kind is not None and material_type not in ("dna", "rna"):
        if model_kind in MODEL_SAMPLE_TYPE:
            return MODEL_SAMPLE_TYPE[model_kind]
        if material_type in ("tissue", "section"):  # xenograft tissue: MIABIS has no type, its preservation's
            miabis = vocab.FORMAT_MAPPING[vocab.StorageFormat(storage_format)][1]
            return miabis if miabis in ("TissueFreshFrozen", "TissueFixed") else "Other"
        return MATERIAL_SAMPLE_TYPE.get(material_type, "Other")
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


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _meta(profile: str) -> dict[str, Any]:
    return {"profile": [profile]}


def _contact(info: CollectionInfo) -> list[dict[str, Any]]:
    contact: dict[str, Any] = {"name": {"given": [info.contact_given], "family": info.contact_family}}
    if info.contact_email:
        contact["telecom"] = [{"system": "email", "value": info.contact_email}]
    return [contact]


def _model(s: pd.Series) -> str | None:
    """The model kind of a sample grown in a model (or made from such material), else None."""
    if text(s.get("model_code")) is None:
        return None
    return text(s.get("model_kind")) or "model"


def organization_resources(info: CollectionInfo) -> list[dict[str, Any]]:
    """The juristic person, the biobank and the collection Organization, each referring to the one above it."""
    ids = collection_ids(info)
    juristic = {
        "resourceType": "Organization",
        "id": ids["juristic_person"],
        "meta": _meta(ORGANIZATION_PROFILES["juristic_person"]),
        "name": info.juristic_person,
    }
    biobank = {
        "resourceType": "Organization",
        "id": ids["biobank"],
        "meta": _meta(ORGANIZATION_PROFILES["biobank"]),
        "identifier": [{"system": "http://www.bbmri-eric.eu/", "value": info.biobank_id}],
        "name": info.biobank_name,
        "contact": _contact(info),
        "address": [{"country": info.country}],
        "partOf": {"reference": f"Organization/{ids['juristic_person']}"},
        "extension": [{"url": MIABIS_DESCRIPTION_EXTENSION, "valueString": info.description}],
    }
    collection = {
        "resourceType": "Organization",
        "id": ids["collection_organization"],
        "meta": _meta(ORGANIZATION_PROFILES["collection"]),
        "identifier": [{"value": info.collection_id}],
        "active": True,
        "name": info.collection_name,
        "contact": _contact(info),
        "address": [{"country": info.country}],
        "partOf": {"reference": f"Organization/{ids['biobank']}"},
        "extension": [
            {
                "url": f"{MIABIS_BASE}/StructureDefinition/miabis-sample-source-extension",
                "valueCodeableConcept": _concept(
                    f"{MIABIS_BASE}/CodeSystem/miabis-sample-source-cs", "Human"
                ),
            },
            {
                "url": f"{MIABIS_BASE}/StructureDefinition/miabis-sample-collection-setting-extension",
                "valueCodeableConcept": _concept(
                    f"{MIABIS_BASE}/CodeSystem/miabis-sample-collection-setting-cs", "ResearchStudy"
                ),
            },
            {
                "url": f"{MIABIS_BASE}/StructureDefinition/miabis-collection-design-extension",
                "valueCodeableConcept": _concept(
                    f"{MIABIS_BASE}/CodeSystem/miabis-collection-design-cs", "DiseaseSpecificCohort"
                ),
            },
            {"url": MIABIS_DESCRIPTION_EXTENSION, "valueString": info.description},
        ],
    }
    return [juristic, biobank, collection]


def collection_ids(info: CollectionInfo) -> dict[str, str]:
    """FHIR ids of the collection's resources."""
    return {
        "juristic_person": fhir_id(f"juristic-{info.biobank_id}"),
        "biobank": fhir_id(f"biobank-{info.biobank_id}"),
        "collection_organization": fhir_id(f"collection-org-{info.collection_id}"),
        "collection": fhir_id(f"collection-{info.collection_id}"),
    }


def _characteristic(code: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"code": _concept(MIABIS_CHARACTERISTIC_SYSTEM, code), **value, "exclude": False}


def group_resource(
    info: CollectionInfo,
    donors: pd.DataFrame,
    specimen_types: dict[str, str],
    samples: pd.DataFrame,
    diagnoses: list[str],
) -> dict[str, Any]:
    """The collection Group: what its donors and samples have in common, and every Specimen as a member."""
    ids = collection_ids(info)
    characteristics: list[dict[str, Any]] = []
    ages = [a for a in (integer(v) for v in donors["age_at_death"]) if a is not None]
    if ages:
        characteristics.append(
            _characteristic(
                "Age",
                {
                    "valueRange": {
                        "low": {"value": min(ages), "unit": "a", "system": UCUM, "code": "a"},
                        "high": {"value": max(ages), "unit": "a", "system": UCUM, "code": "a"},
                    }
                },
            )
        )
    for gender in sorted({GENDER.get(str(s), "unknown") for s in donors["sex"]}):
        characteristics.append(
            _characteristic("Sex", {"valueCodeableConcept": _concept(ADMINISTRATIVE_GENDER, gender)})
        )
    temperatures = sorted({t for t in (text(v) for v in samples["storage_temperature"]) if t})
    for temperature in temperatures:
        characteristics.append(
            _characteristic(
                "StorageTemperature",
                {"valueCodeableConcept": _concept(MIABIS_STORAGE_TEMPERATURE_SYSTEM, temperature)},
            )
        )
    for material in sorted({COLLECTION_SAMPLE_TYPES[t] for t in specimen_types.values()}):
        characteristics.append(
            _characteristic(
                "MaterialType",
                {"valueCodeableConcept": _concept(MIABIS_COLLECTION_SAMPLE_TYPE_SYSTEM, material)},
            )
        )
    for code in diagnoses:
        characteristics.append(
            _characteristic("Diagnosis", {"valueCodeableConcept": _concept(ICD10_SYSTEM, code)})
        )
    extensions: list[dict[str, Any]] = [
        {"url": MIABIS_NUMBER_OF_SUBJECTS_EXTENSION, "valueInteger": len(donors)}
    ]
    extensions += [
        {"url": GROUP_MEMBER_EXTENSION, "valueReference": {"reference": f"Specimen/{specimen_id}"}}
        for specimen_id in specimen_types
    ]
    return {
        "resourceType": "Group",
        "id": ids["collection"],
        "meta": _meta(PROFILES["Group"]),
        "extension": extensions,
        "identifier": [{"value": info.collection_id}],
        "active": True,
        "type": "person",
        "actual": True,
        "name": info.collection_name,
        "managingEntity": {"reference": f"Organization/{ids['collection_organization']}"},
        "characteristic": characteristics,
    }


def patient_resource(donor: pd.Series, *, identifier_system: str, extension_base: str) -> dict[str, Any]:
    code = str(donor["donor_code"])
    extensions: list[dict[str, Any]] = [
        {
            "url": MIABIS_DATASET_TYPE_EXTENSION,
            "valueCodeableConcept": _concept(MIABIS_DATASET_TYPE_SYSTEM, DONOR_DATASET_TYPE),
        }
    ]
    age = integer(donor["age_at_death"])
    if age is not None:
        extensions.append(
            {
                "url": f"{extension_base}/age-at-death",
                "valueAge": {"value": age, "unit": "a", "system": UCUM, "code": "a"},
            }
        )
    return {
        "resourceType": "Patient",
        "id": fhir_id(code),
        "meta": _meta(PROFILES["Patient"]),
        "extension": extensions,
        "identifier": [{"system": identifier_system, "value": code}],
        "gender": GENDER.get(str(donor["sex"]), "unknown"),
        "deceasedBoolean": True,
    }


def condition_resource(donor: pd.Series) -> dict[str, Any] | None:
    """The donor's primary diagnosis as a MIABIS Condition (None when nothing is recorded)."""
    topography, morphology = text(donor.get("icdo3_topography")), text(donor.get("icdo3_morphology"))
    diagnosis = text(donor.get("primary_diagnosis"))
    if not (topography or morphology or diagnosis):
        return None
    code: dict[str, Any] = {}
    icd10 = icd10_from_icdo3(topography, morphology)
    if icd10 is not None:  # MIABIS readers take coding[0] as the ICD-10 code: nothing else may come first
        code["coding"] = [_coding(ICD10_SYSTEM, icd10)]
        if morphology:
            code["coding"].append(_coding(ICDO3_SYSTEM, morphology))
    label = diagnosis or ""
    if morphology and icd10 is None:
        label = f"{label} (ICD-O-3 {morphology})".strip()
    if label:
        code["text"] = label
    donor_id = fhir_id(str(donor["donor_code"]))
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": f"{donor_id}-diagnosis"[:64],
        "meta": _meta(PROFILES["Condition"]),
        "subject": {"reference": f"Patient/{donor_id}"},
    }
    if code:
        resource["code"] = code
    site: dict[str, Any] = {}
    if topography:
        site["coding"] = [_coding(ICDO3_SYSTEM, topography)]
    uberon = text(donor.get("primary_site_uberon"))
    if uberon:
        site.setdefault("coding", []).append(
            _coding(UBERON_SYSTEM, uberon, text(donor.get("primary_site_label")))
        )
    if site:
        if text(donor.get("primary_site_label")):
            site["text"] = text(donor.get("primary_site_label"))
        resource["bodySite"] = [site]
    return resource


def _reference(code: str, *, in_bundle: set[str], identifier_system: str) -> dict[str, Any]:
    if code in in_bundle:
        return {"reference": f"Specimen/{fhir_id(code)}"}
    return {"identifier": {"system": identifier_system, "value": code}, "display": code}


def model_extension(
    s: pd.Series, *, extension_base: str, in_bundle: set[str], identifier_system: str
) -> dict[str, Any]:
    """What model a specimen was grown in: model code, kind, passage, host and the patient specimen it came from."""
    parts: list[dict[str, Any]] = [
        {"url": "model", "valueString": str(s["model_code"])},
        {"url": "kind", "valueCode": _model(s)},
    ]
    if text(s.get("passage")):
        parts.append({"url": "passage", "valueString": text(s.get("passage"))})
    if integer(s.get("passage_number")) is not None:
        parts.append({"url": "passageNumber", "valueInteger": integer(s.get("passage_number"))})
    if text(s.get("host")):
        parts.append({"url": "host", "valueString": text(s.get("host"))})
    source = text(s.get("model_source_code"))
    if source:
        parts.append(
            {
                "url": "source",
                "valueReference": _reference(
                    source, in_bundle=in_bundle, identifier_system=identifier_system
                ),
            }
        )
    return {"url": f"{extension_base}/derived-from-model", "extension": parts}


def describe_model(s: pd.Series) -> str:
    """``PDX xenograft, passage P4, host NSG (mouse)``: what a model specimen is, in words."""
    kind = _model(s) or "model"
    words = [MODEL_KIND_TEXT.get(kind, "model")]
    if text(s.get("passage")):
        words.append(f"passage {text(s.get('passage'))}")
    if kind == "pdx":
        words.append(f"host {text(s.get('host')) or 'not recorded'} (mouse)")
    words.append(f"model {s['model_code']}")
    return ", ".join(words)


def specimen_resource(
    s: pd.Series,
    *,
    identifier_system: str,
    extension_base: str,
    in_bundle: set[str],
    collection_id: str,
) -> dict[str, Any]:
    code = str(s["specimen_code"])
    model = _model(s)
    hours = None if model else number(s["hours_after_death"])
    material, storage = str(s["material_type"]), str(s["storage_format"])
    type_code = sample_type_code(material, storage, hours, model)
    codings = [_coding(MIABIS_SAMPLE_TYPE_SYSTEM, type_code, MIABIS_SAMPLE_TYPES[type_code])]
    postmortem = model is None and material in ("tissue", "section") and hours is not None and hours >= 0
    if postmortem:
        codings.append(_coding(SNOMED, *POSTMORTEM_TISSUE))
    kind_text = f"{material}, {storage}" if model is None else f"{material} of {describe_model(s)}; {storage}"
    extensions: list[dict[str, Any]] = [
        {"url": MIABIS_SAMPLE_COLLECTION_EXTENSION, "valueIdentifier": {"value": collection_id}}
    ]
    if model is not None:
        extensions.append(
            model_extension(
                s, extension_base=extension_base, in_bundle=in_bundle, identifier_system=identifier_system
            )
        )
    data: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": fhir_id(code),
        "meta": _meta(PROFILES["Specimen"]),
        "extension": extensions,
        "identifier": [{"system": identifier_system, "value": code}],
        "type": {"coding": codings, "text": kind_text},
        "subject": {"reference": f"Patient/{fhir_id(str(s['donor_code']))}"},
    }
    parents = [p for p in (text(s["parent_code"]), text(s.get("model_source_code")) if model else None) if p]
    if parents:
        data["parent"] = [
            _reference(p, in_bundle=in_bundle, identifier_system=identifier_system)
            for p in dict.fromkeys(parents)
        ]

    collection: dict[str, Any] = {}
    if hours is not None:
        collection["extension"] = [
            {
                "url": f"{extension_base}/collected-after-death",
                "valueDuration": {"value": round(hours, 4), "unit": "h", "system": UCUM, "code": "h"},
            }
        ]
        if hours >= 0:
            collection["method"] = _concept(SNOMED, *AUTOPSY_EXAMINATION)
        else:
            collection["method"] = {"text": "pre-mortem collection"}
    if model is None:
        uberon = text(s["site_uberon"])
        site_text = text(s["site_label"])
        side = text(s["laterality"])
        if side in ("left", "right", "bilateral") and site_text:
            site_text = f"{site_text} ({side})"
        if uberon or site_text:
            site: dict[str, Any] = {}
            if uberon:
                site["coding"] = [_coding(UBERON_SYSTEM, uberon, text(s["site_label"]))]
            if site_text:
                site["text"] = site_text
            collection["bodySite"] = site
    else:
        collection["method"] = {"text": f"harvested from {describe_model(s)}"}
    if collection:
        data["collection"] = collection

    temperature = text(s["storage_temperature"])
    described = (
        f"storage format: {storage}" if model is None else f"{describe_model(s)}; storage format: {storage}"
    )
    processing: dict[str, Any] = {"description": described}
    if temperature:
        processing["extension"] = [
            {
                "url": MIABIS_STORAGE_TEMPERATURE_EXTENSION,
                "valueCodeableConcept": _concept(
                    MIABIS_STORAGE_TEMPERATURE_SYSTEM, temperature, MIABIS_STORAGE_TEMPERATURES[temperature]
                ),
            }
        ]
    data["processing"] = [processing]
    return data


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    kind, rid = resource["resourceType"], resource["id"]
    return {
        "fullUrl": full_url(kind, rid),
        "resource": resource,
        "request": {"method": "PUT", "url": f"{kind}/{rid}"},
    }


def bundle_dict(
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    identifier_system: str = "urn:biobank",
    extension_base: str = "urn:biobank:fhir:StructureDefinition",
    collection: CollectionInfo | None = None,
) -> dict[str, Any]:
    """The transaction Bundle as a JSON-ready dict: the collection, then per donor a Patient and a Condition, then
    every Specimen."""
    check_frames(donors, samples, export="FHIR", donor_columns=DONOR_REQUIRED, sample_columns=SAMPLE_REQUIRED)
    info = collection or CollectionInfo()
    donor_system = f"{identifier_system}:donor"
    specimen_system = f"{identifier_system}:specimen"
    in_bundle = {str(c) for c in samples["specimen_code"]}
    specimens = [
        specimen_resource(
            s,
            identifier_system=specimen_system,
            extension_base=extension_base,
            in_bundle=in_bundle,
            collection_id=info.collection_id,
        )
        for _, s in samples.iterrows()
    ]
    people: list[dict[str, Any]] = []
    diagnoses: list[str] = []
    for _, d in donors.iterrows():
        people.append(patient_resource(d, identifier_system=donor_system, extension_base=extension_base))
        condition = condition_resource(d)
        if condition is not None:
            people.append(condition)
            icd10 = icd10_from_icdo3(d.get("icdo3_topography"), d.get("icdo3_morphology"))
            if icd10 is not None and icd10 not in diagnoses:
                diagnoses.append(icd10)
    types = {res["id"]: res["type"]["coding"][0]["code"] for res in specimens}
    group = group_resource(info, donors, types, samples, sorted(diagnoses))
    resources = [*organization_resources(info), group, *people, *specimens]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(r) for r in resources]}


def _references(node: Any) -> Iterator[str]:
    """Every literal ``reference`` string inside a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _is_model_specimen(res: dict[str, Any]) -> bool:
    return any(str(e.get("url", "")).endswith("/derived-from-model") for e in res.get("extension", []))


def _check_specimen(i: int, res: dict[str, Any]) -> list[Problem]:
    rid = res.get("id")
    problems: list[Problem] = []
    if not res.get("subject"):
        problems.append(Problem(i, "subject", f"{rid}: subject is required"))
    collection = res.get("collection", {})
    if "collectedDateTime" in collection or "collectedPeriod" in collection:
        problems.append(
            Problem(i, "collection", f"{rid}: absolute collection time in a de-identified export")
        )
    codings = res.get("type", {}).get("coding", [])
    first = codings[0] if codings else {}
    if first.get("system") != MIABIS_SAMPLE_TYPE_SYSTEM or first.get("code") not in MIABIS_SAMPLE_TYPES:
        problems.append(Problem(i, "type", f"{rid}: type.coding[0] must be a MIABIS detailed sample type"))
    if sum(c.get("system") == MIABIS_SAMPLE_TYPE_SYSTEM for c in codings) > 1:
        problems.append(Problem(i, "type", f"{rid}: more than one MIABIS detailed sample type"))
    extensions = res.get("extension", [])
    if not extensions or extensions[0].get("url") != MIABIS_SAMPLE_COLLECTION_EXTENSION:
        problems.append(
            Problem(i, "extension", f"{rid}: extension[0] must be the MIABIS sample-collection extension")
        )
    for n, proc in enumerate(res.get("processing", [])):
        for k, ext in enumerate(proc.get("extension", [])):
            if ext.get("url") != MIABIS_STORAGE_TEMPERATURE_EXTENSION:
                continue
            if n or k:
                problems.append(
                    Problem(i, "processing", f"{rid}: storage temperature must be processing[0].extension[0]")
                )
            codes = [c.get("code") for c in ext.get("valueCodeableConcept", {}).get("coding", [])]
            if not codes or any(c not in MIABIS_STORAGE_TEMPERATURES for c in codes):
                problems.append(Problem(i, "processing", f"{rid}: bad storage temperature {codes}"))
    if res.get("note"):
        problems.append(Problem(i, "note", f"{rid}: MIABIS readers take note[0] as use restrictions"))
    if _is_model_specimen(res):
        method = collection.get("method", {})
        if (
            any(c.get("code") == AUTOPSY_EXAMINATION[0] for c in method.get("coding", []))
            or "autopsy" in str(method.get("text", "")).lower()
        ):
            problems.append(
                Problem(i, "collection.method", f"{rid}: model material described as autopsy material")
            )
        if any(c.get("code") in ("PostMortemTissue", POSTMORTEM_TISSUE[0]) for c in codings):
            problems.append(Problem(i, "type", f"{rid}: model material typed as post-mortem tissue"))
        if any(
            str(e.get("url", "")).endswith("/collected-after-death") for e in collection.get("extension", [])
        ):
            problems.append(Problem(i, "collection", f"{rid}: model material with a time after death"))
        if not res.get("parent"):
            problems.append(
                Problem(i, "parent", f"{rid}: model material must name the specimen it came from")
            )
    return problems


def validate_fhir(content: str) -> list[Problem]:
    """Re-validate the Bundle JSON with the strict R4 models (``fhir.resources.R4B``) and our rules: a transaction
    of MIABIS-profiled resources, each ``PUT Type/id``, whose references resolve inside the bundle, whose codes sit
    where MIABIS readers look for them, and whose model material is never autopsy material."""
    try:
        Bundle.model_validate_json(content)
    except pydantic.ValidationError as exc:
        return [Problem(None, ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
    raw = json.loads(content)
    problems: list[Problem] = []
    if raw.get("type") != "transaction":
        problems.append(Problem(None, "type", f"expected transaction, found {raw.get('type')!r}"))
    entries = raw.get("entry", [])
    urls = [e.get("fullUrl") for e in entries]
    for dup in sorted({u for u in urls if u and urls.count(u) > 1}):
        problems.append(Problem(None, "fullUrl", f"{dup} appears more than once"))
    keys = [f"{e.get('resource', {}).get('resourceType')}/{e.get('resource', {}).get('id')}" for e in entries]
    for dup in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(
            Problem(None, "id", f"{dup} appears more than once (two codes give the same FHIR id)")
        )
    known = set(keys)
    for i, entry in enumerate(entries, start=1):
        res = entry.get("resource", {})
        kind, rid = res.get("resourceType"), res.get("id")
        request = entry.get("request", {})
        if request.get("method") != "PUT" or request.get("url") != f"{kind}/{rid}":
            problems.append(Problem(i, "request", f"{kind}/{rid}: expected PUT {kind}/{rid}"))
        if kind not in (*PROFILES, "Organization"):
            problems.append(Problem(i, "resourceType", f"unexpected {kind!r}"))
            continue
        profiles = res.get("meta", {}).get("profile", [])
        allowed = set(ORGANIZATION_PROFILES.values()) if kind == "Organization" else {PROFILES[str(kind)]}
        if not allowed & set(profiles):
            problems.append(Problem(i, "meta.profile", f"{kind}/{rid}: needs its MIABIS profile"))
        for target in _references(res):
            if target not in known:
                problems.append(Problem(i, "reference", f"{kind}/{rid}: {target} is not in the bundle"))
        if kind == "Specimen":
            problems += _check_specimen(i, res)
        elif kind == "Patient":
            extensions = res.get("extension", [])
            if not extensions or extensions[0].get("url") != MIABIS_DATASET_TYPE_EXTENSION:
                problems.append(
                    Problem(i, "extension", f"{rid}: extension[0] must be the MIABIS dataset type")
                )
        elif kind == "Condition":
            codings = res.get("code", {}).get("coding", [])
            if codings and codings[0].get("system") != ICD10_SYSTEM:
                problems.append(Problem(i, "code", f"{rid}: code.coding[0] must be the ICD-10 code"))
            if "identifier" in res:
                problems.append(
                    Problem(i, "identifier", f"{rid}: miabis-on-fhir cannot write a Condition identifier")
                )
    return problems


def build_fhir(donors: pd.DataFrame, samples: pd.DataFrame, *, version: int = 4, **options: Any) -> str:
    """The Bundle as JSON text, re-validated; raises :class:`ExportValidationError` when invalid and a
    ValidationError naming ``fhir_version`` for a release other than R4."""
    if version not in FHIR_VERSIONS:
        raise invalid(
            "fhir_version",
            version,
            "only 4 is written: MIABIS on FHIR profiles FHIR R4; an R5 Bundle would lose the profiles and need a "
            "clinical status for every Condition, which the biobank does not record",
        )
    content = json.dumps(bundle_dict(donors, samples, **options), indent=2, ensure_ascii=False)
    problems = validate_fhir(content)
    refuse_problems("FHIR bundle", problems)
    return content


def write_fhir(path: str | Path, donors: pd.DataFrame, samples: pd.DataFrame, **options: Any) -> Path:
    """Write the Bundle JSON to ``path``; return the path."""
    return write_file(path, build_fhir(donors, samples, **options))
