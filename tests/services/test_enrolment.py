"""Enrolment (issue #16 item 1): generated donor codes, consent versions where the latest governs, partial and full
withdrawals (with what happens to the material), and the clinical history in days before death."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, ConsentError, PermissionDeniedError, ValidationError
from biobank.exports import service as export_service
from biobank.models import (
    ClinicalEvent,
    Consent,
    ConsentWithdrawal,
    CustodyEvent,
    Specimen,
    SpecimenLocation,
    TreatmentLine,
    User,
)
from biobank.queries.enrolment import consent_history, enrolment_rows
from biobank.services import derived, donors, planning, storage
from biobank.services import distribution as orders
from biobank.services.inputs import DonorCreate, ModelCreate
from tests.conftest import DEATH
from tests.support.dbtools import assert_refused, snapshot
from tests.support.factories import by_format, donor_with_region, lab

SEQ = {"research_use", "genomic_sequencing", "model_derivation", "external_sharing"}


@pytest.fixture
def coord(engine) -> User:
    with Session(engine, expire_on_commit=False) as session:
        user = User(username="coord", role="coordinator", full_name="Cora Coordinator")
        session.add(user)
        session.commit()
        return user


def enrolled(engine, actor, code="RA-0001", scopes=frozenset({"research_use", "genomic_sequencing"}), on=date(2025, 1, 1)):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=actor, data=DonorCreate(code=code, sex="female"))
        donors.record_consent(session, actor=actor, donor_code=code, given_by="donor", consented_on=on, scopes=set(scopes),
                              form_version="ICF-v3.1", taken_by="Cora Coordinator")


# ------------------------------------------------------------------------------------------------------ donors


def test_a_donor_without_a_code_gets_the_next_one(engine, coord):
    with session_scope(engine) as session:
        assert donors.register_donor(session, actor=coord, data=DonorCreate()).code == "RA-0001"
        donors.register_donor(session, actor=coord, data=DonorCreate(code="RA-0012"))
        donors.register_donor(session, actor=coord, data=DonorCreate(code="XY-9999"))
        made = donors.register_donor(session, actor=coord, data=DonorCreate(sex="female", icdo3_topography="c50.9",
                                                                         icdo3_morphology="8500/3"))
        assert (made.code, made.icdo3_topography) == ("RA-0013", "C50.9")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"primary_diagnosis": "Breast carcinoma, DOB 12/03/1956"}, r"^Primary diagnosis \(.*\): looks like a personal identifier"),
        ({"cause_of_death": "see hospital number 4471203"}, r"^Cause of death \(.*\): looks like a personal identifier"),
        ({"icdo3_topography": "breast"}, r"^ICD-O-3 topography \(BREAST\): an ICD-O-3 topography code looks like 'C50.9'"),
        ({"icdo3_morphology": "8500"}, r"^ICD-O-3 morphology \(8500\): an ICD-O-3 morphology code looks like '8500/3'"),
        ({"primary_diagnosis": "x" * 201}, r"^Primary diagnosis \(x+…\) is too long: at most 200 characters"),
        ({"status": "withdrawn"}, r"^Status \(withdrawn\) is set by recording the withdrawal"),
    ],
)
def test_identifiers_and_malformed_diagnosis_codes_are_refused_and_nothing_is_written(engine, coord, fields, match):
    assert_refused(engine, ValidationError, match,
                   lambda s: donors.register_donor(s, actor=coord, data=DonorCreate(code="RA-0002", **fields)))


def test_viewers_and_pis_cannot_enrol_but_a_coordinator_can(engine, viewer, pi, coord):
    for actor in (viewer, pi):
        assert_refused(engine, PermissionDeniedError, "enrol",
                       lambda s, actor=actor: donors.register_donor(s, actor=actor, data=DonorCreate(code="RA-0001")))
    enrolled(engine, coord)
    for actor in (viewer, pi):
        assert_refused(engine, PermissionDeniedError, "enrol", lambda s, actor=actor: donors.record_consent(
            s, actor=actor, donor_code="RA-0001", given_by="donor", consented_on=date(2025, 2, 1), scopes={"research_use"}))
        assert_refused(engine, PermissionDeniedError, "enrol", lambda s, actor=actor: donors.add_treatment_line(
            s, actor=actor, donor_code="RA-0001", agents="letrozole", start_days_before_death=100))
        assert_refused(engine, PermissionDeniedError, "enrol", lambda s, actor=actor: donors.add_clinical_event(
            s, actor=actor, donor_code="RA-0001", kind="fracture", days_before_death=10))
    assert_refused(engine, PermissionDeniedError, "withdraw", lambda s: donors.withdraw_consent(
        s, actor=viewer, donor_code="RA-0001", requested_by="donor", withdrawn_at=DEATH, reason="x"))


# ------------------------------------------------------------------------------------------------ consent versions


def test_consent_versions_keep_the_history_and_the_latest_governs(engine, coord):
    enrolled(engine, coord, scopes={"research_use", "genomic_sequencing", "model_derivation"})
    with session_scope(engine) as session:
        again = donors.record_consent(session, actor=coord, donor_code="ra-0001", given_by="donor",
                                      consented_on=date(2025, 3, 1), scopes={"research_use", "genomic_sequencing"},
                                      form_version="ICF-v4.0", taken_by="Dr Rao", reason="new form")
        assert again.change == "re_consent"  # a new form version
        scope = donors.record_consent(session, actor=coord, donor_code="RA-0001", given_by="donor",
                                      consented_on=date(2025, 3, 1), scopes={"research_use", "genomic_sequencing",
                                                                            "recontact"}, form_version="ICF-v4.0")
        assert scope.change == "scope_change"
    with session_scope(engine) as session:
        donor = donors.get_donor(session, "RA-0001")
        assert donors.consent_state(session, donor).scopes == {"research_use", "genomic_sequencing", "recontact"}
        with pytest.raises(ConsentError, match="no consent to model_derivation"):
            donors.require_consent(session, donor, "model_derivation")  # given in version 1, left out since
        history = consent_history(session, "RA-0001")
    assert [(v["version"], v["change"], v["form_version"], v["taken_by"], v["current"]) for v in history["versions"]] == [
        (1, "initial", "ICF-v3.1", "Cora Coordinator", False),
        (2, "re_consent", "ICF-v4.0", "Dr Rao", False),
        (3, "scope_change", "ICF-v4.0", None, True),
    ]
    assert history["versions"][0]["scopes"] == ["research_use", "genomic_sequencing", "model_derivation"]
    assert history["versions"][1]["entered_by"] == "coord" and history["withdrawal"] is None


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"change": "initial"}, ValidationError, r"^Consent change \(initial\): donor RA-0001 already has a consent"),
        ({"change": "scope_change", "scopes": {"research_use", "genomic_sequencing"}}, ValidationError,
         "are those of the current consent"),
        ({"change": "partial_withdrawal"}, ValidationError, "is recorded as a withdrawal"),
        ({"consented_on": date(2024, 12, 1)}, ValidationError,
         r"^Consent date \(01 Dec 2024\) cannot be before the current consent \(01 Jan 2025\)"),
        ({"consented_on": date(2099, 1, 1)}, ValidationError, r"^Consent date \(01 Jan 2099\) is in the future"),
        ({"scopes": {"research_use", "telepathy"}}, ValidationError, r"^Consent scope \(telepathy\) must be one of"),
        ({"scopes": set()}, ValidationError, r"^Consent scopes: choose at least one scope"),
        ({"form_version": "v" * 41}, ValidationError, r"^Consent form version \(v+…?\) is too long: at most 40"),
        ({"taken_by": "t" * 121}, ValidationError, r"^Consent taken by .* is too long: at most 120"),
        ({"given_by": "neighbour"}, ValidationError, r"^Consent given by \(neighbour\) must be one of"),
        ({"donor_code": "RA-0404"}, Exception, "donor 'RA-0404' not found"),
    ],
)
def test_bad_consent_input_is_refused_in_the_fields_words_and_nothing_is_written(engine, coord, fields, error, match):
    enrolled(engine, coord)
    values = {"donor_code": "RA-0001", "given_by": "donor", "consented_on": date(2025, 6, 1),
              "scopes": {"research_use"}} | fields
    assert_refused(engine, error, match, lambda s: donors.record_consent(s, actor=coord, **values))


def test_the_first_consent_cannot_be_a_change_and_a_donor_cannot_sign_after_death(engine, coord, tech):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=coord, data=DonorCreate(code="RA-0001"))
    assert_refused(engine, ValidationError, "needs an earlier consent", lambda s: donors.record_consent(
        s, actor=coord, donor_code="RA-0001", given_by="donor", consented_on=date(2025, 1, 1),
        scopes={"research_use"}, change="re_consent"))
    with session_scope(engine) as session:
        donor_with_region(session, tech, code="RA-0002", case="RAP-2")  # died on DEATH
    assert_refused(engine, ValidationError, r"cannot be after the donor's death \(14 Mar 2026\)", lambda s: donors.record_consent(
        s, actor=coord, donor_code="RA-0002", given_by="donor", consented_on=date(2026, 4, 1), scopes={"research_use"}))
    with session_scope(engine) as session:  # the next of kin may
        donors.record_consent(session, actor=coord, donor_code="RA-0002", given_by="next_of_kin",
                              consented_on=date(2026, 4, 1), scopes={"research_use", "model_derivation"})


# --------------------------------------------------------------------------------------------------- withdrawals


def test_a_partial_withdrawal_of_sequencing_blocks_sequencing_but_not_models(engine, coord, tech, pi, admin):
    with session_scope(engine) as session:
        made = donor_with_region(session, tech, scopes=frozenset(SEQ))
        viable = by_format(made, "viable_cryo")[0]
        frozen = by_format(made, "snap_frozen")[0]
    with session_scope(engine) as session:
        done = donors.withdraw_consent(session, actor=coord, donor_code="RA-0001", requested_by="next_of_kin",
                                       withdrawn_at=DEATH + timedelta(days=10), reason="family object to sequencing",
                                       scopes={"genomic_sequencing"})
        assert not done.full and done.withdrawal is None
        version = done.version
        assert version is not None
        assert (version.change, version.given_by, version.reason, version.taken_by) == (
            "partial_withdrawal", "next_of_kin", "family object to sequencing", "Cora Coordinator")
    with session_scope(engine) as session:
        donor = donors.get_donor(session, "RA-0001")
        state = donors.consent_state(session, donor)
        assert not state.withdrawn and donor.status != "withdrawn"
        assert state.scopes == {"research_use", "model_derivation", "external_sharing"}
        with pytest.raises(ConsentError, match="no consent to genomic_sequencing"):
            export_service.select_frames(session, target="sarek", donor_codes=["RA-0001"])
        assert not export_service.select_frames(session, target="tables", donor_codes=["RA-0001"]).donors.empty
        planning.create_plan(session, actor=pi, code="PL-1", name="phylogeny", purpose="phylogeny", assay="wgs",
                             donor_codes=["RA-0001"])
        report = planning.check_plan(session, "PL-1")
        assert "genomic_consent" in {f.rule for f in report.errors}
        orders.create_order(session, actor=pi, study="S", recipient="Core", use="sequencing", code="DO-1")
        with pytest.raises(ConsentError, match="no consent to genomic_sequencing"):
            orders.add_item(session, actor=pi, order_code="DO-1", specimen_code=frozen, quantity=5)
    with session_scope(engine) as session:  # models are still consented
        model = derived.create_model(session, actor=tech, data=ModelCreate(source_code=viable, kind="organoid",
                                                                            initiated_on=date(2026, 3, 20)))
        assert model.code


@pytest.mark.parametrize(
    ("scopes", "extra", "error", "match"),
    [
        ({"research_use"}, {}, ValidationError, "research use underlies every other use"),
        ({"recontact"}, {}, ValidationError, r"^Consent scopes \(recontact\): not in the current consent"),
        ({"genomic_sequencing", "research_use"}, {}, ValidationError, "would leave nothing consented"),
        ({"genomic_sequencing"}, {"material": "destroy"}, ValidationError, r"^Material held \(destroy\) is for a full withdrawal only"),
        ({"dreams"}, {}, ValidationError, r"^Consent scope \(dreams\) must be one of"),
        ({"genomic_sequencing"}, {"reason": "  "}, ValidationError, "^Reason.*say why"),
        ({"genomic_sequencing"}, {"reason": "r" * 501}, ValidationError, "^Reason .* is too long: at most 500"),
        ({"genomic_sequencing"}, {"withdrawn_at": DEATH.replace(year=2099)}, ValidationError,
         r"^Consent withdrawn \(.*\) is in the future"),
        ({"genomic_sequencing"}, {"withdrawn_at": DEATH.replace(year=2024)}, ValidationError,
         r"cannot be before the current consent \(01 Jan 2025\)"),
    ],
)
def test_bad_partial_withdrawals_are_refused_and_nothing_is_written(engine, coord, scopes, extra, error, match):
    enrolled(engine, coord)
    values = {"requested_by": "donor", "withdrawn_at": DEATH, "reason": "asked", "scopes": scopes} | extra
    assert_refused(engine, error, match,
                   lambda s: donors.withdraw_consent(s, actor=coord, donor_code="RA-0001", **values))


def test_a_partial_withdrawal_needs_a_consent_to_withdraw_from(engine, coord):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=coord, data=DonorCreate(code="RA-0001"))
    assert_refused(engine, ConsentError, "no consent is recorded", lambda s: donors.withdraw_consent(
        s, actor=coord, donor_code="RA-0001", requested_by="donor", withdrawn_at=DEATH, reason="x",
        scopes={"genomic_sequencing"}))


@pytest.fixture
def stored(engine, tech, pi):
    """RA-0001's region A: snap-frozen and OCT in BOX1, FFPE in the drawer, viable in LN2, one tube shipped."""
    with session_scope(engine) as session:
        lab(session, tech)
        made = donor_with_region(session, tech)
        frozen = by_format(made, "snap_frozen")
        storage.store(session, actor=tech, codes=[*frozen, *by_format(made, "oct")], box_code="BOX1", at="A1")
        storage.store(session, actor=tech, codes=by_format(made, "ffpe"), box_code="DRAWER1")
        storage.store(session, actor=tech, codes=by_format(made, "viable_cryo"), box_code="LNBOX1")
        orders.create_order(session, actor=pi, study="S", recipient="Core", use="research", code="DO-1")
        orders.add_item(session, actor=pi, order_code="DO-1", specimen_code=frozen[1])
        orders.approve(session, actor=pi, order_code="DO-1")
        orders.ship(session, actor=tech, order_code="DO-1", shipping_temperature="-60to-85")
        return {s.code: s.storage_format for s in made}, frozen[1]


