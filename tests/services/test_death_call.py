"""The death call (issue #16 item 2): the call opens the case, labels are pre-printed, the team notified, the autopsy
started and ended; corrections of recorded times need a reason, which the audit log keeps; the call checklist."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, ConsentError, PermissionDeniedError, ValidationError
from biobank.models import AuditLog, Autopsy
from biobank.models.base import table_of, utcnow
from biobank.queries import board
from biobank.queries.core import autopsy_summary
from biobank.services import cases, collection, donors
from biobank.services.inputs import DeathCall
from tests.conftest import DEATH
from tests.support.dbtools import assert_refused
from tests.support.factories import H, collect, enrol

PLACE = "Hospice St Anne, room 4"
CALLER = "night nurse J. Doe"


def call(donor: str = "RA-0001", **fields) -> DeathCall:
    values = {"donor_code": donor, "death_at": DEATH, "death_place": PLACE, "death_reported_by": CALLER,
              "death_reported_at": DEATH + timedelta(minutes=20), "refrigerated_at": DEATH + H,
              "prosector": "Dr A. Okafor", "team": "Rapid autopsy team"}
    return DeathCall(**{**values, **fields})


@pytest.fixture
def donor(engine, tech) -> str:
    with session_scope(engine) as session:
        enrol(session, tech)
    return "RA-0001"


def autopsy(engine, case: str = "RAP-2026-001") -> Autopsy:
    with Session(engine) as session:
        return collection.get_autopsy(session, case)


def audit_rows(engine, reason: str) -> list[AuditLog]:
    with Session(engine) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.table_name == "autopsy", AuditLog.reason == reason)))


# ------------------------------------------------------------------------------------------------ the call


def test_the_death_call_opens_a_case_with_a_generated_code_and_the_board_lists_it_once_started(engine, coordinator, tech, donor):
    with session_scope(engine) as session:
        opened = cases.open_case(session, actor=coordinator, data=call())
        assert opened.case_code == "RAP-2026-001"
        assert opened.status == "scheduled"
        assert donors.get_donor(session, donor).status == "deceased"
        assert board.running_cases(session) == []  # the board shows cases under way
    stored = autopsy(engine)
    assert (stored.death_at, stored.death_place, stored.death_reported_by) == (DEATH, PLACE, CALLER)
    assert stored.death_reported_at == DEATH + timedelta(minutes=20) and stored.refrigerated_at == DEATH + H
    assert (stored.prosector, stored.team) == ("Dr A. Okafor", "Rapid autopsy team")
    with session_scope(engine) as session:
        started = cases.start_autopsy(session, actor=coordinator, case_code="RAP-2026-001", at=DEATH + 2 * H)
        assert started.status == "in_progress"
        assert [row["case"] for row in board.running_cases(session)] == ["RAP-2026-001"]


def test_generated_case_codes_count_on_from_the_highest_of_the_year_of_death(engine, tech):
    with session_scope(engine) as session:
        for code in ("RA-0001", "RA-0002", "RA-0003"):
            enrol(session, tech, code)
        cases.open_case(session, actor=tech, data=call("RA-0001", case_code="RAP-2026-007"))
        assert cases.open_case(session, actor=tech, data=call("RA-0002")).case_code == "RAP-2026-008"
        earlier = DEATH.replace(year=2025)
        third = cases.open_case(session, actor=tech, data=call("RA-0003", death_at=earlier, death_reported_at=earlier + H,
                                                               refrigerated_at=None))
        assert third.case_code == "RAP-2025-001"


def test_the_report_time_defaults_to_when_the_call_is_taken(engine, tech, donor):
    before = utcnow()
    with session_scope(engine) as session:
        cases.open_case(session, actor=tech, data=call(death_reported_at=None))
    assert autopsy(engine).death_reported_at >= before


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"death_at": None}, r"^Time of death is required"),
        ({"death_place": "  "}, r"^Place of death is required"),
        ({"death_reported_by": ""}, r"^Death reported by is required"),
        ({"donor": ""}, r"^Donor is required"),
        ({"death_place": "x" * 201}, r"^Place of death \(x+…\) is too long: at most 200 characters"),
        ({"team": "t" * 301}, r"^Team \(t+…\) is too long: at most 300 characters"),
        ({"refrigerated_at": DEATH - H}, r"^Refrigerated \(.*\) cannot be before Time of death"),
        ({"death_reported_at": DEATH - H}, r"^Death reported at \(.*\) cannot be before Time of death"),
        ({"case_code": "RAP 1"}, r"^Case \(RAP 1\): use only letters, digits"),
    ],
)
def test_a_bad_call_is_refused_naming_the_field_and_nothing_is_written(engine, tech, donor, fields, match):
    fields = dict(fields)
    donor_code = fields.pop("donor", donor)
    assert_refused(engine, ValidationError, match,
                   lambda session: cases.open_case(session, actor=tech, data=call(donor_code, **fields)))


def test_a_death_in_the_future_is_refused(engine, tech, donor):
    future = utcnow() + timedelta(hours=3)
    with pytest.raises(ValidationError, match=r"^Time of death \(.*\) is in the future"):
        call(death_at=future)
    with pytest.raises(ValidationError, match=r"^Refrigerated \(.*\) is in the future"):
        call(refrigerated_at=future)


def test_a_withdrawn_donor_or_a_second_case_is_refused(engine, tech, donor):
    with session_scope(engine) as session:
        cases.open_case(session, actor=tech, data=call())
    assert_refused(engine, ConflictError, "already has an autopsy",
                   lambda session: cases.open_case(session, actor=tech, data=call()))
    with session_scope(engine) as session:
        enrol(session, tech, "RA-0002")
        donors.withdraw_consent(session, actor=tech, donor_code="RA-0002", requested_by="next_of_kin",
                                withdrawn_at=DEATH - 24 * H, reason="family request")
    assert_refused(engine, ConsentError, "consent was withdrawn",
                   lambda session: cases.open_case(session, actor=tech, data=call("RA-0002")))


@pytest.mark.parametrize("role", ["viewer", "pi"])
def test_a_viewer_or_a_pi_cannot_take_the_call(engine, donor, role, request):
    user = request.getfixturevalue(role)
    assert_refused(engine, PermissionDeniedError, "needs one of: admin, coordinator, technician",
                   lambda session: cases.open_case(session, actor=user, data=call()))


# ------------------------------------------------------------------------------------------ the case's times


@pytest.fixture
def opened(engine, tech, donor) -> str:
    with session_scope(engine) as session:
        cases.open_case(session, actor=tech, data=call())
        cases.start_autopsy(session, actor=tech, case_code="RAP-2026-001", at=DEATH + 2 * H)
        collect(session, tech, case="RAP-2026-001", lesion="L01", after_death=3.0)
    return "RAP-2026-001"


def test_a_correction_without_a_reason_is_refused(engine, tech, opened):
    assert_refused(
        engine, ValidationError,
        r"^Reason is required: changing a time already recorded \(Autopsy start 14 Mar 2026 04:00\) is a correction",
        lambda session: collection.update_autopsy_times(session, actor=tech, case_code=opened, start_at=DEATH + 1.5 * H),
    )
    assert_refused(
        engine, ValidationError, r"^Reason \(r+…\) is too long: at most 500 characters",
        lambda session: collection.update_autopsy_times(session, actor=tech, case_code=opened, start_at=DEATH + 1.5 * H,
                                                        reason="r" * 501),
    )


def test_a_correction_with_a_reason_is_audited_and_the_case_figures_follow(engine, tech, opened):
    with Session(engine) as session:
        before = autopsy_summary(session, opened)
    assert before["pmi_at_start_hours"] == 2.0 and before["warm_pmi_hours"] == 1.0
    reason = "nurse's watch was an hour fast"
    with session_scope(engine) as session:
        collection.update_autopsy_times(session, actor=tech, case_code=opened, death_at=DEATH - H,
                                        refrigerated_at=DEATH + H, reason=reason)
    with Session(engine) as session:
        after = autopsy_summary(session, opened)
    assert after["pmi_at_start_hours"] == 3.0 and after["warm_pmi_hours"] == 2.0
    assert after["median_pmi_hours"] == before["median_pmi_hours"] + 1
    [row] = audit_rows(engine, reason)
    assert row.action == "update" and row.user_id == tech.id
    assert row.changes["death_at"] == [DEATH.isoformat(), (DEATH - H).isoformat()]
    assert "refrigerated_at" not in row.changes  # given again unchanged: no correction


def test_a_first_time_needs_no_reason_and_the_same_time_again_is_no_correction(engine, tech, opened):
    with session_scope(engine) as session:
        collection.update_autopsy_times(session, actor=tech, case_code=opened, start_at=DEATH + 2 * H)
        collection.update_autopsy_times(session, actor=tech, case_code=opened, end_at=DEATH + 6 * H)
    assert autopsy(engine).status == "complete"


def test_start_and_end_set_the_state_once(engine, tech, coordinator, donor):
    with session_scope(engine) as session:
        cases.open_case(session, actor=tech, data=call())
    assert_refused(engine, ValidationError, "needs the autopsy start",
                   lambda session: cases.end_autopsy(session, actor=tech, case_code="RAP-2026-001", at=DEATH + 5 * H))
    assert_refused(engine, ValidationError, r"^Autopsy start \(.*\) cannot be before Time of death",
                   lambda session: cases.start_autopsy(session, actor=tech, case_code="RAP-2026-001", at=DEATH - H))
    with session_scope(engine) as session:
        cases.start_autopsy(session, actor=coordinator, case_code="rap-2026-001", at=DEATH + 2 * H)
    assert_refused(engine, ConflictError, "the autopsy started at 14 Mar 2026 04:00; to change that time, correct it",
                   lambda session: cases.start_autopsy(session, actor=tech, case_code="RAP-2026-001"))
    assert_refused(engine, ValidationError, r"^Autopsy end \(.*\) cannot be before Autopsy start",
                   lambda session: cases.end_autopsy(session, actor=tech, case_code="RAP-2026-001", at=DEATH + H))
    with session_scope(engine) as session:
        ended = cases.end_autopsy(session, actor=tech, case_code="RAP-2026-001")
        assert ended.status == "complete"
        assert donors.get_donor(session, "RA-0001").status == "autopsy_done"


def test_team_notified_once_then_only_as_a_correction(engine, tech, donor):
    with session_scope(engine) as session:
        cases.open_case(session, actor=tech, data=call())
        cases.mark_team_notified(session, actor=tech, case_code="RAP-2026-001", at=DEATH + 30 * timedelta(minutes=1))
    assert_refused(engine, ValidationError, r"^Reason is required: changing a time already recorded \(Team notified",
                   lambda session: cases.mark_team_notified(session, actor=tech, case_code="RAP-2026-001"))
    assert_refused(engine, ValidationError, r"^Team notified \(.*\) cannot be before Time of death",
                   lambda session: cases.mark_team_notified(session, actor=tech, case_code="RAP-2026-001",
                                                            at=DEATH - H, reason="typo"))
    with session_scope(engine) as session:
        cases.mark_team_notified(session, actor=tech, case_code="RAP-2026-001", at=DEATH + H, reason="called at 03:00")
    [row] = audit_rows(engine, "called at 03:00")
    assert row.changes["team_notified_at"] == [(DEATH + 0.5 * H).isoformat(), (DEATH + H).isoformat()]


# ------------------------------------------------------------------------------------------------ the checklist


def checklist(engine, case: str = "RAP-2026-001") -> dict[str, tuple[bool, str]]:
    with Session(engine) as session:
        return {item.key: (item.done, item.detail) for item in cases.call_checklist(session, case)}


def test_the_checklist_reports_missing_labels_and_team_until_they_are_done(engine, tech, donor):
    with session_scope(engine) as session:
        cases.open_case(session, actor=tech, data=call(refrigerated_at=None))
    items = checklist(engine)
    assert list(items) == ["consent", "model_derivation", "genomic_sequencing", "death", "refrigerated", "labels", "team"]
    assert items["consent"][0] and items["model_derivation"][0] and items["genomic_sequencing"][0]
    assert items["death"] == (True, f"died 14 Mar 2026 02:00 at {PLACE}; reported by {CALLER} at 14 Mar 2026 02:20")
    assert items["refrigerated"][0] is False and "not recorded" in items["refrigerated"][1]
    assert items["labels"] == (False, "not printed: pre-print the labels of the planned regions")
    assert items["team"] == (False, "not yet: call the prosector and the team (Dr A. Okafor, Rapid autopsy team)")
    with session_scope(engine) as session:
        printed = cases.print_case_labels(session, actor=tech, case_code="RAP-2026-001")
        collection.update_autopsy_times(session, actor=tech, case_code="RAP-2026-001", refrigerated_at=DEATH + 1.5 * H)
        cases.mark_team_notified(session, actor=tech, case_code="RAP-2026-001")
    assert printed.data.startswith(b"%PDF") and printed.count == 3 * 6  # regions A-C of L01, six pieces each
    items = checklist(engine)
    assert all(done for done, _ in items.values()), items
    assert items["refrigerated"][1] == "refrigerated 14 Mar 2026 03:30, 1.5 h after death"
    assert items["labels"][1].startswith("printed ")


def test_no_labels_are_recorded_as_printed_when_there_is_nothing_to_print(engine, tech):
    with session_scope(engine) as session:
        enrol(session, tech, lesions=())
        cases.open_case(session, actor=tech, data=call())
    assert_refused(engine, ValidationError, "has no lesions recorded yet",
                   lambda session: cases.print_case_labels(session, actor=tech, case_code="RAP-2026-001"))
    assert autopsy(engine).labels_printed_at is None


def test_the_checklist_names_the_consent_that_is_missing(engine, tech):
    with session_scope(engine) as session:
        enrol(session, tech, scopes={"research_use"})
        enrol(session, tech, "RA-0002", scopes=set())
        cases.open_case(session, actor=tech, data=call())
        cases.open_case(session, actor=tech, data=call("RA-0002"))
    items = checklist(engine)
    assert items["consent"] == (True, "in force: research use")
    assert items["model_derivation"] == (False, "not consented: no living models may be started from this donor's material")
    assert items["genomic_sequencing"] == (False, "not consented: no sequencing of this donor's material")
    assert checklist(engine, "RAP-2026-002")["consent"] == (False, "no consent recorded for donor RA-0002: record it before the autopsy")
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=tech, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=DEATH + H, reason="family request")
    assert checklist(engine)["consent"][0] is False


def test_the_case_list_is_by_state_with_the_pmi_figures(engine, tech, opened):
    with session_scope(engine) as session:
        enrol(session, tech, "RA-0002")
        enrol(session, tech, "RA-0003")
        cases.open_case(session, actor=tech, data=call("RA-0002", death_at=DEATH + H, death_reported_at=None))
        cases.open_case(session, actor=tech, data=call("RA-0003", death_at=DEATH - 24 * H, death_reported_at=None))
        cases.start_autopsy(session, actor=tech, case_code="RAP-2026-003", at=DEATH - 20 * H)
        cases.end_autopsy(session, actor=tech, case_code="RAP-2026-003", at=DEATH - 16 * H)
    with Session(engine) as session:
        rows = cases.case_rows(session)
    assert [(r["case"], r["status"]) for r in rows] == [
        ("RAP-2026-002", "scheduled"), ("RAP-2026-001", "in_progress"), ("RAP-2026-003", "complete")]
    running = rows[1]
    assert running["warm_pmi_hours"] == 1.0 and running["pmi_at_start_hours"] == 2.0
    assert running["specimens"] == 3 and running["median_pmi_hours"] is not None
    assert rows[0]["pmi_at_start_hours"] is None and rows[0]["death_place"] == PLACE


def test_the_input_model_holds_the_column_lengths():
    table = table_of(Autopsy)
    for name in ("death_place", "death_reported_by", "case_code", "institution", "prosector", "team"):
        assert DeathCall.model_fields[name].metadata[0].max_length == table.c[name].type.length, name
