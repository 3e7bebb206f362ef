"""Read functions shared by the CLI, the dashboard and the exports. Aggregates are computed in SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, cast, func
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from biobank.config import get_settings
from biobank.db.sqlfunc import hours_between
from biobank.domain.timing import case_figures, specimen_pmi, warm_pmi
from biobank.models import (
    AnatomicalSite,
    Autopsy,
    Consent,
    ConsentWithdrawal,
    Donor,
    Lesion,
    SamplingSite,
    Specimen,
    TreatmentLine,
)
from biobank.models.base import pk
from biobank.queries import specimen_view
from biobank.services.collection import get_autopsy
from biobank.services.donors import consent_state, get_donor


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def pmi_hours_expr() -> Any:
    """Specimen PMI in hours (stabilised, else excised, minus death), as an SQL expression."""
    return hours_between(Autopsy.death_at, func.coalesce(Specimen.stabilised_at, Specimen.collected_at))


def cohort_counts(session: Session) -> dict[str, int]:
    def count(model: Any) -> int:
        return int(session.exec(select(func.count()).select_from(model)).one())

    return {
        "donors": count(Donor),
        "autopsies": count(Autopsy),
        "lesions": count(Lesion),
        "sampling_sites": count(SamplingSite),
        "specimens": count(Specimen),
        "withdrawn": count(ConsentWithdrawal),
    }


def donor_rows(session: Session) -> list[dict[str, Any]]:
    """One row per donor with their case and specimen count (two grouped queries, no per-donor loop)."""
    counts = dict(
        session.exec(select(Specimen.donor_id, func.count()).group_by(Specimen.donor_id)).all()  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
    )
    withdrawn = set(session.exec(select(ConsentWithdrawal.donor_id)).all())
    statement = (
        select(Donor, Autopsy.case_code, Autopsy.death_at, Autopsy.status)
        .join(Autopsy, col(Autopsy.donor_id) == col(Donor.id), isouter=True)
        .order_by(Donor.code)
    )
    rows = []
    for donor, case_code, death_at, autopsy_status in session.exec(statement).all():
        rows.append(
            {
                "code": donor.code,
                "sex": donor.sex,
                "age_at_death": donor.age_at_death,
                "diagnosis": donor.primary_diagnosis,
                "primary_site": donor.primary_site_code,
                "status": donor.status,
                "consent_withdrawn": donor.id in withdrawn,
                "case": case_code,
                "death_at": _iso(death_at),
                "autopsy_status": autopsy_status,
                "specimens": int(counts.get(pk(donor), 0)),
            }
        )
    return rows


def hidden_donors(session: Session, role: str | None) -> set[str]:
    """The donors a user of ``role`` is never shown: those whose consent is withdrawn, unless the user is an
    administrator (who answers for the withdrawal). The API's reads leave them out; a specimen of one is not found."""
    if role == "admin":
        return set()
    withdrawn = (select(Donor.code).join(ConsentWithdrawal, col(ConsentWithdrawal.donor_id) == col(Donor.id))
                 .distinct())
    return set(session.exec(withdrawn).all())


def specimen_pmis(session: Session, autopsy: Autopsy) -> list[tuple[str, float, str]]:
    """(code, PMI hours, basis) of the primary specimens of a case, post-mortem material only."""
    statement = (
        select(Specimen.code, Specimen.collected_at, Specimen.stabilised_at)
        .join(SamplingSite, col(SamplingSite.id) == col(Specimen.sampling_site_id))
        .where(SamplingSite.autopsy_id == autopsy.id, Specimen.lineage == "primary", SamplingSite.kind != "premortem_blood")
        .order_by(col(Specimen.collected_at), col(Specimen.code))
    )
    result = []
    for code, collected_at, stabilised_at in session.exec(statement).all():
        pmi = specimen_pmi(autopsy.death_at, collected_at, stabilised_at)
        if pmi is not None:
            result.append((code, pmi.hours, pmi.basis.value))
    return result


