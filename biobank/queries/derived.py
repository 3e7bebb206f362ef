# mypy: disable-error-code="call-overload, arg-type, attr-defined, union-attr"
"""Derived-model metrics, computed with grouped SQL: take rate by site, lesion kind, source format and PMI band;
time to establishment; passages per model.

Take rate = models established at some point (``established_on`` set: established, cryobanked, or discontinued
after establishment) / models initiated. Models still initiated or growing count in the denominator and are
reported separately (``in_progress``) so a young cohort is not mistaken for a poor one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal
from sqlmodel import Session, select

from biobank.db.sqlfunc import days_between, hours_between
from biobank.domain.timing import PMI_BANDS
from biobank.domain.vocab_derived import ModelKind, ModelStatus
from biobank.models import Autopsy, DerivedModel, Donor, Lesion, ModelPassage, ModelQC, SamplingSite, Specimen
from biobank.services.checks import check_enum
from biobank.services.derived import get_model, model_donor, model_qc_rows, qc_requirements_met


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


def outcome_counts() -> tuple[Any, Any, Any, Any]:
    """Attempted, established, failed and in-progress model counts as SQL aggregates: the one take-rate definition
    the derived-models page, the cohort overview and the CLI share."""
    established = func.sum(case((DerivedModel.established_on.is_not(None), 1), else_=0))
    failed = func.sum(case((DerivedModel.status == ModelStatus.failed.value, 1), else_=0))
    running = func.sum(
        case((DerivedModel.status.in_([ModelStatus.initiated.value, ModelStatus.growing.value]), 1), else_=0)
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


def take_rate(established: int, attempted: int) -> float | None:
    """Models established at some point over models initiated (None when none was initiated)."""
    return round(established / attempted, 4) if attempted else None


def take_rates(session: Session, *, by: str, per_kind: bool = True) -> list[dict[str, Any]]:
    """Attempted, established, failed, in progress and take rate per value of ``by`` (and per model kind)."""
    dimension = _dimension(by).label("value")
    attempted, established, failed, running = outcome_counts()
    columns = [dimension, *([DerivedModel.kind.label("kind")] if per_kind and by != "kind" else [])]
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
                "take_rate": take_rate(est, n),
            }
        )
    return rows


def time_to_establishment(session: Session) -> list[dict[str, Any]]:
    """Per kind: models established, and the mean, shortest and longest days from initiation to establishment."""
    days = days_between(DerivedModel.initiated_on, DerivedModel.established_on)
    statement = (
        select(DerivedModel.kind, func.count(), func.avg(days), func.min(days), func.max(days))
        .where(DerivedModel.established_on.is_not(None))
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
        .join(ModelPassage, ModelPassage.model_id == DerivedModel.id, isouter=True)
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
        )
        .join(ModelPassage, ModelPassage.model_id == DerivedModel.id, isouter=True)
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
        .join(ModelQC, ModelQC.passage_id == ModelPassage.id)
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
        .join(Donor, Donor.id == DerivedModel.donor_id)
        .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
        .join(Lesion, Lesion.id == SamplingSite.lesion_id, isouter=True)
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
    ).all():
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


def _passage_tree(
    passages: Iterable[ModelPassage], qc: dict[int, list[ModelQC]], specimens: dict[int, list[str]]
) -> list[dict[str, Any]]:
    by_parent: dict[int | None, list[ModelPassage]] = {}
    for passage in passages:
        by_parent.setdefault(passage.parent_passage_id, []).append(passage)

    def node(passage: ModelPassage) -> dict[str, Any]:
        tests = qc.get(passage.id or 0, [])
        return {
            "label": passage.label,
            "number": passage.number,
            "passaged_on": passage.passaged_on.isoformat(),
            "mouse_or_vessel_id": passage.mouse_or_vessel_id,
            "latency_days": passage.latency_days,
            "doubling_time_hours": passage.doubling_time_hours,
            "distributed_to": passage.distributed_to,
            "distributed_on": passage.distributed_on.isoformat() if passage.distributed_on else None,
            "qc": [
                {
                    "tested_on": t.tested_on.isoformat(),
                    "identity": f"{t.identity_method} {t.identity_match_pct:g} %"
                    if t.identity_match_pct is not None
                    else None,
                    "mycoplasma": t.mycoplasma,
                    "mouse_content_pct": t.mouse_content_pct,
                    "histology_concordant": t.histology_concordant,
                    "not_mouse_or_ebv_origin": t.not_mouse_or_ebv_origin,
                    "passed": t.passed,
                }
                for t in tests
            ],
            "specimens": specimens.get(passage.id or 0, []),
            "children": [
                node(child) for child in sorted(by_parent.get(passage.id, []), key=lambda p: p.label)
            ],
        }

    return [node(root) for root in sorted(by_parent.get(None, []), key=lambda p: p.label)]


def model_detail(session: Session, code: str) -> dict[str, Any]:
    """The model with its lineage: donor → lesion → region → source specimen → model → passage tree."""
    model = get_model(session, code)
    donor = model_donor(session, model)
    source = session.get(Specimen, model.source_specimen_id)
    assert source is not None
    site = session.get(SamplingSite, source.sampling_site_id)
    assert site is not None
    lesion = session.get(Lesion, site.lesion_id) if site.lesion_id else None
    passages = list(session.exec(select(ModelPassage).where(ModelPassage.model_id == model.id)).all())
    qc: dict[int, list[ModelQC]] = {}
    for row, _passage in model_qc_rows(session, model):
        qc.setdefault(row.passage_id, []).append(row)
    specimens: dict[int, list[str]] = {}
    ids = [p.id for p in passages]
    if ids:
        for passage_id, specimen_code in session.exec(
            select(Specimen.passage_id, Specimen.code)
            .where(Specimen.passage_id.in_(ids))
            .order_by(Specimen.code)
        ).all():
            specimens.setdefault(int(passage_id or 0), []).append(specimen_code)
    newest = max(passages, key=lambda p: (p.number, p.passaged_on, p.label), default=None)
    met = qc_requirements_met(session, model)
    return {
        "code": model.code,
        "kind": model.kind,
        "status": model.status,
        "initiated_on": model.initiated_on.isoformat(),
        "established_on": model.established_on.isoformat() if model.established_on else None,
        "failed_on": model.failed_on.isoformat() if model.failed_on else None,
        "ended_on": model.ended_on.isoformat() if model.ended_on else None,
        "donor": donor.code,
        "lesion": lesion.code if lesion else None,
        "lesion_kind": lesion.kind if lesion else None,
        "sampling_site": site.code,
        "anatomical_site": site.site_code,
        "source_specimen": source.code,
        "source_format": source.storage_format,
        "host_strain_name": model.host_strain_name,
        "host_strain_nomenclature": model.host_strain_nomenclature,
        "engraftment_site": model.engraftment_site,
        "engraftment_type": model.engraftment_type,
        "tumour_preparation": model.tumour_preparation,
        "humanised": model.humanised,
        "humanisation_type": model.humanisation_type,
        "medium": model.medium,
        "matrix": model.matrix,
        "growth_properties": model.growth_properties,
        "notes": model.notes,
        "passages": len(passages),
        "newest_passage": newest.label if newest else None,
        "qc_requirements": met,
        "qc_ready": all(met.values()),
        "passage_tree": _passage_tree(passages, qc, specimens),
    }


def lineage_lines(detail: dict[str, Any]) -> list[str]:
    """The lineage as indented text (``models show``): donor → lesion → region → source → model → passages."""
    lines = [f"donor {detail['donor']}"]
    depth = 1
    if detail["lesion"]:
        lines.append(
            "  " * depth
            + f"└─ lesion {detail['lesion']} ({detail['lesion_kind']}, {detail['anatomical_site']})"
        )
        depth += 1
    lines.append("  " * depth + f"└─ region {detail['sampling_site']} ({detail['anatomical_site']})")
    depth += 1
    lines.append("  " * depth + f"└─ source {detail['source_specimen']} ({detail['source_format']})")
    depth += 1
    lines.append("  " * depth + f"└─ model {detail['code']} ({detail['kind']}, {detail['status']})")
    depth += 1

    def walk(nodes: list[dict[str, Any]], level: int) -> None:
        for passage in nodes:
            qc = passage["qc"]
            verdict = "" if not qc else (" QC passed" if all(t["passed"] for t in qc) else " QC FAILED")
            extra = f" [{', '.join(passage['specimens'])}]" if passage["specimens"] else ""
            where = f" {passage['mouse_or_vessel_id']}" if passage["mouse_or_vessel_id"] else ""
            lines.append(
                "  " * level + f"└─ {passage['label']} {passage['passaged_on']}{where}{verdict}{extra}"
            )
            walk(passage["children"], level + 1)

    walk(detail["passage_tree"], depth)
    return lines
