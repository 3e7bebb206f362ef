"""Donors, consent and withdrawal, treatment history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session, select

from biobank.domain.codes import DONOR_CODE, require_safe
from biobank.domain.errors import ConflictError, ConsentError, invalid
from biobank.domain.sites import unknown_site
from biobank.domain.vocab import (
    ClinicalEventKind,
    ConsentGiver,
    ConsentScope,
    DonorStatus,
    ReceptorStatus,
    Response,
    Sex,
    TreatmentCategory,
    TreatmentIntent,
)
from biobank.models import (
    AnatomicalSite,
    ClinicalEvent,
    Consent,
    ConsentWithdrawal,
    Donor,
    TreatmentLine,
    User,
)
from biobank.models.audit import act_as, add_as
from biobank.models.base import pk
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum, check_time
from biobank.services.inputs import ConsentCreate, DonorCreate, TreatmentLineCreate
from biobank.services.lookup import by_code


def get_donor(session: Session, code: str) -> Donor:
    """The donor with this code, typed in any letter case."""
    return by_code(session, Donor, Donor.code, code, what="donor", field="donor")


def register_donor(session: Session, *, actor: User | None, data: DonorCreate) -> Donor:
    """A pseudonymous donor: a code, never a name, address, birth date or hospital number."""
    require(actor, Action.enrol)
    code, sex, age_at_death = data.code, data.sex, data.age_at_death
    primary_diagnosis, primary_site_code = data.primary_diagnosis, data.primary_site_code
    icdo3_topography, icdo3_morphology = data.icdo3_topography, data.icdo3_morphology
    diagnosis_days_before_death, er_status = data.diagnosis_days_before_death, data.er_status
    pr_status, her2_status, cause_of_death = data.pr_status, data.her2_status, data.cause_of_death
    hardy_scale, status = data.hardy_scale, data.status
    require_safe("code", code)
    if not DONOR_CODE.match(code):
        raise invalid("code", code, "a pseudonymous code such as 'RA-0001' (letters, optional '-', digits)")
    check_enum("sex", sex, Sex)
    check_enum("status", status, DonorStatus)
    for name, value in (("er_status", er_status), ("pr_status", pr_status), ("her2_status", her2_status)):
        check_enum(name, value, ReceptorStatus, nullable=True)
    # age, Hardy scale and days from diagnosis are bounded by DonorCreate's declared limits
    if primary_site_code is not None and session.get(AnatomicalSite, primary_site_code) is None:
        raise invalid("primary_site_code", primary_site_code, unknown_site(primary_site_code))
    if session.exec(select(Donor.id).where(Donor.code == code)).first() is not None:
        raise ConflictError(f"code={code!r}: a donor with this code already exists", field="code", value=code)
    donor = Donor(
        code=code,
        sex=str(sex),
        age_at_death=age_at_death,
        primary_diagnosis=primary_diagnosis,
        primary_site_code=primary_site_code,
        icdo3_topography=icdo3_topography,
        icdo3_morphology=icdo3_morphology,
        diagnosis_days_before_death=diagnosis_days_before_death,
        er_status=er_status,
        pr_status=pr_status,
        her2_status=her2_status,
        cause_of_death=cause_of_death,
        hardy_scale=hardy_scale,
        status=str(status),
    )
    return add_as(session, actor, donor)


def record_consent(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    given_by: str,
    consented_on: date,
    scopes: set[str] | frozenset[str],
    document_ref: str | None = None,
) -> Consent:
    require(actor, Action.enrol)
    ConsentCreate.check_fields({"consented_on": consented_on, "document_ref": document_ref})
    donor = get_donor(session, donor_code)
    check_time("consented_on", consented_on)
    check_enum("given_by", given_by, ConsentGiver)
    for scope in scopes:
        check_enum("scope", scope, ConsentScope)
    if withdrawal_of(session, donor.id) is not None:
        raise ConsentError(f"donor {donor_code}: consent was withdrawn; a new consent cannot be recorded")
    consent = Consent(
        donor_id=pk(donor),
        given_by=str(given_by),
        consented_on=consented_on,
        document_ref=document_ref,
        **{scope.value: scope.value in scopes for scope in ConsentScope},  # type: ignore[arg-type]  # one bool per scope column
    )
    return add_as(session, actor, consent)


def withdraw_consent(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    requested_by: str,
    withdrawn_at: datetime,
    reason: str,
) -> ConsentWithdrawal:
    """Record a withdrawal: nothing is deleted, the material is blocked from distribution, plans and exports."""
    user = require(actor, Action.withdraw)
    donor = get_donor(session, donor_code)
    check_enum("requested_by", requested_by, ConsentGiver)
    check_time("withdrawn_at", withdrawn_at)
    if not reason or not reason.strip():
        raise invalid("reason", reason, "say why consent was withdrawn")
    if withdrawal_of(session, donor.id) is not None:
        raise ConflictError(f"donor {donor_code}: consent was already withdrawn", field="donor", value=donor_code)
    withdrawal = ConsentWithdrawal(
        donor_id=pk(donor),
        requested_by=str(requested_by),
        withdrawn_at=withdrawn_at,
        reason=reason.strip(),
        entered_by_id=pk(user),
    )
    act_as(session, actor)
    session.add(withdrawal)
    donor.status = DonorStatus.withdrawn.value
    session.flush()
    return withdrawal


def withdrawal_of(session: Session, donor_id: int | None) -> ConsentWithdrawal | None:
    return session.exec(select(ConsentWithdrawal).where(ConsentWithdrawal.donor_id == donor_id)).first()


@dataclass(frozen=True)
class ConsentState:
    donor_code: str
    withdrawn: bool
    scopes: frozenset[str] = field(default_factory=frozenset)

    def allows(self, scope: str) -> bool:
        return not self.withdrawn and scope in self.scopes


def consent_state(session: Session, donor: Donor) -> ConsentState:
    """What the donor's consents together cover, and whether they were withdrawn."""
    consents = session.exec(select(Consent).where(Consent.donor_id == donor.id)).all()
    scopes = frozenset(scope.value for scope in ConsentScope for c in consents if getattr(c, scope.value))
    return ConsentState(donor.code, withdrawal_of(session, donor.id) is not None, scopes)


