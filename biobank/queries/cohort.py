# SQLModel declares columns with their Python types, so mypy cannot see SQL expressions in select/join/group_by.
# mypy: disable-error-code="arg-type, call-overload, union-attr, attr-defined, operator, assignment"
"""Read functions for the cohort overview, the donor view and the audit log.

Every count, histogram and matrix is computed in SQL (grouped queries), so the pages stay fast on a large cohort;
only the rows of one donor, or of the cases a user picked, come back one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, func
from sqlmodel import Session, SQLModel, select

from biobank.config import get_settings
from biobank.domain.timing import PMI_BANDS, specimen_pmi
from biobank.domain.vocab import SiteKind
from biobank.models import (
    AnatomicalSite,
    AuditLog,
    Autopsy,
    ClinicalEvent,
    ConsentWithdrawal,
    DerivedModel,
    Donor,
    Lesion,
    SamplingSite,
    Specimen,
    TreatmentLine,
    User,
)
from biobank.models.summaries import (
    PMI_BIN_HOURS,
    CasePmiSummary,
    CohortGeneration,
    CohortSummary,
    PmiBinSummary,
    SiteSummary,
    SpecimenPmi,
)
from biobank.queries import derived as derived_queries
from biobank.queries.core import pmi_hours_expr
from biobank.services.donors import get_donor

IN_STOCK = ("available", "reserved", "in_use")


@dataclass(frozen=True)
class CohortFilter:
    """Diagnoses (empty: all), a period of death (dates in the lab's zone, inclusive) and a PMI band label."""

    diagnoses: tuple[str, ...] = ()
    death_from: date | None = None
    death_to: date | None = None
    pmi_band: str | None = None

    def window(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        start = datetime.combine(self.death_from, time(0), zone).astimezone(UTC) if self.death_from else None
        end = datetime.combine(self.death_to + timedelta(days=1), time(0), zone).astimezone(UTC) if self.death_to else None
        return start, end


def _band(label: str) -> tuple[float, float]:
    for name, low, high in PMI_BANDS:
        if name == label:
            return low, high
    raise ValueError(f"unknown PMI band {label!r}; one of {[b[0] for b in PMI_BANDS]}")


def _band_bins(label: str) -> tuple[int, int | None]:
    """The maintained half-hour PMI bins of a band: from ``first`` to before ``last`` (None: no upper end); a band
    below zero hours holds the negative bins. Every band's edges are whole bins."""
    low, high = _band(label)
    first = int(low / PMI_BIN_HOURS)
    last = None if high == float("inf") else int(high / PMI_BIN_HOURS)
    assert first * PMI_BIN_HOURS == low and (last is None or last * PMI_BIN_HOURS == high), label
    return first, last


def _filters_donors(f: CohortFilter) -> bool:
    """Whether the filter chooses donors (diagnosis or period of death); without, no donor filter is added at all."""
    return bool(f.diagnoses) or f.death_from is not None or f.death_to is not None


def _donor_ids(f: CohortFilter) -> Select[Any]:
    """The donors the filter keeps (diagnosis and period of death)."""
    statement = select(Donor.id).join(Autopsy, Autopsy.donor_id == Donor.id, isouter=True)
    if f.diagnoses:
        statement = statement.where(Donor.primary_diagnosis.in_(f.diagnoses))
    start, end = f.window(get_settings().zone)
    if start is not None:
        statement = statement.where(Autopsy.death_at >= start)
    if end is not None:
        statement = statement.where(Autopsy.death_at < end)
    return statement


def _kept(statement: Select[Any], donor_column: Any, f: CohortFilter) -> Select[Any]:
    """``statement`` restricted to the filter's donors (only when the filter chooses donors)."""
    return statement.where(donor_column.in_(_donor_ids(f))) if _filters_donors(f) else statement


def _specimens(statement: Select[Any], f: CohortFilter) -> Select[Any]:
    """Join specimens to their site and case and keep those the filter keeps (the PMI band applies to post-mortem
    material; aliquots and derivatives carry their primary's times, so they fall in the same band)."""
    statement = _kept(
        statement.join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
        .join(Autopsy, Autopsy.id == SamplingSite.autopsy_id, isouter=True),
        Specimen.donor_id,
        f,
    )
    if f.pmi_band:
        low, high = _band(f.pmi_band)
        hours = pmi_hours_expr()
        statement = statement.where(SamplingSite.kind != SiteKind.premortem_blood, hours >= low)
        if high != float("inf"):
            statement = statement.where(hours < high)
    return statement


def _summary(statement: Select[Any], model: Any, f: CohortFilter) -> Select[Any]:
    """A read of a maintained summary (biobank.models.summaries) restricted to the filter: its donors and PMI band
    (a band is only ever stored on post-mortem material with a PMI in it)."""
    statement = _kept(statement, model.donor_id, f)
    if f.pmi_band:
        _band(f.pmi_band)  # an unknown band is an error, as before
        statement = statement.where(model.band == f.pmi_band)
    return statement


def generation(session: Session) -> int:
    """A number that grows with every committed change of what the cohort figures read (the triggers of migration
    0019 advance a per-donor counter): equal numbers, equal figures. One tiny query (a row per donor)."""
    return int(session.exec(select(func.coalesce(func.sum(CohortGeneration.generation), 0))).one())


def filter_options(session: Session) -> dict[str, Any]:
    diagnoses = session.exec(
        select(Donor.primary_diagnosis).where(Donor.primary_diagnosis.is_not(None)).distinct().order_by(Donor.primary_diagnosis)
    ).all()
    first, last = session.exec(select(func.min(Autopsy.death_at), func.max(Autopsy.death_at))).one()
    zone = get_settings().zone
    return {
        "diagnoses": list(diagnoses),
        "first_death": first.astimezone(zone).date() if first else None,
        "last_death": last.astimezone(zone).date() if last else None,
        "pmi_bands": [b[0] for b in PMI_BANDS],
    }


def has_models(session: Session) -> bool:
    """Whether any derived model has been recorded (the page shows model figures only then)."""
    return session.exec(select(DerivedModel.id).limit(1)).first() is not None


def _models(statement: Select[Any], f: CohortFilter) -> Select[Any]:
    """Models whose source specimen the filter keeps (donor's diagnosis and death, the source's PMI band)."""
    statement = statement.select_from(DerivedModel)
    if not f.pmi_band and not _filters_donors(f):
        return statement
    joined = statement.join(SpecimenPmi, SpecimenPmi.specimen_id == DerivedModel.source_specimen_id)
    return _summary(joined, SpecimenPmi, f)


def model_counts(session: Session, f: CohortFilter | None = None) -> dict[str, int]:
    """Models by status, of the filter's material."""
    statement = _models(select(DerivedModel.status, func.count()), f or CohortFilter()).group_by(DerivedModel.status)
    return {str(status): int(n) for status, n in session.exec(statement).all()}


def model_outcomes(session: Session, f: CohortFilter | None = None) -> dict[str, Any]:
    """Attempted, established, failed, in progress and the take rate of the filter's models, by the same definition
    as the derived-models page (:func:`biobank.queries.derived.take_rate`)."""
    attempted, established, failed, running = (
        int(v or 0) for v in session.exec(_models(select(*derived_queries.outcome_counts()), f or CohortFilter())).one()
    )
    return {"attempted": attempted, "established": established, "failed": failed, "in_progress": running,
            "take_rate": derived_queries.take_rate(established, attempted)}


def cohort_counts(
    session: Session, f: CohortFilter, *, totals: tuple[int, int, int] | None = None
) -> dict[str, int]:
    """Donors, cases, withdrawals and lesions of the filter's donors; sampling sites, specimens, primaries and those
    in stock of the filter's material (from the maintained summaries); models. ``totals`` (specimens, primaries, in
    stock) when the caller has summed them already (:func:`cohort_overview`)."""

    def count(model: Any) -> int:
        statement = select(func.count()).select_from(model)
        column = model.id if model is Donor else model.donor_id
        return int(session.exec(_kept(statement, column, f)).one())

    in_stock = case((CohortSummary.status.in_(IN_STOCK), CohortSummary.specimens), else_=0)
    primary = case((CohortSummary.lineage == "primary", CohortSummary.specimens), else_=0)
    specimens, primaries, stock = totals or session.exec(
        _summary(select(func.sum(CohortSummary.specimens), func.sum(primary), func.sum(in_stock)), CohortSummary, f)
    ).one()
    regions = session.exec(
        _summary(select(func.count(func.distinct(SiteSummary.sampling_site_id))).where(SiteSummary.specimens > 0),
                 SiteSummary, f)
    ).one()
    models = model_counts(session, f)
    return {
        "donors": count(Donor),
        "autopsies": count(Autopsy),
        "withdrawn": count(ConsentWithdrawal),
        "lesions": count(Lesion),
        "sampling_sites": int(regions or 0),
        "specimens": int(specimens or 0),
        "primary_specimens": int(primaries or 0),
        "in_stock": int(stock or 0),
        "models": sum(models.values()),
    }


def cohort_overview(session: Session, f: CohortFilter) -> dict[str, Any]:
    """What :func:`cohort_counts`, :func:`format_site_matrix` and :func:`stock_by_format` give, from one pass over the
    cohort summary instead of three (the overview page's loader): ``counts``, ``format_sites`` and ``stock``."""
    # grouped by the plain columns, in the order of ix_cohort_summary_format_cover (migration 0021), so the database
    # aggregates while it reads the index instead of sorting every row; primary and in stock are told here
    grouped = (CohortSummary.storage_format, CohortSummary.unit, CohortSummary.site_code, CohortSummary.lineage,
               CohortSummary.status)
    cells = session.exec(
        _summary(
            select(*grouped, func.sum(CohortSummary.specimens), func.sum(CohortSummary.quantity_remaining)),
            CohortSummary,
            f,
        ).group_by(*grouped)
    ).all()
    labels = dict(session.exec(select(AnatomicalSite.code, AnatomicalSite.label)).all())
    per_site: dict[tuple[str, str], int] = {}
    per_format: dict[tuple[str, str], list[float]] = {}
    specimens = primaries = in_stock = 0
    for fmt, unit, site, lineage, status, n, remaining in cells:
        n = int(n or 0)
        if not n:
            continue
        is_primary, is_stocked = lineage == "primary", status in IN_STOCK
        key = (fmt, labels[site])
        per_site[key] = per_site.get(key, 0) + n
        cell = per_format.setdefault((fmt, unit), [0, 0, 0.0])
        cell[0] += n
        specimens += n
        primaries += n if is_primary else 0
        if is_stocked:
            cell[1] += n
            cell[2] += float(remaining or 0)
            in_stock += n
    counts = cohort_counts(session, f, totals=(specimens, primaries, in_stock))
    return {
        "counts": counts,
        "format_sites": [{"storage_format": fmt, "site": site, "specimens": n} for (fmt, site), n in per_site.items()],
        "stock": [
            {"storage_format": fmt, "unit": unit, "specimens": int(c[0]), "in_stock": int(c[1]),
             "quantity_remaining": round(c[2], 2)}
            for (fmt, unit), c in sorted(per_format.items())
        ],
    }


def pmi_histogram(session: Session, f: CohortFilter, *, bin_hours: float = 0.5) -> list[dict[str, Any]]:
    """Primary post-mortem specimens per PMI bin (a multiple of the maintained half-hour bins is read from them)."""
    per_bin = bin_hours / PMI_BIN_HOURS
    if per_bin < 1 or per_bin != int(per_bin):
        hours = SpecimenPmi.hours
        bucket = func.floor(hours / bin_hours)
        statement = _summary(select(bucket, func.count()), SpecimenPmi, f).where(SpecimenPmi.pmi_bin.is_not(None))
        rows = session.exec(statement.group_by(bucket).order_by(bucket)).all()
        return [{"pmi_hours": float(b) * bin_hours, "specimens": int(n)} for b, n in rows if b is not None]
    statement = _kept(select(PmiBinSummary.pmi_bin, func.sum(PmiBinSummary.specimens)), PmiBinSummary.donor_id, f)
    if f.pmi_band:
        first, last = _band_bins(f.pmi_band)
        statement = statement.where(PmiBinSummary.pmi_bin >= first)
        if last is not None:
            statement = statement.where(PmiBinSummary.pmi_bin < last)
    counts: dict[int, int] = {}
    for pmi_bin, n in session.exec(statement.group_by(PmiBinSummary.pmi_bin)).all():
        if n:
            key = int(pmi_bin) // int(per_bin)
            counts[key] = counts.get(key, 0) + int(n)
    return [{"pmi_hours": float(b) * bin_hours, "specimens": n} for b, n in sorted(counts.items()) if n]


def _case_bin_count(bins: Any, hours: Any) -> Any:
    """How many of a case-summary row's specimens have ``hours`` true: the exact count from ``specimen_pmi``, a range
    of ix_specimen_pmi_case (case, bin, hours) read without its table, asked only of the bin that holds the threshold
    strictly inside its range. A case belongs to one donor (the foreign keys of sampling_site and specimen), so the
    donor of the summary row is not matched."""
    p = SpecimenPmi
    return (
        select(func.count())
        .where(p.autopsy_id == bins.autopsy_id, p.pmi_bin == bins.pmi_bin, hours(p.hours))
        .scalar_subquery()
    )


def case_pmi_summary(session: Session, f: CohortFilter) -> list[dict[str, Any]]:
    """Per case: primary specimens, min / mean / max PMI, share within the target, count past the limit; read from the
    per-case PMI bins (migration 0022): a PMI band is a range of bins, and the target and the limit are counted
    exactly in the one bin that straddles each."""
    settings = get_settings()
    target, limit = settings.pmi_target_hours, settings.pmi_limit_hours
    c = CasePmiSummary
    within = case((c.hours_max <= target, c.specimens), (c.hours_min > target, 0),
                  else_=_case_bin_count(c, lambda h: h <= target))
    past = case((c.hours_min > limit, c.specimens), (c.hours_max <= limit, 0),
                else_=_case_bin_count(c, lambda h: h > limit))
    statement = _kept(
        select(
            c.autopsy_id.label("autopsy_id"),
            func.sum(c.specimens).label("n"),
            func.min(c.hours_min).label("low"),
            func.sum(c.hours_sum).label("total"),
            func.max(c.hours_max).label("high"),
            func.sum(within).label("within"),
            func.sum(past).label("past"),
        ).where(c.specimens > 0),
        c.donor_id,
        f,
    )
    if f.pmi_band:
        first, last = _band_bins(f.pmi_band)
        statement = statement.where(c.pmi_bin >= first)
        if last is not None:
            statement = statement.where(c.pmi_bin < last)
    per_case = statement.group_by(c.autopsy_id).subquery()
    statement = (
        select(Autopsy.case_code, Donor.code, Autopsy.death_at, per_case.c.n, per_case.c.low, per_case.c.total,
               per_case.c.high, per_case.c.within, per_case.c.past)
        .join(Autopsy, Autopsy.id == per_case.c.autopsy_id)
        .join(Donor, Donor.id == Autopsy.donor_id)
        .order_by(Autopsy.death_at, Autopsy.case_code)
    )
    zone = settings.zone
    return [
        {
            "case": case_code,
            "donor": donor,
            "death": death.astimezone(zone).date().isoformat(),
            "specimens": int(n),
            "min_pmi_h": round(float(low), 2),
            "mean_pmi_h": round(float(total) / int(n), 2),
            "max_pmi_h": round(float(high), 2),
            "within_target": round(int(within) / int(n), 3),
            "past_limit": int(past),
        }
        for case_code, donor, death, n, low, total, high, within, past in session.exec(statement).all()
    ]


def case_specimen_pmis(session: Session, cases: list[str], f: CohortFilter | None = None) -> list[dict[str, Any]]:
    """Each primary specimen of the chosen cases that the filter keeps: hours from death to excision, its PMI and
    format (for plotting)."""
    if not cases:
        return []
    hours = pmi_hours_expr()
    statement = (
        _specimens(
            select(Autopsy.case_code, Specimen.code, Specimen.storage_format, AnatomicalSite.label,
                   func.coalesce(Lesion.kind, SamplingSite.kind), hours_from_death_expr(), hours).select_from(Specimen),
            f or CohortFilter(),
        )
        .join(AnatomicalSite, AnatomicalSite.code == SamplingSite.site_code)
        .join(Lesion, Lesion.id == SamplingSite.lesion_id, isouter=True)
        .where(Autopsy.case_code.in_(cases), Specimen.lineage == "primary", SamplingSite.kind != SiteKind.premortem_blood)
        # from the cases' sampling sites (by their case index), not from every primary specimen filtered by case
        .where(SamplingSite.autopsy_id.in_(select(Autopsy.id).where(Autopsy.case_code.in_(cases))))
        .order_by(Autopsy.case_code, Specimen.collected_at)
    )
    return [
        {"case": c, "code": code, "storage_format": fmt, "site": site, "kind": kind,
         "excised_h": round(float(excised), 3), "pmi_h": round(float(pmi), 3)}
        for c, code, fmt, site, kind, excised, pmi in session.exec(statement).all()
    ]


def hours_from_death_expr() -> Any:
    from biobank.db.sqlfunc import hours_between

    return hours_between(Autopsy.death_at, Specimen.collected_at)


def _donor_sites(f: CohortFilter, donor_ids: Sequence[int] | None = None) -> Any:
    """Sampling sites of post-mortem material per donor id and anatomical site code (a subquery); only of
    ``donor_ids`` when given (read through the summary's key, which starts with the donor)."""
    statement = _summary(
        select(SiteSummary.donor_id.label("donor_id"), SiteSummary.site_code.label("site_code"),
               func.count(func.distinct(SiteSummary.sampling_site_id)).label("n"))
        .where(SiteSummary.specimens > 0, SiteSummary.postmortem),
        SiteSummary,
        f,
    )
    if donor_ids is not None:
        statement = statement.where(SiteSummary.donor_id.in_(list(donor_ids)))
    return statement.group_by(SiteSummary.donor_id, SiteSummary.site_code).subquery()


def donor_site_matrix(
    session: Session, f: CohortFilter, *, donor_ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Sampling sites taken per donor and anatomical site (regions, normal tissues, blood, marrow); only of the
    donors ``donor_ids`` when given (a page of the matrix)."""
    per = _donor_sites(f, donor_ids)
    statement = (
        select(Donor.code, AnatomicalSite.label, func.sum(per.c.n))
        .select_from(per)
        .join(Donor, Donor.id == per.c.donor_id)
        .join(AnatomicalSite, AnatomicalSite.code == per.c.site_code)
        .group_by(Donor.code, AnatomicalSite.label)
    )
    return [{"donor": d, "site": s, "sampling_sites": int(n)} for d, s, n in session.exec(statement).all()]


def donor_site_page(
    session: Session, f: CohortFilter, *, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], list[str], int]:
    """One page of the donor x site matrix (donors by code): its rows, the page's donor codes and how many donors
    have any post-mortem sampling site the filter keeps. An index probe per donor, then the page's donors only."""
    sites = _summary(
        select(SiteSummary.donor_id).where(SiteSummary.donor_id == Donor.id, SiteSummary.specimens > 0,
                                           SiteSummary.postmortem),
        SiteSummary,
        CohortFilter(pmi_band=f.pmi_band),
    )
    donors = _kept(select(Donor.id, Donor.code).where(sites.exists()), Donor.id, f)
    total = int(session.exec(select(func.count()).select_from(donors.subquery())).one())
    page = session.exec(donors.order_by(Donor.code).limit(limit).offset(offset)).all()
    rows = donor_site_matrix(session, f, donor_ids=[i for i, _ in page]) if page else []
    return rows, [code for _, code in page], total


def format_site_matrix(session: Session, f: CohortFilter) -> list[dict[str, Any]]:
    """Specimens per storage format and anatomical site."""
    n = func.sum(CohortSummary.specimens)
    statement = _summary(
        select(CohortSummary.storage_format, AnatomicalSite.label, n)
        .join(AnatomicalSite, AnatomicalSite.code == CohortSummary.site_code),
        CohortSummary,
        f,
    ).group_by(CohortSummary.storage_format, AnatomicalSite.label).having(n > 0)
    return [{"storage_format": fmt, "site": s, "specimens": int(n)} for fmt, s, n in session.exec(statement).all()]


def stock_by_format(session: Session, f: CohortFilter) -> list[dict[str, Any]]:
    """Specimens, those still in stock and the quantity remaining, by storage format and unit."""
    stocked = CohortSummary.status.in_(IN_STOCK)
    total = func.sum(CohortSummary.specimens)
    statement = _summary(
        select(
            CohortSummary.storage_format,
            CohortSummary.unit,
            total,
            func.sum(case((stocked, CohortSummary.specimens), else_=0)),
            func.sum(case((stocked, CohortSummary.quantity_remaining), else_=0.0)),
        ),
        CohortSummary,
        f,
    ).group_by(CohortSummary.storage_format, CohortSummary.unit).having(total > 0)
    statement = statement.order_by(CohortSummary.storage_format, CohortSummary.unit)
    return [
        {"storage_format": fmt, "unit": unit, "specimens": int(total), "in_stock": int(stock or 0),
         "quantity_remaining": round(float(remaining or 0), 2)}
        for fmt, unit, total, stock, remaining in session.exec(statement).all()
    ]


# -- one donor ---------------------------------------------------------------------------------------------------


def donor_of_case(session: Session, case_code: str) -> str | None:
    """The donor code of an autopsy case (any letter case), or None."""
    statement = select(Donor.code).join(Autopsy, Autopsy.donor_id == Donor.id).where(
        func.upper(Autopsy.case_code) == case_code.strip().upper()
    )
    return session.exec(statement).first()


def donor_codes(session: Session) -> list[str]:
    return list(session.exec(select(Donor.code).order_by(Donor.code)).all())


def donor_timeline(session: Session, code: str) -> dict[str, Any]:
    """The clinical course in days before death and the post-mortem course in hours after death."""
    donor = get_donor(session, code)
    autopsy = session.exec(select(Autopsy).where(Autopsy.donor_id == donor.id)).first()
    course: list[dict[str, Any]] = []
    if donor.diagnosis_days_before_death is not None:
        course.append({"lane": "Diagnosis", "label": donor.primary_diagnosis or "diagnosis", "start": -donor.diagnosis_days_before_death, "end": None})
    for line in session.exec(select(TreatmentLine).where(TreatmentLine.donor_id == donor.id).order_by(TreatmentLine.line_number)).all():
        course.append({
            "lane": "Treatment", "label": f"L{line.line_number}: {line.agents} ({line.best_response})",
            "start": -line.start_days_before_death,
            "end": -(line.end_days_before_death if line.end_days_before_death is not None else 0),
        })
    for event in session.exec(select(ClinicalEvent).where(ClinicalEvent.donor_id == donor.id).order_by(ClinicalEvent.days_before_death.desc())).all():
        course.append({"lane": "Events", "label": event.kind.replace("_", " ") + (f" ({event.site_code})" if event.site_code else ""),
                       "start": -event.days_before_death, "end": None})
    post: list[dict[str, Any]] = []
    if autopsy is not None and autopsy.death_at is not None:
        course.append({"lane": "Death", "label": "death", "start": 0, "end": None})
        death = autopsy.death_at

        def h(t: datetime | None) -> float | None:
            return round((t - death).total_seconds() / 3600, 3) if t is not None else None

        # an estimated start or end (from the first and last sample, issue 19) says so: "autopsy start (estimated)"
        for label, when, estimated in (("refrigerated", autopsy.refrigerated_at, False),
                                       ("autopsy start", autopsy.start_at, autopsy.start_estimated),
                                       ("autopsy end", autopsy.end_at, autopsy.end_estimated)):
            if when is not None:
                post.append({"event": f"{label} (estimated)" if estimated else label, "hours": h(when)})
        first, last, n = session.exec(
            select(func.min(Specimen.collected_at), func.max(Specimen.collected_at), func.count())
            .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
            .where(SamplingSite.autopsy_id == autopsy.id, Specimen.lineage == "primary", SamplingSite.kind != SiteKind.premortem_blood)
        ).one()
        if first is not None:
            post.append({"event": "first specimen", "hours": h(first)})
            post.append({"event": f"last specimen ({n} in all)", "hours": h(last)})
    return {"course": course, "post_mortem": sorted(post, key=lambda e: e["hours"])}


def donor_sites(session: Session, code: str) -> list[dict[str, Any]]:
    """Every sampling site of the donor with its lesion, kind and how many specimens it gave (for the body map)."""
    donor = get_donor(session, code)
    counts = dict(
        session.exec(
            select(Specimen.sampling_site_id, func.count()).where(Specimen.donor_id == donor.id).group_by(Specimen.sampling_site_id)
        ).all()
    )
    statement = (
        select(SamplingSite.id, SamplingSite.code, SamplingSite.kind, SamplingSite.site_code, SamplingSite.laterality,
               SamplingSite.tissue_status, AnatomicalSite.label, Lesion.code, Lesion.kind)
        .join(AnatomicalSite, AnatomicalSite.code == SamplingSite.site_code)
        .join(Lesion, Lesion.id == SamplingSite.lesion_id, isouter=True)
        .where(SamplingSite.donor_id == donor.id)
        .order_by(SamplingSite.code)
    )
    return [
        {
            "sampling_site": site_code, "kind": kind, "site_code": anatomical, "site": label, "laterality": laterality,
            "tissue_status": status, "lesion": lesion, "lesion_kind": lesion_kind,
            "category": lesion_kind or kind, "specimens": int(counts.get(site_id, 0)),
        }
        for site_id, site_code, kind, anatomical, laterality, status, label, lesion, lesion_kind in session.exec(statement).all()
    ]


def donor_lesions(session: Session, code: str) -> list[dict[str, Any]]:
    donor = get_donor(session, code)
    regions: dict[int, list[str]] = {}
    for lesion_id, region in session.exec(
        select(SamplingSite.lesion_id, SamplingSite.code).where(SamplingSite.donor_id == donor.id, SamplingSite.lesion_id.is_not(None)).order_by(SamplingSite.code)
    ).all():
        regions.setdefault(lesion_id, []).append(region)
    rows = session.exec(
        select(Lesion, AnatomicalSite.label).join(AnatomicalSite, AnatomicalSite.code == Lesion.site_code)
        .where(Lesion.donor_id == donor.id).order_by(Lesion.code)
    ).all()
    return [
        {
            "lesion": lesion.code, "site": label, "laterality": lesion.laterality, "kind": lesion.kind,
            "bone_phenotype": lesion.bone_phenotype, "size_mm": lesion.size_mm, "imaging": lesion.imaging_response,
            "er": lesion.er_status, "regions": ", ".join(regions.get(lesion.id, [])) or "none",
        }
        for lesion, label in rows
    ]


def donor_specimens(session: Session, code: str) -> list[dict[str, Any]]:
    """Every specimen of the donor with its parent and PMI (one donor: tens to a few hundred rows)."""
    donor = get_donor(session, code)
    autopsy = session.exec(select(Autopsy).where(Autopsy.donor_id == donor.id)).first()
    death = autopsy.death_at if autopsy else None
    codes = dict(session.exec(select(Specimen.id, Specimen.code).where(Specimen.donor_id == donor.id)).all())
    statement = (
        select(Specimen, SamplingSite.code, SamplingSite.kind)
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
        .where(Specimen.donor_id == donor.id)
        .order_by(SamplingSite.code, Specimen.code)
    )
    rows = []
    for specimen, site, kind in session.exec(statement).all():
        pmi = None if kind == SiteKind.premortem_blood else specimen_pmi(death, specimen.collected_at, specimen.stabilised_at)
        rows.append({
            "code": specimen.code, "parent": codes.get(specimen.parent_id) if specimen.parent_id else None,
            "sampling_site": site, "lineage": specimen.lineage, "material_type": specimen.material_type,
            "storage_format": specimen.storage_format, "status": specimen.status,
            "quantity_remaining": specimen.quantity_remaining, "unit": specimen.unit,
            "pmi_h": round(pmi.hours, 2) if pmi else None,
            "cellularity_pct": specimen.tumour_cellularity_pct,
        })
    return rows


def donor_models(session: Session, code: str) -> list[dict[str, Any]]:
    """The donor's derived models with their source specimen."""
    donor = get_donor(session, code)
    statement = (
        select(
            DerivedModel.code, DerivedModel.kind, DerivedModel.status, DerivedModel.initiated_on,
            DerivedModel.established_on, Specimen.code,
        )
        .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)
        .where(DerivedModel.donor_id == donor.id)
        .order_by(DerivedModel.code)
    )
    shown = ["code", "kind", "status", "initiated_on", "established_on", "source_specimen"]
    return [dict(zip(shown, row, strict=True)) for row in session.exec(statement).all()]


# -- audit log ---------------------------------------------------------------------------------------------------


def audit_filter_options(session: Session) -> dict[str, list[str]]:
    users = session.exec(select(User.username).order_by(User.username)).all()
    tables = session.exec(select(AuditLog.table_name).distinct().order_by(AuditLog.table_name)).all()
    return {"users": list(users), "tables": list(tables)}


def audit_page(
    session: Session,
    *,
    username: str | None = None,
    table: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the audit log, newest first, and how many rows match in all."""
    conditions = []
    if username:
        conditions.append(AuditLog.user_id.in_(select(User.id).where(User.username == username)))
    if table:
        conditions.append(AuditLog.table_name == table)
    if start is not None:
        conditions.append(AuditLog.occurred_at >= start)
    if end is not None:
        conditions.append(AuditLog.occurred_at < end)
    where = and_(True, *conditions)
    total = session.exec(select(func.count()).select_from(AuditLog).where(where)).one()
    statement = (
        select(AuditLog, User.username)
        .join(User, User.id == AuditLog.user_id, isouter=True)
        .where(where)
        .order_by(AuditLog.occurred_at.desc(), AuditLog.id.desc())
        .limit(limit)
        .offset(offset)
    )
    found = session.exec(statement).all()
    names = record_names(session, [(log.table_name, log.row_id) for log, _ in found])
    rows = [
        {
            "at": log.occurred_at, "user": name, "table": log.table_name,
            "record": names.get((log.table_name, log.row_id), f"#{log.row_id}"), "action": log.action,
            "changes": _describe(log.action, log.changes or {}), "reason": log.reason,
        }
        for log, name in found
    ]
    return rows, int(total)


#: The column that names a row of a table to a person, tried in this order (the first the table has wins).
NAMING_COLUMNS = ("code", "case_code", "username", "label", "name")


def record_names(session: Session, rows: Sequence[tuple[str, Any]]) -> dict[tuple[str, Any], str]:
    """What people call the audited rows: ``("specimen", 912)`` -> ``"RA0001-L01A-SF1"``; one query per table."""
    tables = SQLModel.metadata.tables
    wanted: dict[str, set[int]] = {}
    for table_name, row_id in rows:
        if table_name in tables and row_id is not None and str(row_id).isdigit():
            wanted.setdefault(table_name, set()).add(int(row_id))
    names: dict[tuple[str, Any], str] = {}
    for table_name, ids in wanted.items():
        table = tables[table_name]
        column = next((table.c[c] for c in NAMING_COLUMNS if c in table.c), None)
        if column is None or "id" not in table.c:
            continue
        for row_id, name in session.execute(select(table.c.id, column).where(table.c.id.in_(ids))).all():
            names[(table_name, row_id)] = str(name)
            names[(table_name, str(row_id))] = str(name)
    return names


def _describe(action: str, changes: dict[str, Any]) -> str:
    """``field: old → new`` for updates; ``field=value`` for inserts (bookkeeping columns left out)."""
    skip = {"created_at", "created_by_id", "updated_at", "updated_by_id"}
    if action == "insert":
        return ", ".join(
            f"{k}={_clip(v[1] if isinstance(v, list) and len(v) == 2 else v)}" for k, v in changes.items() if k not in skip
        )
    return ", ".join(f"{k}: {_short(v)}" for k, v in changes.items() if k not in skip)


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2:
        return f"{_clip(value[0])} → {_clip(value[1])}"
    return _clip(value)


def _clip(value: Any, width: int = 40) -> str:
    shown = "∅" if value is None else str(value)
    return shown if len(shown) <= width else shown[: width - 1] + "…"




# -- specimen search ---------------------------------------------------------------------------------------------

# Moved to biobank.queries.search (issue 21, item 4: read through the code indexes); importable from here still.
from biobank.queries.search import _bare, _bare_sql, resolve_specimen_code, similar_codes  # noqa: E402, F401
