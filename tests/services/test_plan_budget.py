"""Per-sample assay, depth and library, and the sequencing budget (issue #18 items 3 and 7).

The arithmetic and the rules on pure rows first (no database); then the round trip through ``set_specimens`` and the
budget read on the demo cohort, both databases (one copy per backend for the module).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.db.engine import dispose_engines, make_engine, session_scope
from biobank.domain.errors import ConflictError, ValidationError
from biobank.models import User
from biobank.queries import exports as query
from biobank.queries import plans as plan_reads
from biobank.services import budget, planning
from biobank.services.plan_rules import PlanContext, run_rules
from tests.services.test_plans_rules import base_specimens, changed, context, spec, with_assays
from tests.support.dbtools import BACKENDS, Templates, fresh_database

NORMAL_AND_TWO_TUMOURS = [
    {"specimen_code": "N", "role": "germline_normal", "donor_code": "D", "region_code": "GB1"},
    {"specimen_code": "T1", "role": "tumour", "donor_code": "D", "region_code": "L01-A"},
    {"specimen_code": "T2", "role": "tumour", "donor_code": "D", "region_code": "L01-B"},
]


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings from the environment for the test, the cached settings dropped before and after."""
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def findings(ctx: PlanContext, rule: str) -> list[str]:
    return [f"{f.severity}: {f.message}" for f in run_rules(ctx, overrides={}).findings if f.rule == rule]


# ------------------------------------------------------------------------------------------- the arithmetic


def test_wgs_normal_30x_and_two_tumours_90x_on_a_novaseq_x_10b():
    b = budget.compute(NORMAL_AND_TWO_TUMOURS, plan_assay="wgs", flow_cell="NovaSeq X 10B",
                       settings=budget.BudgetSettings.from_settings(get_settings()))
    assert [(s.specimen_code, s.depth) for s in b.samples] == [("N", 30.0), ("T1", 90.0), ("T2", 90.0)]
    assert b.gb == pytest.approx(3.3 * 210)  # 693 Gb
    # a 10B lane holds 3,000 / 8 = 375 Gb: 693 Gb take 2 lanes of one flow cell
    assert (b.lanes, b.flow_cells, b.lanes_per_flow_cell) == (2, 1, 8)
    assert b.sequencing_cost == pytest.approx(2 * 16000 / 8)
    assert b.library_cost == 3 * 150 and b.total_cost == pytest.approx(4450)
    assert b.line() == ("3 sample(s), 693 Gb: 2 lane(s) of NovaSeq X 10B (1 flow cell(s), 8 lanes each); sequencing "
                        "4,000 + libraries 450 = 4,450 USD")


def test_lanes_are_counted_whole_and_flow_cells_follow_the_lanes():
    rows = [{"specimen_code": f"T{i}", "role": "tumour"} for i in range(10)]  # 10 x 90x x 3.3 = 2,970 Gb
    s4 = budget.compute(rows, plan_assay="wgs", flow_cell="NovaSeq 6000 S4")  # 600 Gb per lane, 4 lanes
    assert (s4.lanes, s4.flow_cells) == (5, 2)
    p3 = budget.compute(rows, plan_assay="wgs", flow_cell="nextseq 2000 p3")  # any letter case
    assert (p3.flow_cell, p3.lanes, p3.flow_cells) == ("NextSeq 2000 P3", 9, 9)
    assert p3.sequencing_cost == 9 * 6000
    empty = budget.compute([], plan_assay="wgs")
    assert (empty.gb, empty.lanes, empty.flow_cells, empty.total_cost) == (0, 0, 0, 0)


