"""Donors, consent, withdrawal and treatment history."""

from __future__ import annotations

from datetime import date

import pytest

from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, ConsentError, ValidationError
from biobank.services import donors
from biobank.services.inputs import DonorCreate
from tests.conftest import DEATH
from tests.support.dbtools import assert_refused
from tests.support.factories import H


def test_a_donor_is_a_pseudonymous_code(engine, tech):
    with session_scope(engine) as session:
        donor = donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001", sex="female", age_at_death=58, primary_site_code="BREAST", icdo3_topography="C50.9", icdo3_morphology="8500/3", er_status="positive", her2_status="negative", hardy_scale=2))
        assert donor.status == "enrolled"
    assert_refused(engine, ConflictError, "already exists", lambda s: donors.register_donor(s, actor=tech, data=DonorCreate(code="RA-0001")))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"code": "Jane Smith"}, r"^Code \(Jane Smith\): use only letters"),
        ({"code": ""}, "^Code: use only letters"),
        ({"code": "RA:0001"}, "no spaces or colons"),
        ({"sex": "F"}, r"^Sex \(F\) must be one of: male, female"),
        ({"age_at_death": 140}, r"^Age at death \(140 years\) must be at most 130$"),
        ({"hardy_scale": 5}, r"^Hardy scale \(5\) must be at most 4$"),
        ({"primary_site_code": "MOON"}, "not an anatomical-site code"),
        ({"er_status": "maybe"}, r"^ER status \(maybe\) must be one of"),
    ],
)
def test_donor_fields_are_checked(engine, tech, fields, match):
    values = {"code": "RA-0002"} | fields
    assert_refused(engine, ValidationError, match, lambda s: donors.register_donor(s, actor=tech, data=DonorCreate(**values)))


def test_the_latest_consent_version_governs_and_a_withdrawal_blocks_every_use(engine, tech):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
        donors.record_consent(session, actor=tech, donor_code="RA-0001", given_by="donor", consented_on=date(2025, 1, 2),
                              scopes={"research_use", "model_derivation"})
        donors.record_consent(session, actor=tech, donor_code="RA-0001", given_by="next_of_kin", consented_on=date(2025, 3, 2),
                              scopes={"research_use", "genomic_sequencing"})
    with session_scope(engine) as session:
        donor = donors.get_donor(session, "RA-0001")
        state = donors.consent_state(session, donor)
        assert state.scopes == {"research_use", "genomic_sequencing"}  # not the union: model derivation was left out
        donors.require_consent(session, donor, "genomic_sequencing")
        with pytest.raises(ConsentError, match="no consent to external_sharing"):
            donors.require_consent(session, donor, "external_sharing")
        donors.withdraw_consent(session, actor=tech, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=DEATH + 100 * H, reason="family request")
    with session_scope(engine) as session:
        donor = donors.get_donor(session, "RA-0001")
        assert donor.status == "withdrawn"
        with pytest.raises(ConsentError, match="consent was withdrawn"):
            donors.require_consent(session, donor, "genomic_sequencing")
    assert_refused(engine, ConflictError, "already withdrawn",
             lambda s: donors.withdraw_consent(s, actor=tech, donor_code="RA-0001", requested_by="donor", withdrawn_at=DEATH, reason="x"))
    assert_refused(engine, ConsentError, "consent was withdrawn",
             lambda s: donors.record_consent(s, actor=tech, donor_code="RA-0001", given_by="donor", consented_on=date(2026, 1, 1), scopes=set()))


def test_a_withdrawal_needs_a_reason(engine, tech):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
    assert_refused(engine, ValidationError, "say why",
             lambda s: donors.withdraw_consent(s, actor=tech, donor_code="RA-0001", requested_by="donor", withdrawn_at=DEATH, reason=""))


def test_treatment_lines_are_days_before_death(engine, tech):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
        line = donors.add_treatment_line(session, actor=tech, donor_code="RA-0001", line_number=1, agents="letrozole",
                                         category="endocrine", start_days_before_death=900, end_days_before_death=500)
        assert line.best_response == "unknown"
        donors.add_clinical_event(session, actor=tech, donor_code="RA-0001", kind="fracture", days_before_death=40,
                                  site_code="FEMUR")
    assert_refused(engine, ValidationError, "must lie between 0 and the start",
             lambda s: donors.add_treatment_line(s, actor=tech, donor_code="RA-0001", line_number=2, agents="x",
                                                 start_days_before_death=100, end_days_before_death=200))
    assert_refused(engine, ConflictError, "line 1 already exists",
             lambda s: donors.add_treatment_line(s, actor=tech, donor_code="RA-0001", line_number=1, agents="x", start_days_before_death=1))
    assert_refused(engine, ValidationError, r"Category \(magic\) must be one of",
             lambda s: donors.add_treatment_line(s, actor=tech, donor_code="RA-0001", line_number=3, agents="x",
                                                 start_days_before_death=1, category="magic"))