def test_a_full_withdrawal_that_destroys_disposes_of_everything_still_held(engine, coord, stored):
    codes, shipped = stored
    with session_scope(engine) as session:
        done = donors.withdraw_consent(session, actor=coord, donor_code="RA-0001", requested_by="next_of_kin",
                                       withdrawn_at=DEATH + timedelta(days=30), reason="family asked",
                                       material="destroy")
        assert done.full and set(done.disposed) == set(codes) - {shipped}
    with Session(engine) as session:
        specimens = {s.code: s for s in session.exec(select(Specimen))}
        assert specimens[shipped].status == "distributed"  # already with its recipient: untouched
        assert {c for c, s in specimens.items() if s.status == "disposed"} == set(codes) - {shipped}
        assert session.exec(select(SpecimenLocation)).all() == []  # every position is free again
        events = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "disposed")).all()
        assert len(events) == len(codes) - 1
        assert all("consent withdrawn on 13 Apr 2026 (requested by next of kin)" in (e.note or "") for e in events)
        assert {e.from_location for e in events} >= {"UH/LAB1/FRZ1/R1/BOX1:A1", "UH/LAB1/CAB1/DRAWER1:1"}
        withdrawal = session.exec(select(ConsentWithdrawal)).one()
        assert (withdrawal.material, withdrawal.entered_by_id) == ("destroy", session.exec(
            select(User.id).where(User.username == "coord")).one())


