"""``biobank sequencing``: a run, results with files, an outcome and the plan's status with replacements, on both
databases; every refusal is one line and exit code 2."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.models.plans import SequencingFile, SequencingResult
from tests.support.factories import wgs_plan_of_ra0001

DNA = "RA0001-L04A-SF1-DNA1"
TUMOUR = "RA0001-L03A-SF1"
MD5 = "0123456789abcdef0123456789abcdef"




@pytest.mark.demo(1)
def test_run_result_outcome_and_status(engine, cli_login):
    wgs_plan_of_ra0001(engine, submit=True)
    cli_login("tech", "viewer")
    runner = CliRunner()

    def call(*argv: str):
        return runner.invoke(app, ["sequencing", *argv])

    done = call("run", "RUN-1", "--instrument", "NovaSeq X", "--flow-cell", "10B", "--started", "2026-11-01 09:00",
                "--user", "tech")
    assert done.exit_code == 0, done.output
    assert "run RUN-1 recorded" in done.stdout

    done = call("result", "WGS-1", DNA, "--run", "RUN-1", "--reads", "900000000", "--coverage", "61",
                "--contamination", "0.5", "--purity", "0.6", "--ploidy", "2",
                "--file", f"s3://core/RUN-1/{DNA}.cram:md5:{MD5}:1024:cram", "--file",
                f"s3://core/RUN-1/{DNA}.crai:sha256:{'b' * 64}", "--user", "tech")
    assert done.exit_code == 0, done.output
    assert f"{DNA} in run RUN-1: passed" in done.stdout
    done = call("result", "WGS-1", TUMOUR, "--run", "RUN-1", "--coverage", "20", "--contamination", "0.5",
                "--user", "tech", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["outcome"] == "failed_qc"

    status = call("status", "WGS-1", "--json")
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    by_code = {r["specimen_code"]: r for r in shown["samples"]}
    assert by_code[DNA]["state"] == "passed" and by_code[DNA]["mean_coverage"] == 61
    assert by_code[TUMOUR]["state"] == "failed_qc"
    [replacement] = shown["replacements"]
    assert replacement["failed_specimen_code"] == TUMOUR and replacement["region_code"] == "L03-A"
    assert replacement["specimen_code"] not in by_code
    text = call("status", "WGS-1")
    assert text.exit_code == 0 and f"replace {TUMOUR} with {replacement['specimen_code']}" in text.stdout
    assert "amend the plan" in text.stdout

    # refusals: one line, exit 2, nothing written
    for argv, message in (
        (("result", "WGS-1", "RA0001-L05A-SF1-DNA1", "--run", "RUN-1", "--file", "s3://x/a.bam:md5:abc",
          "--user", "tech"), "32 hexadecimal digits"),
        (("result", "WGS-1", "RA0001-L05A-SF1-DNA1", "--run", "RUN-1", "--file", "s3://x/a.bam",
          "--user", "tech"), "URI:md5:HEX"),
        (("result", "WGS-1", "RA0001-L05A-SF1-DNA1", "--run", "RUN-1", "--coverage", "nan", "--user", "tech"),
         "finite"),
        (("result", "WGS-1", "RA0001-L05A-SF1-DNA1", "--run", "RUN-1", "--user", "viewer"), "technician"),
        (("outcome", "WGS-1", DNA, "--run", "RUN-1", "--outcome", "failed_qc", "--note", "x", "--user", "tech"),
         "already passed"),
        (("outcome", "WGS-1", DNA, "--run", "RUN-1", "--outcome", "sequenced", "--user", "tech"), "passed, failed_qc"),
        (("run", "RUN-1", "--instrument", "MiSeq", "--user", "tech"), "already recorded"),
    ):
        refused = call(*argv)
        assert refused.exit_code == 2, (argv, refused.output)
        assert message in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(SequencingResult)).one() == 2
        assert session.exec(select(func.count()).select_from(SequencingFile)).one() == 2

    done = call("result", "WGS-1", "RA0001-L05A-SF1-DNA1", "--run", "RUN-1", "--coverage", "60", "--user", "tech")
    assert done.exit_code == 0 and ": sequenced (automatic QC not judged" in done.stdout
    done = call("outcome", "WGS-1", "RA0001-L05A-SF1-DNA1", "--run", "RUN-1", "--outcome", "passed", "--user", "tech")
    assert done.exit_code == 0, done.output
    samples = json.loads(call("status", "WGS-1", "--json").stdout)["samples"]
    assert {r["specimen_code"]: r["state"] for r in samples}["RA0001-L05A-SF1-DNA1"] == "passed"
