"""GA4GH Phenopacket v2, one per donor, built with the ``phenopackets`` package (protobuf messages).

- ``subject``: the donor code as id, sex, taxonomy, ``vital_status`` DECEASED with ``time_of_death`` as the age at
  death (ISO 8601 duration ``P62Y``; omitted when unknown) and ``survival_time_in_days`` (days from first diagnosis to
  death) when recorded. No date of birth or of death (de-identified).
- ``diseases``: the primary diagnosis as its ICD-O-3 morphology (``ICDO:8500/3``, bioregistry prefix ``icdo``) with
  the primary site (UBERON) when known.
- ``biosamples``: one per specimen: ``individual_id``, ``derived_from_id`` (the parent specimen),
  ``sampled_tissue`` (UBERON), ``tumor_progression`` (NCIT:C84509 primary, NCIT:C3261 metastatic, NCIT:C4813
  recurrent), ``material_sample`` (EFO:0009655 abnormal sample for tumours, EFO:0009654 reference sample for
  normals), ``histological_diagnosis`` NCIT:C38757 "Negative Finding" for normals, ``procedure`` NCIT:C25153 autopsy
  for post-mortem material, ``time_of_collection`` as the age (post-mortem material is collected at the age at
  death), and the collection time relative to death (``PT3H30M`` after death) in ``description``.
- ``meta_data``: ``phenopacket_schema_version`` "2.0" and one ``Resource`` per ontology prefix used.

Validation (:func:`validate_phenopacket`) parses the JSON back into a ``Phenopacket`` with
``google.protobuf.json_format.Parse`` (unknown fields are errors) and checks the schema's required fields and that
every CURIE prefix has a resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from phenopackets import (
    Age,
    Biosample,
    Disease,
    Individual,
    MetaData,
    OntologyClass,
    Phenopacket,
    Procedure,
    Resource,
    Sex,
    TimeElement,
    VitalStatus,
)

from biobank.exports.formats import Problem, check_frames, refuse_problems
from biobank.exports.formats._common import describe_collection_time, integer, number, text
from biobank.exports.formats._files import write_folder

SCHEMA_VERSION = "2.0"

HOMO_SAPIENS = ("NCBITaxon:9606", "Homo sapiens")
PRIMARY_NEOPLASM = ("NCIT:C84509", "Primary Malignant Neoplasm")
METASTATIC_NEOPLASM = ("NCIT:C3261", "Metastatic Neoplasm")
RECURRENT_NEOPLASM = ("NCIT:C4813", "Recurrent Malignant Neoplasm")
NEGATIVE_FINDING = ("NCIT:C38757", "Negative Finding")
AUTOPSY = ("NCIT:C25153", "Autopsy")
ABNORMAL_SAMPLE = ("EFO:0009655", "abnormal sample")
REFERENCE_SAMPLE = ("EFO:0009654", "reference sample")

TUMOR_PROGRESSION = {
    "primary": PRIMARY_NEOPLASM,
    "metastasis": METASTATIC_NEOPLASM,
    "lymph_node": METASTATIC_NEOPLASM,
    "local_recurrence": RECURRENT_NEOPLASM,
}

SEX = {"male": Sex.MALE, "female": Sex.FEMALE, "undifferentiated": Sex.OTHER_SEX}

#: prefix -> (resource id, name, url, iri prefix)
RESOURCES: dict[str, tuple[str, str, str, str]] = {
    "UBERON": (
        "uberon",
        "Uber-anatomy ontology",
        "http://purl.obolibrary.org/obo/uberon.owl",
        "http://purl.obolibrary.org/obo/UBERON_",
    ),
    "NCIT": (
        "ncit",
        "NCI Thesaurus",
        "http://purl.obolibrary.org/obo/ncit.owl",
        "http://purl.obolibrary.org/obo/NCIT_",
    ),
    "EFO": (
        "efo",
        "Experimental Factor Ontology",
        "http://www.ebi.ac.uk/efo/efo.owl",
        "http://www.ebi.ac.uk/efo/EFO_",
    ),
    "NCBITaxon": (
        "ncbitaxon",
        "NCBI organismal classification",
        "http://purl.obolibrary.org/obo/ncbitaxon.owl",
        "http://purl.obolibrary.org/obo/NCBITaxon_",
    ),
    "ICDO": (
        "icdo",
        "International Classification of Diseases for Oncology",
        "https://www.who.int/standards/classifications/other-classifications/"
        "international-classification-of-diseases-for-oncology",
        "https://bioregistry.io/icdo:",
    ),
}

DONOR_REQUIRED = (
    "donor_code",
    "sex",
    "age_at_death",
    "primary_diagnosis",
    "icdo3_morphology",
    "primary_site_label",
    "primary_site_uberon",
    "diagnosis_days_before_death",
)
SAMPLE_REQUIRED = (
    "specimen_code",
    "donor_code",
    "parent_code",
    "material_type",
    "storage_format",
    "role",
    "lesion_kind",
    "site_label",
    "site_uberon",
    "hours_after_death",
    "tumour_cellularity_pct",
)


def _term(pair: tuple[str, str]) -> OntologyClass:
    return OntologyClass(id=pair[0], label=pair[1])


def _uberon(curie: Any, label: Any) -> OntologyClass | None:
    code = text(curie)
    if code is None:
        return None
    if not code.upper().startswith("UBERON:"):
        code = "UBERON:" + code.removeprefix("UBERON_")
    return OntologyClass(id=code, label=text(label) or "")


def _age(years: int) -> TimeElement:
    return TimeElement(age=Age(iso8601duration=f"P{years}Y"))


def biosample(s: pd.Series, age_at_death: int | None) -> Biosample:
    """One specimen as a Biosample."""
    tumour = s["role"] == "tumour"
    b = Biosample(
        id=str(s["specimen_code"]), individual_id=str(s["donor_code"]), taxonomy=_term(HOMO_SAPIENS)
    )
    parent = text(s["parent_code"])
    if parent:
        b.derived_from_id = parent
    tissue = _uberon(s["site_uberon"], s["site_label"])
    if tissue is not None:
        b.sampled_tissue.CopyFrom(tissue)
    if tumour:
        kind = text(s["lesion_kind"])
        if kind in TUMOR_PROGRESSION:
            b.tumor_progression.CopyFrom(_term(TUMOR_PROGRESSION[kind]))
        b.material_sample.CopyFrom(_term(ABNORMAL_SAMPLE))
    else:
        b.material_sample.CopyFrom(_term(REFERENCE_SAMPLE))
        b.histological_diagnosis.CopyFrom(_term(NEGATIVE_FINDING))
    hours = number(s["hours_after_death"])
    if hours is not None and hours >= 0:
        b.procedure.CopyFrom(Procedure(code=_term(AUTOPSY)))
        if tissue is not None:
            b.procedure.body_site.CopyFrom(tissue)
        if age_at_death is not None:
            b.time_of_collection.CopyFrom(_age(age_at_death))
            b.procedure.performed.CopyFrom(_age(age_at_death))
    parts = [f"{s['material_type']}, {s['storage_format']}", f"role {s['role']}"]
    when = describe_collection_time(s["hours_after_death"])
    if when:
        parts.append(when)
    pct = number(s["tumour_cellularity_pct"])
    if pct is not None:
        parts.append(f"tumour cellularity {pct:g}%")
    b.description = "; ".join(parts)
    return b


def phenopacket_message(
    donor: pd.Series,
    samples: pd.DataFrame,
    *,
    created: datetime | None = None,
    created_by: str = "biobank",
    ontology_versions: Mapping[str, str] | None = None,
) -> Phenopacket:
    """One donor's Phenopacket message (``samples`` filtered to that donor)."""
    code = str(donor["donor_code"])
    age = integer(donor["age_at_death"])
    subject = Individual(
        id=code, sex=SEX.get(str(donor["sex"]), Sex.UNKNOWN_SEX), taxonomy=_term(HOMO_SAPIENS)
    )
    subject.vital_status.status = VitalStatus.DECEASED
    if age is not None:
        subject.vital_status.time_of_death.CopyFrom(_age(age))
        subject.time_at_last_encounter.CopyFrom(_age(age))
    days = integer(donor["diagnosis_days_before_death"])
    if days is not None:
        subject.vital_status.survival_time_in_days = days

    packet = Phenopacket(id=code, subject=subject)
    morphology = text(donor["icdo3_morphology"])
    if morphology:
        disease = Disease(
            term=OntologyClass(id=f"ICDO:{morphology}", label=text(donor["primary_diagnosis"]) or "")
        )
        site = _uberon(donor["primary_site_uberon"], donor["primary_site_label"])
        if site is not None:
            disease.primary_site.CopyFrom(site)
        packet.diseases.append(disease)

    for _, s in samples.iterrows():
        packet.biosamples.append(biosample(s, age))

    stamp = Timestamp()
    stamp.FromDatetime((created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0))
    meta = MetaData(created=stamp, created_by=created_by, phenopacket_schema_version=SCHEMA_VERSION)
    versions = dict(ontology_versions or {})
    for prefix in sorted(curie_prefixes(packet)):
        rid, name, url, iri = RESOURCES[prefix]
        meta.resources.append(
            Resource(
                id=rid,
                name=name,
                url=url,
                version=versions.get(prefix, "unspecified"),
                namespace_prefix=prefix,
                iri_prefix=iri,
            )
        )
    packet.meta_data.CopyFrom(meta)
    return packet


