"""What is promised of a specimen: one mechanism for distribution orders and analysis plans (issue 18, item 4).

A specimen's material is *promised* while it is held by

- an item of an open distribution order (``draft`` or ``approved``): the item's quantity, and
- an included sample of an analysis plan in a reserving status (``approved`` or ``submitted``): the sample's
  ``quantity_reserved``, written when the plan was approved.

What is *available* is the remaining quantity less what is promised elsewhere. A distribution order sees what plans
reserved and a plan's approval sees what orders and other plans hold, so the same nanograms are never promised twice.
A superseded or cancelled plan, like a shipped or cancelled order, holds nothing.

What a plan sample reserves at approval (:func:`sample_need`):

- a nucleic-acid extract (unit ``ng``): what its assay needs at its depth (``InputRequirements.ng``; at the assay and depth
  the rules judge it at, :func:`biobank.services.budget.effective`: its own, the plan's, or its role's default). Approval is refused when that is more than is available;
- any other unit (tissue in mg, sections, blocks, µl of blood or buffy coat, cells): the material goes to extraction
  (or to the core) as it is, so the sample reserves up to :data:`EXTRACTION_INPUT` of its unit (25 mg of frozen tissue,
  10 sections, one block) and the whole available quantity of a unit not listed there (an aliquot of µl, a vial of
  cells). Less than that is accepted (whether a small piece is enough is the rules' judgement); approval is refused
  only when nothing of the specimen is left unpromised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from biobank.domain.errors import ConflictError, ValidationError
from biobank.domain.storage.orders import OPEN_STATUSES
from biobank.models import Specimen
from biobank.models.plans import RESERVING_STATUSES, AnalysisPlan, PlanSpecimen, PlanStatus
from biobank.models.storage import DistributionItem, DistributionOrder
from biobank.services import budget
from biobank.services.lookup import by_code
from biobank.services.plan_rules import InputRequirements

#: What a sample of a unit other than ng reserves at most: a usual extraction input. Units not listed reserve the
#: whole available quantity (an aliquot or a vial goes as a whole).
EXTRACTION_INPUT: dict[str, float] = {"mg": 25.0, "sections": 10.0, "blocks": 1.0}
#: Quantities closer than this are equal (floating-point sums of ng and mg).
EPSILON = 1e-9


@dataclass(frozen=True)
class Holder:
    """Who holds part of a specimen: an open order or a reserving plan, and how much."""

    kind: str  # "order" or "plan"
    code: str
    quantity: float

    def text(self, unit: str) -> str:
        return f"{self.kind} {self.code} ({self.quantity:g} {unit})"


def holders(
    session: Session,
    specimen_id: int,
    *,
    except_order_id: int | None = None,
    except_plan_ids: Iterable[int] = (),
) -> list[Holder]:
    """The open orders and reserving plans that hold part of the specimen (two grouped queries), orders first."""
    skip_plans = [int(i) for i in except_plan_ids]
    order_query = (
        select(DistributionOrder.code, func.sum(DistributionItem.quantity))
        .join(DistributionOrder, col(DistributionOrder.id) == col(DistributionItem.order_id))
        .where(
            DistributionItem.specimen_id == specimen_id,
            col(DistributionOrder.status).in_([s.value for s in OPEN_STATUSES]),
        )
        .group_by(col(DistributionOrder.code))
        .order_by(col(DistributionOrder.code))
    )
    if except_order_id is not None:
        order_query = order_query.where(col(DistributionOrder.id) != except_order_id)
    plan_query = (
        select(AnalysisPlan.code, func.sum(PlanSpecimen.quantity_reserved))
        .join(AnalysisPlan, col(AnalysisPlan.id) == col(PlanSpecimen.plan_id))
        .where(
            PlanSpecimen.specimen_id == specimen_id,
            col(PlanSpecimen.included).is_(True),
            col(PlanSpecimen.quantity_reserved).is_not(None),
            col(AnalysisPlan.status).in_([s.value for s in RESERVING_STATUSES]),
        )
        .group_by(col(AnalysisPlan.code))
        .order_by(col(AnalysisPlan.code))
    )
    if skip_plans:
        plan_query = plan_query.where(col(AnalysisPlan.id).not_in(skip_plans))
    out = [Holder("order", str(code), float(q or 0.0)) for code, q in session.exec(order_query).all()]
    out += [Holder("plan", str(code), float(q or 0.0)) for code, q in session.exec(plan_query).all()]
    return [h for h in out if h.quantity > EPSILON]


def promised(
    session: Session,
    specimen_id: int,
    *,
    except_order_id: int | None = None,
    except_plan_ids: Iterable[int] = (),
) -> float:
    """Quantity of the specimen held by open orders (draft, approved) and reserving plans (approved, submitted),
    leaving out the order ``except_order_id`` and the plans ``except_plan_ids``."""
    found = holders(session, specimen_id, except_order_id=except_order_id, except_plan_ids=except_plan_ids)
    return sum((h.quantity for h in found), 0.0)


def available(
    session: Session,
    specimen: Specimen,
    *,
    except_order_id: int | None = None,
    except_plan_ids: Iterable[int] = (),
) -> float:
    """The specimen's remaining quantity less what is promised elsewhere (may be negative after a correction)."""
    assert specimen.id is not None, "specimen is flushed"
    return specimen.quantity_remaining - promised(
        session, specimen.id, except_order_id=except_order_id, except_plan_ids=except_plan_ids
    )