def test_destroying_is_refused_whole_while_a_specimen_is_checked_out(engine, coord, tech, stored):
    codes, _shipped = stored
    with session_scope(engine) as session:
        storage.check_out(session, actor=tech, code=next(c for c, f in codes.items() if f == "oct"))
    before = snapshot(engine)
    with pytest.raises(ConflictError, match=r"RA0001-L01A-OC1 is checked out: return it before the material is destroyed"), \
            session_scope(engine) as session:
        donors.withdraw_consent(session, actor=coord, donor_code="RA-0001", requested_by="donor",
                                withdrawn_at=DEATH, reason="changed mind", material="destroy")
    assert snapshot(engine) == before  # no withdrawal, no disposal, no donor status change


@pytest.mark.parametrize("material", [None, "keep_blocked", "allow_distributed"])
def test_a_full_withdrawal_that_keeps_the_material_blocks_it_and_records_the_choice(engine, coord, stored, material):
    _codes, shipped = stored
    with session_scope(engine) as session:
        done = donors.withdraw_consent(session, actor=coord, donor_code="RA-0001", requested_by="donor",
                                       withdrawn_at=DEATH, reason="changed mind", material=material)
        assert done.disposed == ()
    with session_scope(engine) as session:
        assert {s.status for s in session.exec(select(Specimen)) if s.code != shipped} == {"available"}
        donor = donors.get_donor(session, "RA-0001")
        assert donor.status == "withdrawn"
        with pytest.raises(ConsentError, match="consent was withdrawn"):
            donors.require_consent(session, donor, "research_use")
        history = consent_history(session, "RA-0001")
    assert history["withdrawal"]["material"] == (material or "keep_blocked")
    assert history["withdrawal"]["distributed_specimens"] == 1 and history["withdrawal"]["entered_by"] == "coord"
    assert_refused(engine, ConsentError, "consent was withdrawn", lambda s: donors.record_consent(
        s, actor=coord, donor_code="RA-0001", given_by="donor", consented_on=DEATH.date(), scopes={"research_use"}))
    assert_refused(engine, ConflictError, "already withdrawn", lambda s: donors.withdraw_consent(
        s, actor=coord, donor_code="RA-0001", requested_by="donor", withdrawn_at=DEATH, reason="again",
        scopes={"genomic_sequencing"}))


