"""GA4GH Phenopacket v2, one per donor, built with the ``phenopackets`` package (protobuf messages).

- ``subject``: the donor code as id, sex, taxonomy, ``vital_status`` DECEASED with ``time_of_death`` as the age at
  death (ISO 8601 duration ``P62Y``; omitted when unknown) and ``survival_time_in_days`` (days from first diagnosis to
  death) when recorded. No date of birth or of death (de-identified).
- ``diseases``: the primary diagnosis as its ICD-O-3 morphology (``ICDO:8500/3``, bioregistry prefix ``icdo``) with
  the primary site (UBERON) when known. A term has one label across the whole export: the ICD-O-3 preferred term
  where :data:`ICDO_MORPHOLOGY_LABELS` knows it, else the diagnosis text most donors with that code have (so
  ``ICDO:8140/3`` is "Adenocarcinoma, NOS" for the lung and the prostate donor alike).
- ``biosamples``: one per specimen: ``individual_id``, ``derived_from_id`` (the parent specimen),
  ``sampled_tissue`` (UBERON), ``tumor_progression`` (NCIT:C84509 primary, NCIT:C3261 metastatic, NCIT:C4813
  recurrent), ``material_sample`` (EFO:0009655 abnormal sample for tumours, EFO:0009654 reference sample for
  normals), ``histological_diagnosis`` NCIT:C38757 "Negative Finding" for normals, ``procedure`` NCIT:C25153 autopsy
  for post-mortem material, ``time_of_collection`` as the age (post-mortem material is collected at the age at
  death), and the collection time relative to death (``PT3H30M`` after death) in ``description``.
- material grown in a model (PDX, organoid, cell line, and what was made from it) is never autopsy material: no
  autopsy procedure, no age or time after death, no patient tissue as ``sampled_tissue``; ``derived_from_id`` is its
  parent, else the patient specimen the model came from, and ``description`` says which model and passage.
  ``taxonomy`` is the organism of the *sampled individual* (the schema's wording): for PDX tissue, harvested from the
  host mouse and a mix of human tumour and mouse stroma, that is NCBITaxon:10090 *Mus musculus*, and the description
  names the host strain; organoid and cell-line material is human (NCBITaxon:9606).
- ``meta_data``: ``phenopacket_schema_version`` "2.0" and one ``Resource`` per ontology prefix used, with the
  version given in ``ontology_versions``, else the one known here (:data:`RESOURCE_VERSIONS`: ICD-O-3 is edition
  "3"), else "unspecified" (the OBO ontologies' releases are not recorded by the tracker).

Validation (:func:`validate_phenopacket`) parses the JSON back into a ``Phenopacket`` with
``google.protobuf.json_format.Parse`` (unknown fields are errors) and checks the schema's required fields, that
every CURIE prefix has a resource and that every term has one label.
"""

from __future__ import annotations

import functools
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

from biobank.domain.sites import load_sites
from biobank.exports.formats import Problem, check_frames, refuse_problems
from biobank.exports.formats._common import describe_collection_time, integer, number, text
from biobank.exports.formats._files import write_folder

SCHEMA_VERSION = "2.0"

HOMO_SAPIENS = ("NCBITaxon:9606", "Homo sapiens")
MUS_MUSCULUS = ("NCBITaxon:10090", "Mus musculus")
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

#: ICD-O-3 preferred terms of common morphologies: a term keeps one label whatever a donor's diagnosis text says.
ICDO_MORPHOLOGY_LABELS: dict[str, str] = {
    "8000/3": "Neoplasm, malignant",
    "8010/3": "Carcinoma, NOS",
    "8070/3": "Squamous cell carcinoma, NOS",
    "8140/3": "Adenocarcinoma, NOS",
    "8500/3": "Infiltrating duct carcinoma, NOS",
    "8520/3": "Lobular carcinoma, NOS",
    "8720/3": "Malignant melanoma, NOS",
}
#: Versions of the resources that are known here (the caller's ``ontology_versions`` win).
RESOURCE_VERSIONS: dict[str, str] = {"ICDO": "3"}
MODEL_KIND_TEXT = {"pdx": "PDX xenograft", "organoid": "organoid culture", "cell_line": "cell line"}

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