def autopsy_summary(session: Session, case_code: str) -> dict[str, Any]:
    settings = get_settings()
    autopsy = get_autopsy(session, case_code)
    donor = session.get(Donor, autopsy.donor_id)
    assert donor is not None
    pmis = specimen_pmis(session, autopsy)
    from datetime import timedelta

    figures = case_figures(
        autopsy.death_at,
        autopsy.start_at,
        [timedelta(hours=h) for _, h, _ in pmis],
        target=settings.pmi_target,
        limit=settings.pmi_limit,
    )
    by_format = dict(
        session.exec(
            select(Specimen.storage_format, func.count())
            .join(SamplingSite, col(SamplingSite.id) == col(Specimen.sampling_site_id))
            .where(SamplingSite.autopsy_id == autopsy.id)
            .group_by(Specimen.storage_format)
        ).all()
    )
    sites = session.exec(
        select(SamplingSite.kind, func.count()).where(SamplingSite.autopsy_id == autopsy.id).group_by(SamplingSite.kind)
    ).all()
    lesions = session.exec(select(Lesion).where(Lesion.donor_id == donor.id).order_by(Lesion.code)).all()

    def hours(value: Any) -> float | None:
        return round(value.total_seconds() / 3600, 2) if value is not None else None

    warm = warm_pmi(autopsy.death_at, autopsy.refrigerated_at)
    return {
        "case": autopsy.case_code,
        "donor": donor.code,
        "status": autopsy.status,
        "death_at": _iso(autopsy.death_at),
        "refrigerated_at": _iso(autopsy.refrigerated_at),
        "start_at": _iso(autopsy.start_at),
        "end_at": _iso(autopsy.end_at),
        "start_estimated": bool(autopsy.start_estimated),
        "end_estimated": bool(autopsy.end_estimated),
        "institution": autopsy.institution,
        "prosector": autopsy.prosector,
        "warm_pmi_hours": hours(warm),
        "pmi_at_start_hours": hours(figures.pmi_at_start),
        "last_specimen_pmi_hours": hours(figures.last_specimen_pmi),
        "median_pmi_hours": hours(figures.median_pmi),
        "share_within_target": round(figures.share_within_target, 3) if figures.share_within_target is not None else None,
        "specimens_beyond_limit": figures.beyond_limit,
        "primary_specimens": figures.specimens,
        "pmi_target_hours": settings.pmi_target_hours,
        "pmi_limit_hours": settings.pmi_limit_hours,
        "specimens_by_format": {k: int(v) for k, v in sorted(by_format.items())},
        "sampling_sites_by_kind": {k: int(v) for k, v in sorted(sites)},
        "lesions": [
            {"code": lesion.code, "site": lesion.site_code, "kind": lesion.kind, "laterality": lesion.laterality}
            for lesion in lesions
        ],
    }


def specimen_detail(session: Session, code: str) -> dict[str, Any]:
    """Everything the specimen view and ``specimen show`` print: SPREC, PMI, QC, lineage, custody history.

    Read in the session's transaction, on its driver connection, by
    :func:`biobank.queries.specimen_view.specimen_detail`, the one implementation (``biobank specimen show`` calls it
    on a bare connection of :mod:`biobank.db.direct`). What the session holds unwritten is flushed first, as any
    query of the session would."""
    if session.autoflush:
        session.flush()
    connection = session.connection()
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        return specimen_view.specimen_detail(connection.connection.driver_connection, code)
    except driver_error as exc:
        # the driver's own error (PostgreSQL refuses a NUL in a text parameter), as SQLAlchemy would have raised it,
        # so callers handle it as any other statement's (the API: 422)
        raise DBAPIError.instance("specimen view", None, exc, driver_error, dialect=connection.dialect) from exc


