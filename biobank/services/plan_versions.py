"""Plan versions (issue 18, item 4): amend an approved plan into a new draft that supersedes it, cancel a plan.

An approved or submitted plan cannot change (the database refuses it). To change it, :func:`amend_plan` copies it
into a new draft, version + 1 (code ``<code>-v<N>``, name ``<name> (v<N>)``, ``supersedes_id`` the old plan), with
the same donors, included specimens (role, reason, assay, depth, library) and settings. The draft is edited as any
draft; approving it (:func:`biobank.services.planning.approve_plan`) supersedes the old plan in the same transaction:
the old plan becomes ``superseded`` with ``closed_at`` and ``closed_reason``, and its reservations are released (the
approval's availability check counts them as free, :func:`released_by`). A plan has at most one open amendment.

:func:`cancel_plan` withdraws a draft, approved or submitted plan (``cancelled``, with ``closed_at`` and
``closed_reason``): a cancelled plan holds nothing. Cancelling a draft needs ``Action.plan`` (whoever drafts plans);
cancelling an approved or submitted plan undoes a PI's approval, so it needs ``Action.approve``. A cancelled draft
amendment lets go of the plan it amended (``supersedes_id`` cleared; its ``closed_reason`` names that plan, the
audit log keeps the old value), so the plan can be amended again.

Every write goes through :func:`biobank.models.audit.act_as` with the given reason, so the audit log carries it.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session, col, select

from biobank.domain.codes import require_safe
from biobank.domain.errors import ConflictError, invalid
from biobank.models import User
from biobank.models.audit import act_as
from biobank.models.base import utcnow
from biobank.models.plans import RESERVING_STATUSES, AnalysisPlan, PlanDonor, PlanSpecimen, PlanStatus
from biobank.services.auth import Action, require
from biobank.services.lookup import by_code

#: The longest reason kept for closing a plan (``analysis_plan.closed_reason``).
CLOSED_REASON_LENGTH = 500
_VERSION_CODE = re.compile(r"-v\d+[a-z]?$")
_VERSION_NAME = re.compile(r" \(v\d+[a-z]?\)$")


def _plan(session: Session, code: str) -> AnalysisPlan:
    """The plan with this code (any letter case), locked for the rest of the transaction."""
    return by_code(session, AnalysisPlan, AnalysisPlan.code, code, what="analysis plan", field="plan", for_update=True)


def _reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise invalid("reason", reason, "say why (it is kept with the plan and in the audit log)")
    if len(text) > CLOSED_REASON_LENGTH:
        raise invalid("reason", reason, f"is {len(text):,} characters long; at most {CLOSED_REASON_LENGTH}")
    return text


def open_amendment(session: Session, plan: AnalysisPlan) -> AnalysisPlan | None:
    """The draft that amends ``plan``, if there is one."""
    return session.exec(
        select(AnalysisPlan).where(AnalysisPlan.supersedes_id == plan.id, AnalysisPlan.status == PlanStatus.draft.value)
    ).first()


def _free_code_and_name(session: Session, plan: AnalysisPlan, version: int) -> tuple[str, str]:
    """``<code>-v<N>`` and ``<name> (v<N>)`` without the old plan's own version suffix; a letter is added when a
    cancelled amendment already took them (``-v2b``)."""
    base_code = _VERSION_CODE.sub("", plan.code)
    base_name = _VERSION_NAME.sub("", plan.name)
    for letter in ("", *"bcdefghijklmnopqrstuvwxyz"):
        code, name = f"{base_code}-v{version}{letter}", f"{base_name} (v{version}{letter})"
        taken = session.exec(
            select(AnalysisPlan.id).where((col(AnalysisPlan.code) == code) | (col(AnalysisPlan.name) == name))
        ).first()
        if taken is None:
            if len(code) > 32:
                raise invalid("code", code, "the amendment's code is longer than 32 characters; shorten the plan code")
            if len(name) > 200:
                raise invalid("name", name, "the amendment's name is longer than 200 characters")
            return require_safe("code", code), name
    raise ConflictError(f"plan {plan.code}: no free code for version {version}", field="code", value=plan.code)


def amend_plan(session: Session, *, actor: User | None, plan_code: str, reason: str) -> AnalysisPlan:
    """A new draft copying the approved or submitted plan ``plan_code`` (version + 1); approving it supersedes the
    plan. Refused for a draft (edit it), a superseded or cancelled plan, and a plan with an open amendment."""
    require(actor, Action.plan)
    why = _reason(reason)
    plan = _plan(session, plan_code)
    if plan.status not in RESERVING_STATUSES:
        hint = "edit the draft itself" if plan.status == PlanStatus.draft else "only an approved or submitted plan is"
        raise ConflictError(
            f"plan {plan.code} is {plan.status}; it cannot be amended ({hint})", field="status", value=plan.status
        )
    pending = open_amendment(session, plan)
    if pending is not None:
        raise ConflictError(
            f"plan {plan.code} already has an open amendment, {pending.code}; edit or cancel it",
            field="plan", value=plan.code,
        )
    version = plan.version + 1
    code, name = _free_code_and_name(session, plan, version)
    act_as(session, actor, reason=why)
    new = AnalysisPlan(
        code=code, name=name, purpose=plan.purpose, assay=plan.assay, target_depth=plan.target_depth,
        primary_site_code=plan.primary_site_code, unknown_primary=plan.unknown_primary, description=plan.description,
        primary_unsampled_reason=plan.primary_unsampled_reason, flow_cell=plan.flow_cell, version=version,
        supersedes_id=plan.id,
    )
    session.add(new)
    session.flush()
    assert new.id is not None
    for donor in session.exec(select(PlanDonor).where(PlanDonor.plan_id == plan.id).order_by(col(PlanDonor.id))):
        session.add(PlanDonor(plan_id=new.id, donor_id=donor.donor_id))
    session.flush()
    samples = session.exec(
        select(PlanSpecimen)
        .where(PlanSpecimen.plan_id == plan.id, col(PlanSpecimen.included).is_(True))
        .order_by(col(PlanSpecimen.id))
    ).all()
    for s in samples:
        session.add(PlanSpecimen(
            plan_id=new.id, donor_id=s.donor_id, specimen_id=s.specimen_id, role=s.role, reason=s.reason,
            assay=s.assay, target_depth=s.target_depth, library=s.library,
        ))
    session.flush()
    return new


def released_by(session: Session, plan: AnalysisPlan) -> list[int]:
    """The plans whose reservations approving the draft ``plan`` releases: the plan it amends (locked), which must
    still be approved or submitted. Called by the approval before it reserves."""
    if plan.supersedes_id is None:
        return []
    old = session.exec(
        select(AnalysisPlan).where(AnalysisPlan.id == plan.supersedes_id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if old.status not in RESERVING_STATUSES:
        raise ConflictError(
            f"plan {plan.code} amends {old.code}, which is {old.status}; only an approved or submitted plan can be "
            f"superseded (cancel {plan.code})",
            field="plan", value=plan.code,
        )
    return [plan.supersedes_id]


def supersede_previous(session: Session, plan: AnalysisPlan, *, when: datetime | None = None) -> AnalysisPlan | None:
    """The approval of ``plan`` supersedes the plan it amends (same transaction, same actor): status ``superseded``,
    ``closed_at``, ``closed_reason``. Called by the approval after the plan became approved."""
    if plan.supersedes_id is None:
        return None
    old = session.get(AnalysisPlan, plan.supersedes_id)
    assert old is not None
    old.status = PlanStatus.superseded.value
    old.closed_at = when or utcnow()
    old.closed_reason = f"superseded by {plan.code} (version {plan.version})"
    session.add(old)
    session.flush()
    return old


def cancel_plan(session: Session, *, actor: User | None, plan_code: str, reason: str) -> AnalysisPlan:
    """Withdraw a draft, approved or submitted plan: ``cancelled`` with ``closed_at`` and ``closed_reason``; what it
    reserved is released. A draft needs ``Action.plan``, an approved or submitted plan ``Action.approve``."""
    require(actor, Action.plan)
    why = _reason(reason)
    plan = _plan(session, plan_code)
    if plan.status in RESERVING_STATUSES:
        require(actor, Action.approve)
    elif plan.status != PlanStatus.draft:
        raise ConflictError(
            f"plan {plan.code} is {plan.status}; only a draft, approved or submitted plan can be cancelled",
            field="status", value=plan.status,
        )
    pending = open_amendment(session, plan)
    if pending is not None:
        raise ConflictError(
            f"plan {plan.code} has an open amendment, {pending.code}; cancel the amendment first",
            field="plan", value=plan.code,
        )
    act_as(session, actor, reason=why)
    if plan.status == PlanStatus.draft and plan.supersedes_id is not None:
        old = session.get(AnalysisPlan, plan.supersedes_id)
        why = f"amendment of {old.code if old else plan.supersedes_id} cancelled: {why}"[:CLOSED_REASON_LENGTH]
        plan.supersedes_id = None
    plan.status = PlanStatus.cancelled.value
    plan.closed_at = utcnow()
    plan.closed_reason = why
    session.add(plan)
    session.flush()
    return plan


def plan_versions(session: Session, plan: AnalysisPlan) -> list[dict[str, object]]:
    """The plan's version history: the plans it supersedes (back to the first) and those superseding it (up to the
    newest), oldest first, each with version, code, status and closing."""
    chain = [plan]
    seen = {plan.id}
    current = plan
    while current.supersedes_id is not None and current.supersedes_id not in seen:
        older = session.get(AnalysisPlan, current.supersedes_id)
        if older is None:
            break
        chain.insert(0, older)
        seen.add(older.id)
        current = older
    current = plan
    while True:
        newer = session.exec(select(AnalysisPlan).where(AnalysisPlan.supersedes_id == current.id)).first()
        if newer is None or newer.id in seen:
            break
        chain.append(newer)
        seen.add(newer.id)
        current = newer
    by_id = {p.id: p.code for p in chain}
    return [
        {
            "version": p.version,
            "code": p.code,
            "name": p.name,
            "status": p.status,
            "supersedes": by_id.get(p.supersedes_id) if p.supersedes_id is not None else None,
            "approved_at": p.approved_at.isoformat() if p.approved_at else None,
            "closed_at": p.closed_at.isoformat() if p.closed_at else None,
            "closed_reason": p.closed_reason,
            "this": p.id == plan.id,
        }
        for p in chain
    ]


__all__ = ["amend_plan", "cancel_plan", "open_amendment", "plan_versions", "released_by", "supersede_previous"]
