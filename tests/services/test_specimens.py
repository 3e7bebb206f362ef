"""Aliquots and derivatives with quantity accounting, QC, disposal and audited corrections."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.domain.errors import BiobankError, ConflictError, PermissionDeniedError, ValidationError
from biobank.models import AuditLog, CustodyEvent, Specimen
from biobank.services import specimens, storage
from tests.conftest import DEATH
from tests.support.dbtools import assert_refused
from tests.support.factories import H, collect, make_case


@pytest.fixture
def frozen(engine, tech) -> str:
    with session_scope(engine) as session:
        make_case(session, tech)
        return collect(session, tech)[0]  # 50 mg snap-frozen


def _get(engine, code):
    with Session(engine) as session:
        return session.exec(select(Specimen).where(Specimen.code == code)).one()



def test_aliquots_take_from_the_parent_and_carry_its_lineage(engine, tech, frozen):
    with session_scope(engine) as session:
        children = specimens.aliquot(session, actor=tech, parent_code=frozen, portions=[10, 15])
        codes = [c.code for c in children]
    assert codes == [f"{frozen}.1", f"{frozen}.2"]
    parent = _get(engine, frozen)
    assert parent.quantity_remaining == 25
    child = _get(engine, codes[1])
    assert child.lineage == "aliquot" and child.parent_id == parent.id and child.donor_id == parent.donor_id
    assert child.quantity == child.quantity_remaining == 15 and child.unit == "mg"
    assert child.storage_format == parent.storage_format and child.collected_at == parent.collected_at
    with session_scope(engine) as session:
        more = specimens.aliquot(session, actor=tech, parent_code=frozen, portions=[25])
        assert more[0].code == f"{frozen}.3"
    assert _get(engine, frozen).status == "depleted"


def test_taking_more_than_remains_isassert_refused(engine, tech, frozen):
    assert_refused(engine, ValidationError, "only 50 mg of", lambda s: specimens.aliquot(s, actor=tech, parent_code=frozen, portions=[30, 30]))


def test_an_aliquot_cannot_come_from_a_depleted_or_disposed_specimen(engine, tech, frozen):
    with session_scope(engine) as session:
        specimens.aliquot(session, actor=tech, parent_code=frozen, portions=[50])
    assert_refused(engine, ValidationError, "specimen is depleted", lambda s: specimens.aliquot(s, actor=tech, parent_code=frozen, portions=[1]))
    other = f"{frozen[:-1]}2"
    with session_scope(engine) as session:
        storage.dispose(session, actor=tech, code=other, reason="thawed in a freezer failure")
    assert_refused(engine, ValidationError, "specimen is disposed", lambda s: specimens.aliquot(s, actor=tech, parent_code=other, portions=[1]))


def test_aliquot_portions_must_be_positive(engine, tech, frozen):
    assert_refused(engine, ValidationError, r"^Aliquot 2 \(0\) must be positive$", lambda s: specimens.aliquot(s, actor=tech, parent_code=frozen, portions=[5, 0]))


def test_the_database_keeps_quantities_within_bounds_whatever_the_entry_path(engine, tech, frozen):
    from sqlalchemy import update

    with pytest.raises(ValidationError) as refused, session_scope(engine) as session:
        session.execute(update(Specimen).where(Specimen.code == frozen).values(quantity_remaining=-1))
    assert refused.value.field == "ck_specimen_remaining_within_quantity"


def test_a_derivative_records_what_it_consumed(engine, tech, frozen):
    with session_scope(engine) as session:
        dna = specimens.derive(session, actor=tech, parent_code=frozen, material_type="dna", quantity=4200, unit="ng",
                               parent_quantity_used=20, concentration_ng_ul=84.0, at=DEATH + 30 * H)
        rna = specimens.derive(session, actor=tech, parent_code=frozen, material_type="rna", quantity=900, unit="ng",
                               parent_quantity_used=10)
        assert (dna.code, rna.code) == (f"{frozen}-DNA1", f"{frozen}-RNA1")
    assert _get(engine, frozen).quantity_remaining == 20
    dna_row = _get(engine, f"{frozen}-DNA1")
    assert dna_row.lineage == "derivative" and dna_row.parent_quantity_used == 20 and dna_row.storage_format == "frozen"
    assert dna_row.material_type == "dna" and dna_row.unit == "ng"


def test_sections_from_an_ffpe_block_stay_ffpe(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        block = collect(session, tech)[2]
    with session_scope(engine) as session:
        section = specimens.derive(session, actor=tech, parent_code=block, material_type="section", quantity=10,
                                   unit="sections", parent_quantity_used=0)
        assert section.storage_format == "ffpe" and section.fixative == "nbf"


def test_derivation_rules(engine, tech, frozen):
    assert_refused(engine, ValidationError, "cannot be derived from tissue",
             lambda s: specimens.derive(s, actor=tech, parent_code=frozen, material_type="plasma", quantity=1, unit="ul", parent_quantity_used=1))
    assert_refused(engine, ValidationError, "only 50 mg",
             lambda s: specimens.derive(s, actor=tech, parent_code=frozen, material_type="dna", quantity=1, unit="ng", parent_quantity_used=51))
    assert_refused(engine, ValidationError, r"^Quantity \(0\) must be positive$",
             lambda s: specimens.derive(s, actor=tech, parent_code=frozen, material_type="dna", quantity=0, unit="ng", parent_quantity_used=1))
    assert_refused(engine, BiobankError, "specimen 'NOPE' not found",
             lambda s: specimens.derive(s, actor=tech, parent_code="NOPE", material_type="dna", quantity=1, unit="ng", parent_quantity_used=1))


def test_qc_is_recorded_with_a_custody_event(engine, tech, frozen):
    with session_scope(engine) as session:
        specimens.record_qc(session, actor=tech, code=frozen, tumour_cellularity_pct=65, necrosis_pct=10, pathology_reviewer="Dr P")
        dna = specimens.derive(session, actor=tech, parent_code=frozen, material_type="dna", quantity=3000, unit="ng", parent_quantity_used=10)
        specimens.record_qc(session, actor=tech, code=dna.code, yield_ng=3000, a260_280=1.86, din=8.1)
    row = _get(engine, frozen)
    assert (row.tumour_cellularity_pct, row.necrosis_pct, row.pathology_reviewer) == (65, 10, "Dr P")
    assert _get(engine, f"{frozen}-DNA1").din == 8.1
    with Session(engine) as session:
        kinds = session.exec(select(CustodyEvent.kind).where(CustodyEvent.specimen_id == row.id)).all()
    assert "qc_recorded" in kinds


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"tumour_cellularity_pct": 120}, r"^Tumour cellularity \(120 %\) must be at most 100$"),
        ({"a260_280": -1}, r"^A260/280 \(-1\) cannot be negative$"),
        ({"rin": 7.0}, "nucleic-acid QC applies to DNA or RNA"),
        ({"colour": 3}, "QC fields are"),
        ({}, "give at least one QC value"),
    ],
)
def test_qc_values_are_checked(engine, tech, frozen, values, match):
    assert_refused(engine, ValidationError, match, lambda s: specimens.record_qc(s, actor=tech, code=frozen, **values))


def test_rin_belongs_to_rna_and_din_to_dna(engine, tech, frozen):
    with session_scope(engine) as session:
        dna = specimens.derive(session, actor=tech, parent_code=frozen, material_type="dna", quantity=3000, unit="ng", parent_quantity_used=10)
    assert_refused(engine, ValidationError, "RIN is measured on RNA", lambda s: specimens.record_qc(s, actor=tech, code=dna.code, rin=8))


def test_disposal_is_a_status_and_an_event_never_a_deletion(engine, tech, frozen):
    with session_scope(engine) as session:
        storage.dispose(session, actor=tech, code=frozen, reason="contaminated")
    assert _get(engine, frozen).status == "disposed"
    with pytest.raises(ConflictError, match="already disposed"), session_scope(engine) as session:
        storage.dispose(session, actor=tech, code=frozen, reason="again")
    from sqlalchemy import delete

    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(delete(Specimen).where(Specimen.code == frozen))
    assert refused.value.field == "tg_specimen_no_delete"


def test_a_correction_is_audited_with_its_reason(engine, tech, frozen):
    with session_scope(engine) as session:
        specimens.correct_specimen(session, actor=tech, code=frozen, reason="weighed again", expected_version=1, quantity=45,
                                   quantity_remaining=45)
    row = _get(engine, frozen)
    assert (row.quantity, row.version) == (45, 2)
    with Session(engine) as session:
        audit = session.exec(
            select(AuditLog).where(AuditLog.table_name == "specimen", AuditLog.row_id == str(row.id), AuditLog.action == "update")
        ).all()
    correction = [a for a in audit if a.reason == "weighed again"]
    assert correction and correction[0].changes["quantity"] == [50.0, 45]
    assert correction[0].user_id == tech.id


def test_a_correction_from_a_stale_read_isassert_refused(engine, tech, frozen):
    with session_scope(engine) as session:
        specimens.correct_specimen(session, actor=tech, code=frozen, reason="first", expected_version=1, notes="a")
    assert_refused(engine, ConflictError, "changed by someone else",
             lambda s: specimens.correct_specimen(s, actor=tech, code=frozen, reason="second", expected_version=1, notes="b"))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"donor_id": 9}, "cannot be corrected"),
        ({"quantity_remaining": 60}, r"^Quantity remaining \(60\) cannot be more than the quantity \(50 mg\)$"),
        ({"stabilised_at": DEATH}, r"^Stabilised \(14 Mar 2026 02:00 Europe/London\) cannot be before Collected"),
        ({"storage_format": "boiled"}, r"^Storage format \(boiled\) must be one of"),
    ],
)
def test_corrections_obey_the_same_rules(engine, tech, frozen, changes, match):
    assert_refused(engine, ValidationError, match, lambda s: specimens.correct_specimen(s, actor=tech, code=frozen, reason="fix", **changes))


def test_a_correction_needs_a_reason(engine, tech, frozen):
    assert_refused(engine, ValidationError, "needs a reason", lambda s: specimens.correct_specimen(s, actor=tech, code=frozen, reason=" ", notes="x"))


def test_viewers_and_pis_do_not_enter_specimens(engine, tech, viewer, pi, frozen):
    for user in (viewer, pi):
        assert_refused(engine, PermissionDeniedError, "needs one of", lambda s, u=user: specimens.aliquot(s, actor=u, parent_code=frozen, portions=[1]))