def _is_repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6 (``label`` is deprecated there)
    if flag is None:
        return bool(field.label == field.LABEL_REPEATED)
    return bool(flag() if callable(flag) else flag)


def _ontology_classes(message: Message) -> Iterator[Message]:
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        items = value if _is_repeated(field) else [value]
        for item in items:
            if item.DESCRIPTOR.full_name == OntologyClass.DESCRIPTOR.full_name:
                yield item
            else:
                yield from _ontology_classes(item)


def curie_prefixes(packet: Message) -> set[str]:
    return {oc.id.split(":", 1)[0] for oc in _ontology_classes(packet) if ":" in oc.id}


def to_json(packet: Phenopacket) -> str:
    return json_format.MessageToJson(packet, preserving_proto_field_name=False, indent=2)


def validate_phenopacket(content: str) -> list[Problem]:
    """Parse the JSON back with the ``phenopackets`` package and check the v2 required fields and resources."""
    problems: list[Problem] = []
    try:
        packet = json_format.Parse(content, Phenopacket())
    except (json_format.ParseError, json.JSONDecodeError) as exc:
        return [Problem(None, None, f"does not parse as a Phenopacket: {exc}")]
    if not packet.id:
        problems.append(Problem(None, "id", "phenopacket id is required"))
    if not packet.HasField("meta_data"):
        problems.append(Problem(None, "meta_data", "meta_data is required"))
    else:
        md = packet.meta_data
        if md.phenopacket_schema_version != SCHEMA_VERSION:
            problems.append(Problem(None, "phenopacket_schema_version", f"expected {SCHEMA_VERSION!r}"))
        if not md.HasField("created") or not md.created_by:
            problems.append(Problem(None, "meta_data", "created and created_by are required"))
        declared = {r.namespace_prefix for r in md.resources}
        for prefix in sorted(curie_prefixes(packet) - declared):
            problems.append(Problem(None, "meta_data.resources", f"no resource for prefix {prefix}"))
    for oc in _ontology_classes(packet):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]*:\S+", oc.id) or not oc.label:
            problems.append(Problem(None, "OntologyClass", f"{oc.id!r} needs a CURIE id and a label"))
    ids = [b.id for b in packet.biosamples]
    for i, b in enumerate(packet.biosamples, start=1):
        if not b.id:
            problems.append(Problem(i, "biosamples.id", "biosample id is required"))
        if b.individual_id != packet.subject.id:
            problems.append(Problem(i, "individual_id", f"{b.id}: {b.individual_id!r} is not the subject"))
    for dup in sorted({x for x in ids if ids.count(x) > 1}):
        problems.append(Problem(None, "biosamples.id", f"{dup} appears more than once"))
    if packet.subject.vital_status.status != VitalStatus.DECEASED:
        problems.append(Problem(None, "vital_status", "donor must be DECEASED"))
    return problems