def _uberon_curie(curie: Any) -> str | None:
    code = text(curie)
    if code is None:
        return None
    if not code.upper().startswith("UBERON:"):
        code = "UBERON:" + code.removeprefix("UBERON_")
    return code


def _uberon(curie: Any, label: Any, labels: Mapping[str, str] | None = None) -> OntologyClass | None:
    code = _uberon_curie(curie)
    if code is None:
        return None
    return OntologyClass(id=code, label=(labels or {}).get(code) or text(label) or "")


@functools.cache
def vocabulary_uberon_labels() -> dict[str, str]:
    """UBERON id -> the label of the most general site of the vocabulary with that id (subsites without a UBERON
    term of their own, such as Couinaud liver segments, reuse their organ's id and must not rename it)."""
    sites = load_sites()
    out: dict[str, str] = {}
    for site in sorted(sites.values(), key=lambda x: x.code):
        parent = sites.get(site.parent_code) if site.parent_code else None
        if site.uberon_id and (parent is None or parent.uberon_id != site.uberon_id):
            out.setdefault(_uberon_curie(site.uberon_id) or site.uberon_id, site.label)
    return out


def _age(years: int) -> TimeElement:
    return TimeElement(age=Age(iso8601duration=f"P{years}Y"))


def _model_kind(s: pd.Series) -> str | None:
    """The model kind of a specimen grown in a model (or made from such material), else None."""
    if text(s.get("model_code")) is None:
        return None
    return text(s.get("model_kind")) or "model"


def describe_model(s: pd.Series) -> str:
    """``PDX xenograft passage P4 in host NSG (Mus musculus) ...``: the model a specimen was grown in, in words."""
    kind = _model_kind(s) or "model"
    words = MODEL_KIND_TEXT.get(kind, "model")
    passage = text(s.get("passage"))
    if passage:
        words += f" passage {passage}"
    if kind == "pdx":
        words += f" in host {text(s.get('host')) or 'not recorded'} (Mus musculus; human tumour cells in mouse stroma)"
    words += f", model {s['model_code']}"
    source = text(s.get("model_source_code"))
    if source:
        words += f", grown from patient specimen {source}"
    return words


def biosample(s: pd.Series, age_at_death: int | None, labels: Mapping[str, str] | None = None) -> Biosample:
    """One specimen as a Biosample (``labels``: the export's term labels, :func:`export_labels`)."""
    tumour = s["role"] == "tumour"
    model = _model_kind(s)
    taxon = MUS_MUSCULUS if model == "pdx" else HOMO_SAPIENS
    b = Biosample(id=str(s["specimen_code"]), individual_id=str(s["donor_code"]), taxonomy=_term(taxon))
    parent = text(s["parent_code"]) or (text(s.get("model_source_code")) if model else None)
    if parent:
        b.derived_from_id = parent
    tissue = None if model else _uberon(s["site_uberon"], s["site_label"], labels)
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
    hours = None if model else number(s["hours_after_death"])
    if hours is not None and hours >= 0:
        b.procedure.CopyFrom(Procedure(code=_term(AUTOPSY)))
        if tissue is not None:
            b.procedure.body_site.CopyFrom(tissue)
        if age_at_death is not None:
            b.time_of_collection.CopyFrom(_age(age_at_death))
            b.procedure.performed.CopyFrom(_age(age_at_death))
    parts = [f"{s['material_type']}, {s['storage_format']}", f"role {s['role']}"]
    if tissue is not None and text(s["site_label"]) and text(s["site_label"]) != tissue.label:
        parts.append(f"site {text(s['site_label'])}")
    if model:
        parts.append(describe_model(s))
    else:
        when = describe_collection_time(s["hours_after_death"])
        if when:
            parts.append(when)
    pct = number(s["tumour_cellularity_pct"])
    if pct is not None:
        parts.append(f"tumour cellularity {pct:g}%")
    b.description = "; ".join(parts)
    return b


def _most_common(names: list[str]) -> str | None:
    named = sorted(n for n in names if n)
    return max(named, key=named.count) if named else None


