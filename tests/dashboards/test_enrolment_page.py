"""The Enrolment page (coordinators, technicians, administrators): register a donor, record consent versions,
withdraw some scopes or all consent (destroying the material only once confirmed), add treatment lines and events;
a refused form names the field, writes nothing and keeps what was typed. The donor view shows the consent history."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from biobank.db.engine import session_scope
from biobank.models import ClinicalEvent, Consent, ConsentWithdrawal, Donor, Specimen, TreatmentLine, User
from biobank.services import donors
from biobank.services.inputs import DonorCreate
from dashboards.shell.navigation import PAGES
from tests.conftest import DEATH
from tests.support.apptest import assert_no_exception, make_app
from tests.support.dbtools import snapshot
from tests.support.factories import donor_with_region


@pytest.fixture
def coord(engine) -> User:
    with Session(engine, expire_on_commit=False) as session:
        user = User(username="coord", role="coordinator", full_name="Cora Coordinator")
        session.add(user)
        session.commit()
        return user


@pytest.fixture
def consented(engine, coord):
    """RA-0001, consented on 1 Jan 2025 to research use, sequencing and models."""
    with session_scope(engine) as session:
        donors.register_donor(session, actor=coord, data=DonorCreate(code="RA-0001", sex="female"))
        donors.record_consent(session, actor=coord, donor_code="RA-0001", given_by="donor",
                              consented_on=date(2025, 1, 1), form_version="ICF-v3",
                              scopes={"research_use", "genomic_sequencing", "model_derivation"})


def page(db_url: str, username: str = "coord", name: str = "enrolment") -> AppTest:
    at = make_app(db_url, page=name)
    at.session_state["username"] = username
    return at.run()


def submit(at: AppTest, key: str) -> AppTest:
    at = at.button(key=key).click().run()
    assert_no_exception(at)
    return at


def history_table(at: AppTest):
    """The consent history table (a dataframe is found by its columns, not its key)."""
    return next(df.value for df in at.dataframe if "in force" in df.value.columns)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_the_page_is_for_coordinators_technicians_and_administrators():
    [spec] = [spec for spec in PAGES if spec.module == "enrolment"]
    assert spec.roles == {"coordinator", "technician", "admin"} and spec.section == "Cohort"


@pytest.mark.parametrize("username", ["viewer", "pi"])
def test_a_viewer_or_a_pi_cannot_open_the_page(db_url, engine, viewer, pi, consented, username):
    at = page(db_url, username)
    assert_no_exception(at)
    assert not [t for t in at.title if t.value == "Enrolment"]
    assert not [b for b in at.button if b.key == "enrol_reg_submit"]


def test_a_coordinator_registers_a_donor_with_a_generated_code_and_the_form_empties(db_url, engine, coord):
    at = page(db_url)
    assert_no_exception(at)
    assert at.text_input(key="enrol_reg_code").placeholder == "empty: RA-0001"
    at.text_input(key="enrol_reg_diagnosis").set_value("Invasive ductal carcinoma of breast")
    at.selectbox(key="enrol_reg_site").set_value("BREAST")
    at.text_input(key="enrol_reg_topography").set_value("C50.9")
    at.text_input(key="enrol_reg_morphology").set_value("8500/3")
    at.selectbox(key="enrol_reg_er").set_value("positive")
    at = submit(at, "enrol_reg_submit")
    assert not errors(at), errors(at)
    assert at.success[0].value == "Donor RA-0001 registered: record the consent below."
    with Session(engine) as session:
        donor = session.exec(select(Donor)).one()
    assert (donor.code, donor.primary_site_code, donor.icdo3_morphology, donor.er_status, donor.sex) == (
        "RA-0001", "BREAST", "8500/3", "positive", "female")
    assert at.text_input(key="enrol_reg_diagnosis").value == ""  # emptied for the next donor
    assert at.selectbox(key="enrol_donor").value == "RA-0001"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("enrol_reg_age", -3, "register: Age at death (-3 years) cannot be negative"),
        ("enrol_reg_hardy", 7, "register: Hardy scale (7) must be at most 4"),
        ("enrol_reg_diagnosis", "d" * 201, "register: Primary diagnosis (" + "d" * 59 + "…) is too long: at most 200 characters"),
        ("enrol_reg_diagnosis", "carcinoma, DOB 1956-03-02", "looks like a personal identifier"),
        ("enrol_reg_code", "Jane Smith", "register: Code (Jane Smith): use only letters"),
    ],
)
def test_a_refused_registration_names_the_field_writes_nothing_and_keeps_what_was_typed(db_url, engine, coord, field,
                                                                                       value, message):
    at = page(db_url)
    at.text_input(key="enrol_reg_cause").set_value("Progressive disease")
    widget = at.number_input(key=field) if isinstance(value, int) else at.text_input(key=field)
    widget.set_value(value)
    before = snapshot(engine)
    at = submit(at, "enrol_reg_submit")
    assert any(message in e for e in errors(at)), errors(at)
    assert snapshot(engine) == before
    kept = at.number_input(key=field) if isinstance(value, int) else at.text_input(key=field)
    assert kept.value == value and at.text_input(key="enrol_reg_cause").value == "Progressive disease"


def test_consent_versions_re_consent_and_scope_change(db_url, engine, coord, consented):
    at = page(db_url)
    assert at.multiselect(key="enrol_consent_scopes").value == ["research_use", "genomic_sequencing", "model_derivation"]
    assert at.radio(key="enrol_consent_change").value == "re_consent"  # a donor with a consent: a new version
    at.date_input(key="enrol_consent_on").set_value(date(2099, 1, 1))
    at.text_input(key="enrol_consent_form").set_value("ICF-v4")
    before = snapshot(engine)
    at = submit(at, "enrol_consent_submit")
    assert errors(at) and errors(at)[0].startswith("consent: Consent date (01 Jan 2099) is in the future"), errors(at)
    assert snapshot(engine) == before and at.text_input(key="enrol_consent_form").value == "ICF-v4"
    at.date_input(key="enrol_consent_on").set_value(date(2025, 6, 1))
    at.text_input(key="enrol_consent_taken_by").set_value("Dr Rao")
    at = submit(at, "enrol_consent_submit")
    assert not errors(at), errors(at)
    assert at.success[0].value == "Re-consent (a new form signed) of RA-0001 recorded."
    at.radio(key="enrol_consent_change").set_value("scope_change")
    at.multiselect(key="enrol_consent_scopes").set_value(["research_use", "genomic_sequencing"])
    at.date_input(key="enrol_consent_on").set_value(date(2025, 7, 1))
    at.text_input(key="enrol_consent_reason").set_value("no more organoids")
    at = submit(at, "enrol_consent_submit")
    assert not errors(at), errors(at)
    with Session(engine) as session:
        versions = session.exec(select(Consent).order_by(Consent.id)).all()
        assert [(c.change, c.form_version, c.taken_by, c.model_derivation) for c in versions] == [
            ("initial", "ICF-v3", None, True), ("re_consent", "ICF-v4", "Dr Rao", True),
            ("scope_change", None, None, False)]
        state = donors.consent_state(session, donors.get_donor(session, "RA-0001"))
    assert state.scopes == {"research_use", "genomic_sequencing"}
    history = history_table(at)
    assert history["change"].tolist() == ["scope change", "re consent", "initial"]
    assert history["in force"].tolist() == ["yes", "", ""]


def test_a_partial_withdrawal_keeps_the_donor_consented_to_the_rest(db_url, engine, coord, consented):
    at = page(db_url)
    at.selectbox(key="enrol_wd_by").set_value("next_of_kin")
    at.datetime_input(key="enrol_wd_at").set_value(DEATH.replace(tzinfo=None))
    at = at.radio(key="enrol_wd_extent").set_value("some").run()
    at = submit(at, "enrol_wd_submit")  # no scope chosen, no reason
    assert errors(at) == ["withdrawal: Scopes withdrawn: choose the scopes to withdraw, or withdraw all consent."]
    at.multiselect(key="enrol_wd_scopes").set_value(["genomic_sequencing"])
    at = submit(at, "enrol_wd_submit")
    assert errors(at) == ["withdrawal: Reason: say why consent was withdrawn"]
    assert at.multiselect(key="enrol_wd_scopes").value == ["genomic_sequencing"]  # kept
    at.text_area(key="enrol_wd_reason").set_value("family object to sequencing")
    at = submit(at, "enrol_wd_submit")
    assert not errors(at), errors(at)
    assert at.success[0].value == "genomic sequencing withdrawn for RA-0001."
    with Session(engine) as session:
        assert session.exec(select(ConsentWithdrawal)).first() is None
        latest = donors.latest_consent(session, donors.get_donor(session, "RA-0001").id)
        assert latest is not None and (latest.change, latest.given_by, latest.genomic_sequencing) == (
            "partial_withdrawal", "next_of_kin", False)
    assert "Consent in force: research use, model derivation" in at.success[1].value


def test_destroying_the_material_needs_the_box_ticked_then_disposes_of_it(db_url, engine, tech, coord):
    with session_scope(engine) as session:
        made = donor_with_region(session, tech)
    at = page(db_url)
    at.selectbox(key="enrol_wd_by").set_value("next_of_kin")
    at.datetime_input(key="enrol_wd_at").set_value(DEATH.replace(tzinfo=None, day=20))
    at.text_area(key="enrol_wd_reason").set_value("family asked")
    at = at.radio(key="enrol_wd_material").set_value("destroy").run()
    assert f"{len(made)} specimen(s) of RA-0001 still held will be disposed of" in at.warning[0].value
    assert at.button(key="enrol_wd_submit").disabled
    at = at.checkbox(key="enrol_wd_confirm").check().run()
    at = submit(at, "enrol_wd_submit")
    assert not [e for e in errors(at) if e.startswith("withdrawal:")], errors(at)
    assert at.success[0].value == f"Consent of RA-0001 withdrawn; {len(made)} specimen(s) disposed of."
    with Session(engine) as session:
        assert {s.status for s in session.exec(select(Specimen))} == {"disposed"}
        assert session.exec(select(ConsentWithdrawal)).one().material == "destroy"
    assert "Consent withdrawn" in at.error[0].value
    assert not [b for b in at.button if b.key == "enrol_wd_submit"]  # a donor withdraws once


def test_treatment_lines_and_events_by_days_or_by_dates(db_url, engine, tech, coord, consented):
    at = page(db_url)
    at.text_input(key="enrol_tx_agents").set_value("letrozole + palbociclib")
    at.date_input(key="enrol_tx_start_on").set_value(date(2025, 3, 1))
    before = snapshot(engine)
    at = submit(at, "enrol_tx_submit")
    assert errors(at) == ["treatment line: Treatment start (01 Mar 2025): record the death first, or give days "
                          "before death"]
    assert snapshot(engine) == before and at.text_input(key="enrol_tx_agents").value == "letrozole + palbociclib"
    at.date_input(key="enrol_tx_start_on").set_value(None)
    at.number_input(key="enrol_tx_start_days").set_value(400)
    at.number_input(key="enrol_tx_end_days").set_value(500)
    at = submit(at, "enrol_tx_submit")
    assert errors(at) == ["treatment line: Treatment end (500 days before death) must lie between 0 and the start "
                          "(400 days before death)"]
    at.number_input(key="enrol_tx_end_days").set_value(100)
    at = submit(at, "enrol_tx_submit")
    assert not errors(at), errors(at)
    assert at.success[0].value == "Treatment line 1 of RA-0001 added."
    assert at.text_input(key="enrol_tx_agents").value == ""
    at.number_input(key="enrol_ev_days").set_value(-4)
    at = submit(at, "enrol_ev_submit")
    assert errors(at) == ["clinical event: Days before death (-4 days) cannot be negative"]
    at.number_input(key="enrol_ev_days").set_value(30)
    at.selectbox(key="enrol_ev_site").set_value("FEMUR")
    at = submit(at, "enrol_ev_submit")
    assert not errors(at), errors(at)
    assert at.success[0].value == "Fracture of RA-0001 added, 30 days before death."
    with Session(engine) as session:
        line = session.exec(select(TreatmentLine)).one()
        event = session.exec(select(ClinicalEvent)).one()
    assert (line.line_number, line.start_days_before_death, line.end_days_before_death) == (1, 400, 100)
    assert (event.kind, event.days_before_death, event.site_code) == ("fracture", 30, "FEMUR")


def test_the_donor_view_shows_the_consent_history_and_the_withdrawal(db_url, engine, coord, consented, viewer):
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=coord, donor_code="RA-0001", requested_by="donor",
                                withdrawn_at=DEATH, reason="no sequencing", scopes={"genomic_sequencing"})
        donors.withdraw_consent(session, actor=coord, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=DEATH.replace(day=20), reason="family asked", material="allow_distributed")
    at = page(db_url, "viewer", name="donor")
    assert_no_exception(at)
    history = history_table(at)
    assert history["change"].tolist() == ["partial withdrawal", "initial"]
    assert history["taken by"].tolist() == ["Cora Coordinator", ""]
    assert history["form"].tolist() == ["ICF-v3", "ICF-v3"]
    assert history["scopes"].tolist() == ["research use, model derivation",
                                          "research use, genomic sequencing, model derivation"]
    withdrawn = next(m.value for m in at.markdown if m.value.startswith("**Withdrawn**"))
    assert "requested by next of kin, entered by coord: family asked" in withdrawn
    assert "already shipped (0 specimen(s)) may still be used by its recipients" in withdrawn
