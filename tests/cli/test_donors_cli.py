"""``biobank donors add|consent|withdraw|treatment|event|consents`` end to end: a coordinator enrols, bad input exits 2
with one line naming the field and writes nothing, destroying material is confirmed first."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from biobank.models import Specimen, User
from tests.support.dbtools import snapshot
from tests.support.factories import donor_with_region

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def coord(engine) -> User:
    with Session(engine, expire_on_commit=False) as session:
        user = User(username="coord", role="coordinator", full_name="Cora Coordinator")
        session.add(user)
        session.commit()
        return user


def test_a_coordinator_enrols_consents_re_consents_and_withdraws_a_scope(db_url, engine, coord, cli_login):
    cli_login("coord")
    code, out = run("donors", "add", "--sex", "female", "--diagnosis", "Invasive ductal carcinoma of breast",
                    "--primary-site", "BREAST", "--icdo3-topography", "C50.9", "--icdo3-morphology", "8500/3",
                    "--er", "positive", "--her2", "negative", "--user", "coord")
    assert (code, out.strip()) == (0, "donor RA-0001 registered"), out
    code, out = run("donors", "add", "--json", "--user", "coord")
    assert code == 0 and json.loads(out)["code"] == "RA-0002", out
    code, out = run("donors", "consent", "RA-0001", "--scope", "research_use", "--scope",
                    "genomic_sequencing,model_derivation", "--on", "2025-01-02", "--form-version", "ICF-v3",
                    "--taken-by", "Dr Rao", "--user", "coord")
    assert code == 0 and "(initial)" in out, out
    code, out = run("donors", "consent", "RA-0001", "--scope", "research_use,genomic_sequencing", "--on", "2025-02-01",
                    "--form-version", "ICF-v4", "--taken-by", "Dr Rao", "--reason", "new form", "--json",
                    "--user", "coord")
    assert code == 0 and json.loads(out)["change"] == "re_consent", out
    code, out = run("donors", "withdraw", "RA-0001", "--requested-by", "next_of_kin", "--reason", "no sequencing",
                    "--scope", "genomic_sequencing", "--at", "2025-03-01T10:00", "--user", "coord")
    assert (code, out.strip()) == (0, "genomic_sequencing withdrawn for RA-0001; still consented: research_use"), out
    code, out = run("donors", "consents", "RA-0001", "--json")
    history = json.loads(out)
    assert [(v["change"], v["scopes"]) for v in history["versions"]] == [
        ("initial", ["research_use", "genomic_sequencing", "model_derivation"]),
        ("re_consent", ["research_use", "genomic_sequencing"]),
        ("partial_withdrawal", ["research_use"]),
    ]
    assert history["versions"][2]["given_by"] == "next_of_kin" and history["withdrawal"] is None
    code, out = run("donors", "consents", "RA-0001")
    assert code == 0 and "partial_withdrawal" in out and "consent in force: research_use" in out
    code, out = run("donors", "show", "RA-0001")
    assert code == 0 and "consent      research_use" in out
    code, out = run("donors", "treatment", "RA-0001", "--agents", "letrozole", "--category", "endocrine",
                    "--start-days", "400", "--end-days", "100", "--user", "coord")
    assert code == 0 and out.startswith("line 1 of RA-0001 added"), out
    code, out = run("donors", "event", "RA-0001", "--kind", "fracture", "--days-before-death", "20", "--site", "FEMUR",
                    "--user", "coord")
    assert code == 0 and "fracture of RA-0001 added, 20 days before death" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["donors", "add", "--age-at-death", "sixty"], "error: Age at death (sixty) must be a whole number"),
        (["donors", "add", "--age-at-death", "-3"], "error: Age at death (-3 years) cannot be negative"),
        (["donors", "add", "RA-0001"], "error: code='RA-0001': a donor with this code already exists"),
        (["donors", "add", "--diagnosis", "carcinoma, born 02.03.1956"], "looks like a personal identifier"),
        (["donors", "add", "Jane Smith"], "error: Code (Jane Smith): use only letters"),
        (["donors", "consent", "RA-0001", "--scope", "research_use", "--on", "2099-01-01"],
         "error: Consent date (01 Jan 2099) is in the future"),
        (["donors", "consent", "RA-0001", "--scope", "research_use", "--on", "yesterday"],
         "error: Consent date (yesterday) must be a date"),
        (["donors", "consent", "RA-0001", "--scope", "magic"], "error: Consent scope (magic) must be one of"),
        (["donors", "consent", "RA-0001"], "error: Consent scopes: choose at least one scope"),
        (["donors", "consent", "RA-0001", "--scope", "research_use", "--form-version", "v" * 41],
         "is too long: at most 40 characters"),
        (["donors", "withdraw", "RA-0001", "--requested-by", "donor", "--reason", " "],
         "error: Reason: say why consent was withdrawn"),
        (["donors", "withdraw", "RA-0001", "--requested-by", "donor", "--reason", "x", "--at", "soon"],
         "error: Consent withdrawn (soon) is not a time"),
        (["donors", "withdraw", "RA-0001", "--requested-by", "donor", "--reason", "x", "--material", "burn"],
         "error: Material held (burn) must be one of"),
        (["donors", "treatment", "RA-0001", "--agents", "letrozole", "--start", "2025-03-01"],
         "error: Treatment start (01 Mar 2025): record the death first, or give days before death"),
        (["donors", "treatment", "RA-0001", "--agents", "letrozole", "--start-days", "many"],
         "error: Treatment start (many) must be a whole number"),
        (["donors", "treatment", "RA-0001", "--agents", "letrozole"], "error: Treatment start is required"),
        (["donors", "event", "RA-0001", "--kind", "fracture", "--days-before-death", "-2"],
         "error: Days before death (-2 days) cannot be negative"),
        (["donors", "event", "RA-0404", "--kind", "fracture", "--days-before-death", "2"], "error: donor 'RA-0404' not found"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_field_and_writes_nothing(db_url, engine, coord, cli_login, args,
                                                                             message):
    cli_login("coord")
    assert run("donors", "add", "RA-0001", "--user", "coord")[0] == 0
    before = snapshot(engine)
    code, out = run(*args, "--user", "coord")
    assert code == 2, out
    assert message in out and len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    assert snapshot(engine) == before


def test_a_viewer_cannot_enrol(db_url, engine, viewer, cli_login):
    cli_login("viewer")
    before = snapshot(engine)
    code, out = run("donors", "add", "--user", "viewer")
    assert code == 2 and "enrol: user 'viewer' has role 'viewer'" in out, out
    assert snapshot(engine) == before


def test_destroying_the_material_is_confirmed_with_the_donor_code(db_url, engine, tech, coord, cli_login):
    cli_login("coord")
    with session_scope(engine) as session:
        made = [s.code for s in donor_with_region(session, tech)]
    before = snapshot(engine)
    withdraw = ["donors", "withdraw", "RA-0001", "--requested-by", "next_of_kin", "--reason", "family asked",
                "--material", "destroy", "--user", "coord"]
    code, out = run(*withdraw)
    assert code == 2 and "confirm with --confirm RA-0001" in out, out
    code, out = run(*withdraw, "--confirm", "RA-0002")
    assert code == 2 and "is not the donor's code" in out, out
    assert snapshot(engine) == before
    code, out = run(*withdraw, "--confirm", "ra-0001")
    assert code == 0 and out.strip() == f"consent of RA-0001 withdrawn (material: destroy); {len(made)} specimen(s) disposed of", out
    with Session(engine) as session:
        assert {s.status for s in session.exec(select(Specimen))} == {"disposed"}
    code, out = run("donors", "consents", "RA-0001")
    assert "WITHDRAWN" in out and "(material: destroy): family asked" in out


def test_a_coordinator_records_a_lesion_known_from_imaging_and_bad_values_write_nothing(db_url, engine, coord,
                                                                                        cli_login):
    cli_login("coord")
    assert run("donors", "add", "--sex", "female", "--user", "coord")[0] == 0
    code, out = run("donors", "lesion", "RA-0001", "--site", "LIVER", "--size-mm", "23", "--description",
                    "segment 7 on CT", "--json", "--user", "coord")
    assert code == 0, out
    assert json.loads(out) == {"donor": "RA-0001", "lesion": "L01", "site": "LIVER", "laterality": "not_applicable",
                               "kind": "metastasis", "size_mm": 23.0}
    before = snapshot(engine)
    for args, message in (
        (["--site", "LIVR"], "error: Anatomical site (LIVR): not an anatomical-site code: did you mean LIVER?"),
        (["--site", "FEMUR", "--size-mm", "-3"], "error: Size (-3"),
        (["--site", "FEMUR", "--kind", "tumour"], "error: Kind (tumour) must be one of"),
        (["--site", "FEMUR", "--description", "x" * 501], "error: Description"),
    ):
        result = runner.invoke(app, ["donors", "lesion", "RA-0001", *args, "--user", "coord"])
        assert result.exit_code == 2 and result.stderr.startswith(message), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(engine) == before
