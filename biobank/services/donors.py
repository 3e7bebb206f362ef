"""Donors, consent and withdrawal, treatment history (DOMAIN.md §2 "Donor", "Consent").

A donor's consent rows are its versions, ordered by (consented_on, id): the initial consent, then each re-consent
(a new form signed), scope change or partial withdrawal. The LATEST version's scopes govern, never the union of all
versions, so a scope withdrawn in a later version stays withdrawn. A full withdrawal is the one ``consent_withdrawal``
row of the donor (append-only) and blocks every use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Subquery, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from biobank.config import get_settings
from biobank.domain.codes import DONOR_CODE, require_safe
from biobank.domain.errors import ConflictError, ConsentError, invalid
from biobank.domain.fields import field_label
from biobank.domain.timing import day_of, lab_day
from biobank.domain.vocab import (
    ClinicalEventKind,
    ConsentChange,
    ConsentGiver,
    ConsentScope,
    DonorStatus,
    ReceptorStatus,
    Response,
    Sex,
    SpecimenStatus,
    TreatmentCategory,
    TreatmentIntent,
    WithdrawalMaterial,
)
from biobank.models import (
    AnatomicalSite,
    Autopsy,
    ClinicalEvent,
    Consent,
    ConsentWithdrawal,
    Donor,
    Specimen,
    TreatmentLine,
    User,
)
from biobank.models.audit import act_as, add_as
from biobank.models.base import pk, table_of
from biobank.queries.storage import open_checkout
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum, check_time
from biobank.services.inputs import (
    MAX_DAYS_BEFORE_DEATH,
    ClinicalEventCreate,
    ConsentCreate,
    DonorCreate,
    TreatmentLineCreate,
    WithdrawalCreate,
)
from biobank.services.lookup import by_code
from biobank.services.storage import mark_disposed

#: Prefix of generated donor codes (``RA-0001``), as the demo cohort and the programme's forms use.
DONOR_PREFIX = "RA"
ICDO3_TOPOGRAPHY = re.compile(r"^C\d{2}(\.\d)?$")
ICDO3_MORPHOLOGY = re.compile(r"^\d{4}/\d$")
#: Free text that looks like a personal identifier: a calendar date (a birth date), a long number (a hospital,
#: NHS or insurance number), or the words that introduce one.
_IDENTIFIER = re.compile(
    r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b|\d{6,}|\b\d{3}[ -]\d{3}[ -]\d{4}\b"
    r"|\b(dob|d\.o\.b|date of birth|born|mrn|nhs|hospital (number|no)|patient (id|number))\b",
    re.IGNORECASE,
)
#: Specimens still held: every status but those that left (distributed) or are gone (disposed).
HELD = tuple(s.value for s in SpecimenStatus if s not in (SpecimenStatus.distributed, SpecimenStatus.disposed))


def get_donor(session: Session, code: str, *, for_update: bool = False) -> Donor:
    """The donor with this code, typed in any letter case (locked for the transaction with ``for_update``)."""
    return by_code(session, Donor, Donor.code, code, what="donor", field="donor", for_update=for_update)


def _text(value: str | None) -> str | None:
    """Typed text without surrounding blanks; nothing typed is NULL."""
    return (value or "").strip() or None


def no_identifiers(field_name: str, value: str | None) -> None:
    """Refuse free text that looks like a personal identifier: donors are known by their pseudonymous code only."""
    if value and _IDENTIFIER.search(value):
        raise invalid(field_name, value, "looks like a personal identifier (a date of birth, a hospital or NHS "
                      "number): donors are recorded by pseudonymous code only")


def next_donor_code(session: Session, prefix: str = DONOR_PREFIX) -> str:
    """The code after the highest ``PREFIX-NNNN`` in use (``RA-0013`` after ``RA-0012``), four digits at least."""
    if not re.fullmatch(r"[A-Za-z]{1,6}", prefix):
        raise invalid("code", prefix, "a code prefix is 1 to 6 letters, such as 'RA'")
    prefix = prefix.upper()
    pattern = re.compile(rf"^{prefix}-(\d{{1,6}})$", re.IGNORECASE)
    codes = session.exec(select(Donor.code).where(func.upper(Donor.code).like(f"{prefix}-%"))).all()
    highest = max((int(m.group(1)) for c in codes if (m := pattern.match(c))), default=0)
    if highest >= 999_999:
        raise invalid("code", f"{prefix}-{highest}", "no code is left under this prefix: give the code")
    return f"{prefix}-{highest + 1:04d}"


def register_donor(session: Session, *, actor: User | None, data: DonorCreate) -> Donor:
    """A pseudonymous donor: a code (the next ``RA-NNNN`` when none is given), never a name, address, birth date or
    hospital number."""
    require(actor, Action.enrol)
    code = data.code.strip() if data.code is not None else next_donor_code(session)
    sex, age_at_death = data.sex, data.age_at_death
    primary_diagnosis, primary_site_code = _text(data.primary_diagnosis), _text(data.primary_site_code)
    icdo3_topography, icdo3_morphology = _text(data.icdo3_topography), _text(data.icdo3_morphology)
    diagnosis_days_before_death, er_status = data.diagnosis_days_before_death, data.er_status
    pr_status, her2_status, cause_of_death = data.pr_status, data.her2_status, _text(data.cause_of_death)
    hardy_scale, status = data.hardy_scale, data.status
    require_safe("code", code)
    if not DONOR_CODE.match(code):
        raise invalid("code", code, "a pseudonymous code such as 'RA-0001' (letters, optional '-', digits)")
    check_enum("sex", sex, Sex)
    check_enum("status", status, DonorStatus)
    if status == DonorStatus.withdrawn:
        raise invalid("status", status, "is set by recording the withdrawal of consent, not at registration")
    for name, value in (("er_status", er_status), ("pr_status", pr_status), ("her2_status", her2_status)):
        check_enum(name, value, ReceptorStatus, nullable=True)
    # age, Hardy scale and days from diagnosis are bounded by DonorCreate's declared limits
    if icdo3_topography is not None:
        icdo3_topography = icdo3_topography.upper()
        if not ICDO3_TOPOGRAPHY.match(icdo3_topography):
            raise invalid("icdo3_topography", icdo3_topography, "an ICD-O-3 topography code looks like 'C50.9'")
    if icdo3_morphology is not None and not ICDO3_MORPHOLOGY.match(icdo3_morphology):
        raise invalid("icdo3_morphology", icdo3_morphology, "an ICD-O-3 morphology code looks like '8500/3'")
    for name, text in (("primary_diagnosis", primary_diagnosis), ("cause_of_death", cause_of_death)):
        no_identifiers(name, text)
    if primary_site_code is not None and session.get(AnatomicalSite, primary_site_code) is None:
        from biobank.domain.sites import unknown_site  # rapidfuzz: loaded for a wrong site only

        raise invalid("primary_site_code", primary_site_code, unknown_site(primary_site_code))
    if session.exec(select(Donor.id).where(func.upper(Donor.code) == code.upper())).first() is not None:
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


# --- consent versions ------------------------------------------------------------------------------------------


def consent_versions(session: Session, donor_id: int | None) -> list[Consent]:
    """The donor's consent versions, oldest first (by consent date, then by entry)."""
    return list(
        session.exec(
            select(Consent).where(Consent.donor_id == donor_id).order_by(col(Consent.consented_on), col(Consent.id))
        )
    )