def test_an_unknown_material_is_refused(engine, coord):
    enrolled(engine, coord)
    assert_refused(engine, ValidationError, r"^Material held \(burn\) must be one of: destroy, keep_blocked", lambda s: donors.withdraw_consent(
        s, actor=coord, donor_code="RA-0001", requested_by="donor", withdrawn_at=DEATH, reason="x", material="burn"))


def test_the_enrolment_list_shows_the_consent_in_force(engine, coord, tech):
    enrolled(engine, coord, code="RA-0001")
    enrolled(engine, coord, code="RA-0002", scopes=SEQ)
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=coord, donor_code="RA-0002", requested_by="donor", withdrawn_at=DEATH,
                                reason="x", scopes={"external_sharing"})
        donors.register_donor(session, actor=coord, data=DonorCreate(code="RA-0003"))
        rows = {r["code"]: r for r in enrolment_rows(session)}
    assert rows["RA-0001"]["consent"] == "research_use, genomic_sequencing"
    assert (rows["RA-0002"]["consent"], rows["RA-0002"]["versions"]) == (
        "research_use, genomic_sequencing, model_derivation", 2)
    assert (rows["RA-0003"]["consent"], rows["RA-0003"]["death_recorded"]) == ("none", False)


# ------------------------------------------------------------------------------------------ clinical history