def test_each_assay_has_its_gb_per_depth_and_rna_seq_counts_read_pairs():
    rows = [
        {"specimen_code": "E", "role": "tumour", "assay": "wes"},  # 200x x 0.12
        {"specimen_code": "P", "role": "tumour", "assay": "panel"},  # 1,000x x 0.005
        {"specimen_code": "R", "role": "tumour", "assay": "rna_seq", "target_depth": 80},  # 80 M pairs x 0.3
    ]
    b = budget.compute(rows, plan_assay="wgs")
    assert {s.specimen_code: round(s.gb, 3) for s in b.samples} == {"E": 24.0, "P": 5.0, "R": 24.0}
    assert {s.specimen_code: s.depth_unit for s in b.samples} == {"E": "x", "P": "x", "R": "M pairs"}
    assert b.library_cost == 300 + 200 + 250


def test_the_settings_override_every_default(settings_env: pytest.MonkeyPatch):
    settings_env.setenv("BIOBANK_PLAN_GB_PER_DEPTH", '{"wgs": 4}')
    settings_env.setenv("BIOBANK_PLAN_FLOW_CELLS", '{"Core lane": {"gb": 100, "lanes": 1, "cost": 1000}, '
                                                   '"NovaSeq X 10B": {"cost": 8000}}')
    settings_env.setenv("BIOBANK_PLAN_FLOW_CELL", "Core lane")
    settings_env.setenv("BIOBANK_PLAN_LIBRARY_COST", '{"wgs": 99}')
    settings_env.setenv("BIOBANK_BUDGET_CURRENCY", "EUR")
    settings_env.setenv("BIOBANK_PLAN_DEFAULT_DEPTH", '{"wgs": {"tumour": 60, "germline_normal": 20}}')
    b = budget.compute(NORMAL_AND_TWO_TUMOURS, plan_assay="wgs")
    assert [s.depth for s in b.samples] == [20.0, 60.0, 60.0]
    assert b.gb == pytest.approx(4 * 140)
    assert (b.flow_cell, b.lanes, b.flow_cells, b.sequencing_cost) == ("Core lane", 6, 6, 6000)
    assert (b.library_cost, b.currency) == (3 * 99, "EUR")
    ten_b = budget.compute(NORMAL_AND_TWO_TUMOURS, plan_assay="wgs", flow_cell="NovaSeq X 10B")
    assert (ten_b.lanes, ten_b.sequencing_cost) == (2, 2 * 8000 / 8), "a partial override keeps gb and lanes"


def test_an_unknown_flow_cell_kind_is_a_clear_error_naming_the_known_ones():
    with pytest.raises(ValidationError, match="unknown flow cell kind; known kinds are NextSeq 2000 P3") as refused:
        budget.compute(NORMAL_AND_TWO_TUMOURS, plan_assay="wgs", flow_cell="HiSeq 2500")
    assert refused.value.field == "flow_cell" and refused.value.value == "HiSeq 2500"


@pytest.mark.parametrize(
    ("variable", "value", "field", "match"),
    [
        ("BIOBANK_PLAN_FLOW_CELLS", '{"Mine": {"gb": 100}}', "plan_flow_cells.Mine", "give cost, lanes"),
        ("BIOBANK_PLAN_FLOW_CELLS", '{"Mine": {"gb": 100, "lanes": 1.5, "cost": 1}}', "plan_flow_cells.Mine.lanes",
         "whole number"),
        ("BIOBANK_PLAN_FLOW_CELLS", '{"Mine": {"gb": 0, "lanes": 1, "cost": 1}}', "plan_flow_cells.Mine.gb",
         "must be positive"),
        ("BIOBANK_PLAN_GB_PER_DEPTH", '{"wgx": 3}', "plan_gb_per_depth", r"\(wgx\): unknown assay"),
        ("BIOBANK_PLAN_DEFAULT_DEPTH", '{"wgs": {"metastasis": 90}}', "plan_default_depth.wgs",
         r"\(metastasis\): unknown role"),
        ("BIOBANK_PLAN_FLOW_CELL", "MiSeq", "plan_flow_cell", r"\(MiSeq\): unknown flow cell kind"),
    ],
)
def test_a_wrong_budget_setting_is_refused_naming_it(settings_env: pytest.MonkeyPatch, variable: str, value: str,
                                                     field: str, match: str):
    settings_env.setenv(variable, value)
    with pytest.raises(ValidationError, match=match) as refused:
        budget.compute(NORMAL_AND_TWO_TUMOURS, plan_assay="wgs")
    assert refused.value.field == field


