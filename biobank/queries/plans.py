"""Reads of analysis plans: the plan list with counts, and one plan with its specimens and rule report."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from biobank.models import User
from biobank.models.base import pk
from biobank.models.plans import AnalysisPlan, PlanDonor, PlanSpecimen
from biobank.queries import exports as query
from biobank.services.plan_rules import run_rules
from biobank.services.planning import plan_context


def list_plans(session: Session) -> list[dict[str, Any]]:
    """Every plan with its counts (grouped queries, no per-plan loop)."""

    donors = dict(
        session.exec(select(PlanDonor.plan_id, func.count()).group_by(col(PlanDonor.plan_id))).all()
    )
    specimens = dict(
        session.exec(
            select(PlanSpecimen.plan_id, func.count())
            .where(col(PlanSpecimen.included).is_(True))
            .group_by(col(PlanSpecimen.plan_id))
        ).all()
    )
    users = {u.id: u.username for u in session.exec(select(User)).all()}
    plans = session.exec(select(AnalysisPlan).order_by(AnalysisPlan.code)).all()
    codes = {p.id: p.code for p in plans}
    return [
        {
            "code": p.code,
            "name": p.name,
            "purpose": p.purpose,
            "assay": p.assay,
            "target_depth": p.target_depth,
            "status": p.status,
            "donors": int(donors.get(pk(p), 0)),
            "specimens": int(specimens.get(pk(p), 0)),
            "created_by": users.get(p.created_by_id),
            "approved_by": users.get(p.approved_by_id),
            "approved_at": p.approved_at.isoformat() if p.approved_at else None,
            "version": p.version,
            "supersedes": codes.get(p.supersedes_id) if p.supersedes_id is not None else None,
            "closed_reason": p.closed_reason,
        }
        for p in plans
    ]


def plan_detail(session: Session, plan_code: str) -> dict[str, Any]:
    """A plan, its specimens with role and reason, and its rule report."""
    plan = query.get_plan(session, plan_code)
    ctx = plan_context(session, plan)
    report = run_rules(ctx)
    selected = ctx.selected_frame().merge(
        ctx.selection[["specimen_id", "reason"]], on="specimen_id", how="left"
    )
    summary = next(r for r in list_plans(session) if r["code"] == plan_code)
    columns = [
        "donor_code",
        "specimen_code",
        "role",
        "lesion_code",
        "region_code",
        "site_label",
        "storage_format",
        "material_type",
        "tumour_cellularity_pct",
        "pmi_hours",
        "reason",
    ]
    return summary | {
        "primary_site_code": plan.primary_site_code,
        "unknown_primary": plan.unknown_primary,
        "description": plan.description,
        "primary_unsampled_reason": plan.primary_unsampled_reason,
        "donor_codes": [d["donor_code"] for d in ctx.donor_records],
        "specimens_detail": [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in selected[columns].to_dict(orient="records")
        ],
        "report": report.to_records(),
        "report_summary": report.summary(),
    }
