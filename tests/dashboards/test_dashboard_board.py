"""The live autopsy board: the region form makes the right specimens, corrections are audited, roles are respected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.models import AuditLog, SamplingSite, Specimen
from biobank.services import collection, donors
from biobank.services.inputs import AutopsyOpen, DonorCreate, FormatRequest, LesionCreate, RegionCollect
from tests.support.apptest import assert_no_exception, make_app

DONE = ":green[:material/check_circle:]"
TODO = ":orange[:material/radio_button_unchecked:]"


@pytest.fixture
def running_case(engine, tech):
    """A case started three hours after a death 7 h ago (past the 6 h target), one liver metastasis."""
    death = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=7)
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0100", sex="female", primary_diagnosis="Breast carcinoma"))
        donors.record_consent(session, actor=tech, donor_code="RA-0100", given_by="donor",
                              consented_on=(death - timedelta(days=40)).date(), scopes={"research_use"})
        collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code="RA-0100", case_code="RAP-T-100", death_at=death, start_at=death + timedelta(hours=3)))
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0100", code="L01", site_code="LIVER", kind="metastasis"))
    return death


def k(field, *, kind="tumour_region", lesion="L01", n=0, case="RAP-T-100"):
    """A region-form widget key: fields are keyed by case, kind, lesion and the form counter."""
    return f"board_{field}_{case}_{kind}_{lesion}_{n}"


def board(db_url, username):
    at = make_app(db_url, page="board")
    at.session_state["username"] = username
    return at.run()


def test_the_board_shows_the_running_case_the_checklist_and_the_past_target_warning(db_url, running_case):
    at = board(db_url, "tech")
    assert_no_exception(at)
    assert at.selectbox(key="board_case").value == "RAP-T-100"
    text = " ".join(m.value for m in at.markdown)
    assert f"{TODO} Germline blood" in text and f"{TODO} Normal liver" in text and "L01 liver" in text
    assert any("past the 6 h target" in w.value for w in at.warning)


def test_the_region_form_makes_every_ticked_format_with_its_quantity(db_url, engine, running_case):
    at = board(db_url, "tech")
    assert at.text_input(key=k("label", lesion="L01", n=0)).value == "A"
    at.checkbox(key=k("make_oct")).uncheck()
    at.number_input(key=k("count_snap_frozen")).set_value(3)
    at.number_input(key=k("qty_rnalater")).set_value(20.0)
    at.session_state[k("excised")] = (running_case + timedelta(hours=4)).astimezone(get_settings().zone).replace(tzinfo=None)
    at.form_submit_button(key=k("submit")).click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    with session_scope(engine) as session:
        site = session.exec(select(SamplingSite).where(SamplingSite.code == "L01-A")).one()
        made = {s.code: s for s in session.exec(select(Specimen).where(Specimen.sampling_site_id == site.id)).all()}
    assert sorted(made) == ["RA0100-L01A-FF1", "RA0100-L01A-RL1", "RA0100-L01A-SF1", "RA0100-L01A-SF2", "RA0100-L01A-SF3"]
    assert made["RA0100-L01A-RL1"].quantity == 20.0
    assert made["RA0100-L01A-FF1"].fixative == "nbf"
    assert all(s.stabilised_at - s.collected_at == timedelta(minutes=5) for s in made.values())
    assert "Just made: L01-A" in [s.value for s in at.subheader]
    assert at.text_input(key=k("label", lesion="L01", n=1)).value == "B"  # a fresh form for the next region


def test_switching_lesion_offers_that_lesions_next_label_and_records_into_it(db_url, engine, running_case, tech):
    with session_scope(engine) as session:
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0100", code="L02", site_code="LUNG", kind="metastasis"))
        collection.collect_region(session, actor=tech, data=RegionCollect(case_code="RAP-T-100", kind="tumour_region", site_code="LIVER", lesion_code="L01", region_label="A", excised_at=running_case + timedelta(hours=4), formats=[FormatRequest("snap_frozen", 50, "mg")]))
    at = board(db_url, "tech")
    assert at.text_input(key=k("label", lesion="L01", n=0)).value == "B"
    at.selectbox(key="board_lesion").set_value("L02").run()
    assert at.text_input(key=k("label", lesion="L02", n=0)).value == "A"  # not L01's next label
    at.session_state[k("excised", lesion="L02")] = (running_case + timedelta(hours=4)).astimezone(get_settings().zone).replace(tzinfo=None)
    at.form_submit_button(key=k("submit", lesion="L02")).click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="board_lesion").value == "L02"  # the choice survives the recording
    with session_scope(engine) as session:
        site = session.exec(select(SamplingSite).where(SamplingSite.code == "L02-A")).one()
        assert site.site_code == "LUNG"


def test_a_duplicate_region_is_refused_with_a_message_and_nothing_written(db_url, engine, running_case, tech):
    with session_scope(engine) as session:
        collection.collect_region(session, actor=tech, data=RegionCollect(case_code="RAP-T-100", kind="tumour_region", site_code="LIVER", lesion_code="L01", region_label="A", excised_at=running_case + timedelta(hours=4), formats=[FormatRequest("snap_frozen", 50, "mg")]))
    at = board(db_url, "tech")
    at.text_input(key=k("label", lesion="L01", n=0)).set_value("A")
    at.form_submit_button(key=k("submit")).click().run()
    assert "already collected" in at.error[0].value
    with session_scope(engine) as session:
        assert len(session.exec(select(Specimen)).all()) == 1


def test_switching_kind_shows_that_kinds_own_defaults_and_nothing_typed_for_another(db_url, engine, running_case):
    """Normal tissue after a region with OCT and viable material ticked gets its own defaults (no OCT, no viable);
    bone marrow gets 2 x 1000 uL viable; a long gross description typed for the region is not saved on the next."""
    at = board(db_url, "tech")
    at.checkbox(key=k("make_viable_cryo")).check()
    at.text_input(key=k("gross")).input("x" * 4000)
    at.radio(key="board_kind").set_value("normal_tissue").run()
    normal = {"kind": "normal_tissue", "lesion": ""}
    assert at.checkbox(key=k("make_oct", **normal)).value is False
    assert at.checkbox(key=k("make_viable_cryo", **normal)).value is False
    assert at.text_input(key=k("gross", **normal)).value == ""
    at.radio(key="board_kind").set_value("bone_marrow").run()
    marrow = {"kind": "bone_marrow", "lesion": ""}
    assert at.number_input(key=k("count_viable_cryo", **marrow)).value == 2
    assert at.number_input(key=k("qty_viable_cryo", **marrow)).value == 1000.0
    at.radio(key="board_kind").set_value("normal_tissue").run()
    at.session_state[k("excised", **normal)] = (running_case + timedelta(hours=4)).astimezone(get_settings().zone).replace(tzinfo=None)
    at.form_submit_button(key=k("submit", **normal)).click().run()
    assert not at.error, [e.value for e in at.error]
    with session_scope(engine) as session:
        made = session.exec(select(Specimen)).all()
        site = session.exec(select(SamplingSite)).one()
    assert sorted(s.storage_format for s in made) == ["ffpe", "rnalater", "snap_frozen", "snap_frozen"]
    assert site.gross_description is None
    # back on the region: the region's defaults again (no model consent: living material not ticked)
    at.radio(key="board_kind").set_value("tumour_region").run()
    assert at.checkbox(key=k("make_viable_cryo")).value is False
    assert at.text_input(key=k("gross")).value == ""


def test_germline_blood_from_the_board_clears_its_checklist_item(db_url, engine, running_case):
    at = board(db_url, "tech")
    at.radio(key="board_kind").set_value("germline_blood").run()
    at.form_submit_button(key=k("submit", kind="germline_blood", lesion="")).click().run()
    assert_no_exception(at)
    with session_scope(engine) as session:
        codes = sorted(s.code for s in session.exec(select(Specimen)).all())
    assert codes == ["RA0100-GB1-FZ1", "RA0100-GB1-FZ2"]
    assert f"{DONE} Germline blood" in " ".join(m.value for m in at.markdown)


def test_a_correction_from_the_board_is_audited_with_its_reason(db_url, engine, running_case, tech):
    with session_scope(engine) as session:
        collection.collect_region(session, actor=tech, data=RegionCollect(case_code="RAP-T-100", kind="tumour_region", site_code="LIVER", lesion_code="L01", region_label="A", excised_at=running_case + timedelta(hours=4), formats=[FormatRequest("snap_frozen", 50, "mg")]))
    at = board(db_url, "tech")
    at.selectbox(key="board_correct_code").set_value("RA0100-L01A-SF1")
    at.selectbox(key="board_correct_field").set_value("quantity")
    at.text_input(key="board_correct_value").set_value("45")
    at.text_input(key="board_correct_reason").set_value("scale was not tared")
    at.form_submit_button(key="board_correct_submit").click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any("corrected" in s.value for s in at.success)
    with session_scope(engine) as session:
        specimen = session.exec(select(Specimen)).one()
        assert specimen.quantity == 45.0 and specimen.version == 2
        audit = session.exec(select(AuditLog).where(AuditLog.reason == "scale was not tared")).all()
    assert audit and audit[0].changes["quantity"] == [50.0, 45.0] and audit[0].changes["quantity_remaining"] == [50.0, 45.0]


def test_a_pi_cannot_open_the_board(db_url, running_case, pi):
    at = make_app(db_url)
    at.session_state["username"] = "pi"
    at.run()
    with pytest.raises(Exception):
        at.switch_page("views/board.py").run()


def test_out_of_range_numbers_and_a_future_time_are_refused_in_the_forms_words(db_url, engine, running_case):
    at = board(db_url, "tech")
    at.number_input(key=k("count_rnalater")).set_value(999)
    at.session_state[k("excised")] = (running_case + timedelta(hours=4)).astimezone(get_settings().zone).replace(tzinfo=None)
    at.form_submit_button(key=k("submit")).click().run()
    assert [e.value for e in at.error] == ["RNAlater: Pieces (999) must be at most 50"]
    at.number_input(key=k("count_rnalater")).set_value(1)
    at.number_input(key=k("qty_snap_frozen")).set_value(-5.0)
    at.form_submit_button(key=k("submit")).click().run()
    assert at.error[0].value.startswith("Snap-frozen (LN2): Quantity (-5")
    at.number_input(key=k("qty_snap_frozen")).set_value(50.0)
    at.session_state[k("excised")] = datetime(2030, 1, 1, 12, 0)
    at.form_submit_button(key=k("submit")).click().run()
    assert "is in the future" in at.error[0].value and "Excised (01 Jan 2030 12:00" in at.error[0].value
    assert_no_exception(at)
    with session_scope(engine) as session:
        assert session.exec(select(Specimen)).all() == []
    from biobank.services.inputs import limits

    # the form bounds the description by the input model's declared length (one declaration for every interface)
    assert at.text_input(key=k("gross")).max_chars == limits(RegionCollect, "gross_description").max_length