def latest_consent(session: Session, donor_id: int | None) -> Consent | None:
    """The version that governs: the latest by consent date, then by entry."""
    return session.exec(
        select(Consent)
        .where(Consent.donor_id == donor_id)
        .order_by(col(Consent.consented_on).desc(), col(Consent.id).desc())
        .limit(1)
    ).first()


def scopes_of(consent: Consent | None) -> frozenset[str]:
    """The scopes one consent version covers."""
    if consent is None:
        return frozenset()
    return frozenset(scope.value for scope in ConsentScope if getattr(consent, scope.value))


def latest_consents() -> Subquery:
    """SQL for reads in bulk: one row per donor with a consent, its latest version's ``donor_id`` and scope columns
    (the rule of :func:`consent_state`, for exports and imports that read many donors at once)."""
    table = table_of(Consent)
    rank = func.row_number().over(
        partition_by=table.c.donor_id, order_by=(table.c.consented_on.desc(), table.c.id.desc())
    )
    ranked = sql_select(table.c.donor_id, *[table.c[s.value] for s in ConsentScope], rank.label("version_rank"))
    ranked_sub = ranked.subquery("ranked_consent")
    return (
        sql_select(ranked_sub.c.donor_id, *[ranked_sub.c[s.value] for s in ConsentScope])
        .where(ranked_sub.c.version_rank == 1)
        .subquery("latest_consent")
    )