# ------------------------------------------------------------------------------------ per-sample defaults


@pytest.mark.parametrize(
    ("role", "own_assay", "own_depth", "plan_depth", "expected"),
    [
        ("tumour", None, None, None, ("wgs", 90.0)),
        ("germline_normal", None, None, None, ("wgs", 30.0)),
        ("tumour", None, None, 60.0, ("wgs", 60.0)),  # the plan's depth for the plan's assay
        ("tumour", None, 120.0, 60.0, ("wgs", 120.0)),  # the sample's own depth first
        ("tumour", "rna_seq", None, 60.0, ("rna_seq", 50.0)),  # another assay: its role default, not the plan's x
        ("germline_normal", "wes", None, None, ("wes", 100.0)),
        ("tumour", float("nan"), float("nan"), None, ("wgs", 90.0)),  # missing values of a frame
    ],
)
def test_a_sample_takes_its_own_assay_and_depth_else_the_defaults(role, own_assay, own_depth, plan_depth, expected):
    settings = budget.BudgetSettings.from_settings(get_settings())
    assert budget.effective(role, own_assay, own_depth, plan_assay="wgs", plan_depth=plan_depth,
                            settings=settings) == expected


@pytest.mark.parametrize(
    ("assay", "depth", "library", "field", "message"),
    [("wgz", None, None, "assay", "X: Assay (wgz): expected one of panel, rna_seq, wes, wgs"),
     (None, 0, None, "target_depth", "X: Target depth (0 x) must be above 0 and at most 10000"),
     (None, 10_001, None, "target_depth", "X: Target depth (10,001 x) must be above 0 and at most 10000"),
     (None, "deep", None, "target_depth", "X: Target depth (deep) must be a number"),
     (None, None, "k" * 81, "library", "is 81 characters long; at most 80")],
)
def test_a_sample_value_out_of_range_is_refused_naming_the_specimen(assay, depth, library, field, message):
    with pytest.raises(ValidationError) as refused:
        budget.check_sample("X", assay, depth, library)
    assert refused.value.field == f"X.{field}" and message in str(refused.value)


def test_each_rna_seq_sample_is_paired_with_the_dna_sample_of_its_region():
    rows = [
        {"specimen_code": "D-A", "donor_code": "D", "region_code": "L01-A", "assay": "wgs"},
        {"specimen_code": "R-A", "donor_code": "D", "region_code": "L01-A", "assay": "rna_seq"},
        {"specimen_code": "R-B", "donor_code": "D", "region_code": "L01-B", "assay": "rna_seq"},
        {"specimen_code": "R-X", "donor_code": "E", "region_code": "L01-A", "assay": "rna_seq"},  # another donor
    ]
    assert budget.pairs(rows) == {"R-A": "D-A", "R-B": None, "R-X": None}


# -------------------------------------------------------------------------- the rules use each sample's own


def rna(sid: int, code: str, region: str, **overrides: Any) -> dict[str, Any]:
    return spec(sid, code, material_type="rna", region_code=region, din=None, rin=8.0,
                quantity_remaining=2000.0) | overrides


def test_matched_rna_seq_of_a_sampled_region_passes_every_rule():
    ctx = with_assays({6: "rna_seq"}, extra=[rna(6, "RA0001-L01A-SF1-RNA1", "L01-A")])
    assert run_rules(ctx, overrides={}).findings == []
    assert budget.pairs(ctx.selected())["RA0001-L01A-SF1-RNA1"] == "RA0001-L01A-SF1-DNA1"


def test_rna_seq_of_a_region_without_dna_is_warned_about():
    (message,) = findings(with_assays({6: "rna_seq"}, extra=[rna(6, "RA0001-L01C-SF1-RNA1", "L01-C")]),
                          "rna_seq_paired")
    assert message.startswith("warning: RNA-seq of region L01-C has no DNA sample")


