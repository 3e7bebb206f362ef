"""A plan's reservations and versions on the planner page: what approval reserved, amend and cancel."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.models import User
from biobank.models.plans import RESERVING_STATUSES, AnalysisPlan, PlanStatus
from biobank.services import plan_versions, reservations
from biobank.services.auth import Action, can
from biobank.services.lookup import by_code
from dashboards.data import core as data
from dashboards.shell.actions import run_write

#: The planner page's flash key and the key naming the plan to show on its next run (dashboards/views/planner.py).
FLASH = "planner_flash"
PICK = "planner_pick"
RESERVATION_COLUMNS = {
    "specimen_code": "Specimen",
    "role": "Role",
    "unit": "Unit",
    "reserved": "Reserved",
    "remaining": "Remaining",
    "promised_elsewhere": "Promised elsewhere",
    "available": "Available",
    "held_by": "Held by",
}


def _read(plan_code: str) -> tuple[dict[str, object], list[dict[str, object]], str | None]:
    """The plan's reservations, its version history and the code of its open amendment (None when it has none)."""
    with data.read_session() as session:
        held = reservations.reservations_of(session, plan_code)
        plan = by_code(session, AnalysisPlan, AnalysisPlan.code, plan_code, what="analysis plan", field="plan")
        history = plan_versions.plan_versions(session, plan)
        pending = plan_versions.open_amendment(session, plan)
        return held, history, pending.code if pending is not None else None


def render(plan_code: str, user: User | None) -> None:
    """Draw the reservation state of ``plan_code`` and the amend and cancel forms (for those who may)."""
    held, history, pending = _read(plan_code)
    status = str(held["status"])
    st.subheader("Reservations and versions")
    if held["holding"]:
        st.caption(f"Plan {plan_code} is {status}: it holds what its approval reserved of each specimen, so distribution "
                   "orders and other plans cannot promise it.")
    elif status == PlanStatus.draft:
        st.caption("A draft reserves nothing yet: approval reserves what each sample needs, or is refused when that is "
                   "not available.")
    else:
        st.caption(f"Plan {plan_code} is {status}: it holds nothing any more (its reservations were released).")
    samples = held["samples"]
    assert isinstance(samples, list)
    if samples:
        frame = pd.DataFrame(samples)[list(RESERVATION_COLUMNS)].rename(columns=RESERVATION_COLUMNS)
        st.dataframe(frame, hide_index=True, width="stretch", key=f"plan_versions_reservations_{plan_code}")
    if len(history) > 1:
        versions = pd.DataFrame(history)[["version", "code", "status", "supersedes", "approved_at", "closed_at",
                                          "closed_reason"]]
        st.dataframe(versions, hide_index=True, width="stretch", key=f"plan_versions_history_{plan_code}")
    if pending is not None:
        st.info(f"Plan {plan_code} has an open amendment, {pending}: edit and approve it to supersede this plan.")

    may_amend = can(user, Action.plan) and status in RESERVING_STATUSES and pending is None
    may_cancel = (can(user, Action.approve) if status in RESERVING_STATUSES else
                  can(user, Action.plan) and status == PlanStatus.draft) and pending is None
    if may_amend:
        with st.form(f"plan_versions_amend_{plan_code}"):
            st.markdown("**Amend**: copy this plan into a new draft; approving the draft supersedes this plan and "
                        "releases what it reserved.")
            reason = st.text_input("Why amend it", key=f"plan_versions_amend_reason_{plan_code}")
            if st.form_submit_button("Amend plan"):

                def amend(session: Session, actor: User | None) -> str:
                    return plan_versions.amend_plan(session, actor=actor, plan_code=plan_code, reason=reason).code

                run_write(amend, flash=FLASH, on_success=lambda code: st.session_state.__setitem__(PICK, code),
                          success=lambda code: f"Plan {code} drafted from {plan_code}: edit it, then approve it.")
    if may_cancel:
        with st.form(f"plan_versions_cancel_{plan_code}"):
            st.markdown("**Cancel**: withdraw this plan; what it reserved is released.")
            why = st.text_input("Why cancel it", key=f"plan_versions_cancel_reason_{plan_code}")
            sure = st.checkbox(f"Yes, cancel {plan_code}", key=f"plan_versions_cancel_confirm_{plan_code}")
            if st.form_submit_button("Cancel plan"):
                if not sure:
                    st.error(f"Tick 'Yes, cancel {plan_code}' to cancel it.")
                else:
                    run_write(lambda session, actor: plan_versions.cancel_plan(
                        session, actor=actor, plan_code=plan_code, reason=why), flash=FLASH,
                        success=f"Plan {plan_code} cancelled; its reservations are released.")