def death_day(session: Session, donor: Donor) -> date | None:
    """The lab day the donor died on, once the death is recorded on the case."""
    death_at = session.exec(select(Autopsy.death_at).where(Autopsy.donor_id == donor.id)).first()
    return day_of(death_at, get_settings().zone) if death_at is not None else None


def record_consent(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    given_by: str,
    consented_on: date,
    scopes: set[str] | frozenset[str],
    document_ref: str | None = None,
    form_version: str | None = None,
    taken_by: str | None = None,
    change: str | None = None,
    reason: str | None = None,
) -> Consent:
    """A new consent version: the initial consent, a re-consent (a new form signed) or a scope change. It governs
    from now on (its scopes replace the earlier ones); earlier versions stay as the history."""
    require(actor, Action.enrol)
    ConsentCreate.check_fields({"donor_code": donor_code, "consented_on": consented_on, "document_ref": document_ref,
                                "form_version": form_version, "taken_by": taken_by, "reason": reason})
    donor = get_donor(session, donor_code, for_update=True)
    check_time("consented_on", consented_on)
    check_enum("given_by", given_by, ConsentGiver)
    for scope in sorted(scopes):
        check_enum("scope", scope, ConsentScope)
    if withdrawal_of(session, donor.id) is not None:
        raise ConsentError(f"donor {donor.code}: consent was withdrawn; a new consent cannot be recorded")
    if not scopes:
        raise invalid("scopes", "", "choose at least one scope (research use for any use at all)")
    form_version, taken_by, reason = _text(form_version), _text(taken_by), _text(reason)
    latest = latest_consent(session, donor.id)
    if change is None:
        changed_form = form_version is not None and latest is not None and form_version != latest.form_version
        change = ConsentChange.initial if latest is None else (
            ConsentChange.re_consent if changed_form else ConsentChange.scope_change)
    check_enum("change", change, ConsentChange)
    if change == ConsentChange.partial_withdrawal:
        raise invalid("change", change, "is recorded as a withdrawal of the scopes withdrawn, not as a new consent")
    if change == ConsentChange.initial and latest is not None:
        raise invalid("change", change, f"donor {donor.code} already has a consent: record a re-consent or a scope "
                      "change")
    if change != ConsentChange.initial and latest is None:
        raise invalid("change", change, f"needs an earlier consent: donor {donor.code} has none, record the initial "
                      "consent first")
    if latest is not None:
        check_time("consented_on", consented_on, after=[("the current consent", latest.consented_on)])
        if change == ConsentChange.scope_change and frozenset(scopes) == scopes_of(latest):
            raise invalid("scopes", sorted(scopes), "are those of the current consent: a scope change must change "
                          "them")
    died = death_day(session, donor)
    if given_by == ConsentGiver.donor and died is not None and consented_on > died:
        raise invalid("consented_on", consented_on, f"cannot be after the donor's death ({lab_day(died)}) when the "
                      "donor gives it: after death the next of kin or a legal representative consents")
    consent = Consent(
        donor_id=pk(donor),
        given_by=str(given_by),
        consented_on=consented_on,
        document_ref=_text(document_ref),
        form_version=form_version,
        taken_by=taken_by,
        change=str(change),
        reason=reason,
        **{scope.value: scope.value in scopes for scope in ConsentScope},  # type: ignore[arg-type]  # one bool per scope column
    )
    return add_as(session, actor, consent)


