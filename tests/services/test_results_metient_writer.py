"""The results import reads what Metient itself writes: Metient's own writers (``metient.util.plotting_util``:
``write_migration_graph``, ``write_tree``, ``write_tree_vertex_labeling``) given the site labels of our Metient export
of a demo donor, and the files imported as that donor's result. Skipped, naming the target that installs it, where
Metient is not installed (``make judges``)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.exports import service as export_service
from biobank.models import User
from biobank.services import results

pytest.importorskip("torch", reason="Metient needs torch: 'make judges' installs the CPU wheel when it can")
writers = pytest.importorskip("metient.util.plotting_util", reason="'make judges' installs metient")

DONOR = "RA-0002"  # its suggested selection samples the primary (RA-0001's does not: Metient refuses that)


def _labels(engine) -> tuple[User, str, list[str]]:
    """The PI, and the primary and metastatic site labels our Metient export gives the donor."""
    with Session(engine) as session:
        pi = session.exec(select(User).where(User.username == "pi")).one()
        files = export_service.export_files(session, actor=pi, target="metient", donor_codes=[DONOR])
    table = pd.read_csv(io.BytesIO(files[f"{DONOR}.tsv"]), sep="\t")
    sites = table.drop_duplicates("anatomical_site_label")
    primary = sites.loc[sites["site_category"] == "primary", "anatomical_site_label"].iloc[0]
    return pi, primary, sites.loc[sites["site_category"] != "primary", "anatomical_site_label"].tolist()


@pytest.mark.demo(4)
def test_a_migration_graph_written_by_metient_is_read_route_for_route(engine, tmp_path: Path):
    pi, primary, metastases = _labels(engine)
    assert len(metastases) >= 2, "the demo donor has metastases at two sites or more"
    routes = [(primary, metastases[0]), (primary, metastases[1]), (metastases[0], metastases[1]),
              (primary, metastases[0])]
    graph = tmp_path / "G-metient.graph"
    writers.write_migration_graph(list(routes), str(graph))
    with session_scope(engine) as session:
        result = results.import_result(session, actor=pi, donor_code=DONOR, tool="metient", kind="migration_graph",
                                       file_name=graph.name, content=graph.read_bytes())
    read = {(e["source"], e["target"]): e["count"] for e in result.parsed["edges"]}
    assert read == {(primary, metastases[0]): 2, (primary, metastases[1]): 1, (metastases[0], metastases[1]): 1}
    assert {s["key"] for s in result.parsed["sites"]} == {primary, *metastases[:2]}


@pytest.mark.demo(4)
def test_a_clone_tree_and_labelling_written_by_metient_give_the_clones_migration(engine, tmp_path: Path):
    pi, primary, metastases = _labels(engine)
    met = metastases[0]
    # Metient's vertex names: a clone, and a clone observed at a site ("2_<site>"), as its docstrings show
    tree, labeling = tmp_path / "T-metient.tree", tmp_path / "T-metient.labeling"
    writers.write_tree([("1", "2"), ("1", f"1_{primary}"), ("2", f"2_{met}")], str(tree))
    writers.write_tree_vertex_labeling({"1": primary, f"1_{primary}": primary, "2": met, f"2_{met}": met},
                                       str(labeling))
    with session_scope(engine) as session:
        result = results.import_result(session, actor=pi, donor_code=DONOR, tool="metient", kind="clone_tree",
                                       file_name=tree.name, content=tree.read_bytes(),
                                       companion_name=labeling.name, companion=labeling.read_bytes())
    assert [(e["source"], e["target"], e["clones"]) for e in result.parsed["edges"]] == [(primary, met, ["2"])]
