"""``biobank export log`` and ``biobank donors exports``: every export made from the command line is listed with its
files' SHA-256 (those of the files written), a donor's exports are listed after a withdrawal, and only
administrators and PIs may read them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from biobank.demo.cohort import load_demo

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def signed_in(engine, cli_login):
    with session_scope(engine) as session:
        load_demo(session, donors_count=2, seed=7)
    cli_login("admin", "pi", "tech", "coord")


def test_exports_from_the_command_line_are_listed_with_the_written_files_sha256(signed_in, tmp_path: Path):
    folder = tmp_path / "packets"
    assert run("export", "phenopackets", "-o", str(folder), "--donor", "RA-0001", "--user", "pi")[0] == 0
    assert run("export", "tables", "-o", str(tmp_path / "tables"), "--user", "admin")[0] == 0

    code, out, _ = run("export", "log", "--user", "pi", "--json")
    assert code == 0
    tables, packets = json.loads(out)
    assert (tables["target"], tables["user"], tables["donors"]) == ("tables", "admin", ["RA-0001", "RA-0002"])
    assert (packets["target"], packets["user"], packets["selection"]) == ("phenopackets", "pi", {"donor_codes": ["RA-0001"]})
    written = folder / "RA-0001.json"
    assert packets["files"] == [{"name": "RA-0001.json", "bytes": written.stat().st_size,
                                 "sha256": hashlib.sha256(written.read_bytes()).hexdigest()}]
    for entry in tables["files"]:
        assert entry["sha256"] == hashlib.sha256((tmp_path / "tables" / entry["name"]).read_bytes()).hexdigest()

    code, out, _ = run("export", "log", "--target", "phenopackets", "--limit", "1", "--user", "admin")
    assert code == 0
    header, _rule, row = out.splitlines()
    assert header.split() == ["id", "exported_at", "user", "target", "donors", "specimens", "selection", "files"]
    assert " pi " in row and "phenopackets" in row and "donor_codes=RA-0001" in row
    assert f"RA-0001.json ({written.stat().st_size:,} B, sha256 {packets['files'][0]['sha256'][:12]})" in row


def test_a_donors_exports_are_listed_and_stay_listed_after_a_withdrawal(signed_in, tmp_path: Path):
    assert run("export", "phenopackets", "-o", str(tmp_path / "p2"), "--donor", "RA-0002", "--user", "pi")[0] == 0
    assert run("export", "tables", "-o", str(tmp_path / "t"), "--user", "pi")[0] == 0
    code, out, _ = run("donors", "exports", "ra-0001", "--user", "admin")
    assert code == 0 and out.strip().endswith("1 export(s) carried RA-0001")
    assert run("donors", "withdraw", "RA-0002", "--requested-by", "donor", "--reason", "changed mind",
               "--user", "coord")[0] == 0
    code, out, _ = run("donors", "exports", "RA-0002", "--user", "pi", "--json")
    data = json.loads(out)
    assert code == 0 and data["donor"] == "RA-0002" and data["withdrawn"] is True
    assert [e["target"] for e in data["exports"]] == ["tables", "phenopackets"]
    code, out, _ = run("donors", "exports", "RA-0002", "--user", "pi")
    assert out.strip().endswith("2 export(s) carried RA-0002: consent withdrawn, tell each recipient")


def test_the_cancermodels_export_is_recorded_with_its_donors(engine, cli_login, tmp_path: Path):
    with session_scope(engine) as session:
        load_demo(session, donors_count=4, seed=7)  # RA-0003's tissue was grown as an organoid and a PDX
    cli_login("admin", "pi")
    code, out, err = run("models", "export", "-o", str(tmp_path / "cm"), "--all-statuses", "--user", "pi", "--json")
    assert code == 0, err
    written = {Path(p).name: Path(p).read_bytes() for p in json.loads(out)["files"]}
    code, out, _ = run("export", "log", "--target", "cancermodels", "--user", "admin", "--json")
    [record] = json.loads(out)
    assert record["user"] == "pi" and record["donors"] == ["RA-0003"] and record["specimen_count"] >= 1
    assert record["selection"] == {"model_codes": [], "all_statuses": True}
    assert {f["name"]: f["sha256"] for f in record["files"]} == {
        name: hashlib.sha256(content).hexdigest() for name, content in written.items()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("export", "log", "--user", "tech"), "read_export_log: user 'tech' has role 'technician'"),
        (("donors", "exports", "RA-0001", "--user", "coord"), "read_export_log: user 'coord'"),
        (("export", "log", "--target", "sequencer", "--user", "admin"), "expected one of sarek"),
        (("export", "log", "--limit", "0", "--user", "admin"), "--limit"),
        (("donors", "exports", "RA-9999", "--user", "admin"), "RA-9999"),
    ],
)
def test_refusals_are_one_line_and_exit_2(signed_in, args, message):
    code, _out, err = run(*args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
