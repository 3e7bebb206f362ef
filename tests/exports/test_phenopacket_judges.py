"""The Phenopackets export judged by the ``phenopackets`` package's strict parse (unknown fields are errors), on the
demo cohort's whole export (built once here): one label per term, resource versions, and material grown in a
model described as such, never as autopsy tissue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from google.protobuf import json_format
from phenopackets import Phenopacket
from sqlmodel import Session

from biobank.db.engine import make_engine
from biobank.exports import service
from biobank.exports.formats import is_model_material, phenopacket
from tests.support.dbtools import Templates, fresh_database


@dataclass
class Export:
    donors: pd.DataFrame
    samples: pd.DataFrame
    packets: dict[str, Phenopacket]


@pytest.fixture(scope="module")
def export(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Export]:
    """Every donor of the demo cohort, exported once and parsed back strictly."""
    with fresh_database("sqlite", templates, tmp_path_factory.mktemp("phenopacket-judges"), demo_donors=12) as url:
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                frames = service.select_frames(session, target="phenopackets")
        finally:
            engine.dispose()
    contents = phenopacket.build_phenopackets(frames.donors, frames.samples)
    packets = {code: json_format.Parse(text, Phenopacket()) for code, text in contents.items()}
    yield Export(frames.donors, frames.samples, packets)


def test_every_packet_parses_strictly_and_passes_our_rules(export):
    assert sorted(export.packets) == sorted(export.donors["donor_code"])
    assert sum(len(p.biosamples) for p in export.packets.values()) == len(export.samples)
    for packet in export.packets.values():
        assert phenopacket.validate_phenopacket(phenopacket.to_json(packet)) == []


def test_each_term_carries_one_label_across_the_export(export):
    labels: dict[str, set[str]] = {}
    for packet in export.packets.values():
        for term, names in phenopacket.term_labels(packet).items():
            labels.setdefault(term, set()).update(names)
    assert {t: n for t, n in labels.items() if len(n) > 1} == {}
    adenocarcinoma = [p for p in export.packets.values() if p.diseases[0].term.id == "ICDO:8140/3"]
    sites = {p.diseases[0].primary_site.label for p in adenocarcinoma}
    assert {"Lung", "Prostate gland"} <= sites, "the lung and the prostate donors share the morphology"
    assert {p.diseases[0].term.label for p in adenocarcinoma} == {"Adenocarcinoma, NOS"}

    tampered = json.loads(phenopacket.to_json(next(iter(export.packets.values()))))
    tampered["biosamples"][0]["taxonomy"]["label"] = "human"
    problems = phenopacket.validate_phenopacket(json.dumps(tampered))
    assert [p.message for p in problems] == ["NCBITaxon:9606 carries 2 labels: ['Homo sapiens', 'human']"]


def test_resources_are_the_prefixes_used_with_their_known_versions(export):
    for packet in export.packets.values():
        resources = {r.namespace_prefix: r for r in packet.meta_data.resources}
        assert set(resources) == phenopacket.curie_prefixes(packet)  # no resource for an unused prefix
        assert resources["ICDO"].version == "3"
    donors = export.donors[export.donors["donor_code"] == "RA-0004"]
    samples = export.samples[export.samples["donor_code"] == "RA-0004"]
    releases = {
        prefix: f"{prefix.lower()} release given by the caller"
        for prefix in ("UBERON", "NCIT", "EFO", "NCBITaxon")
    }
    text = phenopacket.build_phenopackets(donors, samples, ontology_versions=releases)["RA-0004"]
    versions = {
        r.namespace_prefix: r.version for r in json_format.Parse(text, Phenopacket()).meta_data.resources
    }
    assert versions == {**releases, "ICDO": "3"}


def test_material_grown_in_a_model_is_never_described_as_autopsy_tissue(export):
    grown = export.samples[is_model_material(export.samples)]
    assert set(grown["model_kind"]) == {"organoid", "pdx"}, "the demo cohort has organoid and PDX passages"
    biosamples = {b.id: b for p in export.packets.values() for b in p.biosamples}
    for _, row in grown.iterrows():
        b = biosamples[row["specimen_code"]]
        assert b.derived_from_id == row["model_source_code"]
        assert b.individual_id == row["donor_code"]
        assert not b.HasField("procedure") and "C25153" not in json_format.MessageToJson(b)
        assert not b.HasField("time_of_collection") and "after death" not in b.description
        # grown in a mouse or a dish, not taken from the patient's body
        assert not b.HasField("sampled_tissue")
        assert f"passage {row['passage']}" in b.description and row["model_code"] in b.description
        if row["model_kind"] == "pdx":
            assert (b.taxonomy.id, b.taxonomy.label) == ("NCBITaxon:10090", "Mus musculus")
            assert f"host {row['host']}" in b.description and "PDX xenograft" in b.description
        else:
            assert b.taxonomy.id == "NCBITaxon:9606" and "organoid culture" in b.description
    # not vacuous: the patient's own tissue is still autopsy material of a human
    own = export.samples[~is_model_material(export.samples) & (export.samples["material_type"] == "tissue")]
    first = biosamples[own.iloc[0]["specimen_code"]]
    assert first.procedure.code.id == "NCIT:C25153" and first.taxonomy.id == "NCBITaxon:9606"
