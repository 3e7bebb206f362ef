"""Processing one specimen: extraction with its method, kit, elution volume and concentration; pathology review with
its slide; nucleic-acid QC with A260/230; disposal with its reason. Each refusal names the field, writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import String
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.domain.errors import PermissionDeniedError, ValidationError
from biobank.models import CustodyEvent, Specimen
from biobank.models.base import utcnow
from biobank.services import specimens, storage
from biobank.services.inputs import DeriveRequest, DisposeRequest, SpecimenQC, limits
from tests.conftest import DEATH
from tests.support.dbtools import assert_refused
from tests.support.factories import H, collect, make_case


@pytest.fixture
def frozen(engine, tech) -> str:
    with session_scope(engine) as session:
        make_case(session, tech)
        return collect(session, tech)[0]  # 50 mg snap-frozen, excised 3 h after death


@pytest.fixture
def dna(engine, tech, frozen) -> str:
    with session_scope(engine) as session:
        return specimens.derive(session, actor=tech, parent_code=frozen, material_type="dna", unit="ng",
                                parent_quantity_used=10, concentration_ng_ul=50, elution_volume_ul=100).code


def row(engine, code) -> Specimen:
    with Session(engine) as session:
        return session.exec(select(Specimen).where(Specimen.code == code)).one()


def events(engine, code) -> list[CustodyEvent]:
    with Session(engine) as session:
        specimen = session.exec(select(Specimen).where(Specimen.code == code)).one()
        return list(session.exec(select(CustodyEvent).where(CustodyEvent.specimen_id == specimen.id)))


# ----------------------------------------------------------------------------------------------- extraction


def test_an_extraction_records_method_kit_elution_and_concentration_and_consumes_the_parent(engine, tech, frozen):
    with session_scope(engine) as session:
        made = specimens.derive(session, actor=tech, parent_code=frozen, material_type="dna", unit="ng",
                                parent_quantity_used=20, extraction_method=" column ", extraction_kit="QIAamp DNA Mini",
                                elution_volume_ul=100, concentration_ng_ul=42.5, at=DEATH + 30 * H)
        code = made.code
    dna = row(engine, code)
    assert code == f"{frozen}-DNA1"
    assert (dna.extraction_method, dna.extraction_kit, dna.elution_volume_ul, dna.concentration_ng_ul) == (
        "column", "QIAamp DNA Mini", 100, 42.5)
    assert dna.yield_ng == 4250 and dna.quantity == dna.quantity_remaining == 4250 and dna.unit == "ng"
    assert dna.parent_quantity_used == 20 and dna.storage_format == "frozen"
    parent = row(engine, frozen)
    assert parent.quantity_remaining == 30 and parent.version == 2
    assert [e.kind for e in events(engine, frozen)][-1] == "derived"
    assert [(e.kind, e.note) for e in events(engine, code)] == [("derived", f"from {frozen}")]


def test_a_stated_yield_and_quantity_win_over_the_product(engine, tech, frozen):
    with session_scope(engine) as session:
        made = specimens.derive(session, actor=tech, parent_code=frozen, material_type="rna", unit="ul", quantity=80,
                                parent_quantity_used=5, elution_volume_ul=100, concentration_ng_ul=10, yield_ng=900)
        code = made.code
    rna = row(engine, code)
    assert (rna.yield_ng, rna.quantity, rna.unit) == (900, 80, "ul")


def test_an_extract_kept_in_microlitres_takes_its_elution_volume_as_quantity(engine, tech, frozen):
    with session_scope(engine) as session:
        code = specimens.derive(session, actor=tech, parent_code=frozen, material_type="dna", unit="ul",
                                parent_quantity_used=5, elution_volume_ul="60").code
    assert (row(engine, code).quantity, row(engine, code).elution_volume_ul, row(engine, code).yield_ng) == (60, 60, None)


def test_an_extract_without_a_quantity_says_how_to_give_one(engine, tech, frozen):
    assert_refused(engine, ValidationError, r"^Quantity is required \(in ng\)",
                   lambda s: specimens.derive(s, actor=tech, parent_code=frozen, material_type="dna", unit="ng",
                                              parent_quantity_used=5, concentration_ng_ul=20))


@pytest.mark.parametrize(
    ("values", "match", "field"),
    [
        ({"concentration_ng_ul": "abc"}, r"^Concentration \(abc\) must be a number$", "concentration_ng_ul"),
        ({"elution_volume_ul": -50}, r"^Elution volume \(-50 µl\) must be positive$", "elution_volume_ul"),
        ({"elution_volume_ul": 0}, r"^Elution volume \(0 µl\) must be positive$", "elution_volume_ul"),
        ({"elution_volume_ul": 1e6}, r"^Elution volume \(1,000,000 µl\) must be at most 5,000$", "elution_volume_ul"),
        ({"concentration_ng_ul": -1}, r"^Concentration \(-1 ng/µl\) cannot be negative$", "concentration_ng_ul"),
        ({"extraction_kit": "k" * 121}, r"^Extraction kit \(k+…\) is too long: at most 120 characters$", "extraction_kit"),
        ({"extraction_method": "m" * 41}, r"^Extraction method .* is too long: at most 40 characters$", "extraction_method"),
        ({"parent_quantity_used": "lots"}, r"^Quantity used from the parent \(lots\) must be a number$",
         "parent_quantity_used"),
        ({"concentration_ng_ul": 1e6, "elution_volume_ul": 5000}, r"^Yield .* must be at most 1,000,000,000$", "yield_ng"),
        ({"at": utcnow() + timedelta(days=2)}, r"^Time \(.*\) is in the future", "at"),
        ({"at": DEATH + 2 * H}, r"^Time \(.*\) cannot be before the parent's collection", "at"),
    ],
)
def test_extraction_input_is_refused_naming_the_field_and_nothing_is_written(engine, tech, frozen, values, match, field):
    fields = {"material_type": "dna", "unit": "ng", "parent_quantity_used": 10, "quantity": 100,
              "concentration_ng_ul": 20, "elution_volume_ul": 50, **values}
    with pytest.raises(ValidationError) as refused, session_scope(engine) as session:
        specimens.derive(session, actor=tech, parent_code=frozen, **fields)
    assert refused.value.field == field
    assert_refused(engine, ValidationError, match, lambda s: specimens.derive(s, actor=tech, parent_code=frozen, **fields))


def test_extraction_details_belong_to_dna_or_rna(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        block = collect(session, tech)[2]
    assert_refused(engine, ValidationError, r"^Extraction kit \(FFPE kit\): applies to a DNA or RNA extract, not section$",
                   lambda s: specimens.derive(s, actor=tech, parent_code=block, material_type="section", quantity=5,
                                              unit="sections", parent_quantity_used=0, extraction_kit="FFPE kit"))


def test_what_the_parent_does_not_hold_cannot_be_used(engine, tech, frozen):
    assert_refused(engine, ValidationError, r"^Quantity used from the parent \(60\) is more than what remains",
                   lambda s: specimens.derive(s, actor=tech, parent_code=frozen, material_type="dna", unit="ng",
                                              quantity=10, parent_quantity_used=60))


# ---------------------------------------------------------------------------------------- review and QC


def test_a_pathology_review_records_cellularity_necrosis_reviewer_and_slide(engine, tech, frozen):
    with session_scope(engine) as session:
        specimens.record_qc(session, actor=tech, code=frozen.lower(), tumour_cellularity_pct="70", necrosis_pct=5,
                            pathology_reviewer=" Dr Path ", slide_ref="HE-0042", at=DEATH + 48 * H)
    review = row(engine, frozen)
    assert (review.tumour_cellularity_pct, review.necrosis_pct, review.pathology_reviewer, review.slide_ref) == (
        70, 5, "Dr Path", "HE-0042")
    last = events(engine, frozen)[-1]
    assert last.kind == "qc_recorded" and last.note == "tumour_cellularity_pct=70, necrosis_pct=5, slide HE-0042"
    assert last.occurred_at == DEATH + 48 * H


def test_nucleic_acid_qc_records_a260_230_with_the_other_measures(engine, tech, dna):
    with session_scope(engine) as session:
        specimens.record_qc(session, actor=tech, code=dna, yield_ng=4800, a260_280="1.85", a260_230=2.05, din=7.9,
                            dv200_pct=88)
    extract = row(engine, dna)
    assert (extract.yield_ng, extract.a260_280, extract.a260_230, extract.din, extract.dv200_pct) == (
        4800, 1.85, 2.05, 7.9, 88)


@pytest.mark.parametrize(
    ("values", "match", "field"),
    [
        ({"a260_230": 6}, r"^A260/230 \(6\) must be at most 5$", "a260_230"),
        ({"a260_230": -0.1}, r"^A260/230 \(-0.1\) cannot be negative$", "a260_230"),
        ({"a260_280": "1.8x"}, r"^A260/280 \(1.8x\) must be a number$", "a260_280"),
        ({"dv200_pct": 101}, r"^DV200 \(101 %\) must be at most 100$", "dv200_pct"),
        ({"din": 11}, r"^DIN \(11\) must be at most 10$", "din"),
        ({"yield_ng": -5}, r"^Yield \(-5 ng\) cannot be negative$", "yield_ng"),
        ({"rin": 8}, r"^RIN \(8\): RIN is measured on RNA$", "rin"),
        ({"a260_280": 1.9, "at": utcnow() + timedelta(hours=3)}, r"^Time \(.*\) is in the future", "at"),
        ({"a260_280": 1.9, "at": DEATH + 1 * H}, r"^Time \(.*\) cannot be before .*'s collection", "at"),
    ],
)
def test_qc_input_is_refused_naming_the_field_and_nothing_is_written(engine, tech, dna, values, match, field):
    with pytest.raises(ValidationError) as refused, session_scope(engine) as session:
        specimens.record_qc(session, actor=tech, code=dna, **values)
    assert refused.value.field == field
    assert_refused(engine, ValidationError, match, lambda s: specimens.record_qc(s, actor=tech, code=dna, **values))


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"tumour_cellularity_pct": -10}, r"^Tumour cellularity \(-10 %\) cannot be negative$"),
        ({"necrosis_pct": "half"}, r"^Necrosis \(half\) must be a number$"),
        ({"tumour_cellularity_pct": 60, "pathology_reviewer": "R" * 121}, r"^Pathology reviewer \(R+…\) is too long: at most 120"),
        ({"tumour_cellularity_pct": 60, "slide_ref": "S" * 65}, r"^Slide \(S+…\) is too long: at most 64 characters$"),
        ({"slide_ref": "HE-1"}, r"^Slide \(HE-1\): a pathology review records cellularity or necrosis$"),
        ({"a260_230": 2.0}, r"^A260/230 \(2\): nucleic-acid QC applies to DNA or RNA, not tissue$"),
        ({"tumour_cellularity_pct": " ", "pathology_reviewer": ""}, r"^QC: give at least one QC value$"),
    ],
)
def test_a_review_is_refused_naming_the_field(engine, tech, frozen, values, match):
    assert_refused(engine, ValidationError, match, lambda s: specimens.record_qc(s, actor=tech, code=frozen, **values))


# --------------------------------------------------------------------------------------------------- disposal


def test_a_disposal_reason_longer_than_the_custody_note_is_refused(engine, tech, frozen):
    assert_refused(engine, ValidationError, r"^Reason \(.*\) is too long: at most 500 characters$",
                   lambda s: storage.dispose(s, actor=tech, code=frozen, reason="r" * 501))
    assert limits(DisposeRequest, "reason").max_length == CustodyEvent.__table__.c.note.type.length


def test_the_new_text_limits_are_the_lengths_of_the_specimen_columns():
    columns = Specimen.__table__.c
    for model in (DeriveRequest, SpecimenQC):
        for name in model.model_fields:
            column = columns.get(name)
            if column is not None and isinstance(column.type, String) and limits(model, name).max_length is not None:
                assert limits(model, name).max_length == column.type.length, (model.__name__, name)
    assert limits(SpecimenQC, "slide_ref").max_length == 64 and limits(DeriveRequest, "extraction_kit").max_length == 120


# ------------------------------------------------------------------------------------------------------ roles


def test_a_pi_or_viewer_cannot_process(engine, tech, pi, viewer, frozen):
    for user in (pi, viewer):
        assert_refused(engine, PermissionDeniedError, "needs one of",
                       lambda s, u=user: specimens.derive(s, actor=u, parent_code=frozen, material_type="dna", unit="ng",
                                                          quantity=100, parent_quantity_used=1))
        assert_refused(engine, PermissionDeniedError, "needs one of",
                       lambda s, u=user: specimens.record_qc(s, actor=u, code=frozen, tumour_cellularity_pct=50))
        assert_refused(engine, PermissionDeniedError, "needs one of",
                       lambda s, u=user: storage.dispose(s, actor=u, code=frozen, reason="broken tube"))
