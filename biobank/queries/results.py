"""Reads of the tool results imported for a donor (:mod:`biobank.services.results`)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from biobank.models import AnalysisPlan, Donor, User
from biobank.models.plans import AnalysisResult
from biobank.services.donors import get_donor
from biobank.services.lookup import by_code


def _summary(result: AnalysisResult, donor_code: str, plan_code: str | None, by: str | None) -> dict[str, Any]:
    parsed = result.parsed or {}
    return {
        "code": result.code,
        "donor": donor_code,
        "plan": plan_code,
        "tool": result.tool,
        "kind": result.kind,
        "file_name": result.file_name,
        "sha256": result.sha256,
        "sites": len(parsed.get("sites", [])),
        "migrations": sum(int(e.get("count", 1)) for e in parsed.get("edges", [])),
        "clones": len(parsed.get("clones", [])),
        "note": result.note,
        "imported_at": result.created_at,
        "imported_by": by,
    }


def list_results(session: Session, donor_code: str) -> list[dict[str, Any]]:
    """The donor's imported results, newest first: code, tool, kind, file, how many sites, migrations and clones."""
    donor = get_donor(session, donor_code)
    rows = session.exec(
        select(AnalysisResult, AnalysisPlan.code, User.username)
        .join(AnalysisPlan, col(AnalysisPlan.id) == col(AnalysisResult.plan_id), isouter=True)
        .join(User, col(User.id) == col(AnalysisResult.created_by_id), isouter=True)
        .where(AnalysisResult.donor_id == donor.id)
        .order_by(col(AnalysisResult.created_at).desc(), col(AnalysisResult.id).desc())
    ).all()
    return [_summary(result, donor.code, plan, by) for result, plan, by in rows]


def get_result(session: Session, code: str) -> dict[str, Any]:
    """One result: its summary, what was parsed (``parsed``) and the file as imported (``content``)."""
    result = by_code(session, AnalysisResult, AnalysisResult.code, code, what="result", field="result")
    donor = session.get(Donor, result.donor_id)
    plan = session.get(AnalysisPlan, result.plan_id) if result.plan_id is not None else None
    user = session.get(User, result.created_by_id) if result.created_by_id is not None else None
    out = _summary(result, donor.code if donor else "", plan.code if plan else None, user.username if user else None)
    out["parsed"] = result.parsed
    out["content"] = result.content
    return out


def donor_results(session: Session, donor_code: str) -> list[dict[str, Any]]:
    """Every result of the donor with its ``parsed`` content (what the body map draws), newest first."""
    donor = get_donor(session, donor_code)
    rows = session.exec(
        select(AnalysisResult).where(AnalysisResult.donor_id == donor.id)
        .order_by(col(AnalysisResult.created_at).desc(), col(AnalysisResult.id).desc())
    ).all()
    return [{**_summary(r, donor.code, None, None), "parsed": r.parsed} for r in rows]