def require_consent(session: Session, donor: Donor, scope: str) -> None:
    """Refuse a use the donor did not consent to, or any use after a withdrawal."""
    state = consent_state(session, donor)
    if state.withdrawn:
        raise ConsentError(f"donor {donor.code}: consent was withdrawn; {scope} is blocked", field="donor", value=donor.code)
    if scope not in state.scopes:
        raise ConsentError(f"donor {donor.code}: no consent to {scope}", field="consent", value=scope)


def add_treatment_line(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    line_number: int,
    agents: str,
    start_days_before_death: int,
    end_days_before_death: int | None = None,
    category: str = TreatmentCategory.other,
    intent: str = TreatmentIntent.unknown,
    best_response: str = Response.unknown,
) -> TreatmentLine:
    require(actor, Action.enrol)
    TreatmentLineCreate.check_fields({"agents": agents, "start_days_before_death": start_days_before_death,
                                      "end_days_before_death": end_days_before_death})
    donor = get_donor(session, donor_code)
    check_enum("category", category, TreatmentCategory)
    check_enum("intent", intent, TreatmentIntent)
    check_enum("best_response", best_response, Response)
    if line_number < 1:
        raise invalid("line_number", line_number, "lines are numbered from 1")
    if start_days_before_death < 0:
        raise invalid("start_days_before_death", start_days_before_death, "days before death cannot be negative")
    if end_days_before_death is not None and not 0 <= end_days_before_death <= start_days_before_death:
        raise invalid(
            "end_days_before_death",
            end_days_before_death,
            f"must lie between 0 and the start ({start_days_before_death} days before death)",
        )
    if not agents or not agents.strip():
        raise invalid("agents", agents, "name the agents")
    taken = session.exec(
        select(TreatmentLine.id).where(TreatmentLine.donor_id == donor.id, TreatmentLine.line_number == line_number)
    ).first()
    if taken is not None:
        raise ConflictError(f"donor {donor_code}: line {line_number} already exists", field="line_number")
    line = TreatmentLine(
        donor_id=pk(donor),
        line_number=line_number,
        agents=agents.strip(),
        category=str(category),
        intent=str(intent),
        start_days_before_death=start_days_before_death,
        end_days_before_death=end_days_before_death,
        best_response=str(best_response),
    )
    return add_as(session, actor, line)


def add_clinical_event(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    kind: str,
    days_before_death: int,
    site_code: str | None = None,
    note: str | None = None,
) -> ClinicalEvent:
    require(actor, Action.enrol)
    donor = get_donor(session, donor_code)
    check_enum("kind", kind, ClinicalEventKind)
    if days_before_death < 0:
        raise invalid("days_before_death", days_before_death, "cannot be negative")
    if site_code is not None and session.get(AnatomicalSite, site_code) is None:
        raise invalid("site_code", site_code, unknown_site(site_code))
    event = ClinicalEvent(donor_id=pk(donor), kind=str(kind), days_before_death=days_before_death, site_code=site_code, note=note)
    return add_as(session, actor, event)