def build_phenopackets(
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    created: datetime | None = None,
    created_by: str = "biobank",
    ontology_versions: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``{donor_code: phenopacket JSON}``, each validated; raises :class:`ExportValidationError` when invalid."""
    check_frames(
        donors, samples, export="phenopacket", donor_columns=DONOR_REQUIRED, sample_columns=SAMPLE_REQUIRED
    )
    out: dict[str, str] = {}
    problems: list[Problem] = []
    for _, donor in donors.iterrows():
        code = str(donor["donor_code"])
        mine = samples[samples["donor_code"] == donor["donor_code"]]
        packet = phenopacket_message(
            donor, mine, created=created, created_by=created_by, ontology_versions=ontology_versions
        )
        content = to_json(packet)
        problems += [Problem(p.row, p.field, f"{code}: {p.message}") for p in validate_phenopacket(content)]
        out[code] = content
    refuse_problems("phenopacket", problems)
    return out


def write_phenopackets(
    folder: str | Path, donors: pd.DataFrame, samples: pd.DataFrame, **options: Any
) -> list[Path]:
    """Write ``<donor_code>.json`` per donor into ``folder``; return the paths."""
    packets = build_phenopackets(donors, samples, **options)
    return write_folder(folder, {f"{code}.json": content for code, content in packets.items()})