def test_rna_seq_of_a_dna_extract_is_an_error_and_of_tissue_it_passes():
    (message,) = findings(with_assays({2: "rna_seq"}), "rna_seq_material")
    assert message == "error: RNA-seq sample is dna material: RNA-seq needs an RNA extract or tissue to extract it from"
    tissue = spec(6, "RA0001-L01A-SF2", lineage="primary", material_type="tissue", storage_format="snap_frozen")
    assert findings(with_assays({6: "rna_seq"}, extra=[tissue]), "rna_seq_material") == []


def test_a_dna_assay_on_rna_is_an_error_and_on_blood_it_passes():
    (message,) = findings(context(changed(2, material_type="rna")), "dna_assay_material")
    assert message.startswith("error: WGS sample is rna material")
    assert findings(context(changed(1, material_type="whole_blood")), "dna_assay_material") == []


def test_two_dna_assays_for_one_donor_are_warned_about_and_matched_rna_is_not_a_second():
    (message,) = findings(with_assays({3: "panel"}), "one_assay_per_donor")
    assert message == ("warning: DNA samples use panel, WGS: somatic calls are limited to the targets all share "
                       "(one DNA assay per donor, or a second plan)")
    assert findings(with_assays({6: "rna_seq"}, extra=[rna(6, "RA0001-L01A-SF1-RNA1", "L01-A")]),
                    "one_assay_per_donor") == []


def test_input_requirements_use_each_samples_own_depth():
    # 1,200 ng: enough for the 30x normal (1,000 ng) but not a tumour at its default 90x (1,500 ng)
    plan = changed(1, quantity_remaining=1200.0)
    assert findings(context(plan), "input_requirements") == []
    tumour_short = changed(2, quantity_remaining=1200.0)
    assert findings(context(tumour_short), "input_requirements") == ["error: 1,200 ng left, WGS at 90x needs 1,500 ng"]
    ctx = context(tumour_short)
    ctx.selection = ctx.selection.assign(target_depth=[None, 60.0, None, None, None])
    assert findings(ctx, "input_requirements") == []
    ctx.selection = ctx.selection.assign(assay=[None, "wes", None, None, None], target_depth=None)
    assert findings(ctx, "input_requirements") == []  # WES at 200x needs 200 ng


def test_wgs_rules_follow_each_samples_assay():
    ffpe = changed(3, parent_storage_format="ffpe", decalcification_agent="formic_acid")
    ctx = context(ffpe)
    assert findings(ctx, "wgs_ffpe") and findings(ctx, "acid_decalcified")
    ctx.selection = ctx.selection.assign(assay=[None, None, "rna_seq", None, None])
    assert findings(ctx, "wgs_ffpe") == [] and findings(ctx, "acid_decalcified") == []


def test_an_rna_seq_plan_with_a_dna_sample_needs_the_germline_normal():
    specimens = [rna(2, "R2", "L01-A"), rna(3, "R3", "L01-B"), *base_specimens()[3:]]
    roles = {2: "tumour", 3: "tumour", 4: "tumour"}
    ctx = context(specimens, roles=roles, assay="rna_seq", purpose="phylogeny")
    assert findings(ctx, "one_germline_normal") == []
    ctx.selection = ctx.selection.assign(assay=[None, None, "wgs"])
    assert findings(ctx, "one_germline_normal")


# ----------------------------------------------------------------------------- round trip, both databases

L07B_RNA = "RA0001-L07B-SF1-RNA1"


@pytest.fixture(scope="module", params=BACKENDS)
def cohort(request: pytest.FixtureRequest, templates: Templates, tmp_path_factory) -> Iterator[Engine]:
    """Two demo donors, one copy per backend; each test makes plans with codes of its own."""
    with fresh_database(request.param, templates, tmp_path_factory.mktemp("budget"), demo_donors=2) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()
        dispose_engines()