def export_labels(donors: pd.DataFrame, samples: pd.DataFrame | None = None) -> dict[str, str]:
    """One label per term across an export (CURIE -> label).

    ICD-O-3 morphologies: the preferred term where known, else the diagnosis text most donors with that code have
    (ties: the first in alphabetical order). UBERON: the vocabulary's most general site with that id, else the
    site label most rows give it.
    """
    texts: dict[str, list[str]] = {}
    for code, diagnosis in zip(donors["icdo3_morphology"], donors["primary_diagnosis"], strict=True):
        morphology = text(code)
        if morphology:
            texts.setdefault(f"ICDO:{morphology}", []).append(text(diagnosis) or "")
    pairs = list(zip(donors["primary_site_uberon"], donors["primary_site_label"], strict=True))
    if samples is not None:
        pairs += list(zip(samples["site_uberon"], samples["site_label"], strict=True))
    for curie, label in pairs:
        uberon = _uberon_curie(curie)
        if uberon:
            texts.setdefault(uberon, []).append(text(label) or "")
    known = vocabulary_uberon_labels()
    labels: dict[str, str] = {}
    for term, names in texts.items():
        if term.startswith("ICDO:"):
            code = term.removeprefix("ICDO:")
            labels[term] = (
                ICDO_MORPHOLOGY_LABELS.get(code) or _most_common(names) or f"ICD-O-3 morphology {code}"
            )
        else:
            labels[term] = known.get(term) or _most_common(names) or term
    return labels


def phenopacket_message(
    donor: pd.Series,
    samples: pd.DataFrame,
    *,
    created: datetime | None = None,
    created_by: str = "biobank",
    ontology_versions: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Phenopacket:
    """One donor's Phenopacket message (``samples`` filtered to that donor; ``labels`` the export's term labels,
    :func:`export_labels`, by default those of this donor alone)."""
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
    if labels is None:
        labels = export_labels(donor.to_frame().T, samples)
    morphology = text(donor["icdo3_morphology"])
    if morphology:
        disease = Disease(term=OntologyClass(id=f"ICDO:{morphology}", label=labels[f"ICDO:{morphology}"]))
        site = _uberon(donor["primary_site_uberon"], donor["primary_site_label"], labels)
        if site is not None:
            disease.primary_site.CopyFrom(site)
        packet.diseases.append(disease)

    for _, s in samples.iterrows():
        packet.biosamples.append(biosample(s, age, labels))

    stamp = Timestamp()
    stamp.FromDatetime((created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0))
    meta = MetaData(created=stamp, created_by=created_by, phenopacket_schema_version=SCHEMA_VERSION)
    versions = {**RESOURCE_VERSIONS, **(ontology_versions or {})}
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


def term_labels(packet: Message) -> dict[str, set[str]]:
    """Every ontology term's id with the labels it carries in ``packet``."""
    out: dict[str, set[str]] = {}
    for oc in _ontology_classes(packet):
        out.setdefault(oc.id, set()).add(oc.label)
    return out


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
    for term, names in sorted(term_labels(packet).items()):
        if len(names) > 1:
            problems.append(
                Problem(None, "OntologyClass", f"{term} carries {len(names)} labels: {sorted(names)}")
            )
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
    labels = export_labels(donors, samples)
    seen: dict[str, dict[str, str]] = {}  # term -> label -> the first packet that gave it
    for _, donor in donors.iterrows():
        code = str(donor["donor_code"])
        mine = samples[samples["donor_code"] == donor["donor_code"]]
        packet = phenopacket_message(
            donor,
            mine,
            created=created,
            created_by=created_by,
            ontology_versions=ontology_versions,
            labels=labels,
        )
        content = to_json(packet)
        problems += [Problem(p.row, p.field, f"{code}: {p.message}") for p in validate_phenopacket(content)]
        for term, names in term_labels(packet).items():
            for name in names:
                seen.setdefault(term, {}).setdefault(name, code)
        out[code] = content
    for term, given in sorted(seen.items()):
        if len(given) > 1:
            where = ", ".join(f"{name!r} in {code}" for name, code in sorted(given.items()))
            problems.append(
                Problem(None, "OntologyClass", f"{term} carries different labels across the export: {where}")
            )
    refuse_problems("phenopacket", problems)
    return out


def write_phenopackets(
    folder: str | Path, donors: pd.DataFrame, samples: pd.DataFrame, **options: Any
) -> list[Path]:
    """Write ``<donor_code>.json`` per donor into ``folder``; return the paths."""
    packets = build_phenopackets(donors, samples, **options)
    return write_folder(folder, {f"{code}.json": content for code, content in packets.items()})
