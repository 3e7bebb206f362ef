"""``biobank models``: the commands end to end on a small fixture; bad input exits 2 with one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from tests.support.factories import donor_with_material

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def source(engine, tech, pi, death, db_url, cli_login):
    cli_login("tech", "pi")
    with session_scope(engine) as session:
        return donor_with_material(session, tech, death=death)["L01-viable_cryo"].code


def test_model_life_from_the_command_line(source, tmp_path):
    code, out, _ = run("models", "add", source, "--kind", "pdx", "--host-strain", "NSG", "--engraftment-type",
                       "orthotopic", "--preparation", "fragment", "--on", "2026-03-15", "--user", "tech", "--json")
    assert code == 0, out
    model = json.loads(out)["code"]
    assert model == "RA0001-L01A-PDX1"
    assert run("models", "passage", model, "--on", "2026-03-15", "--vessel", "M-1", "--user", "tech")[0] == 0
    assert run("models", "passage", model, "--parent", "P0", "--on", "2026-05-20", "--latency-days", "66", "--user", "tech")[0] == 0
    assert run("models", "status", model, "growing", "--on", "2026-03-20", "--user", "tech")[0] == 0
    code, _, err = run("models", "status", model, "established", "--on", "2026-06-01", "--user", "tech")
    assert code == 2 and err.count("\n") == 1 and "identity, mycoplasma" in err
    code, out, _ = run("models", "qc", model, "P1", "--on", "2026-05-25", "--method", "STR", "--identity", "93",
                       "--mycoplasma", "negative", "--mouse", "12", "--histology", "yes", "--user", "tech")
    assert code == 0 and "QC passed" in out
    assert run("models", "status", model, "established", "--on", "2026-06-01", "--user", "tech")[0] == 0
    code, out, _ = run("models", "specimens", model, "P1", "--material", "tissue", "--format", "snap_frozen",
                       "--quantity", "40", "--unit", "mg", "--count", "2", "--user", "tech")
    assert code == 0 and out.split() == [f"{model}-P1-SF1", f"{model}-P1-SF2"]
    code, out, _ = run("models", "show", model)
    assert code == 0 and "donor RA-0001" in out and "└─ P1 2026-05-20 QC passed" in out
    code, out, _ = run("models", "list", "--json")
    assert json.loads(out)[0]["passage"] == "P1"
    code, out, _ = run("models", "metrics", "--by", "site", "--json")
    assert json.loads(out)["take_rate"][0]["take_rate"] == 1.0
    code, _, err = run("models", "export", "-o", str(tmp_path / "refused"), "--user", "tech")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "refused").exists(), "a submission is a PI's"
    code, out, _ = run("models", "export", "-o", str(tmp_path / "cm"), "--json", "--user", "pi")
    assert code == 0 and json.loads(out)["models"] == [model]
    assert (tmp_path / "cm" / "pdx_model.csv").exists()


def test_bad_input_exits_2_with_one_line(source, tmp_path):
    for args in (
        ("models", "add", source, "--kind", "spheroid", "--user", "tech"),
        ("models", "show", "NOPE"),
        ("models", "metrics", "--by", "colour"),
        ("models", "add", source, "--kind", "organoid"),  # no user
    ):
        signed_out = {"BIOBANK_CONFIG_DIR": str(tmp_path / "nobody")} if "--user" not in args else None
        code, _, err = run(*args, env=signed_out)
        assert code == 2 and err.strip().startswith("error:") and err.count("\n") == 1, (args, err)
