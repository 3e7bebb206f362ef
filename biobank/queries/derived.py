# mypy: disable-error-code="call-overload, arg-type, attr-defined, union-attr"
"""Derived-model metrics, computed with grouped SQL: take rate by site, lesion kind, source format and PMI band;
time to establishment; passages per model.

Take rate = models established at some point (``established_on`` set: established, cryobanked, or discontinued
after establishment) / models initiated. Models still initiated or growing count in the denominator and are
reported separately (``in_progress``) so a young cohort is not mistaken for a poor one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, select

from biobank.db.sqlfunc import hours_between
from biobank.domain.timing import PMI_BANDS
from biobank.domain.vocab_derived import ModelKind, ModelStatus
from biobank.models import Autopsy, DerivedModel, Donor, Lesion, ModelPassage, ModelQC, SamplingSite, Specimen
from biobank.services.checks import check_enum


class days_between(FunctionElement[float]):
    """Days from the first date to the second: ``days_between(initiated_on, established_on)``."""

    inherit_cache = True
    name = "days_between"


@compiles(days_between, "sqlite")
def _days_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"(julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)}))"


@compiles(days_between, "postgresql")
def _days_pg(element: days_between, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"({compiler.process(end, **kw)} - {compiler.process(start, **kw)})"


def source_pmi_hours() -> Any:
    """PMI of the model's source specimen in hours (stabilised, else collected, minus death)."""
    return hours_between(Autopsy.death_at, func.coalesce(Specimen.stabilised_at, Specimen.collected_at))


def pmi_band_expr() -> Any:
    """:func:`biobank.domain.timing.pmi_band` as an SQL CASE built from the same table of bands."""
    hours = source_pmi_hours()
    whens = []
    for label, low, high in PMI_BANDS:
        condition = hours >= low if high == float("inf") else and_(hours >= low, hours < high)
        whens.append((condition, literal(label)))
    return case(*whens, else_=literal("unknown"))


#: The dimensions a take rate can be grouped by, and their SQL expression.
DIMENSIONS = ("site", "lesion_kind", "storage_format", "pmi_band", "kind")


def _dimension(by: str) -> Any:
    if by == "site":
        return SamplingSite.site_code
    if by == "lesion_kind":
        return func.coalesce(Lesion.kind, SamplingSite.kind)  # normal tissue, marrow... when no lesion
    if by == "storage_format":
        return Specimen.storage_format
    if by == "pmi_band":
        return pmi_band_expr()
    if by == "kind":
        return DerivedModel.kind
    raise ValueError(f"by={by!r}: group by one of {', '.join(DIMENSIONS)}")


def _counts() -> tuple[Any, Any, Any, Any]:
    established = func.sum(case((DerivedModel.established_on.is_not(None), 1), else_=0))  # type: ignore[union-attr]
    failed = func.sum(case((DerivedModel.status == ModelStatus.failed.value, 1), else_=0))
    running = func.sum(
        case((DerivedModel.status.in_([ModelStatus.initiated.value, ModelStatus.growing.value]), 1), else_=0)  # type: ignore[attr-defined]
    )
    return func.count(DerivedModel.id), established, failed, running


def _joined(statement: Any) -> Any:
    return (
        statement.select_from(DerivedModel)
        .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
        .join(Lesion, Lesion.id == SamplingSite.lesion_id, isouter=True)
        .join(Autopsy, Autopsy.id == SamplingSite.autopsy_id, isouter=True)
    )


def take_rates(session: Session, *, by: str, per_kind: bool = True) -> list[dict[str, Any]]:
    """Attempted, established, failed, in progress and take rate per value of ``by`` (and per model kind)."""
    dimension = _dimension(by).label("value")
    attempted, established, failed, running = _counts()
    columns = [dimension, *([DerivedModel.kind.label("kind")] if per_kind and by != "kind" else [])]  # type: ignore[attr-defined]
    statement = _joined(select(*columns, attempted, established, failed, running))
    statement = statement.group_by(*[c for c in columns]).order_by(*[c for c in columns])
    rows = []
    for row in session.exec(statement).all():
        values = list(row)
        value = values.pop(0)
        kind = values.pop(0) if len(columns) > 1 else (value if by == "kind" else "all")
        n, est, fail, run = (int(v or 0) for v in values)
        rows.append(
            {
                "by": by,
                "value": value,
                "kind": kind,
                "attempted": n,
                "established": est,
                "failed": fail,
                "in_progress": run,
                "take_rate": round(est / n, 4) if n else None,
            }
        )
    return rows


def time_to_establishment(session: Session) -> list[dict[str, Any]]:
    """Per kind: models established, and the mean, shortest and longest days from initiation to establishment."""
    days = days_between(DerivedModel.initiated_on, DerivedModel.established_on)
    statement = (
        select(DerivedModel.kind, func.count(), func.avg(days), func.min(days), func.max(days))
        .where(DerivedModel.established_on.is_not(None))  # type: ignore[union-attr]
        .group_by(DerivedModel.kind)
        .order_by(DerivedModel.kind)
    )
    return [
        {
            "kind": kind,
            "established": int(n),
            "mean_days": round(float(mean), 1) if mean is not None else None,
            "min_days": int(low) if low is not None else None,
            "max_days": int(high) if high is not None else None,
        }
        for kind, n, mean, low, high in session.exec(statement).all()
    ]