def held_text(found: Sequence[Holder], unit: str) -> str:
    """``"promised to order DO-2026-001 (300 ng), plan WGS-1 (1000 ng)"``, or ``""`` when nothing is held."""
    if not found:
        return ""
    return "promised to " + ", ".join(h.text(unit) for h in found)


def sample_need(
    specimen: Specimen,
    assay: str,
    depth: float | None,
    free: float,
    requirements: InputRequirements | None = None,
) -> float:
    """What a plan sample reserves of ``specimen`` (``free``: what is available of it); see the module docstring."""
    if specimen.unit == "ng":
        return (requirements or InputRequirements.from_settings()).ng(assay, depth)
    cap = EXTRACTION_INPUT.get(specimen.unit)
    return max(min(free, cap) if cap is not None else free, 0.0)


def _lock_specimens(session: Session, ids: Sequence[int]) -> dict[int, Specimen]:
    """The specimens, locked (``SELECT ... FOR UPDATE`` on PostgreSQL) in id order so two approvals never deadlock,
    and read again so their quantities are the committed ones."""
    if not ids:
        return {}
    statement = (
        select(Specimen)
        .where(col(Specimen.id).in_(sorted(set(ids))))
        .order_by(col(Specimen.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {s.id: s for s in session.exec(statement).all() if s.id is not None}


def reserve_for_approval(
    session: Session, plan: AnalysisPlan, *, release: Iterable[int] = ()
) -> list[PlanSpecimen]:
    """Reserve what each included sample of the draft ``plan`` needs, or refuse (nothing written).

    Called by the approval while the plan is still a draft (the database refuses plan_specimen writes afterwards).
    The plan row and its specimens are locked first, so two approvals wanting the same last material are serialised:
    the second one sees the first one's reservation. ``release``: plans whose reservations this approval releases
    (the version it supersedes); what they hold is counted as available.
    """
    assert plan.id is not None, "plan is flushed"
    locked = session.exec(
        select(AnalysisPlan).where(AnalysisPlan.id == plan.id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if locked.status != PlanStatus.draft:
        raise ConflictError(
            f"plan {plan.code} is {locked.status}; only a draft can be approved", field="status", value=locked.status
        )
    rows = list(
        session.exec(
            select(PlanSpecimen)
            .where(PlanSpecimen.plan_id == plan.id, col(PlanSpecimen.included).is_(True))
            .order_by(col(PlanSpecimen.specimen_id))
        ).all()
    )
    specimens = _lock_specimens(session, [r.specimen_id for r in rows])
    requirements = InputRequirements.from_settings()
    depths = budget.BudgetSettings.from_settings()
    skip = [plan.id, *release]
    needs: list[tuple[PlanSpecimen, float]] = []
    for row in rows:
        specimen = specimens[row.specimen_id]
        found = holders(session, row.specimen_id, except_plan_ids=skip)
        free = specimen.quantity_remaining - sum(h.quantity for h in found)
        # the assay and depth the rules judge the sample at (its own, the plan's, or its role's default)
        assay, depth = budget.effective(row.role, row.assay, row.target_depth, plan_assay=plan.assay,
                                        plan_depth=plan.target_depth, settings=depths)
        need = sample_need(specimen, assay, depth, free, requirements)
        if free <= EPSILON or need > free + EPSILON:
            unit = specimen.unit
            rest = held_text(found, unit)
            wants = (
                f"needs {need:g} {unit} ({assay}{f' at {depth:g}x' if depth is not None else ''})"
                if unit == "ng" else "needs some of it"
            )
            raise ValidationError(
                f"plan {plan.code}: approval refused, {specimen.code} {wants} but only {max(free, 0.0):g} {unit} "
                f"of the {specimen.quantity_remaining:g} {unit} left are available"
                + (f"; the rest is {rest}" if rest else ""),
                field="specimen",
                value=specimen.code,
            )
        needs.append((row, need))
    for row, need in needs:
        if row.quantity_reserved != need:
            row.quantity_reserved = need
            session.add(row)
    session.flush()
    return [row for row, _ in needs]


def plan_reservations(session: Session, plan: AnalysisPlan) -> list[dict[str, Any]]:
    """Each included sample of the plan: its specimen, unit, what the plan reserved (None before approval), what
    remains of the specimen, what is promised elsewhere (and to whom) and what is still available."""
    rows = session.exec(
        select(PlanSpecimen, Specimen)
        .join(Specimen, col(Specimen.id) == col(PlanSpecimen.specimen_id))
        .where(PlanSpecimen.plan_id == plan.id, col(PlanSpecimen.included).is_(True))
        .order_by(col(Specimen.code))
    ).all()
    holding = plan.status in RESERVING_STATUSES
    out = []
    for row, specimen in rows:
        assert specimen.id is not None and plan.id is not None
        found = holders(session, specimen.id, except_plan_ids=[plan.id])
        elsewhere = sum((h.quantity for h in found), 0.0)
        out.append({
            "specimen_code": specimen.code,
            "role": row.role,
            "unit": specimen.unit,
            "reserved": row.quantity_reserved,
            "holding": holding and row.quantity_reserved is not None,
            "remaining": specimen.quantity_remaining,
            "promised_elsewhere": elsewhere,
            "held_by": ", ".join(h.text(specimen.unit) for h in found),
            "available": specimen.quantity_remaining - elsewhere - ((row.quantity_reserved or 0.0) if holding else 0.0),
        })
    return out


def reservations_of(session: Session, plan_code: str) -> dict[str, Any]:
    """A plan (by code, any letter case) with its status, whether it holds its reservations, and
    :func:`plan_reservations` as ``samples``."""
    plan = by_code(session, AnalysisPlan, AnalysisPlan.code, plan_code, what="analysis plan", field="plan")
    return {
        "plan": plan.code,
        "version": plan.version,
        "status": plan.status,
        "holding": plan.status in RESERVING_STATUSES,
        "samples": plan_reservations(session, plan),
    }


__all__ = [
    "EXTRACTION_INPUT",
    "Holder",
    "available",
    "held_text",
    "holders",
    "plan_reservations",
    "promised",
    "reservations_of",
    "reserve_for_approval",
    "sample_need",
]