def test_dates_become_days_before_death_once_the_death_is_recorded(engine, coord, tech):
    enrolled(engine, coord)
    assert_refused(engine, ValidationError, r"^Treatment start \(01 Mar 2025\): record the death first, or give days "
                   "before death", lambda s: donors.add_treatment_line(s, actor=coord, donor_code="RA-0001",
                                                                      agents="letrozole", start_on=date(2025, 3, 1)))
    with session_scope(engine) as session:
        donor_with_region(session, tech, code="RA-0002", case="RAP-2")  # died 14 Mar 2026
        first = donors.add_treatment_line(session, actor=coord, donor_code="RA-0002", agents="letrozole + palbociclib",
                                          category="cdk46_inhibitor", start_on=date(2025, 3, 14), end_on=date(2026, 3, 4))
        second = donors.add_treatment_line(session, actor=coord, donor_code="RA-0002", agents="capecitabine",
                                           start_days_before_death=9)
        event = donors.add_clinical_event(session, actor=coord, donor_code="RA-0002", kind="fracture",
                                          occurred_on=date(2026, 2, 12), site_code="FEMUR")
        assert (first.line_number, first.start_days_before_death, first.end_days_before_death) == (1, 365, 10)
        assert (second.line_number, second.start_days_before_death) == (2, 9)
        assert event.days_before_death == 30
    bad = [
        (r"^Treatment start \(01 Apr 2026\) cannot be after death \(14 Mar 2026\)", {"start_on": date(2026, 4, 1)}),
        (r"^Treatment start \(01 Mar 2026\): give treatment start as days before death or as a date, not both",
         {"start_on": date(2026, 3, 1), "start_days_before_death": 13}),
        (r"^Treatment start is required", {}),
        (r"^Treatment start \(-5 days before death\) cannot be negative", {"start_days_before_death": -5}),
        (r"^Treatment start \(01 Jan 2099\) is in the future", {"start_on": date(2099, 1, 1)}),
        (r"^Treatment end \(10 Mar 2026\) must lie between 0 and the start \(1 days before death\)",
         {"start_days_before_death": 1, "end_on": date(2026, 3, 10)}),
        (r"^Agents \(a+…\) is too long: at most 300", {"start_days_before_death": 1, "agents": "a" * 301}),
        (r"^Agents.*name the agents", {"start_days_before_death": 1, "agents": " "}),
        (r"^Treatment line \(1\)|line 1 already exists", {"start_days_before_death": 1, "line_number": 1}),
    ]
    for match, fields in bad:
        values = {"agents": "x"} | fields
        error = ConflictError if "line_number" in fields else ValidationError
        assert_refused(engine, error, match, lambda s, values=values: donors.add_treatment_line(
            s, actor=coord, donor_code="RA-0002", **values))
    for match, fields in [
        (r"^Days before death \(-1 days\) cannot be negative", {"days_before_death": -1}),
        (r"^Date of the event \(15 Mar 2026\) cannot be after death", {"occurred_on": date(2026, 3, 15)}),
        (r"^Days before death is required", {}),
        (r"^Note \(.*\): looks like a personal identifier", {"days_before_death": 3, "note": "MRN 12345678"}),
        (r"^Note \(n+…\) is too long: at most 300", {"days_before_death": 3, "note": "n" * 301}),
        (r"^Kind \(meteor\) must be one of", {"days_before_death": 3, "kind": "meteor"}),
    ]:
        values = {"kind": "fracture"} | fields
        assert_refused(engine, ValidationError, match, lambda s, values=values: donors.add_clinical_event(
            s, actor=coord, donor_code="RA-0002", **values))
    with Session(engine) as session:
        assert len(session.exec(select(TreatmentLine)).all()) == 2
        assert len(session.exec(select(ClinicalEvent)).all()) == 1
        assert len(session.exec(select(Consent)).all()) == 2
