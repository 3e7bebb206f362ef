"""``biobank plan amend|cancel|reservations`` and the version columns of ``plan list``, on both databases; every
refusal is one line and exit code 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from biobank.cli import app
from tests.support.factories import wgs_plan_of_ra0001

GERMLINE = "RA0001-GB1-FZ1-BUF1-DNA1"




@pytest.mark.demo(1)
def test_amend_approve_cancel_and_reservations(engine, cli_login):
    wgs_plan_of_ra0001(engine)
    cli_login("pi", "tech")
    runner = CliRunner()

    def call(*argv: str):
        return runner.invoke(app, ["plan", *argv])

    shown = call("reservations", "WGS-1", "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["status"] == "approved" and data["holding"] is True
    germline = next(r for r in data["samples"] if r["specimen_code"] == GERMLINE)
    assert germline["reserved"] == 1000 and germline["available"] == germline["remaining"] - 1000
    table = call("reservations", "wgs-1")
    assert table.exit_code == 0 and "holds its reservations" in table.stdout and GERMLINE in table.stdout

    done = call("amend", "WGS-1", "--reason", "swap region L07-B", "--user", "pi")
    assert done.exit_code == 0, done.output
    assert "plan WGS-1-v2 (version 2) drafted from WGS-1" in done.stdout
    done = call("approve", "WGS-1-v2", "--user", "pi")
    assert done.exit_code == 0, done.output
    listed = json.loads(call("list", "--json").stdout)
    assert {r["code"]: (r["version"], r["status"], r["supersedes"]) for r in listed} == {
        "WGS-1": (1, "superseded", None), "WGS-1-v2": (2, "approved", "WGS-1")}
    assert "superseded" in call("list").stdout

    done = call("cancel", "WGS-1-v2", "--reason", "funding withdrawn", "--user", "pi")
    assert done.exit_code == 0, done.output
    assert "plan WGS-1-v2 cancelled" in done.stdout
    data = json.loads(call("reservations", "WGS-1-v2", "--json").stdout)
    assert data["holding"] is False and data["status"] == "cancelled"


@pytest.mark.demo(1)
def test_bad_input_is_one_line_and_exit_2(engine, cli_login):
    wgs_plan_of_ra0001(engine)
    cli_login("pi", "tech")
    runner = CliRunner()
    cases = [
        (["amend", "NOPE", "--reason", "x", "--user", "pi"], "analysis plan 'NOPE' not found"),
        (["amend", "WGS-1", "--reason", " ", "--user", "pi"], "reason"),
        (["cancel", "WGS-1", "--reason", "no funds", "--user", "tech"], "technician"),
        (["reservations", "NOPE"], "analysis plan 'NOPE' not found"),
    ]
    for argv, expected in cases:
        result = runner.invoke(app, ["plan", *argv])
        assert result.exit_code == 2, (argv, result.output)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected.lower() in lines[0].lower(), (argv, result.stderr)
        assert "Traceback" not in result.output
    done = runner.invoke(app, ["plan", "amend", "WGS-1", "--reason", "first", "--user", "pi"])
    assert done.exit_code == 0, done.output
    again = runner.invoke(app, ["plan", "amend", "WGS-1", "--reason", "second", "--user", "pi"])
    assert again.exit_code == 2 and "already has an open amendment, WGS-1-v2" in again.stderr
    draft = runner.invoke(app, ["plan", "amend", "WGS-1-v2", "--reason", "x", "--user", "pi"])
    assert draft.exit_code == 2 and "is draft; it cannot be amended" in draft.stderr
