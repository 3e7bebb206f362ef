"""AppTests of processing: the work-list page (scan or paste codes, see what they name, apply one operation to all,
print the new tubes' labels) and the processing forms on the specimen view. A refusal names the field, writes
nothing and keeps what was typed; a PI or viewer has neither."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.models import CustodyEvent, Specimen, SpecimenLocation, User
from biobank.services import storage
from dashboards.data import specimens as data_specimens
from dashboards.shell.navigation import PAGES, STAFF_WRITE
from tests.conftest import DEATH
from tests.printables.reading import text
from tests.support.apptest import assert_no_exception, make_app
from tests.support.dbtools import snapshot
from tests.support.factories import collect, lab, make_case

SF1, SF2, FF1 = "RA0001-L02A-SF1", "RA0001-L02A-SF2", "RA0001-L02A-FF1"


@pytest.fixture
def bank(engine: Engine, tech: User, pi: User, viewer: User) -> Engine:
    """Two snap-frozen tubes of 50 mg stored in BOX1 and an FFPE block, of one region."""
    with session_scope(engine) as session:
        make_case(session, tech)
        lab(session, tech)
        collect(session, tech)
        storage.store(session, actor=tech, codes=[SF1, SF2], box_code="BOX1")
    return engine


def opened(db_url: str, username: str = "tech", page: str = "processing") -> AppTest:
    at = make_app(db_url, page=page)
    at.session_state["username"] = username
    at.run()
    assert_no_exception(at)
    return at


def scan(at: AppTest, typed: str) -> AppTest:
    at.text_area(key="processing_codes").set_value(typed).run()
    assert_no_exception(at)
    return at


def specimen_page(db_url: str, code: str, username: str = "tech") -> AppTest:
    at = make_app(db_url, page="specimen")
    at.session_state["username"] = username
    at.query_params["specimen"] = code
    at.run()
    assert_no_exception(at)
    return at


def row(engine: Engine, code: str) -> Specimen:
    with Session(engine) as session:
        return session.exec(select(Specimen).where(Specimen.code == code)).one()


def typed_in(at: AppTest, prefix: str, form: str, values: dict[str, str]) -> AppTest:
    for name, value in values.items():
        at.text_input(key=f"{prefix}_{form}_{name}").set_value(value)
    return at


def lab_time(moment: datetime) -> datetime:
    return moment.astimezone(get_settings().zone).replace(tzinfo=None, second=0, microsecond=0)


# ---------------------------------------------------------------------------------------------------- who


def test_technicians_and_admins_have_the_page_under_material():
    [spec] = [spec for spec in PAGES if spec.module == "processing"]
    assert spec.roles == STAFF_WRITE == {"technician", "admin"} and spec.section == "Material"
    assert not {"pi", "viewer", "coordinator"} & spec.roles  # build_pages leaves it out of their navigation


def test_a_pi_or_viewer_cannot_process(db_url, bank):
    for username in ("pi", "viewer"):
        at = opened(db_url, username)
        assert not at.text_area and "cannot process" not in str(at.error)
        at = specimen_page(db_url, SF1, username)
        assert not [b for b in at.button if b.key and b.key.startswith("specimen_processing_")]
        assert "Processing" not in [s.value for s in at.subheader]


# ------------------------------------------------------------------------------------------- the work list


def test_a_scan_lists_the_specimens_found_and_names_those_not_found(db_url, bank):
    at = scan(opened(db_url), f"{SF1.lower()}\n{SF2}, NOPE-7\n{SF1}")
    table = at.dataframe[0].value
    assert list(table["scanned"]) == [SF1.lower(), SF2, "NOPE-7"]
    assert list(table["status"]) == ["available", "available", "not found"]
    assert table["location"][0] == "UH/LAB1/FRZ1/R1/BOX1:A1" and table["remaining"][1] == "50 mg"
    assert "NOPE-7" in at.error[0].value and f"processed once: {SF1.lower()}" in at.warning[0].value
    assert [m.value for m in at.metric] == ["2", "1", "1"]
    assert at.button(key="processing_aliquot_go").disabled  # nothing can be applied until the list is right


def test_a_rack_is_aliquoted_in_one_go_and_its_labels_are_one_click_away(db_url, bank):
    at = scan(opened(db_url), f"{SF1}\n{SF2}")
    at.radio(key="processing_operation").set_value("aliquot").run()
    typed_in(at, "processing", "aliquot", {"count": "2", "portion": "10"})
    at.button(key="processing_aliquot_go").click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value == "2 specimens aliquoted; 4 new specimens"
    new = [f"{SF1}.1", f"{SF1}.2", f"{SF2}.1", f"{SF2}.2"]
    assert at.session_state["processing_last"]["labels"] == {"cryotube": new}
    [button] = [b for b in at.get("download_button") if b.key == "processing_labels_cryotube"]
    assert button.proto.label == "Labels for the new tubes (4 cryotube, PDF)"
    printed = text(data_specimens.selection_labels_pdf(db_url, new, "cryotube"))  # what the button hands over
    assert all(code in printed for code in new)
    assert at.text_area(key="processing_codes").value == ""  # ready for the next rack
    assert row(bank, SF1).quantity_remaining == row(bank, SF2).quantity_remaining == 30


def test_one_specimen_refused_writes_nothing_names_it_and_keeps_the_list(db_url, bank):
    with session_scope(bank) as session:
        storage.dispose(session, actor=session.exec(select(User).where(User.username == "tech")).one(), code=SF2,
                        reason="cracked")
    before = snapshot(bank)
    at = scan(opened(db_url), f"{SF1} {SF2}")
    at.radio(key="processing_operation").set_value("extract").run()
    typed_in(at, "processing", "extract", {"parent_quantity_used": "10", "concentration_ng_ul": "40",
                                           "elution_volume_ul": "50"})
    at.button(key="processing_extract_go").click().run()
    assert_no_exception(at)
    assert at.error[0].value.startswith(f"extract dna/rna: {SF2}: Parent ({SF2}): specimen is disposed")
    assert snapshot(bank) == before
    assert at.text_area(key="processing_codes").value == f"{SF1} {SF2}"
    assert at.text_input(key="processing_extract_concentration_ng_ul").value == "40"


def test_a_rack_is_disposed_of_with_its_reason_and_leaves_its_box(db_url, bank):
    at = scan(opened(db_url), f"{SF1}\n{SF2}")
    at.radio(key="processing_operation").set_value("dispose").run()
    typed_in(at, "processing", "dispose", {"reason": "freezer failure"})
    at.button(key="processing_dispose_go").click().run()
    assert_no_exception(at)
    assert at.success[0].value == "2 specimens disposed of"
    with Session(bank) as session:
        assert session.exec(select(SpecimenLocation)).all() == []
        events = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "disposed")).all()
    assert [e.note for e in events] == ["freezer failure"] * 2


# ------------------------------------------------------------------------------------- the specimen view


def test_an_extraction_from_the_specimen_view_records_its_details_and_consumes_the_parent(db_url, bank):
    at = specimen_page(db_url, SF1)
    assert at.subheader[-2].value == "Processing" or "Processing" in [s.value for s in at.subheader]
    typed_in(at, "specimen_processing", "extract", {
        "parent_quantity_used": "20", "extraction_method": "column", "extraction_kit": "QIAamp DNA Mini",
        "elution_volume_ul": "100", "concentration_ng_ul": "42.5",
    })
    at.button(key="specimen_processing_extract_go").click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    dna = row(bank, f"{SF1}-DNA1")
    assert (dna.extraction_method, dna.extraction_kit, dna.elution_volume_ul, dna.concentration_ng_ul, dna.yield_ng,
            dna.quantity) == ("column", "QIAamp DNA Mini", 100, 42.5, 4250, 4250)
    assert row(bank, SF1).quantity_remaining == 30
    assert at.session_state["specimen_processing_last"]["labels"] == {"cryotube": [f"{SF1}-DNA1"]}
    assert at.text_input(key="specimen_processing_extract_extraction_kit").value == ""  # a fresh form


@pytest.mark.parametrize(
    ("form", "values", "when", "message"),
    [
        ("review", {"tumour_cellularity_pct": "abc"}, None, "pathology review: Tumour cellularity (abc) must be a number"),
        ("review", {"tumour_cellularity_pct": "-5"}, None, "pathology review: Tumour cellularity (-5) cannot be negative"),
        ("review", {"tumour_cellularity_pct": "60", "pathology_reviewer": "R" * 121}, None,
         "pathology review: Pathology reviewer (RRR"),
        ("nucleic_qc", {}, None, "nucleic-acid qc: QC: give at least one QC value"),
        ("aliquot", {"count": "2", "portion": ""}, None, "aliquot: Aliquot is required"),
        ("aliquot", {"count": "2", "portion": "30"}, None, f"aliquot: {SF1}: Aliquot quantities (60) is more than what"),
        ("dispose", {"reason": "expired"}, datetime(2030, 1, 1, 12, 0), "dispose: Time (01 Jan 2030 12:00"),
        ("dispose", {"reason": "expired"}, lab_time(DEATH + timedelta(hours=1)),
         f"dispose: {SF1}: Time (14 Mar 2026 03:00 Europe/London) cannot be before {SF1}'s collection"),
    ],
)
def test_a_refused_form_names_the_field_writes_nothing_and_keeps_what_was_typed(db_url, bank, form, values, when,
                                                                                 message):
    before = snapshot(bank)
    at = specimen_page(db_url, SF1)
    typed_in(at, "specimen_processing", form, values)
    if when is not None:
        at.session_state[f"specimen_processing_{form}_at"] = when
    at.button(key=f"specimen_processing_{form}_go").click().run()
    assert_no_exception(at)
    assert at.error and at.error[0].value.startswith(message), [e.value for e in at.error]
    assert snapshot(bank) == before
    for name, value in values.items():
        assert at.text_input(key=f"specimen_processing_{form}_{name}").value == value
