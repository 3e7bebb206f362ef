"""Importing phylogeny and migration results (issue #18, item 6): each tool's file read into migrations between the
donor's sampled sites and clones; malformed files refused with the file, the line and what was expected, and
nothing written; a withdrawn donor refused. The demo cohort (two donors, RA-0002's consent withdrawn), built once
per backend for the module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from biobank.db.engine import dispose_engines, make_engine, session_scope
from biobank.domain.errors import ConsentError, NotFoundError, PermissionDeniedError, ValidationError
from biobank.exports.formats import migration
from biobank.exports.formats.clonal import conipher_sample_id
from biobank.models import User
from biobank.models.plans import AnalysisResult
from biobank.queries import exports as export_reads
from biobank.queries import results as result_reads
from biobank.services import donors as donor_service
from biobank.services import results
from tests.support.dbtools import BACKENDS, Templates, assert_refused, fresh_database

DONOR = "RA-0001"
# RA-0001's sampled sites as our exports label them: breast (right, the primary), liver, left lung, brain.
GRAPH = b"Breast_right Liver\nBreast_right Lung_left\nBreast_right Liver\nLiver Brain\n"


@pytest.fixture(scope="module", params=BACKENDS)
def cohort(request: pytest.FixtureRequest, templates: Templates, tmp_path_factory) -> Iterator[Engine]:
    with fresh_database(request.param, templates, tmp_path_factory.mktemp("results"), demo_donors=2) as url:
        engine = make_engine(url)
        with session_scope(engine) as session:
            admin = session.exec(select(User).where(User.username == "admin")).one()
            donor_service.withdraw_consent(session, actor=admin, donor_code="RA-0002", requested_by="next_of_kin",
                                           withdrawn_at=pd.Timestamp.now(tz="UTC").to_pydatetime(), reason="family")
        yield engine
        engine.dispose()
        dispose_engines()


def user(engine: Engine, name: str) -> User:
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(select(User).where(User.username == name)).one()


def do_import(engine: Engine, content: bytes, *, tool: str = "machina", kind: str = "migration_graph",
              file_name: str = "G-Breast_right.graph", actor: str = "pi", **extra: Any) -> AnalysisResult:
    with session_scope(engine) as session:
        result = results.import_result(session, actor=user(engine, actor), donor_code=extra.pop("donor", DONOR),
                                       tool=tool, kind=kind, file_name=file_name, content=content, **extra)
        session.expunge(result)
        return result


def refused(engine: Engine, match: str, content: bytes, error: type[Exception] = ValidationError,
            **options: Any) -> None:
    def action(session: Session) -> None:
        results.import_result(
            session, actor=user(engine, options.pop("actor", "pi")), donor_code=options.pop("donor", DONOR),
            tool=options.pop("tool", "machina"), kind=options.pop("kind", "migration_graph"),
            file_name=options.pop("file_name", "G-bad.graph"), content=content, **options,
        )

    assert_refused(engine, error, match, action)


def routes(parsed: dict[str, Any]) -> dict[tuple[str, str], tuple[int, list[str]]]:
    return {(e["source"], e["target"]): (e["count"], e["clones"]) for e in parsed["edges"]}


# ------------------------------------------------------------------------------------------------ good files


def test_a_machina_migration_graph_is_read_into_routes_between_the_donors_sites(cohort):
    result = do_import(cohort, GRAPH, note="pmh_sankoff, primary breast")
    assert result.code.startswith("RES-") and result.sha256 == hashlib.sha256(GRAPH).hexdigest()
    assert result.content == GRAPH.decode()
    assert routes(result.parsed) == {
        ("Breast_right", "Liver"): (2, []), ("Breast_right", "Lung_left"): (1, []), ("Liver", "Brain"): (1, []),
    }
    sites = {s["key"]: s for s in result.parsed["sites"]}
    assert sites["Breast_right"]["site_code"] == "BREAST" and sites["Breast_right"]["laterality"] == "right"
    assert sites["Liver"]["regions"] == ["L04-A", "N01"]
    edge = next(e for e in result.parsed["edges"] if e["target"] == "Lung_left")
    assert (edge["source_site_code"], edge["target_site_code"]) == ("BREAST", "LUNG")


def test_a_metient_graph_with_clones_and_counts_and_region_or_specimen_labels(cohort):
    text = (b"source\ttarget\tclones\tcount\n# written from Metient's migration edges\n"
            b"L01-A\tRA0001-L04A-SF1\t3;5\t2\nLiver\tBrain\t5\n")  # a third column alone: the clones
    result = do_import(cohort, text, tool="metient", file_name="metient_graph.tsv")
    assert routes(result.parsed) == {("Breast_right", "Liver"): (2, ["3", "5"]), ("Liver", "Brain"): (1, ["5"])}
    assert result.parsed["clones"] == ["3", "5"]


def test_a_comma_separated_graph_and_a_route_travelled_both_ways_are_read(cohort):
    result = do_import(cohort, b"source,target,clones\nBreast_right,Liver,1\nLiver,Breast_right,2\n",
                       tool="metient", file_name="graph.csv")
    assert routes(result.parsed) == {("Breast_right", "Liver"): (1, ["1"]), ("Liver", "Breast_right"): (1, ["2"])}


def test_a_machina_clone_tree_with_its_labelling_gives_migrations_and_clones_per_site(cohort):
    tree = b"0 1\n1 2\n1 3\n0 4\n2 2_Liver\n"
    labeling = b"0 Breast_right\n1 Breast_right\n2 Liver\n3 Lung_left\n4 Breast_right\n2_Liver Liver\n"
    result = do_import(cohort, tree, kind="clone_tree", file_name="T-Breast_right.tree",
                       companion_name="T-Breast_right.labeling", companion=labeling)
    assert routes(result.parsed) == {("Breast_right", "Liver"): (1, ["2"]), ("Breast_right", "Lung_left"): (1, ["3"])}
    assert {(p["clone"], p["site"]) for p in result.parsed["presence"]} == {
        ("3", "Lung_left"), ("4", "Breast_right"), ("2_Liver", "Liver"),
    }
    assert result.parsed["companion"]["file_name"] == "T-Breast_right.labeling"


def test_a_conipher_tree_with_its_cluster_info_gives_the_clones_of_each_region(cohort):
    trees = b"### 2 trees\n# tree 1\n1\t2\n1\t3\n3\t4\n# tree 2\n1\t2\n2\t3\n3\t4\n"
    sample = conipher_sample_id("RA0001-L05A-SF1")
    info = ("clusterID\ttruncal\ttreeClust\tcpnRemClust\tnMuts\tSAMPLE\tmeanCCF\tclone_proportions_default\n"
            f"1\tTRUE\tTRUE\tFALSE\t120\t{sample}\t1\t0.2\n"
            f"4\tFALSE\tTRUE\tFALSE\t10\t{sample}\t0.6\t0.6\n"
            f"2\tFALSE\tTRUE\tFALSE\t12\t{sample}\t0\t0\n"
            "2\tFALSE\tTRUE\tFALSE\t12\tL04-A\t0.9\t0.5\n"
            "9\tFALSE\tFALSE\tTRUE\t3\tL04-A\t0.1\t0\n").encode()
    result = do_import(cohort, trees, tool="conipher", kind="clone_tree", file_name="allTrees.txt",
                       companion_name="clusterInfo.txt", companion=info)
    parsed = result.parsed
    assert parsed["tree"] == [{"parent": "1", "child": "2"}, {"parent": "1", "child": "3"},
                              {"parent": "3", "child": "4"}]
    assert parsed["alternative_trees"] == 1 and parsed["edges"] == []
    assert {(p["clone"], p["site"]) for p in parsed["presence"]} == {("1", "Lung_left"), ("4", "Lung_left"),
                                                                      ("2", "Liver")}


def test_every_label_our_machina_export_writes_maps_back_to_its_site(cohort):
    with Session(cohort) as session:
        frames = export_reads.export_frames(session, donor_codes=[DONOR])
        item = migration.build_machina(frames.samples)[DONOR]
        sites = results.donor_sites(session, donor_service.get_donor(session, DONOR))
    for n, row in enumerate(item.samples.itertuples(index=False), start=1):
        site_key = sites.resolve(row.anatomical_site_label, "x", n)
        by_sample = sites.resolve(row.sample_label, "x", n)
        assert site_key == by_sample == row.anatomical_site_label


def test_results_are_listed_newest_first_and_shown_with_what_was_parsed(cohort):
    first = do_import(cohort, b"Liver Brain\n", note="first")
    second = do_import(cohort, b"Liver Lung_left\n", note="second")
    with Session(cohort) as session:
        listed = result_reads.list_results(session, DONOR)
        shown = result_reads.get_result(session, second.code.lower())
    codes = [r["code"] for r in listed]
    assert codes.index(second.code) < codes.index(first.code)
    assert listed[codes.index(second.code)]["imported_by"] == "pi"
    assert shown["parsed"]["edges"][0]["target"] == "Lung_left" and shown["migrations"] == 1


# ------------------------------------------------------------------------------------------ malformed files


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"Breast_right Liver\nBreast_right\n", r"G-bad.graph, line 2: has 1 column\(s\); expected 'source target'"),
        (b"Breast_right Liver\nLiver Spleen\n", r"line 2: target site 'Spleen' is not a sampled site of this donor"),
        (b"Liver Liver\n", r"line 1: migrates from 'Liver' to the same site"),
        (b"Liver Brain 3 x\n", r"line 1: count 'x' is not a whole number"),
        (b"Liver Brain 3 0\n", r"line 1: count must be at least 1"),
        (b"Liver Brain 3 1 2 4\n", r"line 1: has 6 column"),
        (b"", r"G-bad.graph: the file is empty"),
        (b"  \n\n", r"the file is empty"),
        (b"# only a comment\n", r"has no migrations"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", r"is a binary file"),
        (b"Liver \xff\xfe Brain\n", r"is not UTF-8 text"),
        (b"LUNG Liver\n", r"'LUNG' names more than one sampled site"),
    ],
)
def test_a_malformed_migration_graph_is_refused_naming_the_line_and_nothing_is_written(cohort, content, match):
    refused(cohort, match, content)


def test_a_file_over_the_size_limit_is_refused(cohort, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(results, "MAX_BYTES", 40)
    refused(cohort, r"is 60 bytes; at most 40", b"Liver Brain\n" * 5)


@pytest.mark.parametrize(
    ("tree", "match"),
    [
        (b"0 1\n1 2\n2 0\n", r"T-bad.tree: has a cycle and no root"),
        (b"0 1\n2 3\n", r"has 2 root clones"),
        (b"0 1\n0 2\n1 2\n", r"line 3: clone '2' has a second parent"),
        (b"0 1 2\n", r"line 1: has 3 column\(s\); expected 'parent child'"),
        (b"0 0\n", r"line 1: clone '0' is its own parent"),
    ],
)
def test_a_malformed_clone_tree_is_refused(cohort, tree, match):
    refused(cohort, match, tree, kind="clone_tree", file_name="T-bad.tree", companion_name="T-bad.labeling",
            companion=b"0 Liver\n")


def test_a_labelling_that_misses_a_vertex_or_names_an_unknown_site_is_refused(cohort):
    tree = b"0 1\n0 2\n"
    options: dict[str, Any] = {"kind": "clone_tree", "file_name": "T.tree", "companion_name": "T.labeling"}
    refused(cohort, r"T.labeling: labels no site for vertex\(es\) 2", tree, companion=b"0 Liver\n1 Brain\n",
            **options)
    refused(cohort, r"T.labeling, line 2: site 'Mars' is not a sampled site", tree,
            companion=b"0 Liver\n1 Mars\n2 Brain\n", **options)
    refused(cohort, r"T.labeling, line 3: vertex '7' is not in the clone tree", tree,
            companion=b"0 Liver\n1 Brain\n7 Brain\n", **options)
    refused(cohort, r"Labeling is needed: a machina clone tree is read with its vertex labelling", tree,
            kind="clone_tree")


def test_conipher_cluster_info_without_its_columns_or_with_an_unknown_sample_is_refused(cohort):
    options: dict[str, Any] = {"tool": "conipher", "kind": "clone_tree", "file_name": "allTrees.txt",
                               "companion_name": "clusterInfo.txt"}
    refused(cohort, r"clusterInfo.txt, line 1: expected a tab-separated header with clusterID, SAMPLE", b"1\t2\n",
            companion=b"cluster\tregion_name\n1\tL04-A\n", **options)
    refused(cohort, r"clusterInfo.txt, line 2: sample 'CRUK0001_R1' is not a sampled site", b"1\t2\n",
            companion=b"clusterID\tSAMPLE\tmeanCCF\n2\tCRUK0001_R1\t0.4\n", **options)
    refused(cohort, r"CONIPHER builds clone trees", b"1\t2\n", tool="conipher", kind="migration_graph")


def test_a_withdrawn_donor_an_unknown_tool_and_a_technician_are_refused(cohort):
    refused(cohort, r"RA-0002: consent was withdrawn", GRAPH, ConsentError, donor="RA-0002")
    refused(cohort, r"must be one of: conipher, metient, machina", GRAPH, tool="pyclone")
    refused(cohort, r"needs one of: pi", GRAPH, PermissionDeniedError, actor="tech")
    refused(cohort, r"plan 'NOPE' not found", GRAPH, NotFoundError, plan_code="NOPE")
