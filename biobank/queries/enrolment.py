"""Reads for enrolment: each donor's consent as it stands, and the consent history (every version and the
withdrawal), shared by the Enrolment page, the donor view and ``biobank donors consents``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from biobank.domain.vocab import ConsentScope, SpecimenStatus
from biobank.models import Autopsy, Consent, ConsentWithdrawal, Donor, Specimen, TreatmentLine, User
from biobank.models.base import table_of
from biobank.services.donors import (
    HELD,
    consent_versions,
    get_donor,
    latest_consents,
    next_donor_code,
    scopes_of,
    withdrawal_of,
)


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return dict(session.exec(select(User.id, User.username).where(col(User.id).in_(wanted))).all())  # type: ignore[arg-type]  # id is set on stored rows


def consent_history(session: Session, code: str) -> dict[str, Any]:
    """Every consent version of the donor, oldest first (the last one governs), and the full withdrawal if any."""
    donor = get_donor(session, code)
    versions = consent_versions(session, donor.id)
    withdrawal = withdrawal_of(session, donor.id)
    names = _names(session, {v.created_by_id for v in versions} | {withdrawal.entered_by_id if withdrawal else None})
    shipped = session.exec(
        select(func.count()).select_from(Specimen).where(
            Specimen.donor_id == donor.id, Specimen.status == SpecimenStatus.distributed.value)
    ).one()
    held = session.exec(
        select(func.count()).select_from(Specimen).where(Specimen.donor_id == donor.id, col(Specimen.status).in_(HELD))
    ).one()
    current = scopes_of(versions[-1]) if versions else frozenset()
    return {
        "donor": donor.code,
        "status": donor.status,
        "scopes": [s.value for s in ConsentScope if s.value in current],
        "withdrawn": withdrawal is not None,
        #: specimens still held (what a full withdrawal that destroys would dispose of)
        "held_specimens": held,
        "versions": [
            {
                "version": number,
                "consented_on": v.consented_on,
                "change": v.change,
                "given_by": v.given_by,
                "taken_by": v.taken_by,
                "form_version": v.form_version,
                "document_ref": v.document_ref,
                "scopes": [s.value for s in ConsentScope if getattr(v, s.value)],
                "reason": v.reason,
                "entered_by": names.get(v.created_by_id) if v.created_by_id is not None else None,
                "current": number == len(versions),
            }
            for number, v in enumerate(versions, start=1)
        ],
        "withdrawal": (
            {
                "withdrawn_at": withdrawal.withdrawn_at,
                "requested_by": withdrawal.requested_by,
                "reason": withdrawal.reason,
                "material": withdrawal.material,
                "entered_by": names.get(withdrawal.entered_by_id),
                "distributed_specimens": shipped,
            }
            if withdrawal is not None
            else None
        ),
    }


def enrolment_rows(session: Session) -> list[dict[str, Any]]:
    """One row per donor: status, the consent in force (its scopes, how many versions), whether the death is
    recorded, and how many treatment lines; in code order."""
    latest = latest_consents()
    donor, consent, line = table_of(Donor).c, table_of(Consent).c, table_of(TreatmentLine).c
    withdrawal, autopsy = table_of(ConsentWithdrawal), table_of(Autopsy)
    versions = sql_select(consent.donor_id, func.count().label("versions")).group_by(consent.donor_id).subquery("versions")
    lines = sql_select(line.donor_id, func.count().label("lines")).group_by(line.donor_id).subquery("lines")
    statement = (
        sql_select(
            donor.code, donor.status, donor.primary_diagnosis,
            *[latest.c[s.value] for s in ConsentScope],
            versions.c.versions, lines.c.lines,
            withdrawal.c.id.is_not(None).label("withdrawn"),
            autopsy.c.death_at.is_not(None).label("death_recorded"),
        )
        .select_from(table_of(Donor))
        .join(latest, latest.c.donor_id == donor.id, isouter=True)
        .join(versions, versions.c.donor_id == donor.id, isouter=True)
        .join(lines, lines.c.donor_id == donor.id, isouter=True)
        .join(withdrawal, withdrawal.c.donor_id == donor.id, isouter=True)
        .join(autopsy, autopsy.c.donor_id == donor.id, isouter=True)
        .order_by(donor.code)
    )
    rows = []
    for row in session.execute(statement).mappings():
        scopes = [s.value for s in ConsentScope if row[s.value]]
        rows.append({
            "code": row["code"],
            "status": row["status"],
            "diagnosis": row["primary_diagnosis"],
            "consent": "withdrawn" if row["withdrawn"] else (", ".join(scopes) or "none"),
            "versions": int(row["versions"] or 0),
            "treatment_lines": int(row["lines"] or 0),
            "death_recorded": bool(row["death_recorded"]),
        })
    return rows


def next_code(session: Session) -> str:
    """The code a donor registered now without one would get."""
    return next_donor_code(session)
