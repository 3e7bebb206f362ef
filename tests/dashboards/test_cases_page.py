"""The Cases page: the death call opens a case, the checklist shows what is still to do, the labels download marks
them printed, a started case is on the live board at once, corrections need a reason; a refused form keeps what was
typed and writes nothing."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.models import AuditLog, Autopsy, Lesion
from biobank.services import cases
from biobank.services.inputs import DeathCall
from dashboards.shell.navigation import PAGES
from tests.conftest import DEATH
from tests.support.apptest import APP, assert_no_exception, make_app
from tests.support.dbtools import snapshot
from tests.support.factories import H, enrol

DONE = ":green[:material/check_circle:]"
TODO = ":orange[:material/radio_button_unchecked:]"


def lab(moment: datetime) -> datetime:
    """A time as the page's widgets hold it: in the lab's zone, without one."""
    return moment.astimezone(get_settings().zone).replace(tzinfo=None)


@pytest.fixture
def enrolled(engine, tech) -> str:
    with session_scope(engine) as session:
        enrol(session, tech)
    return "RA-0001"


@pytest.fixture
def opened(engine, tech, enrolled) -> str:
    with session_scope(engine) as session:
        cases.open_case(session, actor=tech, data=DeathCall(
            donor_code="RA-0001", death_at=DEATH, death_place="Hospice St Anne", death_reported_by="night nurse",
            death_reported_at=DEATH + 0.25 * H, refrigerated_at=DEATH + H, prosector="Dr A. Okafor", team="RA team"))
    return "RAP-2026-001"


def page(db_url: str, username: str = "coord") -> AppTest:
    at = make_app(db_url, page="cases")
    at.session_state["username"] = username
    return at.run()


def checklist_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def stored(engine, case: str = "RAP-2026-001") -> Autopsy | None:
    with Session(engine) as session:
        return session.exec(select(Autopsy).where(Autopsy.case_code == case)).first()


def fill_call(at: AppTest, **values) -> AppTest:
    typed = {"donor": "RA-0001", "death": lab(DEATH), "place": "Hospice St Anne", "reported_by": "night nurse J. Doe",
             "prosector": "Dr A. Okafor", "team": "Rapid autopsy team", **values}
    for name, value in typed.items():
        key = f"cases_call_{name}"
        if name == "donor":
            at.selectbox(key=key).set_value(value)
        elif name in ("death", "reported_at", "refrigerated"):
            at.datetime_input(key=key).set_value(value)
        else:
            at.text_input(key=key).set_value(value)
    return at


def test_the_page_is_in_collection_for_the_staff_who_take_the_call_and_the_pi():
    [spec] = [spec for spec in PAGES if spec.module == "cases"]
    assert spec.section == "Collection" and spec.roles == {"coordinator", "technician", "admin", "pi"}


def test_the_death_call_opens_a_case_empties_the_form_and_shows_its_checklist(db_url, engine, coordinator, enrolled):
    at = page(db_url)
    assert_no_exception(at)
    fill_call(at, refrigerated=lab(DEATH + H))
    at = at.form_submit_button(key="cases_call_submit").click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value == "Case RAP-2026-001 opened: work through its checklist below."
    autopsy = stored(engine)
    assert autopsy is not None and autopsy.status == "scheduled" and autopsy.death_at == DEATH
    assert (autopsy.death_place, autopsy.death_reported_by, autopsy.refrigerated_at) == (
        "Hospice St Anne", "night nurse J. Doe", DEATH + H)
    assert at.selectbox(key="cases_case").value == "RAP-2026-001"
    assert at.text_input(key="cases_call_place").value == ""  # the form is empty for the next call
    text = checklist_text(at)
    assert f"{TODO} Labels printed" in text and f"{DONE} Refrigeration" in text and f"{TODO} Team notified" in text
    assert f"{DONE} Consent in force" in text


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"place": ""}, "death call: Place of death is required: where did the donor die?"),
        ({"reported_by": "   "}, "death call: Death reported by is required: who reported the death?"),
        ({"death": None}, "death call: Time of death is required: when did the donor die?"),
        ({"death": lab(datetime.now().astimezone() + timedelta(hours=3))}, r"death call: Time of death \(.*\) is in the future"),
        ({"refrigerated": lab(DEATH - H)}, r"death call: Refrigerated \(14 Mar 2026 01:00 Europe/London\) cannot be before"),
        ({"reported_at": lab(DEATH - H)}, r"death call: Death reported at \(14 Mar 2026 01:00 Europe/London\) cannot be before"),
        ({"case_code": "RAP 1"}, r"death call: Case \(RAP 1\): use only letters, digits"),
        ({"team": "t" * 301}, r"death call: Team \(t+…\) is too long: at most 300 characters"),
    ],
)
def test_a_refused_call_says_which_field_keeps_what_was_typed_and_writes_nothing(db_url, engine, coordinator, enrolled,
                                                                                values, message):
    at = page(db_url)
    fill_call(at, **values)
    before = snapshot(engine)
    at = at.form_submit_button(key="cases_call_submit").click().run()
    assert_no_exception(at)
    assert [e.value for e in at.error] and re.match(message, at.error[0].value), [e.value for e in at.error]
    assert snapshot(engine) == before
    assert at.selectbox(key="cases_call_donor").value == "RA-0001"
    assert at.text_input(key="cases_call_prosector").value == "Dr A. Okafor"
    for name, value in values.items():
        if name in ("place", "reported_by", "team", "case_code"):
            assert at.text_input(key=f"cases_call_{name}").value == value


def test_the_label_download_marks_the_labels_printed(db_url, engine, coordinator, opened):
    at = page(db_url)
    button = at.download_button(key="cases_labels_print")
    assert "18" in button.proto.label
    at = button.click().run()
    assert_no_exception(at)
    assert at.success[0].value == "18 labels of case RAP-2026-001 printed (on the checklist)."
    assert stored(engine).labels_printed_at is not None
    assert f"{DONE} Labels printed" in checklist_text(at)


def test_a_started_case_is_on_the_live_board_at_once(db_url, engine, tech, opened):
    cases_page = page(db_url, "tech")
    board = AppTest.from_file(APP, default_timeout=30)  # the same process and caches as the Cases page
    board.switch_page(APP.replace("app.py", "views/board.py"))
    board.session_state["username"] = "tech"
    board.run()
    assert any("No autopsy is in progress" in i.value for i in board.info)
    cases_page.datetime_input(key="cases_start_at_RAP-2026-001").set_value(lab(DEATH + 2 * H))
    cases_page = cases_page.button(key="cases_start_submit").click().run()
    assert_no_exception(cases_page)
    assert cases_page.success[0].value == "Case RAP-2026-001 started: it is on the live board."
    board.run()
    assert_no_exception(board)
    assert board.selectbox(key="board_case").value == "RAP-2026-001"
    assert stored(engine).status == "in_progress"


def test_team_notified_and_the_end_of_the_autopsy(db_url, engine, coordinator, opened, tech):
    with session_scope(engine) as session:
        cases.start_autopsy(session, actor=tech, case_code=opened, at=DEATH + 2 * H)
    at = page(db_url)
    at.datetime_input(key="cases_notified_at_RAP-2026-001").set_value(lab(DEATH + 0.5 * H))
    at = at.button(key="cases_notified_submit").click().run()
    assert at.success[0].value == "Case RAP-2026-001: team notified."
    assert stored(engine).team_notified_at == DEATH + 0.5 * H
    at.datetime_input(key="cases_end_at_RAP-2026-001").set_value(lab(DEATH + H))
    at = at.button(key="cases_end_submit").click().run()
    assert at.error[0].value.startswith("end: Autopsy end (14 Mar 2026 03:00 Europe/London) cannot be before Autopsy start")
    assert stored(engine).status == "in_progress"
    at.datetime_input(key="cases_end_at_RAP-2026-001").set_value(lab(DEATH + 6 * H))
    at = at.button(key="cases_end_submit").click().run()
    assert at.success[0].value == "Case RAP-2026-001 ended: complete."
    assert stored(engine).status == "complete"
    assert [tab.label for tab in at.tabs] == ["Scheduled (0)", "In progress (0)", "Complete (1)"]


def test_a_correction_needs_a_reason_then_is_audited_and_the_figures_follow(db_url, engine, coordinator, opened):
    at = page(db_url)
    at.selectbox(key="cases_correct_field").set_value("refrigerated_at")
    at.datetime_input(key="cases_correct_time").set_value(lab(DEATH + 2 * H))
    at = at.form_submit_button(key="cases_correct_submit").click().run()
    assert at.error[0].value.startswith("correction: Reason is required: changing a time already recorded (Refrigerated")
    assert stored(engine).refrigerated_at == DEATH + H
    assert at.datetime_input(key="cases_correct_time").value == lab(DEATH + 2 * H)  # kept for the next try
    at.text_input(key="cases_correct_reason").set_value("porter logged the wrong hour")
    at = at.form_submit_button(key="cases_correct_submit").click().run()
    assert_no_exception(at)
    assert at.success[0].value == ("Case RAP-2026-001: refrigerated corrected (audited with your reason); "
                                   "PMI at start —, warm PMI 2.0 h.")
    assert stored(engine).refrigerated_at == DEATH + 2 * H
    with Session(engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.reason == "porter logged the wrong hour")).one()
    assert row.changes["refrigerated_at"] == [(DEATH + H).isoformat(), (DEATH + 2 * H).isoformat()]
    assert any(m.value == "2.0 h" for m in at.metric)


def test_an_empty_correction_is_refused_naming_the_time(db_url, engine, coordinator, opened):
    at = page(db_url)
    at.text_input(key="cases_correct_reason").set_value("typo")
    at = at.form_submit_button(key="cases_correct_submit").click().run()
    assert at.error[0].value == "correction: Time of death is required: give the corrected time"
    assert at.text_input(key="cases_correct_reason").value == "typo"


def test_a_pi_follows_the_cases_but_has_no_forms(db_url, pi, opened):
    at = page(db_url, "pi")
    assert_no_exception(at)
    assert at.selectbox(key="cases_case").value == "RAP-2026-001"
    assert not at.get("form") and not at.download_button
    assert any("Your role can follow the cases" in i.value for i in at.info)
    assert f"{TODO} Labels printed" in checklist_text(at)


def test_a_step_left_without_a_time_is_recorded_at_the_click(db_url, engine, coordinator, enrolled, tech):
    with session_scope(engine) as session:
        cases.open_case(session, actor=tech, data=DeathCall(
            donor_code="RA-0001", death_at=DEATH, death_place="home", death_reported_by="daughter"))
    at = page(db_url)
    assert f"{TODO} Refrigeration" in checklist_text(at)
    before = datetime.now().astimezone()
    at = at.button(key="cases_refrigerated_submit").click().run()
    assert at.success[0].value == "Case RAP-2026-001: refrigeration recorded."
    assert stored(engine).refrigerated_at >= before - timedelta(seconds=1)
    assert f"{DONE} Refrigeration" in checklist_text(at)


def test_a_coordinator_records_a_lesion_known_from_imaging_and_its_labels_join_the_sheet(db_url, engine, coordinator,
                                                                                        opened):
    at = page(db_url)
    assert "18" in at.download_button(key="cases_labels_print").proto.label  # L01: 18 planned labels
    at.selectbox(key="cases_new_lesion_site").set_value("FEMUR")
    at.selectbox(key="cases_new_lesion_kind").set_value("metastasis")
    at.selectbox(key="cases_new_lesion_side").set_value("left")
    at.text_input(key="cases_new_lesion_size").set_value("-4")
    at = at.button(key="cases_new_lesion_submit").click().run()
    assert at.error[0].value.startswith("Size (-4"), at.error[0].value  # refused, naming the field
    assert at.text_input(key="cases_new_lesion_size").value == "-4"  # what was typed stays
    at.text_input(key="cases_new_lesion_size").set_value("31")
    at = at.button(key="cases_new_lesion_submit").click().run()
    assert_no_exception(at)
    assert at.success[0].value == "Lesion L02 added (Femur)."
    with Session(engine) as session:
        lesions = session.exec(select(Lesion).order_by(Lesion.code)).all()
        assert [(x.code, x.site_code, x.laterality, x.size_mm) for x in lesions][-1] == ("L02", "FEMUR", "left", 31.0)
    assert "36" in at.download_button(key="cases_labels_print").proto.label  # both lesions' regions on the sheet


def test_a_pi_cannot_add_a_lesion(db_url, pi, opened):
    at = page(db_url, "pi")
    assert not [b for b in at.button if b.key == "cases_new_lesion_submit"]
