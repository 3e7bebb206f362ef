"""Processing work lists: a scanned or pasted list of codes, one operation on every specimen, all or nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from biobank import printables
from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, PermissionDeniedError, ValidationError
from biobank.domain.scanning import parse_codes
from biobank.models import CustodyEvent, Specimen, SpecimenLocation
from biobank.models.base import utcnow
from biobank.services import specimens, storage, worklist
from biobank.services.inputs import AliquotRequest, DeriveRequest
from biobank.services.worklist import WorkListError
from tests.conftest import DEATH
from tests.printables.reading import text
from tests.support.dbtools import assert_refused
from tests.support.factories import H, collect, lab, make_case

SF1, SF2, FF1 = "RA0001-L02A-SF1", "RA0001-L02A-SF2", "RA0001-L02A-FF1"
OTHER = "RA0001-L01B-SF1"


@pytest.fixture
def rack(engine, tech) -> list[str]:
    """Three snap-frozen tubes of 50 mg (two regions) and an FFPE block; the tubes stored in BOX1 (A1, A2, A3)."""
    with session_scope(engine) as session:
        make_case(session, tech)
        lab(session, tech)
        made = collect(session, tech) + collect(session, tech, lesion="L01", region="B", site="BREAST", laterality="left")
        storage.store(session, actor=tech, codes=[SF1, SF2, OTHER], box_code="BOX1")
        specimens.correct_specimen(session, actor=tech, code=SF2, reason="barcode read", barcode="TUBE-0002")
    assert {SF1, SF2, FF1, OTHER} <= set(made)
    return [SF1, SF2, OTHER]


def row(engine, code) -> Specimen:
    with Session(engine) as session:
        return session.exec(select(Specimen).where(Specimen.code == code)).one()


def kinds(engine, code) -> list[str]:
    with Session(engine) as session:
        specimen = session.exec(select(Specimen).where(Specimen.code == code)).one()
        return list(session.exec(select(CustodyEvent.kind).where(CustodyEvent.specimen_id == specimen.id)))


# ---------------------------------------------------------------------------------------------- reading a scan


def test_a_pasted_or_scanned_list_is_split_on_spaces_commas_and_lines_in_any_case():
    scanned = parse_codes("RA0001-L02A-SF1\r\nra0001-l02a-sf2, RA0001-L01B-SF1;\tRA0001-L02A-SF1\n\n ra0001-l02a-SF2 ")
    assert scanned.codes == ("RA0001-L02A-SF1", "ra0001-l02a-sf2", "RA0001-L01B-SF1")
    assert scanned.duplicates == ("RA0001-L02A-SF1", "ra0001-l02a-sf2")
    assert parse_codes(["A1 A2", "A3,A1"]).codes == ("A1", "A2", "A3")
    assert parse_codes(" \n,, ").codes == ()


def test_the_work_list_shows_what_each_code_names_and_what_it_does_not(engine, tech, rack):
    with session_scope(engine) as session:
        work = worklist.look_up(session, f"{SF1.lower()}\nTUBE-0002\nNOPE-1\n{SF2}\n{FF1}")
    assert work.codes == [SF1, SF2, FF1] and work.missing == ["NOPE-1"]
    assert work.duplicates == (SF2,)  # scanned as its barcode first, then as its code
    first = work.rows[0]
    assert (first.typed, first.code, first.status, first.quantity_remaining, first.unit) == (
        SF1.lower(), SF1, "available", 50, "mg")
    assert first.location == "UH/LAB1/FRZ1/R1/BOX1:A1" and work.rows[-1].location is None


# ----------------------------------------------------------------------------------------- all or nothing


def test_a_rack_is_aliquoted_with_the_same_portions_and_its_labels_hold_the_new_codes(engine, tech, rack):
    with session_scope(engine) as session:
        result = worklist.apply(session, actor=tech, codes=" ".join(rack), operation="aliquot",
                                request={"count": "2", "portion": "10"}, at=DEATH + 20 * H)
        pdf = printables.labels_pdf(session, codes=result.labels["cryotube"], fmt="cryotube")
    assert [d.code for d in result.done] == rack
    assert result.new_codes == [f"{c}.{n}" for c in rack for n in (1, 2)]
    assert result.labels == {"cryotube": result.new_codes}
    for code in rack:
        assert row(engine, code).quantity_remaining == 30
        assert row(engine, f"{code}.2").quantity == 10 and row(engine, f"{code}.2").lineage == "aliquot"
    printed = text(pdf)
    assert all(code in printed for code in result.new_codes)


def test_one_unknown_code_writes_nothing_and_is_named(engine, tech, rack):
    assert_refused(engine, ValidationError, r"^Specimen 3 \(NOPE-9\) is not the code or barcode of any specimen$",
                   lambda s: worklist.apply(s, actor=tech, codes=[SF1, SF2, "NOPE-9", OTHER], operation="dispose",
                                            request={"reason": "freezer failure"}))
    assert_refused(engine, ValidationError, r"^Specimens \(NOPE-9, NOPE-8\) are not the codes or barcodes of any specimen$",
                   lambda s: worklist.apply(s, actor=tech, codes="NOPE-9 NOPE-8 " + SF1, operation="dispose",
                                            request={"reason": "freezer failure"}))


def test_one_specimen_the_operation_cannot_take_writes_nothing_and_names_its_code_and_field(engine, tech, rack):
    with session_scope(engine) as session:
        specimens.aliquot(session, actor=tech, parent_code=SF2, portions=[45])  # 5 mg left
    with pytest.raises(ValidationError) as refused, session_scope(engine) as session:
        worklist.apply(session, actor=tech, codes=rack, operation="aliquot", request=AliquotRequest(portions=[4, 4]))
    assert str(refused.value).startswith(f"{SF2}: Aliquot quantities (8) is more than what remains: only 5 mg")
    assert (refused.value.row, refused.value.field) == (SF2, "portions")
    assert_refused(engine, ValidationError, f"^{SF2}: Aliquot quantities",
                   lambda s: worklist.apply(s, actor=tech, codes=rack, operation="aliquot",
                                            request=AliquotRequest(portions=[4, 4])))
    assert row(engine, SF1).quantity_remaining == 50  # the good ones were not aliquoted either


def test_every_refused_specimen_is_reported_together(engine, tech, rack):
    with session_scope(engine) as session:
        storage.dispose(session, actor=tech, code=SF1, reason="cracked")
        specimens.aliquot(session, actor=tech, parent_code=OTHER, portions=[50])
    with pytest.raises(WorkListError) as refused, session_scope(engine) as session:
        worklist.apply(session, actor=tech, codes=rack, operation="derive",
                       request={"material_type": "dna", "unit": "ng", "parent_quantity_used": "10",
                                "concentration_ng_ul": "30", "elution_volume_ul": "50"})
    problems = refused.value.problems
    assert [code for code, _ in problems] == [SF1, OTHER]
    assert "Parent" in str(problems[0][1]) and "specimen is disposed" in str(problems[0][1])
    assert str(refused.value).startswith("2 specimens refused, nothing was done: RA0001-L02A-SF1: Parent")
    assert row(engine, SF2).quantity_remaining == 50  # SF2 could have been extracted; nothing was


def test_a_work_list_extracts_dna_from_every_specimen_with_its_details(engine, tech, rack):
    with session_scope(engine) as session:
        result = worklist.apply(session, actor=tech, codes=rack[:2], operation="derive",
                                request=DeriveRequest(material_type="dna", unit="ng", parent_quantity_used=20,
                                                      extraction_method="magnetic beads", extraction_kit="MagMAX",
                                                      elution_volume_ul=80, concentration_ng_ul=25))
    assert result.new_codes == [f"{SF1}-DNA1", f"{SF2}-DNA1"]
    dna = row(engine, f"{SF2}-DNA1")
    assert (dna.extraction_method, dna.extraction_kit, dna.elution_volume_ul, dna.yield_ng, dna.quantity) == (
        "magnetic beads", "MagMAX", 80, 2000, 2000)
    assert row(engine, SF2).quantity_remaining == 30


def test_a_work_list_records_the_same_qc_on_every_specimen(engine, tech, rack):
    with session_scope(engine) as session:
        result = worklist.apply(session, actor=tech, codes=rack, operation="qc",
                                request={"tumour_cellularity_pct": "60", "pathology_reviewer": "Dr P",
                                         "slide_ref": "", "a260_280": None})
    assert result.new_codes == [] and result.labels == {}
    assert {row(engine, c).tumour_cellularity_pct for c in rack} == {60}
    assert all(kinds(engine, c)[-1] == "qc_recorded" for c in rack)


def test_a_qc_value_out_of_range_is_refused_before_any_specimen(engine, tech, rack):
    assert_refused(engine, ValidationError, r"^Tumour cellularity \(160\) must be at most 100$",
                   lambda s: worklist.apply(s, actor=tech, codes=rack, operation="qc",
                                            request={"tumour_cellularity_pct": "160"}))


def test_disposal_of_a_rack_frees_every_position_and_adds_a_custody_event(engine, tech, rack):
    with session_scope(engine) as session:
        result = worklist.apply(session, actor=tech, codes="\n".join(rack), operation="dispose",
                                request={"reason": "freezer failure"}, at=utcnow() - timedelta(minutes=5))
    assert [d.note for d in result.done] == ["disposed of"] * 3
    with Session(engine) as session:
        assert session.exec(select(SpecimenLocation)).all() == []
        events = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "disposed")).all()
    assert len(events) == 3 and {e.note for e in events} == {"freezer failure"}
    assert {e.from_location for e in events} == {f"UH/LAB1/FRZ1/R1/BOX1:A{n}" for n in (1, 2, 3)}
    assert {row(engine, c).status for c in rack} == {"disposed"}


def test_a_specimen_disposed_twice_in_a_list_keeps_its_kind_of_error(engine, tech, rack):
    with session_scope(engine) as session:
        storage.dispose(session, actor=tech, code=SF1, reason="cracked")
    assert_refused(engine, ConflictError, f"^{SF1}: specimen {SF1}: already disposed",
                   lambda s: worklist.apply(s, actor=tech, codes=rack, operation="dispose", request={"reason": "again"}))


@pytest.mark.parametrize(
    ("operation", "request_", "match"),
    [
        ("dispose", {"reason": "  "}, r"^Reason is required$"),
        ("aliquot", {"count": "3"}, r"^Aliquot is required: give the quantity of each aliquot$"),
        ("aliquot", {"count": "3", "portion": "-5"}, r"^Aliquot \(-5\) must be positive$"),
        ("aliquot", {"count": "many", "portion": "5"}, r"^Pieces \(many\) must be a whole number$"),
        ("aliquot", {"portions": ["5", "x"]}, r"^Aliquot 2 \(x\) must be a number$"),
        ("derive", {"material_type": "dna", "unit": "ng"}, r"^Quantity used from the parent is required$"),
        ("boil", {}, r"^Operation \(boil\): choose one of aliquot, derive, qc, dispose$"),
    ],
)
def test_the_operation_is_checked_before_any_specimen(engine, tech, rack, operation, request_, match):
    assert_refused(engine, ValidationError, match,
                   lambda s: worklist.apply(s, actor=tech, codes=rack, operation=operation, request=request_))


def test_a_future_time_is_refused_once_and_one_before_collection_names_the_code(engine, tech, rack):
    assert_refused(engine, ValidationError, r"^Time \(.*\) is in the future",
                   lambda s: worklist.apply(s, actor=tech, codes=rack, operation="dispose", request={"reason": "old"},
                                            at=utcnow() + timedelta(days=1)))
    assert_refused(engine, ValidationError, rf"^3 specimens refused, nothing was done: {SF1}: Time \(.*\) cannot be before the parent's collection",
                   lambda s: worklist.apply(s, actor=tech, codes=rack, operation="aliquot",
                                            request={"portion": "1"}, at=DEATH + 1 * H))


def test_an_empty_scan_is_refused(engine, tech, rack):
    assert_refused(engine, ValidationError, r"^Specimens: scan or paste at least one specimen code$",
                   lambda s: worklist.apply(s, actor=tech, codes=" \n ", operation="dispose", request={"reason": "x"}))


def test_a_pi_or_viewer_cannot_process_a_work_list(engine, tech, pi, viewer, rack):
    for user in (pi, viewer, None):
        assert_refused(engine, PermissionDeniedError, "needs one of|sign in|signed in|no user",
                       lambda s, u=user: worklist.apply(s, actor=u, codes=rack, operation="dispose",
                                                        request={"reason": "x"}))
