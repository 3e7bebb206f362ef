"""``biobank autopsy open|times|start|end|notified|labels|checklist|list``: the death call from the command line."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from biobank.models import AuditLog, Autopsy
from biobank.queries import board
from biobank.services import donors
from biobank.services.inputs import DonorCreate
from tests.conftest import DEATH
from tests.support.dbtools import snapshot
from tests.support.factories import enrol

runner = CliRunner()
CALL = ["--death", "2026-03-14 02:00", "--place", "Hospice St Anne", "--reported-by", "night nurse J. Doe",
        "--reported-at", "2026-03-14 02:20", "--prosector", "Dr A. Okafor", "--team", "Rapid autopsy team"]


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def enrolled(engine, tech) -> str:
    with session_scope(engine) as session:
        enrol(session, tech)
    return "RA-0001"


def stored(engine, case: str = "RAP-2026-001") -> Autopsy | None:
    with Session(engine) as session:
        return session.exec(select(Autopsy).where(Autopsy.case_code == case)).first()


def test_the_call_opens_the_case_prints_its_labels_and_the_board_lists_it_once_started(engine, enrolled, coordinator,
                                                                                        cli_login, tmp_path):
    cli_login("coord")
    sheet = tmp_path / "labels.pdf"
    code, out = run("autopsy", "open", "RA-0001", *CALL, "--refrigerated", "2026-03-14 03:00", "--print-labels", str(sheet),
                    "--user", "coord")
    assert code == 0, out
    assert out.splitlines()[0] == "case RAP-2026-001 opened for donor RA-0001: died 14 Mar 2026 02:00 at Hospice St Anne"
    assert "wrote 18 label(s) to" in out and sheet.read_bytes().startswith(b"%PDF")
    assert "[x] Labels printed: printed " in out
    assert "[ ] Team notified: not yet: call the prosector and the team (Dr A. Okafor, Rapid autopsy team)" in out
    autopsy = stored(engine)
    assert autopsy is not None and autopsy.labels_printed_at is not None and autopsy.death_place == "Hospice St Anne"
    with Session(engine) as session:
        assert board.running_cases(session) == []
    code, out = run("autopsy", "start", "RAP-2026-001", "--at", "2026-03-14T04:00+00:00", "--user", "coord")
    assert (code, out.strip()) == (0, "case RAP-2026-001 started 14 Mar 2026 04:00 (2.0 h after death): in progress")
    with Session(engine) as session:
        assert [row["case"] for row in board.running_cases(session)] == ["RAP-2026-001"]
    code, out = run("autopsy", "notified", "RAP-2026-001", "--at", "2026-03-14 02:40", "--user", "coord")
    assert code == 0, out
    code, out = run("autopsy", "checklist", "RAP-2026-001")
    assert code == 0 and "[ ]" not in out, out
    code, out = run("autopsy", "end", "RAP-2026-001", "--at", "now", "--user", "coord", "--json")
    assert code == 0 and json.loads(out)["status"] == "complete"
    code, out = run("autopsy", "list", "--json")
    [row] = json.loads(out)
    assert row["status"] == "complete" and row["warm_pmi_hours"] == 1.0 and row["pmi_at_start_hours"] == 2.0


def test_a_correction_needs_a_reason_and_the_figures_follow(engine, enrolled, tech, cli_login):
    cli_login("tech")
    assert run("autopsy", "open", "RA-0001", *CALL, "--refrigerated", "2026-03-14 03:00", "--user", "tech")[0] == 0
    assert run("autopsy", "times", "RAP-2026-001", "--start", "2026-03-14 04:00", "--user", "tech")[0] == 0
    before = snapshot(engine)
    code, out = run("autopsy", "times", "RAP-2026-001", "--start", "2026-03-14 05:00", "--user", "tech")
    assert code == 2 and out.count("\n") == 1, out
    assert out.startswith("error: Reason is required: changing a time already recorded (Autopsy start 14 Mar 2026 04:00)")
    assert snapshot(engine) == before
    code, out = run("autopsy", "times", "RAP-2026-001", "--start", "2026-03-14 05:00", "--reason", "clock on the wall was slow",
                    "--user", "tech", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["pmi_at_start_hours"] == 3.0 and shown["warm_pmi_hours"] == 1.0
    with Session(engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.reason == "clock on the wall was slow")).one()
    assert row.changes["start_at"] == [(DEATH + timedelta(hours=2)).isoformat(), (DEATH + timedelta(hours=3)).isoformat()]
    code, out = run("autopsy", "times", "RAP-2026-001", "--end", "2026-03-14 08:00", "--user", "tech")
    assert code == 0 and "complete" in out and "pmi_at_start_hours" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--death", "2099-01-01 00:00"], "error: Time of death (01 Jan 2099 00:00 Europe/London) is in the future"),
        (["--death", "yesterday"], "error: Time of death (yesterday) is not a time"),
        (["--death", " "], "error: Time of death is empty"),
        (["--refrigerated", "2026-03-14 01:00"], "error: Refrigerated (14 Mar 2026 01:00 Europe/London) cannot be before Time of death"),
        (["--place", ""], "error: Place of death is required"),
        (["--reported-by", "x" * 121], "error: Death reported by (xxxxx"),
        (["--case", "RAP 1"], "error: Case (RAP 1): use only letters, digits"),
    ],
)
def test_a_bad_call_exits_2_with_one_line_naming_the_field_and_writes_nothing(engine, enrolled, tech, cli_login, tmp_path,
                                                                              change, message):
    cli_login("tech")
    sheet = tmp_path / "labels.pdf"
    args = list(CALL)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    before = snapshot(engine)
    code, out = run("autopsy", "open", "RA-0001", *args, "--print-labels", str(sheet), "--user", "tech")
    assert code == 2 and out.count("\n") == 1 and out.startswith(message), out
    assert snapshot(engine) == before and not sheet.exists()


def test_labels_that_cannot_be_printed_undo_the_call(engine, tech, cli_login, tmp_path):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
    cli_login("tech")
    sheet = tmp_path / "labels.pdf"
    code, out = run("autopsy", "open", "RA-0001", *CALL, "--print-labels", str(sheet), "--user", "tech")
    assert code == 2 and "has no lesions recorded yet" in out
    assert stored(engine) is None and not sheet.exists()
    code, out = run("autopsy", "open", "RA-0001", *CALL, "--print-labels", str(tmp_path / "labels.txt"), "--user", "tech")
    assert code == 2 and "name a .pdf file" in out and stored(engine) is None


@pytest.mark.parametrize("role", ["viewer", "pi"])
def test_a_viewer_or_a_pi_cannot_take_the_call(engine, enrolled, role, request, cli_login):
    request.getfixturevalue(role)
    cli_login(role)
    code, out = run("autopsy", "open", "RA-0001", *CALL, "--user", role)
    assert code == 2 and "needs one of: admin, coordinator, technician" in out
    assert stored(engine) is None


def test_the_checklist_shows_labels_missing_until_they_are_printed(engine, enrolled, tech, cli_login, tmp_path):
    cli_login("tech")
    assert run("autopsy", "open", "RA-0001", *CALL, "--user", "tech")[0] == 0
    code, out = run("autopsy", "checklist", "RAP-2026-001")
    assert "[ ] Labels printed: not printed: pre-print the labels of the planned regions" in out
    assert "[ ] Refrigeration: not recorded" in out and "[x] Consent in force" in out
    code, out = run("autopsy", "labels", "RAP-2026-001", "-o", str(tmp_path / "case.zpl"), "--user", "tech")
    assert code == 0 and "wrote 18 label(s) of case RAP-2026-001" in out
    assert (tmp_path / "case.zpl").read_text().startswith("^XA")
    code, out = run("autopsy", "checklist", "RAP-2026-001", "--json")
    assert {item["key"]: item["done"] for item in json.loads(out)}["labels"] is True


def test_the_case_list_groups_cases_by_state(engine, enrolled, tech, cli_login):
    cli_login("tech")
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0002"))
    assert run("autopsy", "open", "RA-0001", *CALL, "--user", "tech")[0] == 0
    assert run("autopsy", "open", "RA-0002", *CALL, "--case", "RAP-X-9", "--user", "tech")[0] == 0
    assert run("autopsy", "start", "RAP-X-9", "--at", "2026-03-14 03:00", "--user", "tech")[0] == 0
    code, out = run("autopsy", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["case", "donor", "status"]
    assert [line.split()[:3] for line in lines[2:]] == [["RAP-2026-001", "RA-0001", "scheduled"],
                                                         ["RAP-X-9", "RA-0002", "in_progress"]]
    code, out = run("autopsy", "list", "--state", "in_progress", "--json")
    assert [row["case"] for row in json.loads(out)] == ["RAP-X-9"]
    code, out = run("autopsy", "list", "--state", "running")
    assert code == 2 and "choose one of scheduled, in_progress, complete" in out
    code, out = run("autopsy", "summary", "RAP-X-9")
    assert code == 0 and "pmi_at_start_hours" in out
