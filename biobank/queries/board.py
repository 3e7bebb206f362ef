# SQLModel declares columns with their Python types, so mypy cannot see SQL expressions in select/join/group_by.
# mypy: disable-error-code="arg-type, call-overload"
"""Reads for the live autopsy board: running cases, the specimens of one case with their PMI flags, its lesions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.domain.timing import pmi_flag, specimen_pmi
from biobank.domain.vocab import AutopsyStatus, SiteKind
from biobank.models import AnatomicalSite, Autopsy, Donor, Lesion, SamplingSite, Specimen
from biobank.services.collection import get_autopsy


def running_cases(session: Session) -> list[dict[str, Any]]:
    """Cases in progress, the most recent death first."""
    statement = (
        select(Autopsy.case_code, Donor.code, Autopsy.death_at, Autopsy.start_at)
        .join(Donor, Donor.id == Autopsy.donor_id)
        .where(Autopsy.status == AutopsyStatus.in_progress)
        .order_by(Autopsy.death_at.desc())  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
    )
    return [
        {"case": case, "donor": donor, "death_at": death_at, "start_at": start_at}
        for case, donor, death_at, start_at in session.exec(statement).all()
    ]


def case_specimens(session: Session, case_code: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """Primary specimens of a case, newest excision first, with PMI and its flag against the target and limit."""
    settings = get_settings()
    autopsy = get_autopsy(session, case_code)
    statement = (
        select(
            Specimen.code,
            Specimen.version,
            Specimen.storage_format,
            Specimen.quantity,
            Specimen.unit,
            Specimen.collected_at,
            Specimen.stabilised_at,
            SamplingSite.code,
            SamplingSite.kind,
            AnatomicalSite.label,
        )
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
        .join(AnatomicalSite, AnatomicalSite.code == SamplingSite.site_code)
        .where(SamplingSite.autopsy_id == autopsy.id, Specimen.lineage == "primary")
        .order_by(Specimen.collected_at.desc(), Specimen.code)  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
        .limit(limit)
    )
    rows = []
    for code, version, fmt, quantity, unit, collected, stabilised, site, kind, label in session.exec(statement).all():
        pmi = None if kind == SiteKind.premortem_blood else specimen_pmi(autopsy.death_at, collected, stabilised)
        hours = round(pmi.hours, 2) if pmi else None
        rows.append(
            {
                "code": code,
                "version": version,
                "region": site,
                "site": label,
                "storage_format": fmt,
                "quantity": quantity,
                "unit": unit,
                "excised_at": collected,
                "stabilised_at": stabilised,
                "pmi_hours": hours,
                "pmi_basis": pmi.basis.value if pmi else None,
                "flag": pmi_flag(hours, target_hours=settings.pmi_target_hours, limit_hours=settings.pmi_limit_hours),
            }
        )
    return rows


def case_lesions(session: Session, case_code: str) -> list[dict[str, Any]]:
    """The donor's lesions with their site label and how many regions were taken, and the next free region label."""
    autopsy = get_autopsy(session, case_code)
    taken: dict[int, list[str]] = {}
    for lesion_id, label in session.exec(
        select(SamplingSite.lesion_id, SamplingSite.region_label).where(
            SamplingSite.donor_id == autopsy.donor_id, SamplingSite.lesion_id.is_not(None)  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
        )
    ).all():
        taken.setdefault(lesion_id, []).append(label or "")
    statement = (
        select(Lesion.id, Lesion.code, Lesion.site_code, AnatomicalSite.label, Lesion.kind, Lesion.laterality)
        .join(AnatomicalSite, AnatomicalSite.code == Lesion.site_code)
        .where(Lesion.donor_id == autopsy.donor_id)
        .order_by(Lesion.code)
    )
    rows = []
    for lesion_id, code, site_code, label, kind, laterality in session.exec(statement).all():
        labels = sorted(taken.get(lesion_id, []))
        rows.append(
            {
                "code": code,
                "site_code": site_code,
                "site": label,
                "kind": kind,
                "laterality": laterality,
                "regions": len(labels),
                "next_label": next_region_label(labels),
            }
        )
    return rows


def next_region_label(taken: list[str]) -> str:
    """The first of A, B, ... Z not yet used for the lesion."""
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if letter not in taken:
            return letter
    return f"A{len(taken)}"


def case_header(session: Session, case_code: str) -> dict[str, Any]:
    autopsy = get_autopsy(session, case_code)
    donor = session.get(Donor, autopsy.donor_id)
    assert donor is not None
    made = session.exec(
        select(func.count())
        .select_from(Specimen)
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
        .where(SamplingSite.autopsy_id == autopsy.id, Specimen.lineage == "primary")
    ).one()
    return {
        "case": autopsy.case_code,
        "donor": donor.code,
        "diagnosis": donor.primary_diagnosis,
        "death_at": autopsy.death_at,
        "refrigerated_at": autopsy.refrigerated_at,
        "start_at": autopsy.start_at,
        "start_estimated": bool(autopsy.start_estimated),
        "end_at": autopsy.end_at,
        "end_estimated": bool(autopsy.end_estimated),
        "prosector": autopsy.prosector,
        "primary_specimens": int(made),
    }


def elapsed_hours(death_at: datetime | None, now: datetime) -> float | None:
    return (now - death_at).total_seconds() / 3600 if death_at is not None else None
