"""Material grown in a model (PDX tissue, organoid vials) and everything made from it is marked as such in the export
frames, and left out of patient-tissue exports unless asked for (the exports issue, item 3); on both databases."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.exports import service
from biobank.models import User
from biobank.queries import exports as query
from biobank.services import specimens

PDX = "RA0004-L06A-PDX1-P4-SF1"
ORGANOID = "RA0004-L04A-ORG1-P5-VC1"


pytestmark = pytest.mark.demo(5)  # RA-0004 has an organoid and a PDX model


@pytest.fixture
def users(engine) -> dict[str, User]:
    """The demo's accounts, after a DNA extract of the PDX tissue was made."""
    with Session(engine, expire_on_commit=False) as session:
        accounts = {u.username: u for u in session.exec(select(User)).all()}
    with session_scope(engine) as session:
        specimens.derive(
            session, actor=accounts["tech"], parent_code=PDX, material_type="dna", quantity=2000, unit="ng",
            parent_quantity_used=20,
        )
    return accounts


def _frame(engine) -> pd.DataFrame:
    with Session(engine) as session:
        return query.specimen_frame(session).set_index("specimen_code")


def test_model_material_and_what_was_made_from_it_carry_the_model(engine, users):
    frame = _frame(engine)
    pdx = frame.loc[PDX]
    assert (pdx["model_code"], pdx["model_kind"], pdx["passage"], int(pdx["passage_number"])) == (
        "RA0004-L06A-PDX1", "pdx", "P4", 4,
    )
    assert isinstance(pdx["host"], str) and pdx["host"], "a PDX names its host strain"
    assert pdx["model_source_code"] == "RA0004-L06A-VC1"
    extract = frame[(frame["parent_code"] == PDX) & (frame["material_type"] == "dna")]
    assert len(extract) == 1, "the DNA extract of the PDX tissue"
    row = extract.iloc[0]
    assert (row["model_code"], row["passage"], row["host"]) == ("RA0004-L06A-PDX1", "P4", pdx["host"])
    organoid = frame.loc[ORGANOID]
    assert organoid["model_kind"] == "organoid" and organoid["passage"] == "P5" and pd.isna(organoid["host"])
    assert pd.isna(pdx["tumour_cellularity_pct"]) and pd.isna(organoid["tumour_cellularity_pct"]), (
        "a model's tumour content is never the patient region's"
    )
    patient = frame.loc["RA0004-L06A-VC1"]
    assert all(pd.isna(patient[c]) for c in query.MODEL_COLUMNS), "the patient's own vial is not model material"
    grown = frame["model_code"].notna()
    assert set(frame.loc[grown, "model_source_code"]) <= set(frame.index[~grown]), "sources are patient specimens"


def test_patient_tissue_exports_leave_model_material_out_unless_asked(engine, users):
    chosen = ["RA0004-L06A-VC1", PDX, ORGANOID]
    with Session(engine) as session:
        plain = service.select_frames(session, target="sarek", specimen_codes=chosen)
        asked = service.select_frames(session, target="sarek", specimen_codes=chosen, include_models=True)
        exchange = service.select_frames(session, target="fhir", specimen_codes=chosen)
    assert list(plain.samples["specimen_code"]) == ["RA0004-L06A-VC1"]
    assert len(plain.excluded) == 1 and PDX in plain.excluded[0] and ORGANOID in plain.excluded[0]
    assert "grown in a model" in plain.excluded[0]
    assert sorted(asked.samples["specimen_code"]) == sorted(chosen) and asked.excluded == []
    marked = asked.samples.set_index("specimen_code")
    assert marked.loc[PDX, "model_kind"] == "pdx" and marked.loc[ORGANOID, "model_kind"] == "organoid"
    assert sorted(exchange.samples["specimen_code"]) == sorted(chosen), "exchange formats carry it, marked"


def test_every_patient_tissue_target_leaves_a_donors_model_material_out(engine, users):
    with Session(engine) as session:
        for target in service.PATIENT_TISSUE_TARGETS:
            frames = service.select_frames(session, target=target, donor_codes=["RA-0004"])
            assert not frames.samples["model_code"].notna().any(), target


def test_the_cli_adds_model_material_only_when_asked_and_site_based_files_never_take_it(db_url, users, tmp_path):
    from typer.testing import CliRunner

    from biobank.cli import app
    from tests.support.cli_auth import issue_cli_token

    as_pi = {"BIOBANK_TOKEN": issue_cli_token(db_url, "pi")}
    runner = CliRunner()

    def export(target: str, out: str, *extra: str) -> str:
        args = ["export", target, "-s", "RA0004-L06A-VC1", "-s", PDX, "-o", str(tmp_path / out), "--user", "pi"]
        result = runner.invoke(app, [*args, *extra], env=as_pi)
        assert result.exit_code == 0, result.output
        return result.output

    export("sarek", "plain.csv", "--template")
    export("sarek", "asked.csv", "--template", "--include-models")
    assert PDX not in (tmp_path / "plain.csv").read_text() and PDX in (tmp_path / "asked.csv").read_text()
    said = export("clonal", "clonal")
    assert PDX not in "".join(p.read_text() for p in (tmp_path / "clonal").glob("*.tsv"))
    assert f"note: RA-0004: 1 sample(s) grown in a model left out ({PDX})" in said, said