def _pi(engine: Engine) -> User:
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(select(User).where(User.username == "pi")).one()


def _stored(engine: Engine, plan: str) -> dict[str, tuple[Any, ...]]:
    with Session(engine) as session:
        rows = session.execute(text(
            "SELECT s.code, ps.assay, ps.target_depth, ps.library FROM plan_specimen ps "
            "JOIN specimen s ON s.id = ps.specimen_id JOIN analysis_plan p ON p.id = ps.plan_id "
            "WHERE p.code = :p AND ps.included"), {"p": plan}).all()
    return {code: (assay, depth, library) for code, assay, depth, library in rows}


def test_set_specimens_stores_each_samples_assay_depth_and_library_and_the_budget_reads_them(cohort):
    engine, pi = cohort, _pi(cohort)
    with session_scope(engine) as session:
        planning.create_plan(session, actor=pi, code="BUD-1", name="Budget RA-0001", purpose="phylogeny",
                             assay="wgs", donor_codes=["RA-0001"], flow_cell=" novaseq  x 25b ")
    with Session(engine) as session:
        assert planning.get_plan(session, "BUD-1").flow_cell == "NovaSeq X 25B"
        detail = plan_reads.plan_detail(session, "BUD-1")["specimens_detail"]
    chosen = [(r["specimen_code"], r["role"], r["reason"]) for r in detail]
    tumours = [r for r in detail if r["role"] == "tumour"]
    first = tumours[0]["specimen_code"]
    l07b = next(r["specimen_code"] for r in detail if r["region_code"] == "L07-B")
    with session_scope(engine) as session:
        planning.set_specimens(session, actor=pi, plan_code="BUD-1", selection=[
            *[c for c in chosen if c[0] != first],
            planning.SampleChoice(first, "tumour", None, "wgs", 120.0, "  TruSeq   DNA PCR-free "),
            {"code": L07B_RNA, "role": "tumour", "assay": "rna_seq", "target_depth": 80, "library": "TruSeq RNA"},
        ])
    stored = _stored(engine, "BUD-1")
    assert stored[first] == ("wgs", 120.0, "TruSeq DNA PCR-free")
    assert stored[L07B_RNA] == ("rna_seq", 80.0, "TruSeq RNA")
    assert {v for k, v in stored.items() if k not in (first, L07B_RNA)} == {(None, None, None)}

    with Session(engine) as session:
        plan = planning.get_plan(session, "BUD-1")
        _, selection = query.plan_selection(session, plan)
        assert {"assay", "target_depth", "library"} <= set(selection.columns)
        ctx = planning.plan_context(session, plan)
        cost = planning.plan_budget(session, "BUD-1")
        other = planning.plan_budget(session, "BUD-1", flow_cell="NextSeq 2000 P3")
        report = planning.check_plan(session, "BUD-1")
    by_code = {s.specimen_code: s for s in cost.samples}
    assert (by_code[first].depth, by_code[first].library) == (120.0, "TruSeq DNA PCR-free")
    assert by_code[L07B_RNA].paired_dna == l07b and by_code[L07B_RNA].gb == pytest.approx(24.0)
    normal = next(s for s in cost.samples if s.role == "germline_normal")
    assert normal.depth == 30.0 and cost.flow_cell == "NovaSeq X 25B" and other.flow_cell == "NextSeq 2000 P3"
    assert cost.gb == pytest.approx(sum(3.3 * s.depth for s in cost.samples if s.assay == "wgs") + 24.0)
    assert cost == budget.compute(ctx.selected(), plan_assay="wgs", flow_cell="NovaSeq X 25B")
    assert not [f for f in report.findings if f.rule in ("rna_seq_material", "rna_seq_paired", "dna_assay_material")]

    # the tuple form keeps what a sample has; an explicit None gives it back to the defaults
    with session_scope(engine) as session:
        current = [(c, r, None) for c, r, _ in chosen if c != first]
        planning.set_specimens(session, actor=pi, plan_code="BUD-1",
                               selection=[*current, (first, "tumour", None), (L07B_RNA, "tumour", None)])
    assert _stored(engine, "BUD-1")[first] == ("wgs", 120.0, "TruSeq DNA PCR-free")
    with session_scope(engine) as session:
        planning.set_specimens(session, actor=pi, plan_code="BUD-1",
                               selection=[*current, (first, "tumour", None, None, None, None)])
    assert _stored(engine, "BUD-1")[first] == (None, None, None) and L07B_RNA not in _stored(engine, "BUD-1")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"assay": "wgz"}, r"Assay \(wgz\): expected one of"),
        ({"target_depth": 0}, r"Target depth \(0 x\) must be above 0"),
        ({"target_depth": 20000}, r"Target depth \(20,000 x\) must be above 0 and at most 10000"),
        ({"library": "x" * 81}, "is 81 characters long; at most 80"),
        ({"depth": 30}, "unknown field"),
    ],
)
def test_a_bad_sample_value_is_refused_naming_the_specimen_and_nothing_is_written(cohort, row, match):
    engine, pi = cohort, _pi(cohort)
    code = "BUD-BAD"
    with session_scope(engine) as session:
        if session.execute(text("SELECT 1 FROM analysis_plan WHERE code = :c"), {"c": code}).first() is None:
            planning.create_plan(session, actor=pi, code=code, name="Bad values", purpose="phylogeny", assay="wgs",
                                 donor_codes=["RA-0001"])
    before = _stored(engine, code)
    first = sorted(before)[0]
    with pytest.raises(ValidationError, match=match) as refused, session_scope(engine) as session:
        planning.set_specimens(session, actor=pi, plan_code=code,
                               selection=[*[(c, "tumour", None) for c in sorted(before)[1:]],
                                          {"code": first, "role": "tumour"} | row])
    assert row.get("depth") or str(refused.value.field).startswith(first)
    assert _stored(engine, code) == before


