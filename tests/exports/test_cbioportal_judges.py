"""cBioPortal study of the demo cohort: samples at the sequenced level (the analyte that was or will be sequenced),
model material marked, and cBioPortal's loading rules (our validate_cbioportal, kept in line with cbioportal-core's
validateData.py) passing; the demo is built once per module, on both databases.

cbioportal-core's ``validateData.py`` is not on PyPI, so ``make test`` cannot install it; it was run by hand on the
demo cohort's export (``validateData.py -n -s <study>``: no errors, only the offline-mode and missing-DFS warnings).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from biobank.db.engine import make_engine, session_scope
from biobank.exports import service
from biobank.exports.formats import cbioportal, is_model_material
from biobank.models import User
from biobank.queries import exports as query
from biobank.queries import plans as plan_reads
from biobank.services import planning, specimens
from tests.support.dbtools import BACKENDS, Templates, fresh_database

PDX = "RA0004-L06A-PDX1-P4-SF1"
ORGANOID = "RA0004-L04A-ORG1-P5-VC1"


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request, templates: Templates, tmp_path_factory) -> Iterator[tuple[Engine, dict[str, User]]]:
    """Five demo donors (RA-0004 with an organoid and a PDX), a DNA extract of one region split in two aliquots,
    and a DNA extract of the PDX tissue split in two: portions of one analyte each."""
    with fresh_database(request.param, templates, tmp_path_factory.mktemp("cbioportal"), demo_donors=5) as url:
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as session:
            users = {u.username: u for u in session.exec(select(User)).all()}
        with session_scope(engine) as session:
            frame = query.specimen_frame(session)
            dna = frame[(frame["material_type"] == "dna") & (frame["site_kind"] == "tumour_region")
                        & frame["model_code"].isna() & (frame["quantity_remaining"] >= 100)]
            specimens.aliquot(session, actor=users["tech"], parent_code=dna["specimen_code"].iloc[0], portions=[20, 20])
            pdx_dna = specimens.derive(session, actor=users["tech"], parent_code=PDX, material_type="dna",
                                       quantity=2000, unit="ng", parent_quantity_used=20)
            specimens.aliquot(session, actor=users["tech"], parent_code=pdx_dna.code, portions=[500, 500])
        with session_scope(engine) as session:
            planning.create_plan(session, actor=users["pi"], code="WGS-1", name="Multiregional WGS",
                                 purpose="phylogeny", assay="wgs", donor_codes=["RA-0001"])
        yield engine, users
        engine.dispose()


def _export(engine: Engine, users: dict[str, User], **options) -> dict[str, str]:
    with session_scope(engine) as session:
        files = service.export_files(session, actor=users["pi"], target="cbioportal", **options)
    return {name: content.decode() for name, content in files.items()}


def _samples(files: dict[str, str]) -> pd.DataFrame:
    return pd.read_csv(
        io.StringIO(files["data_clinical_sample.txt"]), sep="\t", skiprows=4, keep_default_na=False, dtype=str
    )


def _expected(frame: pd.DataFrame) -> dict[tuple[str, ...], set[str]]:
    """Per sampling site (each model passage its own), the extracts that are not a portion of another extract of
    the same material: the rule the module docstring states, written out independently here."""
    rows = frame.set_index("specimen_code")

    def portion(code: str) -> bool:
        up = rows.at[code, "parent_code"]
        while isinstance(up, str) and up in rows.index:
            if rows.at[up, "material_type"] == rows.at[code, "material_type"]:
                return True
            up = rows.at[up, "parent_code"]
        return False

    keys = [frame["donor_code"], frame["region_code"], frame["model_code"].fillna(""), frame["passage"].fillna("")]
    return {
        tuple(key): {c for c in group["specimen_code"] if rows.at[c, "material_type"] in ("dna", "rna")
                     and not portion(c)}
        for key, group in frame.groupby(keys)
    }


def _check_sequenced_level(engine: Engine, files: dict[str, str], *, models: bool) -> pd.DataFrame:
    samples = _samples(files)
    with Session(engine) as session:
        ids = query.donor_ids_for(session, sorted(set(samples["PATIENT_ID"])))
        frame = query.specimen_frame(session, donor_ids=ids)
    if not models:
        frame = frame[~is_model_material(frame)]
    chosen = set(samples["SAMPLE_ID"])
    expected = _expected(frame)
    assert len(samples) == len(chosen) == sum(len(extracts) or 1 for extracts in expected.values())
    cellularity = frame.set_index("specimen_code")["tumour_cellularity_pct"]
    keys = [frame["donor_code"], frame["region_code"], frame["model_code"].fillna(""), frame["passage"].fillna("")]
    for key, group in frame.groupby(keys):
        here = chosen & set(group["specimen_code"])
        extracts = expected[tuple(key)]
        if extracts:
            assert here == extracts, (key, "every extract of the site, each once, and nothing else")
        else:
            assert len(here) == 1, (key, "one representative of a site with no extract")
            best = group["tumour_cellularity_pct"].max()
            if pd.notna(best):
                assert cellularity[next(iter(here))] == best, (key, "the representative has the best cellularity")
    return samples


def test_the_cohort_study_has_one_sample_per_analyte_and_passes_cbioportals_rules(demo):
    engine, users = demo
    files = _export(engine, users)
    assert cbioportal.validate_cbioportal(files) == []
    samples = _check_sequenced_level(engine, files, models=False)
    with Session(engine) as session:
        held = len(query.export_frames(session).samples)
    assert len(samples) < held / 2, "not every aliquot, block and section"
    assert not samples["SAMPLE_ID"].str.contains("PDX|ORG").any(), "model material is left out unless asked for"
    assert "MODEL_ID" not in samples.columns
    assert set(samples.loc[samples["SAMPLE_ROLE"] == "germline_normal", "MATERIAL_TYPE"]) <= {"dna", "buffy_coat",
                                                                                             "whole_blood"}


def test_model_material_asked_for_is_one_sample_per_passage_and_marked(demo):
    engine, users = demo
    files = _export(engine, users, include_models=True)
    assert cbioportal.validate_cbioportal(files) == []
    samples = _check_sequenced_level(engine, files, models=True).set_index("SAMPLE_ID")
    grown = samples[samples["MODEL_ID"] != "NA"]
    pdx = grown[grown["MODEL_ID"] == "RA0004-L06A-PDX1"]
    assert len(pdx) == 1 and pdx.index[0].startswith(PDX + "-DNA"), "the PDX passage's DNA, not its tissue or aliquots"
    row = pdx.iloc[0]
    assert (row["SAMPLE_TYPE"], row["PASSAGE"], row["PASSAGE_NUMBER"], row["MOUSE_STRAIN"]) == (
        "Xenograft", "P4", "4", "NSG",
    )
    assert row["MODEL_SOURCE_SAMPLE_ID"] == "RA0004-L06A-VC1" and row["HOURS_AFTER_DEATH"] == "NA"
    organoid = grown[grown["MODEL_ID"] == "RA0004-L04A-ORG1"]
    assert len(organoid) == 1 and organoid.index[0].startswith("RA0004-L04A-ORG1-P5-")
    assert organoid.iloc[0]["SAMPLE_TYPE"] == "Organoid" and organoid.iloc[0]["MOUSE_STRAIN"] == "NA"
    patient = samples[samples["MODEL_ID"] == "NA"]
    assert not patient["SAMPLE_TYPE"].isin(["Xenograft", "Organoid"]).any()
    assert (patient["HOURS_AFTER_DEATH"] != "NA").all()


def test_a_plans_study_holds_exactly_the_plans_specimens(demo):
    engine, users = demo
    files = _export(engine, users, plan_code="WGS-1")
    assert cbioportal.validate_cbioportal(files) == []
    with Session(engine) as session:
        chosen = {row["specimen_code"] for row in plan_reads.plan_detail(session, "WGS-1")["specimens_detail"]}
    assert set(_samples(files)["SAMPLE_ID"]) == chosen
