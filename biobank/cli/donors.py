"""Enrolment commands on ``biobank donors``: add, consent, withdraw, treatment, event and the consent history.

Numbers and dates are handed to the input models as typed, so a bad one is refused in the field's words ("Age at
death (sixty) must be a whole number"); a time without a zone is the lab's (``BIOBANK_TIMEZONE``).
"""

from __future__ import annotations

import sys
from datetime import date
from typing import Annotated, Any

import typer

from biobank.cli.common import (
    JsonOption,
    UserOption,
    acting_user,
    emit,
    emit_json,
    emit_table,
    fail,
    handle_errors,
    read,
    typed_time,
    unit_of_work,
)
from biobank.cli.core import donors_app
from biobank.config import get_settings
from biobank.domain.errors import invalid
from biobank.domain.timing import lab_today
from biobank.domain.vocab import ConsentScope, DonorStatus, WithdrawalMaterial
from biobank.exports import log as export_reads
from biobank.models.base import utcnow
from biobank.queries.enrolment import consent_history
from biobank.services import collection, donors
from biobank.services.inputs import (
    ClinicalEventCreate,
    ConsentCreate,
    DonorCreate,
    LesionCreate,
    TreatmentLineCreate,
    WithdrawalCreate,
)

CodeArgument = Annotated[str, typer.Argument(help="The donor's code, e.g. RA-0001.")]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option("--scope", help=f"A consent scope; repeat for several: {', '.join(ConsentScope)}."),
]


def _none(text: str | None) -> str | None:
    """An option given empty counts as not given."""
    return text if text is None or text.strip() else None


def _number(text: str | None) -> int | str | None:
    """A typed whole number as a number (so messages show it with its unit); anything else as typed, for the input
    model to refuse in the field's words."""
    value = _none(text)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return value.strip() if value is not None else None


def _day(field: str, text: str | None) -> date | None:
    """A typed day (YYYY-MM-DD); None when nothing was typed."""
    value = _none(text)
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise invalid(field, value, "must be a date, such as 2026-03-14") from None


def _scopes(values: list[str] | None) -> frozenset[str]:
    """Scopes from repeated options, commas allowed (``--scope research_use,genomic_sequencing``)."""
    return frozenset(part.strip() for value in values or () for part in value.split(",") if part.strip())