# --- withdrawal ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Withdrawal:
    """What :func:`withdraw_consent` recorded: the full withdrawal (and the specimens it disposed of), or the new
    consent version of a partial one."""

    withdrawal: ConsentWithdrawal | None = None
    version: Consent | None = None
    disposed: tuple[str, ...] = ()

    @property
    def full(self) -> bool:
        return self.withdrawal is not None


def withdraw_consent(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    requested_by: str,
    withdrawn_at: datetime,
    reason: str,
    scopes: set[str] | frozenset[str] | None = None,
    material: str | None = None,
) -> Withdrawal:
    """Record a withdrawal; nothing is deleted, and everything is written together or not at all.

    No ``scopes``: a full withdrawal (once per donor). The donor becomes withdrawn and the material is blocked from
    distribution, plans and exports; ``material`` says what happens to what is held: ``keep_blocked`` (the default),
    ``allow_distributed`` (blocked here too; material already shipped may still be used by its recipients) or
    ``destroy`` (every specimen still held is disposed of, with a custody event naming the withdrawal).

    Some ``scopes``: a partial withdrawal, a new consent version without them (``change=partial_withdrawal``, given
    by whoever asked); the donor stays consented to the rest.
    """
    user = require(actor, Action.withdraw)
    WithdrawalCreate.check_fields({"donor_code": donor_code, "withdrawn_at": withdrawn_at, "reason": reason})
    donor = get_donor(session, donor_code, for_update=True)
    check_enum("requested_by", requested_by, ConsentGiver)
    check_time("withdrawn_at", withdrawn_at)
    if not reason or not reason.strip():
        raise invalid("reason", reason, "say why consent was withdrawn")
    if withdrawal_of(session, donor.id) is not None:
        raise ConflictError(f"donor {donor.code}: consent was already withdrawn", field="donor", value=donor.code)
    latest = latest_consent(session, donor.id)
    if latest is not None:
        check_time("withdrawn_at", withdrawn_at, after=[("the current consent", latest.consented_on)])
    if scopes:
        return Withdrawal(version=_withdraw_some(session, user, donor, latest, requested_by, withdrawn_at,
                                                 reason.strip(), scopes, material))
    material = material or WithdrawalMaterial.keep_blocked
    check_enum("material", material, WithdrawalMaterial)
    held = _held_specimens(session, donor) if material == WithdrawalMaterial.destroy else []
    withdrawal = ConsentWithdrawal(
        donor_id=pk(donor),
        requested_by=str(requested_by),
        withdrawn_at=withdrawn_at,
        reason=reason.strip(),
        entered_by_id=pk(user),
        material=str(material),
    )
    act_as(session, actor)
    session.add(withdrawal)
    donor.status = DonorStatus.withdrawn.value
    note = (f"consent withdrawn on {lab_day(day_of(withdrawn_at, get_settings().zone))} "
            f"(requested by {str(requested_by).replace('_', ' ')}): material destroyed as asked")
    for specimen in held:
        mark_disposed(session, specimen, actor=user, at=None, note=note)
    session.flush()
    return Withdrawal(withdrawal=withdrawal, disposed=tuple(s.code for s in held))


def _held_specimens(session: Session, donor: Donor) -> list[Specimen]:
    """The donor's specimens still held, locked, to destroy; refused whole while any is out on a bench."""
    held = list(
        session.exec(
            select(Specimen)
            .where(Specimen.donor_id == donor.id, col(Specimen.status).in_(HELD))
            .order_by(col(Specimen.code))
            .with_for_update()
        )
    )
    out = [s.code for s in held if s.status == SpecimenStatus.in_use or open_checkout(session, s.id) is not None]
    if out:
        raise ConflictError(
            f"donor {donor.code}: {', '.join(out)} {'is' if len(out) == 1 else 'are'} checked out: return "
            f"{'it' if len(out) == 1 else 'them'} before the material is destroyed (nothing was recorded)",
            field="material", value=WithdrawalMaterial.destroy.value,
        )
    return held


