"""``biobank results``: import a MACHINA migration graph and a clone tree with its labelling for a demo donor, list
and show them; a malformed file or a missing one exits 2 with one line and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.models.plans import AnalysisResult

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def stored(engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(AnalysisResult)).one())


@pytest.mark.demo(2)
def test_results_import_list_and_show_from_the_command_line(engine, cli_login, tmp_path: Path):
    cli_login("pi", "tech")
    graph = tmp_path / "G-Breast_right.graph"
    graph.write_text("Breast_right Liver\nBreast_right Liver\nLiver Brain\n")
    code, out, err = run("results", "import", "RA-0001", str(graph), "--tool", "machina", "--kind", "migration_graph",
                         "--note", "pmh_sankoff", "--user", "pi")
    assert code == 0, err
    assert out.strip() == ("result RES-0001 imported for RA-0001: machina migration_graph, 3 site(s), "
                           "3 migration(s), 0 clone(s)")

    tree, labeling = tmp_path / "T.tree", tmp_path / "T.labeling"
    tree.write_text("0 1\n0 2\n")
    labeling.write_text("0 Breast_right\n1 Lung_left\n2 Breast_right\n")
    code, out, err = run("results", "import", "ra-0001", str(tree), "--tool", "metient", "--kind", "clone_tree",
                         "--labeling", str(labeling), "--user", "pi", "--json")
    assert code == 0, err
    imported = json.loads(out)
    assert imported["code"] == "RES-0002"
    assert imported["parsed"]["edges"][0]["source"] == "Breast_right"
    assert imported["parsed"]["edges"][0]["clones"] == ["1"]

    code, out, _ = run("results", "list", "RA-0001", "--json")
    assert code == 0 and [r["code"] for r in json.loads(out)] == ["RES-0002", "RES-0001"]
    code, out, _ = run("results", "list", "RA-0001")
    assert code == 0 and "RES-0001  machina  migration_graph  G-Breast_right.graph" in out
    code, out, _ = run("results", "show", "res-0001")
    assert code == 0
    assert "Breast_right  Liver   2" in out and "Liver         Brain   1" in out
    code, out, _ = run("results", "show", "RES-0001", "--json")
    assert json.loads(out)["content"] == graph.read_text()


@pytest.mark.demo(2)
def test_results_import_refusals_exit_2_with_one_line_and_write_nothing(engine, cli_login, tmp_path: Path):
    cli_login("pi", "tech")
    bad = tmp_path / "G.graph"
    bad.write_text("Breast_right Liver\nLiver Mars\n")
    cases = [
        (["results", "import", "RA-0001", str(bad), "--tool", "machina", "--kind", "migration_graph", "--user", "pi"],
         "G.graph, line 2: target site 'Mars' is not a sampled site of this donor"),
        (["results", "import", "RA-0001", str(tmp_path / "missing.graph"), "--tool", "machina", "--kind",
          "migration_graph", "--user", "pi"], "is not a file"),
        (["results", "import", "RA-0001", str(bad), "--tool", "machina", "--kind", "migration_graph", "--user",
          "tech"], "needs one of: pi"),
        (["results", "import", "RA-0001", str(bad), "--tool", "machina", "--kind", "clone_tree", "--user", "pi"],
         "Labeling is needed"),
        (["results", "show", "RES-0404"], "result 'RES-0404' not found"),
        (["results", "list", "RA-0404"], "RA-0404"),
    ]
    for argv, message in cases:
        code, out, err = run(*argv)
        assert code == 2, (argv, out, err)
        assert message in err and err.count("\n") == 1, err
    assert stored(engine) == 0
