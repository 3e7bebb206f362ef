"""The storage and distribution commands end to end on a migrated database."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from tests.support.factories import donor_with_region

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_a_technician_builds_a_freezer_stores_a_region_sees_the_box_and_a_pi_approves_an_order(db_url, engine, tech, pi,
                                                                                              cli_login):
    cli_login("tech", "pi")
    with session_scope(engine) as session:
        donor_with_region(session, tech)
    for args in (
        ["UH", "--kind", "site"], ["LAB1", "--kind", "room", "--parent", "UH"],
        ["FRZ1", "--kind", "freezer", "--parent", "LAB1"], ["BOX1", "--kind", "box_9x9", "--parent", "FRZ1"],
        ["LN1", "--kind", "ln2_tank", "--parent", "LAB1"], ["LNBOX", "--kind", "box_10x10", "--parent", "LN1"],
        ["CAB1", "--kind", "rt_cabinet", "--parent", "LAB1"], ["DR1", "--kind", "cassette_drawer", "--parent", "CAB1"],
        ["FRZ2", "--kind", "freezer", "--parent", "LAB1"],
    ):
        code, out = run("storage", "add", *args, "--user", "tech")
        assert code == 0, out
    code, out = run("storage", "store", "--region", "RAP-1/L01-A", "--box", "BOX1", "--box", "LNBOX", "--box", "DR1",
                    "--user", "tech", "--json")
    assert code == 0, out
    stored = json.loads(out)
    assert {r["code"]: r["location"] for r in stored["stored"]}["RA0001-L01A-FF1"] == "UH/LAB1/CAB1/DR1:1"
    code, out = run("storage", "show", "BOX1")
    assert code == 0 and " A   OC  SF  SF   ." in out, out
    code, out = run("storage", "move", "BOX1", "--to", "FRZ2", "--user", "tech")
    assert code == 0 and "UH/LAB1/FRZ2/BOX1" in out
    code, out = run("storage", "checkout", "RA0001-L01A-SF1", "--user", "tech")
    assert code == 0, out
    code, out = run("storage", "return", "RA0001-L01A-SF1", "--user", "tech")
    assert code == 0 and "freeze-thaw count 1" in out
    code, out = run("storage", "find", "RA0001-L01A-SF1", "--json")
    assert json.loads(out)["location"] == "UH/LAB1/FRZ2/BOX1:A2"
    code, out = run("distribution", "create", "--study", "PHYLO", "--recipient", "Dr Lee", "--use", "sequencing",
                    "--code", "DO-1", "--user", "pi")
    assert code == 0, out
    assert run("distribution", "add", "DO-1", "RA0001-L01A-SF2", "--quantity", "20", "--user", "pi")[0] == 0
    assert run("distribution", "approve", "DO-1", "--user", "pi")[0] == 0
    assert run("distribution", "ship", "DO-1", "--temperature=-60to-85", "--user", "tech")[0] == 0
    code, out = run("distribution", "list", "--json")
    assert json.loads(out)[0]["status"] == "shipped"


def test_refusals_exit_2_with_one_line(db_url, engine, tech, cli_login):
    cli_login("tech")
    assert run("storage", "add", "UH", "--kind", "site", "--user", "tech")[0] == 0
    code, out = run("storage", "add", "BOX", "--kind", "box_9x9", "--parent", "UH", "--user", "tech")
    assert code == 2
    assert out.strip().startswith("error: Kind (box_9x9): a site (UH) holds room") and "Traceback" not in out
    code, out = run("storage", "show", "NOPE")
    assert code == 2 and "not found" in out
    code, out = run("distribution", "approve", "DO-X", "--user", "tech")
    assert code == 2 and "pi" in out


def test_every_storage_and_distribution_command_has_help():
    for group in ("storage", "distribution"):
        code, out = run(group, "--help")
        assert code == 0
        for command in (["add", "tree", "show", "store", "move", "find", "checkout", "return", "overdue"] if group == "storage"
                        else ["create", "add", "approve", "ship", "receive", "return", "list"]):
            assert command in out, (group, command)
