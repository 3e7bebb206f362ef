"""``biobank specimen aliquot|derive|qc|dispose``: one or several codes or a scanned list, all or nothing, the new
tubes' labels in the same step; refusals exit 2 with one line naming the code and field."""

from __future__ import annotations

import json

from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from biobank.models import CustodyEvent, Specimen, SpecimenLocation
from biobank.services import storage
from tests.printables.reading import text
from tests.support.dbtools import snapshot
from tests.support.factories import collect, lab, make_case

runner = CliRunner()
SF1, SF2, FF1 = "RA0001-L02A-SF1", "RA0001-L02A-SF2", "RA0001-L02A-FF1"


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def row(engine, code) -> Specimen:
    with Session(engine) as session:
        return session.exec(select(Specimen).where(Specimen.code == code)).one()


def seeded(engine, tech) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        lab(session, tech)
        collect(session, tech)
        storage.store(session, actor=tech, codes=[SF1, SF2], box_code="BOX1")


def test_a_scanned_rack_is_aliquoted_and_the_new_labels_written_in_the_same_step(db_url, engine, tech, cli_login, tmp_path):
    cli_login("tech")
    seeded(engine, tech)
    scan = tmp_path / "rack.txt"
    scan.write_text(f"{SF1.lower()}\r\n{SF2}\n{SF1}\n")
    labels = tmp_path / "new.pdf"
    code, out = run("specimen", "aliquot", "--from-file", str(scan), "--count", "2", "--each", "10",
                    "--labels", str(labels), "--user", "tech")
    assert code == 0, out
    assert f"{SF1}.1, {SF1}.2" in out and f"labels written to {labels} (4 cryotube labels" in out
    assert f"note: scanned more than once, processed once: {SF1.lower()}" in out
    assert row(engine, SF1).quantity_remaining == row(engine, SF2).quantity_remaining == 30
    printed = text(labels.read_bytes())
    assert all(c in printed for c in (f"{SF1}.1", f"{SF1}.2", f"{SF2}.1", f"{SF2}.2"))


def test_an_extraction_records_its_details_and_prints_json(db_url, engine, tech, cli_login, tmp_path):
    cli_login("tech")
    seeded(engine, tech)
    code, out = run("specimen", "derive", SF1, "--material", "dna", "--used", "20", "--method", "column",
                    "--kit", "QIAamp DNA Mini", "--elution-ul", "100", "--concentration", "35.5", "--json",
                    "--user", "tech")
    assert code == 0, out
    data = json.loads(out)
    assert data["new_codes"] == [f"{SF1}-DNA1"] and data["done"][0]["done"] == "3550 ng dna"
    dna = row(engine, f"{SF1}-DNA1")
    assert (dna.extraction_method, dna.extraction_kit, dna.elution_volume_ul, dna.concentration_ng_ul, dna.yield_ng) == (
        "column", "QIAamp DNA Mini", 100, 35.5, 3550)
    assert row(engine, SF1).quantity_remaining == 30
    code, out = run("specimen", "qc", f"{SF1}-DNA1", "--a260-280", "1.9", "--a260-230", "2.1", "--din", "7.5",
                    "--user", "tech")
    assert code == 0, out
    assert (row(engine, f"{SF1}-DNA1").a260_230, row(engine, f"{SF1}-DNA1").din) == (2.1, 7.5)
    code, out = run("specimen", "show", f"{SF1}-DNA1")
    assert code == 0 and "a260_230=2.1" in out and "extraction_kit=QIAamp DNA Mini" in out


def test_a_pathology_review_and_a_disposal_from_standard_input(db_url, engine, tech, cli_login):
    cli_login("tech")
    seeded(engine, tech)
    code, out = run("specimen", "qc", SF1, FF1, "--cellularity", "70", "--necrosis", "10", "--reviewer", "Dr Path",
                    "--slide", "HE-12", "--user", "tech")
    assert code == 0, out
    assert (row(engine, FF1).tumour_cellularity_pct, row(engine, FF1).slide_ref) == (70, "HE-12")
    code, out = run("specimen", "dispose", "--from-file", "-", "--reason", "freezer failure", "--user", "tech",
                    stdin=f"{SF1}, {SF2}\n")
    assert code == 0, out
    with Session(engine) as session:
        assert session.exec(select(SpecimenLocation)).all() == []
        notes = session.exec(select(CustodyEvent.note).where(CustodyEvent.kind == "disposed")).all()
    assert notes == ["freezer failure", "freezer failure"]