def test_set_flow_cell_names_a_drafts_kind_refuses_an_unknown_one_and_an_approved_plan(cohort):
    engine, pi = cohort, _pi(cohort)
    with session_scope(engine) as session:
        planning.create_plan(session, actor=pi, code="BUD-FC", name="Flow cell", purpose="phylogeny", assay="wgs",
                             donor_codes=["RA-0001"])
    with session_scope(engine) as session:
        planning.set_flow_cell(session, actor=pi, plan_code="BUD-FC", flow_cell="NovaSeq 6000 S4")
    with Session(engine) as session:
        assert planning.plan_budget(session, "BUD-FC").flow_cell == "NovaSeq 6000 S4"
    with pytest.raises(ValidationError, match="unknown flow cell kind"), session_scope(engine) as session:
        planning.set_flow_cell(session, actor=pi, plan_code="BUD-FC", flow_cell="HiSeq X")
    with pytest.raises(ValidationError, match="unknown flow cell kind"), session_scope(engine) as session:
        planning.create_plan(session, actor=pi, code="BUD-FC2", name="Flow cell 2", purpose="phylogeny",
                             assay="wgs", donor_codes=["RA-0001"], flow_cell="HiSeq X")
    with session_scope(engine) as session:
        planning.set_flow_cell(session, actor=pi, plan_code="BUD-FC", flow_cell=None)
    with Session(engine) as session:
        assert planning.get_plan(session, "BUD-FC").flow_cell is None
        assert planning.plan_budget(session, "BUD-FC").flow_cell == get_settings().plan_flow_cell
        assert session.execute(text("SELECT count(*) FROM analysis_plan WHERE code = 'BUD-FC2'")).scalar_one() == 0
    with session_scope(engine) as session:
        session.execute(text("UPDATE analysis_plan SET status = 'cancelled' WHERE code = 'BUD-FC'"))
    with pytest.raises(ConflictError, match="only a draft can change"), session_scope(engine) as session:
        planning.set_flow_cell(session, actor=pi, plan_code="BUD-FC", flow_cell="NovaSeq X 25B")