def _withdraw_some(
    session: Session,
    user: User,
    donor: Donor,
    latest: Consent | None,
    requested_by: str,
    withdrawn_at: datetime,
    reason: str,
    scopes: set[str] | frozenset[str],
    material: str | None,
) -> Consent:
    """A partial withdrawal: a new consent version that keeps every scope of the current one but ``scopes``."""
    for scope in sorted(scopes):
        check_enum("scope", scope, ConsentScope)
    if material is not None:
        raise invalid("material", material, "is for a full withdrawal only: a partial withdrawal keeps the "
                      "material for the scopes still consented")
    if latest is None:
        raise ConsentError(f"donor {donor.code}: no consent is recorded, so none can be withdrawn in part",
                           field="scopes", value=sorted(scopes))
    current = scopes_of(latest)
    missing = sorted(set(scopes) - current)
    if missing:
        raise invalid("scopes", missing, f"not in the current consent ({', '.join(sorted(current)) or 'none'})")
    if frozenset(scopes) >= current:
        raise invalid("scopes", sorted(scopes), "would leave nothing consented: record a full withdrawal instead")
    if ConsentScope.research_use in scopes:
        raise invalid("scopes", sorted(scopes), "research use underlies every other use: withdrawing it is a full "
                      "withdrawal")
    kept = current - frozenset(scopes)
    version = Consent(
        donor_id=pk(donor),
        given_by=str(requested_by),
        consented_on=day_of(withdrawn_at, get_settings().zone),
        document_ref=latest.document_ref,
        form_version=latest.form_version,
        taken_by=user.full_name or user.username,
        change=ConsentChange.partial_withdrawal.value,
        reason=reason,
        **{scope.value: scope.value in kept for scope in ConsentScope},  # type: ignore[arg-type]  # one bool per scope column
    )
    return add_as(session, user, version)


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
    """What the donor's latest consent version covers, and whether consent was withdrawn in full."""
    scopes = scopes_of(latest_consent(session, donor.id))
    return ConsentState(donor.code, withdrawal_of(session, donor.id) is not None, scopes)


def require_consent(session: Session, donor: Donor, scope: str) -> None:
    """Refuse a use the donor did not consent to, or any use after a withdrawal."""
    state = consent_state(session, donor)
    if state.withdrawn:
        raise ConsentError(f"donor {donor.code}: consent was withdrawn; {scope} is blocked", field="donor", value=donor.code)
    if scope not in state.scopes:
        raise ConsentError(f"donor {donor.code}: no consent to {scope}", field="consent", value=scope)


# --- clinical history, in days before death ---------------------------------------------------------------------


def days_before_death(session: Session, donor: Donor, field_name: str, day: date) -> int:
    """A calendar day as days before the donor's death (the day itself is never stored); refused before the death
    is recorded, and after it."""
    check_time(field_name, day)
    died = death_day(session, donor)
    if died is None:
        raise invalid(field_name, day, "record the death first, or give days before death")
    if day > died:
        raise invalid(field_name, day, f"cannot be after death ({lab_day(died)})")
    days = (died - day).days
    if days > MAX_DAYS_BEFORE_DEATH:
        raise invalid(field_name, day, f"is more than {MAX_DAYS_BEFORE_DEATH:,} days before death")
    return days


def _days(
    session: Session, donor: Donor, days: int | None, day: date | None, *, days_field: str, day_field: str
) -> int | None:
    """Days before death given as a number or as a day (one of the two)."""
    if days is not None and day is not None:
        raise invalid(day_field, day, f"give {field_label(days_field).lower()} as days before death or as a date, "
                      "not both")
    return days_before_death(session, donor, day_field, day) if day is not None else days


