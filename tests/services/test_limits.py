"""Plausibility limits, declared once in the input models: the services hold them, the import columns take them,
a form reads them, and text limits are those of the database columns the text goes into."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import String

from biobank.db.engine import session_scope
from biobank.domain.errors import ValidationError
from biobank.imports.registry import KINDS
from biobank.models import (
    AnalysisPlan,
    Autopsy,
    Consent,
    Container,
    DerivedModel,
    DistributionOrder,
    Donor,
    Lesion,
    ModelPassage,
    ModelQC,
    SamplingSite,
    Specimen,
    TreatmentLine,
)
from biobank.models.base import table_of
from biobank.services import collection, distribution, donors, planning, specimens
from biobank.services.inputs import (
    MAX_DEPTH,
    MAX_PIECES,
    MAX_QUANTITY,
    AutopsyOpen,
    ConsentCreate,
    ContainerCreate,
    DonorCreate,
    FormatRequest,
    LesionCreate,
    Limits,
    ModelCreate,
    ModelQCCreate,
    OrderCreate,
    PassageCreate,
    PlanCreate,
    RegionCollect,
    SpecimenCorrection,
    SpecimenQC,
    TreatmentLineCreate,
    form_limits,
    limits,
)
from tests.conftest import DEATH
from tests.support.dbtools import assert_refused
from tests.support.factories import H, collect, make_case

#: Input model -> the table its fields are stored in.
STORED_IN = {
    DonorCreate: Donor, AutopsyOpen: Autopsy, LesionCreate: Lesion, RegionCollect: SamplingSite, ModelCreate: DerivedModel,
    PassageCreate: ModelPassage, ModelQCCreate: ModelQC, SpecimenCorrection: Specimen, SpecimenQC: Specimen,
    OrderCreate: DistributionOrder, PlanCreate: AnalysisPlan, ContainerCreate: Container, ConsentCreate: Consent,
    TreatmentLineCreate: TreatmentLine,
}


# ------------------------------------------------------------------------------------- declared once, read by all


def test_a_form_reads_the_limits_of_a_field():
    assert limits(FormatRequest, "count") == Limits(minimum=1, maximum=MAX_PIECES)
    assert limits(FormatRequest, "quantity") == Limits(minimum=0, exclusive_minimum=True)
    assert limits(PlanCreate, "target_depth").maximum == MAX_DEPTH == 10_000
    assert limits(RegionCollect, "gross_description").max_length == 500
    assert limits(ModelQCCreate, "identity_match_pct") == Limits(minimum=0, maximum=100)
    assert limits(DonorCreate, "age_at_death") == Limits(minimum=0, maximum=130)
    assert set(form_limits(FormatRequest)) >= {"quantity", "count", "decalcification_hours"}
    assert MAX_QUANTITY["mg"] == 100_000


@pytest.mark.parametrize("model", list(STORED_IN), ids=lambda m: m.__name__)
def test_text_limits_are_the_lengths_of_the_database_columns(model):
    """Text longer than its column is refused by the form, not by PostgreSQL (nor stored whole by SQLite)."""
    table = table_of(STORED_IN[model])
    for name in model.model_fields:
        column = table.c.get(name)
        if column is None or not isinstance(column.type, String) or column.type.length is None:
            continue
        declared = limits(model, name).max_length
        if declared is None:  # a choice from a vocabulary: the service checks it against its list
            continue
        assert declared == column.type.length, f"{model.__name__}.{name}: {declared} vs column {column.type.length}"


def test_the_import_columns_take_their_limits_from_the_input_models():
    """The template's lengths and ranges are the services' (they disagreed: 500 vs 5000 characters)."""
    checked = 0
    for kind in KINDS.values():
        if kind.input_model is None:
            continue
        for column in kind.columns:
            if column.name not in kind.input_model.model_fields or column.limits == Limits():
                continue
            declared = limits(kind.input_model, column.name)
            if column.type == "text":
                assert column.limits.max_length == declared.max_length, (kind.name, column.name)
            else:
                assert (column.limits.minimum, column.limits.maximum) == (declared.minimum, declared.maximum), (
                    kind.name, column.name)
            checked += 1
    assert checked > 20
    sites = KINDS["sampling_sites"]
    assert sites.column("gross_description").limits.max_length == limits(RegionCollect, "gross_description").max_length
    assert sites.column("distance_to_tumour_mm").limits.maximum == limits(RegionCollect, "distance_to_tumour_mm").maximum
    assert KINDS["specimens"].column("decalcification_hours").limits == limits(SpecimenCorrection, "decalcification_hours")


# ------------------------------------------------------------------------------------------------ the services


def region(tech, **changes):
    fields = {"case_code": "RAP-1", "kind": "tumour_region", "site_code": "LIVER", "lesion_code": "L02",
              "region_label": "A", "excised_at": DEATH + 3 * H, "formats": [FormatRequest("snap_frozen", 50, "mg")]}
    fields.update(changes)
    return lambda s: collection.collect_region(s, actor=tech, data=RegionCollect(**fields))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"formats": [FormatRequest("snap_frozen", 50, "mg", count=999)]}, r"^Format 1: Pieces \(999\) must be at most 50$"),
        ({"formats": [FormatRequest("snap_frozen", 1e9, "mg")]},
         r"^Format 1: Quantity \(1,000,000,000\) is more than 100,000 mg"),
        ({"formats": [FormatRequest("ffpe", 1, "blocks", decalcification_agent="edta", decalcification_hours=5000)]},
         r"^Format 1: Decalcification hours \(5,000\) must be at most 1,500$"),
        ({"gross_description": "g" * 600}, r"^Gross description .* is too long: at most 500 characters$"),
        ({"region_label": "ABCDEFGHIJ"}, r"^Region label \(ABCDEFGHIJ\) is too long: at most 8 characters$"),
    ],
)
def test_implausible_collection_values_are_refused(engine, tech, changes, match):
    with session_scope(engine) as session:
        make_case(session, tech)
    assert_refused(engine, ValidationError, match, region(tech, **changes))


def test_distance_and_size_and_age_have_plausible_ranges(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
    assert_refused(engine, ValidationError, r"^Distance to tumour \(5,000 mm\) must be at most 2,000$",
                   region(tech, kind="normal_tissue", lesion_code=None, region_label=None, distance_to_tumour_mm=5000))
    assert_refused(engine, ValidationError, r"^Size \(600 mm\) must be at most 500$",
                   lambda s: collection.add_lesion(s, actor=tech, data=LesionCreate(
                       donor_code="RA-0001", code="L03", site_code="LUNG", kind="metastasis", size_mm=600)))
    assert_refused(engine, ValidationError, r"^Age at death \(200 years\) must be at most 130$",
                   lambda s: donors.register_donor(s, actor=tech, data=DonorCreate(code="RA-0002", age_at_death=200)))


@pytest.fixture
def frozen(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        return collect(session, tech)[0]


def test_a_correction_to_a_trillion_mg_is_refused(engine, tech, frozen):
    """Reported: a correction to 1,000,000,000,000 mg was accepted."""
    assert_refused(engine, ValidationError, r"^Quantity \(1,000,000,000,000\) is more than 100,000 mg",
                   lambda s: specimens.correct_specimen(s, actor=tech, code=frozen, reason="typo",
                                                        quantity=1e12, quantity_remaining=1e12))


@pytest.mark.parametrize("changes", [{"quantity": -5.0, "quantity_remaining": -5.0}, {"quantity": -5.0}])
def test_minus_five_mg_is_reported_against_the_quantity_typed(engine, tech, frozen, changes):
    """Reported: -5 mg was reported as a problem with quantity_remaining."""
    with pytest.raises(ValidationError, match=r"^Quantity \(-5\) cannot be negative$") as refused:
        with session_scope(engine) as session:
            specimens.correct_specimen(session, actor=tech, code=frozen, reason="typo", **changes)
    assert refused.value.field == "quantity"


def test_a_quantity_below_what_remains_is_reported_against_the_quantity(engine, tech, frozen):
    with pytest.raises(ValidationError, match=r"^Quantity \(10\) cannot be less than what remains \(50 mg\)$") as refused:
        with session_scope(engine) as session:
            specimens.correct_specimen(session, actor=tech, code=frozen, reason="typo", quantity=10.0)
    assert refused.value.field == "quantity"


def test_a_derivative_has_a_plausible_quantity_for_its_unit(engine, tech, frozen):
    assert_refused(engine, ValidationError, r"^Quantity \(1,000,000,000,000\) is more than 10,000,000 ng",
                   lambda s: specimens.derive(s, actor=tech, parent_code=frozen, material_type="dna", quantity=1e12,
                                              unit="ng", parent_quantity_used=1))


def test_a_sequencing_depth_of_a_billion_x_is_refused(engine, pi):
    """Reported: 1,000,000,000x was accepted."""
    assert_refused(engine, ValidationError, r"^Target depth \(1,000,000,000 x\) must be at most 10,000$",
                   lambda s: planning.create_plan(s, actor=pi, code="WGS-1", name="Deep", purpose="phylogeny",
                                                  assay="wgs", target_depth=1e9))
    with session_scope(engine) as session:
        planning.create_plan(session, actor=pi, code="WGS-1", name="Deep", purpose="phylogeny", assay="wgs",
                             target_depth=60)
    assert_refused(engine, ValidationError, "must be at most 10,000",
                   lambda s: planning.update_plan_settings(s, actor=pi, plan_code="WGS-1", target_depth=1e9))


def test_an_order_purpose_of_ten_thousand_characters_is_refused(engine, pi):
    """Reported: a 10,000-character purpose was accepted (the column holds 500)."""
    assert_refused(engine, ValidationError, r"^Purpose .* is too long: at most 500 characters$",
                   lambda s: distribution.create_order(s, actor=pi, study="PHYLO-1", recipient="Dr Lee",
                                                       use="sequencing", purpose="p" * 10_000))
    assert_refused(engine, ValidationError, r"^Study .* is too long: at most 120 characters$",
                   lambda s: distribution.create_order(s, actor=pi, study="s" * 300, recipient="Dr Lee",
                                                       use="sequencing"))


def test_percentages_lie_between_0_and_100(engine, tech, frozen):
    assert_refused(engine, ValidationError, r"^Necrosis \(-1 %\) cannot be negative$",
                   lambda s: specimens.record_qc(s, actor=tech, code=frozen, necrosis_pct=-1))
    with pytest.raises(ValidationError, match=r"^Mouse content \(101 %\) must be at most 100$"):
        ModelQCCreate(model_code="M", passage_label="P0", tested_on=date(2026, 3, 20), mouse_content_pct=101)


def test_a_number_that_is_not_finite_is_refused_as_such():
    with pytest.raises(ValidationError, match="must be a finite number"):
        SpecimenQC.check_fields({"yield_ng": float("nan")})
    with pytest.raises(ValidationError, match="must be a finite number"):
        RegionCollect(case_code="RAP-1", kind="normal_tissue", site_code="LIVER",
                      excised_at=datetime(2026, 1, 1, tzinfo=DEATH.tzinfo), formats=[FormatRequest("ffpe", 1, "blocks")],
                      distance_to_tumour_mm=float("inf"))
