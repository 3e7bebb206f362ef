"""A code typed in lower case, or with spaces around it, finds its record in every service (searching always did;
the store and order forms refused ``rap-1-l01-a-sf1``)."""

from __future__ import annotations

from datetime import date

import pytest

from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, NotFoundError
from biobank.services import collection, derived, donors, planning, specimens, storage
from biobank.services import distribution as orders
from biobank.services.inputs import ModelCreate, PassageCreate
from tests.support.factories import by_format, donor_with_material, donor_with_region, lab


@pytest.fixture
def made(engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        return donor_with_region(session, tech)


def test_a_specimen_code_in_lower_case_with_spaces_finds_the_specimen(engine, tech, made):
    code = by_format(made, "snap_frozen")[0]
    with session_scope(engine) as session:
        assert specimens.get_specimen(session, f"  {code.lower()} ").code == code
        assert donors.get_donor(session, " ra-0001").code == "RA-0001"
        assert collection.get_autopsy(session, "rap-1 ").case_code == "RAP-1"
        donor = donors.get_donor(session, "RA-0001")
        assert collection.get_lesion(session, donor, "l01").code == "L01"


def test_the_store_form_takes_lower_case_specimen_and_box_codes(engine, tech, made):
    codes = by_format(made, "snap_frozen")
    with session_scope(engine) as session:
        placed = storage.store(session, actor=tech, codes=[c.lower() for c in codes], box_code="box1", at="A1")
    assert [p.code for p in placed] == codes
    assert {p.container for p in placed} == {"BOX1"}
    with session_scope(engine) as session:
        storage.check_out(session, actor=tech, code=codes[0].lower())
        storage.return_specimen(session, actor=tech, code=f" {codes[0].lower()} ")
        moved = storage.move_specimen(session, actor=tech, code=codes[1].lower(), box_code="Box2")
    assert (moved.code, moved.container) == (codes[1], "BOX2")


def test_the_same_code_typed_twice_in_different_case_is_one_specimen(engine, tech, made):
    code = by_format(made, "snap_frozen")[0]
    with pytest.raises(Exception, match="is named twice"), session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code, code.lower()], box_code="BOX1")


def test_the_order_form_takes_lower_case_order_and_specimen_codes(engine, tech, pi, made):
    code = by_format(made, "snap_frozen")[0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code], box_code="BOX1")
        orders.create_order(session, actor=pi, study="PHYLO-1", recipient="Dr Lee", use="sequencing", code="DO-2026-001")
        item = orders.add_item(session, actor=pi, order_code="do-2026-001", specimen_code=code.lower(), quantity=10)
        assert item.quantity == 10
        assert orders.approve(session, actor=pi, order_code=" do-2026-001").status == "approved"


def test_a_container_code_in_mixed_case_is_found_in_any_case_and_not_duplicated(engine, tech, made):
    with session_scope(engine) as session:
        storage.add_container(session, actor=tech, code="Shelf-a", kind="shelf", parent_code="frz2")
        assert storage.get_container(session, "SHELF-A").code == "Shelf-a"
        assert storage.get_container(session, "shelf-a").code == "Shelf-a"
    with pytest.raises(ConflictError, match="already exists"), session_scope(engine) as session:
        storage.add_container(session, actor=tech, code="SHELF-A", kind="shelf", parent_code="FRZ2")


def test_models_and_plans_are_found_in_any_case(engine, tech, pi):
    with session_scope(engine) as session:
        source = donor_with_material(session, tech)["L01-fresh"].code
        model = derived.create_model(session, actor=tech, data=ModelCreate(
            source_code=source.lower(), kind="organoid", initiated_on=date(2026, 3, 15)))
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code.lower(),
                                                                       passaged_on=date(2026, 3, 15)))
        assert derived.get_model(session, model.code.lower()).code == model.code
        assert derived.get_passage(session, model, "p0").label == "P0"
        planning.create_plan(session, actor=pi, code="WGS-1", name="Trunk", purpose="phylogeny", assay="wgs")
        assert planning.get_plan(session, "wgs-1").code == "WGS-1"
        assert planning.check_plan(session, "wgs-1") is not None


def test_an_unknown_code_is_still_not_found(engine, tech, made):
    with pytest.raises(NotFoundError, match=r"^specimen 'nope-1' not found$") as refused:
        with session_scope(engine) as session:
            specimens.get_specimen(session, " nope-1 ")
    assert refused.value.field == "code"
