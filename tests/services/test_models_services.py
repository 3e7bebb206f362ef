"""Derived models: creation from viable material, status transitions, the passage tree, QC, specimens, consent."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import BiobankError, ConsentError, PermissionDeniedError, ValidationError
from biobank.domain.vocab_derived import STATUS_TRANSITIONS, ModelStatus
from biobank.models import Specimen
from biobank.queries import derived as derived_reads
from biobank.queries.core import specimen_detail
from biobank.services import derived, donors, specimens
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate
from tests.support.dbtools import snapshot
from tests.support.factories import donor_with_material

DAY0 = date(2026, 3, 14)


@pytest.fixture
def material(engine, tech, death):
    with session_scope(engine) as session:
        made = donor_with_material(session, tech, death=death)
        return {key: s.code for key, s in made.items()}


def _organoid(session, tech, material, **kw):
    return derived.create_model(
        session, actor=tech, data=ModelCreate(source_code=material["L02-fresh"], kind="organoid", initiated_on=DAY0, medium="IntestiCult", matrix="matrigel_bme", growth_properties="embedded_3d", **kw),
    )


def _pdx(session, tech, material):
    return derived.create_model(
        session, actor=tech, data=ModelCreate(source_code=material["L01-viable_cryo"], kind="pdx", initiated_on=DAY0, host_strain_name="NSG", host_strain_nomenclature="NOD.Cg-Prkdcscid Il2rgtm1Wjl/SzJ", engraftment_site="mammary fat pad", engraftment_type="orthotopic", tumour_preparation="fragment"),
    )


def test_model_code_names_donor_region_kind_and_number(engine, tech, material):
    with session_scope(engine) as session:
        first = _organoid(session, tech, material, quantity_used=50)
        second = _organoid(session, tech, material)
        pdx = _pdx(session, tech, material)
        source = specimens.get_specimen(session, material["L02-fresh"])
        assert (first.code, second.code, pdx.code) == ("RA0001-L02A-ORG1", "RA0001-L02A-ORG2", "RA0001-L01A-PDX1")
        assert first.status == "initiated"
        assert source.quantity_remaining == 150  # the model consumed what it used
        events = [e.note for e in specimen_detail_events(session, source.code)]
        assert any("RA0001-L02A-ORG1" in (n or "") for n in events)


def specimen_detail_events(session, code):
    from biobank.services.custody import history

    return history(session, specimens.get_specimen(session, code).id)


def test_model_refuses_a_source_that_is_not_living_material(engine, tech, material):
    before = snapshot(engine)
    with pytest.raises(ValidationError, match="snap_frozen"), session_scope(engine) as session:
        derived.create_model(session, actor=tech, data=ModelCreate(source_code=material["L01-snap_frozen"], kind="organoid", initiated_on=DAY0))
    assert snapshot(engine) == before


def test_database_refuses_a_model_from_a_non_viable_source(engine, tech, material):
    with engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT code, id FROM specimen")).all())
        donor_id = conn.execute(text("SELECT id FROM donor")).scalar()
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(
            text("INSERT INTO derived_model (code, kind, donor_id, source_specimen_id, status, initiated_on, humanised,"
                 " created_at) VALUES ('X1', 'organoid', :d, :s, 'initiated', :on, false, CURRENT_TIMESTAMP)"),
            {"d": donor_id, "s": ids[material["L01-snap_frozen"]], "on": DAY0},
        )
    assert refused.value.field == "tg_derived_model_viable_source"


def test_model_needs_consent_to_model_derivation(engine, tech, death):
    with session_scope(engine) as session:
        made = donor_with_material(session, tech, death=death, code="RA-0002", scopes=frozenset({"research_use"}))
        source = made["L01-fresh"].code
    before = snapshot(engine)
    with pytest.raises(ConsentError, match="RA-0002"), session_scope(engine) as session:
        derived.create_model(session, actor=tech, data=ModelCreate(source_code=source, kind="organoid", initiated_on=DAY0))
    assert snapshot(engine) == before


def test_pdx_needs_a_host_strain_and_cultures_take_no_pdx_fields(engine, tech, material):
    with pytest.raises(ValidationError, match=r"^Host strain: a PDX names its host strain"), session_scope(engine) as session:
        derived.create_model(session, actor=tech, data=ModelCreate(source_code=material["L01-fresh"], kind="pdx", initiated_on=DAY0))
    with pytest.raises(ValidationError, match=r"^Engraftment type \(orthotopic\): applies to a PDX"), session_scope(engine) as session:
        derived.create_model(session, actor=tech, data=ModelCreate(source_code=material["L01-fresh"], kind="organoid", initiated_on=DAY0, engraftment_type="orthotopic"))


def test_viewer_and_pi_cannot_create_models(engine, material, viewer, pi):
    for user in (viewer, pi):
        with pytest.raises(PermissionDeniedError), session_scope(engine) as session:
            derived.create_model(session, actor=user, data=ModelCreate(source_code=material["L02-fresh"], kind="organoid", initiated_on=DAY0))


def test_passages_form_a_tree_with_split_lines(engine, tech, material):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        p0 = derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0, mouse_or_vessel_id="W6-A1"))
        p1 = derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0 + timedelta(days=10), parent_label="P0", doubling_time_hours=60))
        p2 = derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0 + timedelta(days=20), parent_label="P1"))
        split = derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0 + timedelta(days=21), parent_label="P1"))
        p3 = derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0 + timedelta(days=30), parent_label=split.label))
        assert [p.label for p in (p0, p1, p2, split, p3)] == ["P0", "P1", "P2", "P2-B", "P3"]
        assert (p3.number, p3.parent_passage_id) == (3, split.id)
        detail = derived_reads.model_detail(session, model.code)
    tree = detail["passage_tree"]
    assert [n["label"] for n in tree] == ["P0"]
    assert [c["label"] for c in tree[0]["children"][0]["children"]] == ["P2", "P2-B"]
    assert tree[0]["children"][0]["children"][1]["children"][0]["label"] == "P3"
    assert detail["newest_passage"] == "P3"
    lines = derived_reads.lineage_lines(detail)
    assert lines[0] == "donor RA-0001" and "lesion L02" in lines[1] and "region L02-A" in lines[2]
    assert any(line.strip().startswith("└─ P3") for line in lines)


def test_passage_refusals(engine, tech, material):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0))
        code = model.code
    before = snapshot(engine)
    cases = [
        (dict(passaged_on=DAY0 - timedelta(days=1)), r"^Passaged \(.*\) cannot be before the model's initiation"),
        (dict(passaged_on=DAY0, parent_label="P9"), "P9"),
        (dict(passaged_on=DAY0, latency_days=30), "latency applies to a PDX"),
        (dict(passaged_on=DAY0, label="P0"), "already exists"),
    ]
    for kwargs, message in cases:
        with pytest.raises(BiobankError, match=message), session_scope(engine) as session:
            derived.record_passage(session, actor=tech, data=PassageCreate(model_code=code, **kwargs))
    assert snapshot(engine) == before


def test_database_keeps_passage_numbers_and_parents_on_the_same_model(engine, tech, material):
    with session_scope(engine) as session:
        a = _organoid(session, tech, material)
        b = _pdx(session, tech, material)
        pa = derived.record_passage(session, actor=tech, data=PassageCreate(model_code=a.code, passaged_on=DAY0))
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=b.code, passaged_on=DAY0))
        ids = (a.id, b.id, pa.id)
    insert = text("INSERT INTO model_passage (model_id, number, label, parent_passage_id, passaged_on, created_at)"
                  " VALUES (:m, :n, :l, :p, :on, CURRENT_TIMESTAMP)")
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(insert, {"m": ids[0], "n": 2, "l": "P2", "p": ids[2], "on": DAY0})
    assert refused.value.field == "tg_model_passage_number_follows_parent"
    with pytest.raises(BiobankError), session_scope(engine) as session:  # parent of another model: composite FK
        session.execute(insert, {"m": ids[1], "n": 1, "l": "P1", "p": ids[2], "on": DAY0})


@pytest.mark.parametrize("target", [s.value for s in ModelStatus])
def test_status_transitions_follow_the_table(engine, tech, material, target):
    """From initiated only growing and failed are allowed; everything else is refused with the allowed list."""
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        code = model.code
    allowed = target in {s.value for s in STATUS_TRANSITIONS[ModelStatus.initiated]}
    before = snapshot(engine)
    if allowed:
        with session_scope(engine) as session:
            assert derived.set_status(session, actor=tech, model_code=code, status=target, on=DAY0).status == target
    else:
        with pytest.raises(ValidationError, match="allowed next"), session_scope(engine) as session:
            derived.set_status(session, actor=tech, model_code=code, status=target, on=DAY0)
        assert snapshot(engine) == before


def test_database_refuses_a_status_jump(engine, tech, material):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        model_id = model.id
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(text("UPDATE derived_model SET status = 'cryobanked', established_on = :d WHERE id = :i"),
                        {"d": DAY0, "i": model_id})
    assert refused.value.field == "tg_derived_model_status_transition"


def _grow(session, tech, code):
    derived.set_status(session, actor=tech, model_code=code, status="growing", on=DAY0 + timedelta(days=3))
    derived.record_passage(session, actor=tech, data=PassageCreate(model_code=code, passaged_on=DAY0))
    derived.record_passage(session, actor=tech, data=PassageCreate(model_code=code, passaged_on=DAY0 + timedelta(days=14), parent_label="P0"))


def test_establishing_needs_the_qc_the_settings_require(engine, tech, material):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        _grow(session, tech, model.code)
        code = model.code
    before = snapshot(engine)
    with pytest.raises(ValidationError, match="identity, mycoplasma"), session_scope(engine) as session:
        derived.set_status(session, actor=tech, model_code=code, status="established", on=DAY0 + timedelta(days=30))
    assert snapshot(engine) == before
    with session_scope(engine) as session:
        low = derived.record_model_qc(session, actor=tech, data=ModelQCCreate(model_code=code, passage_label="P1", tested_on=DAY0 + timedelta(days=20), identity_method="STR", identity_match_pct=72.0, mycoplasma="negative"))
        assert not low.passed and "identity 72" in (low.notes or "")
    with pytest.raises(ValidationError, match="identity"), session_scope(engine) as session:
        derived.set_status(session, actor=tech, model_code=code, status="established", on=DAY0 + timedelta(days=30))
    with session_scope(engine) as session:
        good = derived.record_model_qc(session, actor=tech, data=ModelQCCreate(model_code=code, passage_label="P1", tested_on=DAY0 + timedelta(days=22), identity_method="SNP", identity_match_pct=96.5))
        assert good.passed
        model = derived.set_status(session, actor=tech, model_code=code, status="established", on=DAY0 + timedelta(days=30))
        assert model.established_on == DAY0 + timedelta(days=30)
        model = derived.set_status(session, actor=tech, model_code=code, status="cryobanked", on=DAY0 + timedelta(days=40))
        assert model.status == "cryobanked"


def test_a_later_positive_mycoplasma_blocks_establishment(engine, tech, material):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        _grow(session, tech, model.code)
        derived.record_model_qc(session, actor=tech, data=ModelQCCreate(model_code=model.code, passage_label="P0", tested_on=DAY0 + timedelta(days=5), identity_method="STR", identity_match_pct=91, mycoplasma="negative"))
        derived.record_model_qc(session, actor=tech, data=ModelQCCreate(model_code=model.code, passage_label="P1", tested_on=DAY0 + timedelta(days=20), mycoplasma="positive"))
        assert derived.qc_requirements_met(session, model) == {"identity": True, "mycoplasma": False}


def test_qc_requirement_setting_is_read(engine, tech, material, monkeypatch):
    monkeypatch.setenv("BIOBANK_MODEL_QC_REQUIRED", "")
    get_settings.cache_clear()
    try:
        with session_scope(engine) as session:
            model = _organoid(session, tech, material)
            _grow(session, tech, model.code)
            assert derived.set_status(session, actor=tech, model_code=model.code, status="established", on=DAY0 + timedelta(days=20)).status == "established"
    finally:
        monkeypatch.delenv("BIOBANK_MODEL_QC_REQUIRED")
        get_settings.cache_clear()


def test_qc_refusals_leave_nothing(engine, tech, material):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        _grow(session, tech, model.code)
        code = model.code
    before = snapshot(engine)
    cases = [
        (dict(), "at least one QC result"),
        (dict(identity_match_pct=90), "STR or SNP"),
        (dict(identity_method="STR", identity_match_pct=120), r"^Identity match \(120 %\) must be at most 100$"),
        (dict(mycoplasma="maybe"), r"^Mycoplasma \(maybe\) must be one of"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValidationError, match=message), session_scope(engine) as session:
            derived.record_model_qc(session, actor=tech, data=ModelQCCreate(model_code=code, passage_label="P1", tested_on=DAY0 + timedelta(days=20), **kwargs))
    assert snapshot(engine) == before


def test_passage_specimens_are_ordinary_specimens(engine, tech, material):
    with session_scope(engine) as session:
        model = _pdx(session, tech, material)
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0, mouse_or_vessel_id="M-101"))
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0 + timedelta(days=60), parent_label="P0", latency_days=58, mouse_or_vessel_id="M-142"))
        vials = derived.passage_specimens(session, actor=tech, model_code=model.code, passage_label="P1",
                                          material_type="tissue", storage_format="snap_frozen", quantity=40, unit="mg", count=2)
        codes = [v.code for v in vials]
        assert codes == ["RA0001-L01A-PDX1-P1-SF1", "RA0001-L01A-PDX1-P1-SF2"]
        # the ordinary specimen services work on them: aliquot, derive DNA, QC
        dna = specimens.derive(session, actor=tech, parent_code=codes[0], material_type="dna", quantity=2000, unit="ng",
                               parent_quantity_used=20)
        specimens.record_qc(session, actor=tech, code=dna.code, yield_ng=2000, a260_280=1.9)
        specimens.aliquot(session, actor=tech, parent_code=codes[1], portions=[10, 10])
        detail = specimen_detail(session, codes[0])
        source = specimens.get_specimen(session, material["L01-viable_cryo"])
        assert detail["donor"] == "RA-0001" and detail["sampling_site"] == "L01-A"
        assert detail["lineage"] == "derivative" and detail["parent"] == source.code
        assert detail["custody"][0]["kind"] == "derived"
        assert session.exec(select(Specimen).where(Specimen.code == codes[0])).one().passage_id is not None
        tree = derived_reads.model_detail(session, model.code)["passage_tree"]
        assert tree[0]["children"][0]["specimens"] == codes


def test_database_keeps_passage_specimens_on_the_model_donor(engine, tech, death, material):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        passage = derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0))
        other = donor_with_material(session, tech, death=death, code="RA-0009")
        other_id = other["L01-fresh"].id
        passage_id = passage.id
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        specimen = session.get(Specimen, other_id)
        specimen.passage_id = passage_id
        session.flush()
    assert refused.value.field == "tg_specimen_passage_same_donor"


def test_withdrawal_blocks_distribution_of_passages(engine, tech, material, death):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0))
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0 + timedelta(days=9), parent_label="P0"))
        derived.distribute_passage(session, actor=tech, model_code=model.code, label="P0", distributed_to="Lab of Dr K",
                                   distributed_on=DAY0 + timedelta(days=5))
        donors.withdraw_consent(session, actor=tech, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=death + timedelta(days=30), reason="family request")
        code = model.code
    before = snapshot(engine)
    with pytest.raises(ConsentError, match="RA-0001"), session_scope(engine) as session:
        derived.distribute_passage(session, actor=tech, model_code=code, label="P1", distributed_to="Lab of Dr K",
                                   distributed_on=DAY0 + timedelta(days=40))
    with pytest.raises(ConsentError, match="RA-0001"), session_scope(engine) as session:
        derived.passage_specimens(session, actor=tech, model_code=code, passage_label="P1", material_type="cells",
                                  storage_format="viable_cryo", quantity=1e6, unit="cells")
    assert snapshot(engine) == before
    with session_scope(engine) as session:  # maintenance goes on: a passage can still be recorded
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=code, passaged_on=DAY0 + timedelta(days=41), parent_label="P1"))


def test_models_are_never_deleted(engine, tech, material):
    with session_scope(engine) as session:
        model = _organoid(session, tech, material)
        model_id = model.id
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(text("DELETE FROM derived_model WHERE id = :i"), {"i": model_id})
    assert refused.value.field == "tg_derived_model_no_delete"