def passages_per_model(session: Session) -> list[dict[str, Any]]:
    """Per model: passages recorded and the highest passage number reached (one grouped query)."""
    statement = (
        select(
            DerivedModel.code,
            DerivedModel.kind,
            DerivedModel.status,
            func.count(ModelPassage.id),
            func.max(ModelPassage.number),
        )
        .join(ModelPassage, ModelPassage.model_id == DerivedModel.id, isouter=True)  # type: ignore[arg-type]
        .group_by(DerivedModel.code, DerivedModel.kind, DerivedModel.status)
        .order_by(DerivedModel.code)
    )
    return [
        {
            "model": code,
            "kind": kind,
            "status": status,
            "passages": int(n),
            "highest_passage": int(top) if top is not None else None,
        }
        for code, kind, status, n, top in session.exec(statement).all()
    ]


def passage_summary(session: Session) -> list[dict[str, Any]]:
    """Per kind: models, mean passages per model and the highest passage number any model reached."""
    per_model = (
        select(
            DerivedModel.kind.label("kind"),
            func.count(ModelPassage.id).label("n"),
            func.max(ModelPassage.number).label("top"),
        )  # type: ignore[attr-defined]
        .join(ModelPassage, ModelPassage.model_id == DerivedModel.id, isouter=True)  # type: ignore[arg-type]
        .group_by(DerivedModel.id, DerivedModel.kind)
        .subquery()
    )
    statement = (
        select(
            per_model.c.kind,
            func.count(),
            func.avg(cast(per_model.c.n, Integer) * 1.0),
            func.max(per_model.c.top),
        )
        .group_by(per_model.c.kind)
        .order_by(per_model.c.kind)
    )
    return [
        {
            "kind": kind,
            "models": int(models),
            "mean_passages": round(float(mean or 0), 2),
            "highest_passage": top,
        }
        for kind, models, mean, top in session.exec(statement).all()
    ]


def model_rows(
    session: Session, *, donor_code: str | None = None, status: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    """One row per model with its site, newest passage number and QC counts (grouped queries, no per-model loop)."""
    passages = (
        select(ModelPassage.model_id, func.count().label("n"), func.max(ModelPassage.number).label("top"))
        .group_by(ModelPassage.model_id)
        .subquery()
    )
    qc = (
        select(
            ModelPassage.model_id,
            func.count(ModelQC.id).label("tests"),
            func.sum(cast(ModelQC.passed, Integer)).label("passed"),
        )
        .join(ModelQC, ModelQC.passage_id == ModelPassage.id)  # type: ignore[arg-type]
        .group_by(ModelPassage.model_id)
        .subquery()
    )
    statement = (
        select(
            DerivedModel,
            Donor.code,
            SamplingSite.code,
            SamplingSite.site_code,
            Lesion.kind,
            Specimen.code,
            passages.c.n,
            passages.c.top,
            qc.c.tests,
            qc.c.passed,
        )
        .join(Donor, Donor.id == DerivedModel.donor_id)  # type: ignore[arg-type]
        .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)  # type: ignore[arg-type]
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)  # type: ignore[arg-type]
        .join(Lesion, Lesion.id == SamplingSite.lesion_id, isouter=True)  # type: ignore[arg-type]
        .join(passages, passages.c.model_id == DerivedModel.id, isouter=True)
        .join(qc, qc.c.model_id == DerivedModel.id, isouter=True)
        .order_by(DerivedModel.code)
    )
    if donor_code:
        statement = statement.where(Donor.code == donor_code)
    if status:
        check_enum("status", status, ModelStatus)
        statement = statement.where(DerivedModel.status == status)
    if kind:
        check_enum("kind", kind, ModelKind)
        statement = statement.where(DerivedModel.kind == kind)
    rows = []
    for model, donor, region, site, lesion_kind, source, n, top, tests, passed in session.exec(
        statement
    ).all():  # type: ignore[call-overload]
        tests, passed = int(tests or 0), int(passed or 0)
        rows.append(
            {
                "code": model.code,
                "kind": model.kind,
                "status": model.status,
                "donor": donor,
                "region": region,
                "site": site,
                "lesion_kind": lesion_kind or "none",
                "source": source,
                "initiated_on": model.initiated_on.isoformat(),
                "established_on": model.established_on.isoformat() if model.established_on else None,
                "passages": int(n or 0),
                "passage": f"P{top}" if top is not None else None,
                "qc_tests": tests,
                "qc": "none" if tests == 0 else ("passed" if passed == tests else f"{tests - passed} failed"),
            }
        )
    return rows