def donor_detail(session: Session, code: str) -> dict[str, Any]:
    donor = get_donor(session, code)
    autopsy = session.exec(select(Autopsy).where(Autopsy.donor_id == donor.id)).first()
    state = consent_state(session, donor)
    withdrawal = session.exec(select(ConsentWithdrawal).where(ConsentWithdrawal.donor_id == donor.id)).first()
    treatments = session.exec(select(TreatmentLine).where(TreatmentLine.donor_id == donor.id).order_by(col(TreatmentLine.line_number))).all()
    consents = session.exec(select(Consent).where(Consent.donor_id == donor.id)).all()
    return {
        "code": donor.code,
        "sex": donor.sex,
        "age_at_death": donor.age_at_death,
        "primary_diagnosis": donor.primary_diagnosis,
        "primary_site": donor.primary_site_code,
        "icdo3": f"{donor.icdo3_topography or ''} {donor.icdo3_morphology or ''}".strip(),
        "diagnosis_days_before_death": donor.diagnosis_days_before_death,
        "receptors": {"er": donor.er_status, "pr": donor.pr_status, "her2": donor.her2_status},
        "cause_of_death": donor.cause_of_death,
        "hardy_scale": donor.hardy_scale,
        "status": donor.status,
        "case": autopsy.case_code if autopsy else None,
        "death_at": _iso(autopsy.death_at) if autopsy else None,
        "consent_scopes": sorted(state.scopes),
        "consent_withdrawn": state.withdrawn,
        "withdrawal": (
            {"at": _iso(withdrawal.withdrawn_at), "requested_by": withdrawal.requested_by, "reason": withdrawal.reason}
            if withdrawal
            else None
        ),
        "consents": [
            {"given_by": c.given_by, "on": c.consented_on.isoformat(), "document": c.document_ref} for c in consents
        ],
        "treatment_lines": [
            {
                "line": t.line_number,
                "agents": t.agents,
                "category": t.category,
                "intent": t.intent,
                "start_days_before_death": t.start_days_before_death,
                "end_days_before_death": t.end_days_before_death,
                "best_response": t.best_response,
            }
            for t in treatments
        ],
    }


def pmi_distribution(session: Session, *, bin_hours: float = 0.5) -> list[dict[str, Any]]:
    """Histogram of primary post-mortem specimen PMIs, binned in SQL (never every specimen in memory)."""
    hours = pmi_hours_expr()
    bucket = cast(func.floor(hours / bin_hours), Integer)  # integer keys: the grouping sort is cheaper at 1 M rows
    statement = (
        select(bucket.label("bucket"), func.count().label("n"))
        .select_from(Specimen)
        .join(SamplingSite, col(SamplingSite.id) == col(Specimen.sampling_site_id))
        .join(Autopsy, col(Autopsy.id) == col(SamplingSite.autopsy_id))
        .where(Specimen.lineage == "primary", SamplingSite.kind != "premortem_blood", Autopsy.death_at.is_not(None))  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
        .group_by(bucket)
        .order_by(bucket)
    )
    return [
        {"pmi_hours": float(b) * bin_hours, "specimens": int(n)} for b, n in session.exec(statement).all() if b is not None
    ]


def specimens_by_format_and_site(session: Session) -> list[dict[str, Any]]:
    site = aliased(AnatomicalSite)
    statement = (
        select(Specimen.storage_format, SamplingSite.site_code, site.label, func.count())
        .join(SamplingSite, col(SamplingSite.id) == col(Specimen.sampling_site_id))
        .join(site, col(site.code) == col(SamplingSite.site_code))
        .group_by(Specimen.storage_format, SamplingSite.site_code, site.label)
    )
    return [
        {"storage_format": f, "site_code": c, "site": label, "specimens": int(n)} for f, c, label, n in session.exec(statement).all()
    ]


def stock_by_format(session: Session) -> list[dict[str, Any]]:
    available = case((Specimen.status.in_(["available", "reserved", "in_use"]), 1), else_=0)  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
    statement = (
        select(  # type: ignore[call-overload]  # SQLModel columns typed as their Python values
            Specimen.storage_format,
            Specimen.unit,
            func.count(),
            func.sum(available),
            func.sum(Specimen.quantity_remaining * available),
        )
        .group_by(Specimen.storage_format, Specimen.unit)
        .order_by(Specimen.storage_format)
    )
    return [
        {
            "storage_format": fmt,
            "unit": unit,
            "specimens": int(total),
            "in_stock": int(stock or 0),
            "quantity_remaining": float(remaining or 0),
        }
        for fmt, unit, total, stock, remaining in session.exec(statement).all()
    ]
