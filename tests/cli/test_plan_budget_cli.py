"""``biobank plan include --assay/--depth/--library``, ``plan budget``, ``plan flow-cell``, ``plan create --flow-cell``
and the budget in ``plan show``, on both databases; every refusal is one line and exit code 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from biobank.cli import app

RNA = "RA0001-L07B-SF1-RNA1"


@pytest.mark.demo(1)
def test_per_sample_assay_depth_library_and_the_budget(engine, cli_login):
    cli_login("pi")
    runner = CliRunner()

    def call(*argv: str):
        return runner.invoke(app, ["plan", *argv])

    done = call("create", "BUD-CLI", "--name", "Budget by CLI", "-d", "RA-0001", "--flow-cell", "novaseq x 25b",
                "--user", "pi")
    assert done.exit_code == 0, done.output
    shown = json.loads(call("show", "BUD-CLI", "--json").stdout)
    assert shown["budget"]["flow_cell"] == "NovaSeq X 25B"
    samples = {s["specimen_code"]: s for s in shown["budget"]["samples"]}
    normal = next(s for s in samples.values() if s["role"] == "germline_normal")
    tumour = next(s for s in samples.values() if s["role"] == "tumour")
    assert (normal["depth"], tumour["depth"]) == (30.0, 90.0), "WGS defaults: normal 30x, tumour 90x"
    l07b = next(r["specimen_code"] for r in shown["specimens_detail"] if r["region_code"] == "L07-B")

    done = call("include", "BUD-CLI", tumour["specimen_code"], "--depth", "120", "--library", "TruSeq DNA PCR-free",
                "--user", "pi")
    assert done.exit_code == 0, done.output
    assert "(depth 120.0, library TruSeq DNA PCR-free)" in done.stdout
    done = call("include", "BUD-CLI", RNA, "--assay", "rna_seq", "--depth", "80", "--user", "pi")
    assert done.exit_code == 0, done.output

    budget = json.loads(call("budget", "BUD-CLI", "--json").stdout)
    samples = {s["specimen_code"]: s for s in budget["samples"]}
    assert (samples[tumour["specimen_code"]]["depth"], samples[tumour["specimen_code"]]["library"]) == (
        120.0, "TruSeq DNA PCR-free")
    assert samples[RNA]["assay"] == "rna_seq"
    assert (samples[RNA]["depth"], samples[RNA]["depth_unit"], samples[RNA]["paired_dna"]) == (80.0, "M pairs", l07b)
    assert budget["gb"] == pytest.approx(sum(s["gb"] for s in budget["samples"]))
    assert budget["line"].startswith(f"{len(samples)} sample(s), ")

    table = call("budget", "BUD-CLI", "--flow-cell", "NextSeq 2000 P3")
    assert table.exit_code == 0, table.output
    assert RNA in table.stdout and "M pairs" in table.stdout
    assert "budget: " in table.stdout and "lane(s) of NextSeq 2000 P3" in table.stdout and "USD" in table.stdout

    # the other samples kept what they had when one was included again
    done = call("include", "BUD-CLI", normal["specimen_code"], "--role", "germline_normal", "--user", "pi")
    assert done.exit_code == 0, done.output
    again = {s["specimen_code"]: s for s in json.loads(call("budget", "BUD-CLI", "--json").stdout)["samples"]}
    assert again[tumour["specimen_code"]]["depth"] == 120.0 and again[RNA]["assay"] == "rna_seq"

    done = call("flow-cell", "BUD-CLI", "NovaSeq 6000 S4", "--user", "pi")
    assert done.exit_code == 0 and "budget on NovaSeq 6000 S4" in done.stdout, done.output
    text = call("show", "BUD-CLI")
    assert text.exit_code == 0 and "of NovaSeq 6000 S4" in text.stdout and "paired_dna" in text.stdout
    done = call("flow-cell", "BUD-CLI", "--clear", "--user", "pi")
    assert done.exit_code == 0 and "default flow cell kind" in done.stdout


@pytest.mark.demo(1)
def test_refusals_are_one_line_with_exit_code_2(engine, cli_login):
    cli_login("pi")
    runner = CliRunner()

    def call(*argv: str):
        return runner.invoke(app, ["plan", *argv])

    assert call("create", "BUD-R", "--name", "Refusals", "-d", "RA-0001", "--user", "pi").exit_code == 0
    for argv, message in [
        (("budget", "BUD-R", "--flow-cell", "HiSeq 2500"), "unknown flow cell kind; known kinds are"),
        (("flow-cell", "BUD-R", "MiSeq", "--user", "pi"), "unknown flow cell kind"),
        (("flow-cell", "BUD-R", "--user", "pi"), "give the flow cell kind, or --clear"),
        (("include", "BUD-R", RNA, "--assay", "rna", "--user", "pi"), "Assay (rna): expected one of"),
        (("include", "BUD-R", RNA, "--depth", "20000", "--user", "pi"), "must be above 0 and at most 10000"),
        (("create", "BUD-R2", "--name", "Bad kind", "-d", "RA-0001", "--flow-cell", "X", "--user", "pi"),
         "unknown flow cell kind"),
    ]:
        done = call(*argv)
        assert done.exit_code == 2, (argv, done.output)
        assert message in done.output and len(done.output.strip().splitlines()) == 1, done.output
    assert call("show", "BUD-R2").exit_code == 2, "the refused create wrote nothing"