def add_treatment_line(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    line_number: int | None = None,
    agents: str,
    start_days_before_death: int | None = None,
    end_days_before_death: int | None = None,
    category: str = TreatmentCategory.other,
    intent: str = TreatmentIntent.unknown,
    best_response: str = Response.unknown,
    start_on: date | None = None,
    end_on: date | None = None,
) -> TreatmentLine:
    """A line of treatment in days before death (or dates, turned into days once the death is recorded); the next
    line number when none is given."""
    require(actor, Action.enrol)
    TreatmentLineCreate.check_fields({"donor_code": donor_code, "line_number": line_number, "agents": agents,
                                      "start_days_before_death": start_days_before_death,
                                      "end_days_before_death": end_days_before_death,
                                      "start_on": start_on, "end_on": end_on})
    donor = get_donor(session, donor_code)
    check_enum("category", category, TreatmentCategory)
    check_enum("intent", intent, TreatmentIntent)
    check_enum("best_response", best_response, Response)
    if not agents or not agents.strip():
        raise invalid("agents", agents, "name the agents")
    start = _days(session, donor, start_days_before_death, start_on, days_field="start_days_before_death",
                  day_field="start_on")
    end = _days(session, donor, end_days_before_death, end_on, days_field="end_days_before_death", day_field="end_on")
    if start is None:
        raise invalid("start_days_before_death", None, "is required: give days before death or the date")
    if start < 0:
        raise invalid("start_days_before_death", start, "days before death cannot be negative")
    if end is not None and not 0 <= end <= start:
        where = "end_on" if end_on is not None else "end_days_before_death"
        raise invalid(where, end_on or end, f"must lie between 0 and the start ({start} days before death)")
    if line_number is None:
        highest = session.exec(
            select(func.max(TreatmentLine.line_number)).where(TreatmentLine.donor_id == donor.id)
        ).one()
        line_number = (highest or 0) + 1
    if line_number < 1:
        raise invalid("line_number", line_number, "lines are numbered from 1")
    taken = session.exec(
        select(TreatmentLine.id).where(TreatmentLine.donor_id == donor.id, TreatmentLine.line_number == line_number)
    ).first()
    if taken is not None:
        raise ConflictError(f"donor {donor.code}: line {line_number} already exists", field="line_number")
    line = TreatmentLine(
        donor_id=pk(donor),
        line_number=line_number,
        agents=agents.strip(),
        category=str(category),
        intent=str(intent),
        start_days_before_death=start,
        end_days_before_death=end,
        best_response=str(best_response),
    )
    return add_as(session, actor, line)


def add_clinical_event(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    kind: str,
    days_before_death: int | None = None,
    site_code: str | None = None,
    note: str | None = None,
    occurred_on: date | None = None,
) -> ClinicalEvent:
    """A clinical event (a fracture, a cord compression ...) in days before death, or on a day once the death is
    recorded."""
    require(actor, Action.enrol)
    ClinicalEventCreate.check_fields({"donor_code": donor_code, "days_before_death": days_before_death,
                                      "occurred_on": occurred_on, "site_code": site_code, "note": note})
    donor = get_donor(session, donor_code)
    check_enum("kind", kind, ClinicalEventKind)
    days = _days(session, donor, days_before_death, occurred_on, days_field="days_before_death",
                 day_field="occurred_on")
    if days is None:
        raise invalid("days_before_death", None, "is required: give days before death or the date")
    if days < 0:
        raise invalid("days_before_death", days, "cannot be negative")
    site_code, note = _text(site_code), _text(note)
    if site_code is not None and session.get(AnatomicalSite, site_code) is None:
        from biobank.domain.sites import unknown_site  # rapidfuzz: loaded for a wrong site only

        raise invalid("site_code", site_code, unknown_site(site_code))
    no_identifiers("note", note)
    event = ClinicalEvent(donor_id=pk(donor), kind=str(kind), days_before_death=days, site_code=site_code, note=note)
    return add_as(session, actor, event)