def test_refusals_exit_2_with_one_line_naming_the_code_and_field_and_write_nothing(db_url, engine, tech, cli_login, tmp_path):
    cli_login("tech")
    seeded(engine, tech)
    before = snapshot(engine)
    cases = [
        (["aliquot", SF1, "NOPE-1", "--each", "5"], "error: Specimen 2 (NOPE-1) is not the code or barcode of any specimen"),
        (["aliquot", SF1, SF2, "--each", "45", "--count", "2"],
         "error: 2 specimens refused, nothing was done: RA0001-L02A-SF1: Aliquot quantities (90) is more than"),
        (["aliquot", SF1, "--each", "-5"], "error: Aliquot (-5) must be positive"),
        (["derive", SF1, "--material", "dna", "--used", "5", "--concentration", "lots", "--elution-ul", "50"],
         "error: Concentration (lots) must be a number"),
        (["derive", SF1, "--material", "dna", "--used", "5", "--kit", "k" * 200, "--quantity", "10"],
         "error: Extraction kit"),
        (["qc", SF1, "--cellularity", "120"], "error: Tumour cellularity (120) must be at most 100"),
        (["qc", SF1, "--cellularity", "50", "--reviewer", "R" * 200], "error: Pathology reviewer"),
        (["qc", SF1, "--cellularity", "50", "--when", "2099-01-01T00:00:00+00:00"], "error: Time (01 Jan 2099"),
        (["qc", SF1, "--cellularity", "50", "--when", "2026-03-14T03:00:00+00:00"],
         f"error: {SF1}: Time (14 Mar 2026 03:00 Europe/London) cannot be before {SF1}'s collection"),
        # without a zone a time is lab time (Europe/London: UTC in March)
        (["qc", SF1, "--cellularity", "50", "--when", "2026-03-14T03:00:00"],
         f"error: {SF1}: Time (14 Mar 2026 03:00 Europe/London) cannot be before {SF1}'s collection"),
        (["qc", SF1, "--cellularity", "50", "--when", "soon"], "error: Time (soon) is not a time"),
        (["dispose", SF1], "error: Reason is required"),
        (["dispose", SF1, "--reason", "r" * 501], "error: Reason (rrr"),
        (["dispose", "--reason", "x"], "error: give specimen codes or --from-file FILE"),
        (["dispose", "--from-file", str(tmp_path / "absent.txt"), "--reason", "x"], "error: --from-file"),
        (["aliquot", SF1, "--each", "5", "--labels", str(tmp_path / "labels.txt")], "error: --labels"),
    ]
    for args, start in cases:
        code, out = run("specimen", *args, "--user", "tech")
        assert code == 2, (args, out)
        assert out.startswith(start), (args, out)
        assert len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    assert snapshot(engine) == before


def test_a_pi_or_viewer_cannot_process(db_url, engine, tech, pi, viewer, cli_login):
    cli_login("pi", "viewer")
    seeded(engine, tech)
    before = snapshot(engine)
    for user in ("pi", "viewer"):
        code, out = run("specimen", "dispose", SF1, "--reason", "x", "--user", user)
        assert code == 2 and "needs one of" in out, out
    assert snapshot(engine) == before


def test_every_processing_command_has_help():
    code, out = run("specimen", "--help")
    assert code == 0
    for command in ("show", "aliquot", "derive", "qc", "dispose"):
        assert command in out
        assert run("specimen", command, "--help")[0] == 0


HOSTILE_NUMBERS = ["-1", "nan", "inf", "-inf", "1e309", "9" * 40, "twelve", "1,5"]
HOSTILE_TIMES = ["1900-01-01T00:00:00+00:00", "2099-01-01T00:00:00+00:00", "1969-12-31T23:59:59+00:00",
                 "2026-01-01T10:00:00"]
LONG = "x" * 10_000


def test_hostile_values_exit_2_with_one_line_and_write_nothing(db_url, engine, tech, cli_login):
    """Each value of a valid call replaced in turn: never accepted, never a traceback, never a write."""
    cli_login("tech")
    seeded(engine, tech)
    with session_scope(engine) as session:
        from biobank.services import specimens

        dna = specimens.derive(session, actor=tech, parent_code=SF2, material_type="dna", unit="ng", quantity=500,
                               parent_quantity_used=5).code
        rna = specimens.derive(session, actor=tech, parent_code=SF2, material_type="rna", unit="ng", quantity=500,
                               parent_quantity_used=5).code
    calls = [
        ["aliquot", SF1, "--count", "2", "--each", "5"],
        ["aliquot", SF1, "--portions", "5,5"],
        ["derive", SF1, "--material", "dna", "--used", "5", "--method", "column", "--kit", "K", "--elution-ul", "50",
         "--concentration", "20", "--yield-ng", "1000", "--quantity", "900", "--unit", "ng", "--format", "frozen"],
        ["qc", SF1, "--cellularity", "50", "--necrosis", "5", "--reviewer", "Dr P", "--slide", "S1"],
        ["qc", dna, "--yield-ng", "100", "--concentration", "10", "--a260-280", "1.8", "--a260-230", "2", "--din", "7",
         "--dv200", "80"],
        ["qc", rna, "--rin", "7"],
        ["dispose", SF1, "--reason", "gone"],
    ]
    texts = {"--method", "--kit", "--reviewer", "--slide", "--reason", "--material", "--unit", "--format", "--portions"}
    before = snapshot(engine)
    tried = 0
    for call in calls:
        for index, word in enumerate(call):
            if not word.startswith("--"):
                continue
            values = [LONG] if word in texts else HOSTILE_NUMBERS
            for value in values:
                args = [*call[: index + 1], value, *call[index + 2:]]
                code, out = run("specimen", *args, "--user", "tech")
                assert code == 2 and len(out.strip().splitlines()) == 1 and "Traceback" not in out, (args[:6], out[:300])
                tried += 1
        for when in HOSTILE_TIMES:
            code, out = run("specimen", *call, "--when", when, "--user", "tech")
            assert code == 2 and len(out.strip().splitlines()) == 1, (call, when, out[:300])
        assert snapshot(engine) == before, call
    assert tried > 120
    for call in calls:  # the calls themselves are valid: each refusal above was the hostile value's
        code, out = run("specimen", *call, "--user", "tech")
        assert code == 0, (call, out)