@donors_app.command("add")
@handle_errors
def donors_add(
    code: Annotated[str | None, typer.Argument(help="Pseudonymous code such as RA-0013; the next free RA-NNNN when omitted.")] = None,
    sex: Annotated[str, typer.Option(help="female, male, unknown, undifferentiated or not_applicable.")] = "unknown",
    age_at_death: Annotated[str | None, typer.Option("--age-at-death", help="Age at death in years.")] = None,
    diagnosis: Annotated[str | None, typer.Option("--diagnosis", help="Primary diagnosis as free text (no names, dates or numbers that identify).")] = None,
    primary_site: Annotated[str | None, typer.Option("--primary-site", help="Anatomical-site code of the primary, e.g. BREAST.")] = None,
    topography: Annotated[str | None, typer.Option("--icdo3-topography", help="ICD-O-3 topography, e.g. C50.9.")] = None,
    morphology: Annotated[str | None, typer.Option("--icdo3-morphology", help="ICD-O-3 morphology, e.g. 8500/3.")] = None,
    diagnosis_days: Annotated[str | None, typer.Option("--diagnosis-days-before-death", help="Days from first diagnosis to death.")] = None,
    er: Annotated[str | None, typer.Option("--er", help="ER status at diagnosis: positive, negative, equivocal, low, unknown.")] = None,
    pr: Annotated[str | None, typer.Option("--pr", help="PR status at diagnosis.")] = None,
    her2: Annotated[str | None, typer.Option("--her2", help="HER2 status at diagnosis.")] = None,
    cause_of_death: Annotated[str | None, typer.Option("--cause-of-death", help="Cause of death, once known.")] = None,
    hardy_scale: Annotated[str | None, typer.Option("--hardy-scale", help="Hardy scale 0-4, once known.")] = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Register a donor: a pseudonymous code (generated when omitted), the diagnosis with its ICD-O-3 codes and the
    receptor status; never a name, birth date or hospital number."""
    data = DonorCreate.build(
        code=_none(code), sex=sex, age_at_death=_number(age_at_death), primary_diagnosis=_none(diagnosis),
        primary_site_code=_none(primary_site), icdo3_topography=_none(topography), icdo3_morphology=_none(morphology),
        diagnosis_days_before_death=_number(diagnosis_days), er_status=_none(er), pr_status=_none(pr),
        her2_status=_none(her2), cause_of_death=_none(cause_of_death), hardy_scale=_number(hardy_scale),
    )
    with unit_of_work() as session:
        donor = donors.register_donor(session, actor=acting_user(session, user), data=data)
        result = {"code": donor.code, "sex": donor.sex, "diagnosis": donor.primary_diagnosis,
                  "icdo3": f"{donor.icdo3_topography or ''} {donor.icdo3_morphology or ''}".strip() or None,
                  "status": donor.status}
    emit(result, as_json=as_json, text=f"donor {result['code']} registered")


@donors_app.command("consent")
@handle_errors
def donors_consent(
    code: CodeArgument,
    scope: ScopeOption = None,
    given_by: Annotated[str, typer.Option("--given-by", help="donor, next_of_kin or legal_representative.")] = "donor",
    on: Annotated[str | None, typer.Option("--on", help="Day of the consent, YYYY-MM-DD; default today.")] = None,
    form_version: Annotated[str | None, typer.Option("--form-version", help="Version of the consent form signed, e.g. ICF-v3.2.")] = None,
    taken_by: Annotated[str | None, typer.Option("--taken-by", help="Who took the consent.")] = None,
    document_ref: Annotated[str | None, typer.Option("--document-ref", help="Reference of the signed form.")] = None,
    change: Annotated[str | None, typer.Option("--change", help="initial, re_consent or scope_change; default: initial for the first consent, re_consent for a new form version, else scope_change.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why this version (a re-consent or scope change).")] = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Record a consent version: the initial consent, a re-consent (a new form signed) or a scope change. The latest
    version's scopes govern from now on; earlier versions stay as the history."""
    day = _day("consented_on", on) or lab_today(utcnow(), get_settings().zone)
    data = ConsentCreate.build(donor_code=code, given_by=given_by, consented_on=day, scopes=_scopes(scope),
                               document_ref=_none(document_ref), form_version=_none(form_version),
                               taken_by=_none(taken_by), change=_none(change), reason=_none(reason))
    with unit_of_work() as session:
        consent = donors.record_consent(session, actor=acting_user(session, user), **data.model_dump())
        donor_code = donors.get_donor(session, code).code
        result: dict[str, Any] = {"donor": donor_code, "consented_on": consent.consented_on, "change": consent.change,
                  "scopes": sorted(donors.scopes_of(consent)), "form_version": consent.form_version,
                  "taken_by": consent.taken_by}
    emit(result, as_json=as_json,
         text=f"consent of {donor_code} recorded ({result['change'].replace('_', ' ')}): {', '.join(result['scopes'])}")


@donors_app.command("withdraw")
@handle_errors
def donors_withdraw(
    code: CodeArgument,
    requested_by: Annotated[str, typer.Option("--requested-by", help="Who asked: donor, next_of_kin or legal_representative.")],
    reason: Annotated[str, typer.Option("--reason", help="Why consent was withdrawn.")],
    scope: Annotated[list[str] | None, typer.Option("--scope", help="Withdraw only this scope (repeat for several): a partial withdrawal; without it, all consent is withdrawn.")] = None,
    material: Annotated[str | None, typer.Option("--material", help=f"Full withdrawal only, what happens to the material held: {', '.join(WithdrawalMaterial)} (default keep_blocked). destroy disposes of every specimen still held.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="When it was asked, e.g. 2026-03-14T09:30 (lab time unless a zone is given); default now.")] = None,
    confirm: Annotated[str | None, typer.Option("--confirm", metavar="CODE", help="The donor's code again, to confirm --material destroy without the prompt (scripts).")] = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Record a withdrawal of consent: all of it (once; the donor's material is blocked from distribution, plans and
    exports, and with --material destroy disposed of) or some scopes (--scope: a new consent version without them).
    Nothing is deleted."""
    withdrawn_at = typed_time("withdrawn_at", at) or utcnow()
    scopes = _scopes(scope) or None
    data = WithdrawalCreate.build(donor_code=code, requested_by=requested_by, withdrawn_at=withdrawn_at, reason=reason,
                                  scopes=scopes, material=_none(material))
    if data.material == WithdrawalMaterial.destroy and not data.scopes:
        _confirm_destroy(code, confirm)
    with unit_of_work() as session:
        done = donors.withdraw_consent(session, actor=acting_user(session, user), **data.model_dump())
        donor_code = donors.get_donor(session, code).code
        if done.withdrawal is not None:
            result: dict[str, Any] = {"donor": donor_code, "withdrawal": "full", "material": done.withdrawal.material,
                                      "disposed": list(done.disposed)}
            text = f"consent of {donor_code} withdrawn (material: {done.withdrawal.material.replace('_', ' ')})"
            if done.disposed:
                text += f"; {len(done.disposed)} specimen(s) disposed of"
        else:
            kept = sorted(donors.scopes_of(done.version))
            result = {"donor": donor_code, "withdrawal": "partial", "withdrawn": sorted(scopes or ()), "scopes": kept}
            text = f"{', '.join(sorted(scopes or ()))} withdrawn for {donor_code}; still consented: {', '.join(kept)}"
    emit(result, as_json=as_json, text=text)


def _confirm_destroy(code: str, confirm: str | None) -> None:
    """Destroying a donor's material is asked twice: the donor's code typed again (or given with --confirm)."""
    if confirm is None:
        if not sys.stdin.isatty():
            raise fail(f"--material destroy disposes of every specimen of {code} still held: confirm with "
                       f"--confirm {code}")
        confirm = typer.prompt(f"every specimen of {code} still held will be disposed of; type the donor's code to confirm")
    if confirm.strip().upper() != code.strip().upper():
        raise fail(f"--confirm {confirm!r} is not the donor's code {code!r}: nothing was recorded")


@donors_app.command("treatment")
@handle_errors
def donors_treatment(
    code: CodeArgument,
    agents: Annotated[str, typer.Option("--agents", help="Agents, e.g. 'letrozole + palbociclib'.")],
    line: Annotated[str | None, typer.Option("--line", help="Line number, from 1; default the next one.")] = None,
    category: Annotated[str, typer.Option(help="endocrine, cdk46_inhibitor, chemotherapy, her2_targeted, bone_targeted, radiotherapy ... (default other).")] = "other",
    intent: Annotated[str, typer.Option(help="neoadjuvant, adjuvant, curative, palliative or unknown.")] = "unknown",
    response: Annotated[str, typer.Option("--response", help="Best response: complete, partial, stable, progressive, not_evaluable, unknown.")] = "unknown",
    start_days: Annotated[str | None, typer.Option("--start-days", help="Start, in days before death.")] = None,
    end_days: Annotated[str | None, typer.Option("--end-days", help="End, in days before death (omit: ongoing at death).")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Or the start date, YYYY-MM-DD (needs the death recorded; only days before death are kept).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Or the end date, YYYY-MM-DD.")] = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Add a line of treatment, kept in days before death (dates are turned into days once the death is recorded)."""
    data = TreatmentLineCreate.build(
        donor_code=code, line_number=_number(line), agents=agents, category=category, intent=intent,
        best_response=response, start_days_before_death=_number(start_days), end_days_before_death=_number(end_days),
        start_on=_day("start_on", start), end_on=_day("end_on", end),
    )
    with unit_of_work() as session:
        made = donors.add_treatment_line(session, actor=acting_user(session, user), **data.model_dump())
        donor_code = donors.get_donor(session, code).code
        result = {"donor": donor_code, "line": made.line_number, "agents": made.agents, "category": made.category,
                  "start_days_before_death": made.start_days_before_death,
                  "end_days_before_death": made.end_days_before_death, "best_response": made.best_response}
    emit(result, as_json=as_json, text=f"line {result['line']} of {donor_code} added: {result['agents']}, from "
         f"{result['start_days_before_death']} days before death")


@donors_app.command("event")
@handle_errors
def donors_event(
    code: CodeArgument,
    kind: Annotated[str, typer.Option("--kind", help="fracture, spinal_cord_compression, hypercalcaemia, vertebroplasty, orthopaedic_surgery or other.")],
    days: Annotated[str | None, typer.Option("--days-before-death", help="When, in days before death.")] = None,
    on: Annotated[str | None, typer.Option("--on", help="Or the day, YYYY-MM-DD (needs the death recorded; only days before death are kept).")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Anatomical-site code, e.g. VERTEBRA_T12.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A short note (no names, dates of birth or record numbers).")] = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Add a clinical event (a fracture, a cord compression, hypercalcaemia ...), kept in days before death."""
    data = ClinicalEventCreate.build(donor_code=code, kind=kind, days_before_death=_number(days), occurred_on=_day("occurred_on", on),
                                     site_code=_none(site), note=_none(note))
    with unit_of_work() as session:
        event = donors.add_clinical_event(session, actor=acting_user(session, user), **data.model_dump())
        donor_code = donors.get_donor(session, code).code
        result: dict[str, Any] = {"donor": donor_code, "kind": event.kind, "days_before_death": event.days_before_death,
                  "site": event.site_code, "note": event.note}
    emit(result, as_json=as_json,
         text=f"{result['kind'].replace('_', ' ')} of {donor_code} added, {result['days_before_death']} days before death")


@donors_app.command("lesion")
@handle_errors
def donors_lesion(
    code: CodeArgument,
    site: Annotated[str, typer.Option("--site", help="Anatomical-site code, e.g. LIVER or FEMUR.")],
    kind: Annotated[str, typer.Option("--kind", help="primary, metastasis, local_recurrence ...")] = "metastasis",
    laterality: Annotated[str | None, typer.Option("--laterality", help="left, right, bilateral, midline ...")] = None,
    size_mm: Annotated[str | None, typer.Option("--size-mm", help="Largest diameter on imaging, mm.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="What imaging showed (no identifiers).")] = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Add a lesion known before the autopsy (from imaging), so the case's labels can be pre-printed; it gets the
    next code (L01, L02 ...). Lesions found at the table are added on the live board."""
    with unit_of_work() as session:
        donor = donors.get_donor(session, code)
        lesion_code = collection.next_lesion_code(session, donor)
        lesion = collection.add_lesion(session, actor=acting_user(session, user), data=LesionCreate.build(
            donor_code=donor.code, code=lesion_code, site_code=site, kind=kind, laterality=_none(laterality),
            size_mm=_none(size_mm), description=_none(description)))
        result: dict[str, Any] = {"donor": donor.code, "lesion": lesion.code, "site": lesion.site_code,
                                  "laterality": lesion.laterality, "kind": lesion.kind, "size_mm": lesion.size_mm}
    emit(result, as_json=as_json, text=f"lesion {result['lesion']} of {result['donor']} added ({result['site']}, "
                                        f"{result['kind'].replace('_', ' ')})")


@donors_app.command("consents")
@handle_errors
def donors_consents(code: CodeArgument, as_json: JsonOption = False) -> None:
    """The consent history of a donor: every version (the last one governs), who took it, the form version, the
    scopes and why, then the withdrawal if any."""
    history = read(consent_history, code)
    if as_json:
        emit(history, as_json=True)
        return
    rows = [
        {"version": v["version"], "on": v["consented_on"], "change": v["change"], "given_by": v["given_by"],
         "taken_by": v["taken_by"], "form": v["form_version"], "scopes": ", ".join(v["scopes"]), "reason": v["reason"]}
        for v in history["versions"]
    ]
    emit_table(rows, ["version", "on", "change", "given_by", "taken_by", "form", "scopes", "reason"])
    withdrawal = history["withdrawal"]
    if withdrawal:
        typer.echo("")
        typer.echo(f"WITHDRAWN {withdrawal['withdrawn_at'].isoformat()} by {withdrawal['requested_by']} "
                   f"(material: {withdrawal['material']}): {withdrawal['reason']}")
    else:
        typer.echo("")
        typer.echo(f"consent in force: {', '.join(history['scopes']) or 'none'}")


@donors_app.command("exports")
@handle_errors
def donors_exports(code: CodeArgument, user: UserOption = None, as_json: JsonOption = False) -> None:
    """Every recorded export that carried the donor, newest first: who made it, when, for which target, with its
    files and their SHA-256. After a withdrawal of consent these are the recipients to tell (administrators and
    PIs)."""
    from biobank.cli.plans import EXPORT_LOG_COLUMNS, export_rows  # the export commands (pandas): only here

    with unit_of_work() as session:
        records = export_reads.donor_exports(session, actor=acting_user(session, user), donor_code=code)
        donor = donors.get_donor(session, code)
        donor_code, withdrawn = donor.code, donor.status == DonorStatus.withdrawn
    if as_json:
        emit_json({"donor": donor_code, "withdrawn": withdrawn, "exports": records})
        return
    emit_table(export_rows(records), EXPORT_LOG_COLUMNS)
    typer.echo("")
    note = f"{len(records)} export(s) carried {donor_code}"
    if withdrawn:
        note += ": consent withdrawn, tell each recipient" if records else ": consent withdrawn"
    typer.echo(note)
