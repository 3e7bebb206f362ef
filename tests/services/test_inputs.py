"""Input models at the service boundary: one declaration of a write's fields, used by the services, the forms, the
command line and the import kinds, with the project's own error naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from biobank.domain.errors import ValidationError
from biobank.imports.registry import KINDS
from biobank.services.inputs import AutopsyOpen, DonorCreate, FormatRequest, ModelCreate, RegionCollect

#: Columns an import kind has beyond its input model: later states of the record, set by other services.
LIFECYCLE = {"models": {"status", "established_on", "failed_on", "ended_on"}, "passages": {"distributed_on", "distributed_to"}}


def test_build_names_the_field_in_the_projects_error():
    with pytest.raises(ValidationError, match=r"^Age at death \(sixty\) must be a whole number$") as refused:
        DonorCreate.build(code="RA-0001", age_at_death="sixty")
    assert refused.value.field == "age_at_death"
    with pytest.raises(ValidationError, match=r"^Notes .* is too long: at most 1,000 characters$") as refused:
        ModelCreate.build(source_code="X", kind="organoid", initiated_on=date(2026, 1, 1), notes="n" * 6000)
    assert refused.value.field == "notes"


def test_building_a_model_directly_raises_the_projects_error_too():
    with pytest.raises(ValidationError, match="Age at death"):
        DonorCreate(code="RA-0001", age_at_death=200)


def test_unknown_fields_and_infinite_numbers_are_refused():
    with pytest.raises(ValidationError, match=r"Nickname .* is not a field of this form") as refused:
        DonorCreate.build(code="RA-0001", nickname="Bob")
    assert refused.value.field == "nickname"
    with pytest.raises(ValidationError, match="finite"):
        RegionCollect.build(case_code="RAP-1", kind="normal_tissue", site_code="LIVER",
                            excised_at=datetime(2026, 1, 1, tzinfo=UTC), formats=[FormatRequest("ffpe", 1, "blocks")],
                            distance_to_tumour_mm=float("inf"))


def test_check_fields_judges_only_the_values_given():
    AutopsyOpen.check_fields({"case_code": "RAP-1"})  # the rest may be absent, as in an upsert
    with pytest.raises(ValidationError, match=r"^Prosector .* is too long: at most 120 characters$") as refused:
        AutopsyOpen.check_fields({"prosector": "p" * 500})
    assert refused.value.field == "prosector"


@pytest.mark.parametrize("name", sorted(k for k, kind in KINDS.items() if kind.input_model is not None))
def test_an_import_kind_declares_the_fields_of_its_input_model(name):
    kind = KINDS[name]
    assert kind.input_model is not None
    columns = {c.name for c in kind.columns}
    assert columns - LIFECYCLE.get(name, set()) <= set(kind.input_model.model_fields)


def test_aliquots_are_given_as_portions_or_as_a_count_of_a_quantity_and_a_derivative_gets_its_usual_unit():
    from biobank.services.inputs import AliquotRequest, DeriveRequest

    assert AliquotRequest.build(count=3, portion=2).amounts() == [2.0, 2.0, 2.0]
    assert AliquotRequest.build(portions=[5, 2.5]).amounts() == [5.0, 2.5]
    with pytest.raises(ValidationError, match=r"^Aliquot quantities \(5,2\.5\): give the portions, or a count"):
        AliquotRequest.build(portions=[5, 2.5], count=2).amounts()
    assert DeriveRequest.build(material_type="dna", parent_quantity_used=5).unit == "ng"
    assert DeriveRequest.build(material_type="section", parent_quantity_used=0).unit == "sections"
    assert DeriveRequest.build(material_type="dna", unit="ul", parent_quantity_used=5).unit == "ul"
