"""Cached reads for the planner page: the frames the suggestion and the rules need, plans, and export files."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from biobank.exports import service as export_service
from biobank.queries import exports as query
from biobank.queries import plans as plan_reads
from biobank.services import planning
from biobank.services.auth import get_user
from biobank.services.budget import BudgetSettings
from dashboards.data.core import read_session


@st.cache_data(ttl=60, show_spinner=False)
def donor_choices(url: str) -> pd.DataFrame:
    """Donors that may be planned (withdrawn ones are left out)."""
    with read_session(url) as session:
        frame = query.donor_frame(session)
    return frame[~frame["withdrawn"]][["donor_code", "sex", "primary_diagnosis", "genomic_sequencing"]].reset_index(drop=True)


@st.cache_data(ttl=60, show_spinner=False)
def plans(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        rows = plan_reads.list_plans(session)
    return pd.DataFrame(rows, columns=["code", "name", "purpose", "assay", "status", "donors", "specimens", "approved_by"])


@st.cache_data(ttl=60, show_spinner=False)
def frames(url: str, donor_codes: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The donors and all their specimens (two queries): everything the suggestion and the rules read."""
    with read_session(url) as session:
        ids = query.donor_ids_for(session, list(donor_codes))
        return query.donor_frame(session, donor_ids=ids), query.specimen_frame(session, donor_ids=ids)


@st.cache_data(ttl=60, show_spinner=False)
def facts(url: str, donor_codes: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The donors' lesions (material or not) and their models' passages: what the suggestion and the rules read
    about a donor's disease and models (two queries)."""
    with read_session(url) as session:
        ids = query.donor_ids_for(session, list(donor_codes))
        return planning.lesion_facts(session, ids), planning.model_facts(session, ids)


@st.cache_data(ttl=60, show_spinner=False)
def plan_state(url: str, plan_code: str) -> dict[str, Any]:
    with read_session(url) as session:
        plan = query.get_plan(session, plan_code)
        donor_ids, selection = query.plan_selection(session, plan)
        donors = query.donor_frame(session, donor_ids=donor_ids)
        return {
            "code": plan.code, "name": plan.name, "purpose": plan.purpose, "assay": plan.assay,
            "status": plan.status, "primary_site_code": plan.primary_site_code,
            "unknown_primary": plan.unknown_primary, "donor_codes": tuple(donors["donor_code"]),
            "primary_unsampled_reason": plan.primary_unsampled_reason, "target_depth": plan.target_depth,
            "selection": selection, "flow_cell": plan.flow_cell,
        }


def export_request(plan_code: str, target: str) -> export_service.ExportRequest:
    """What the planner's download of ``target`` exports: the plan's specimens; for sarek the template sheet (a page
    has no folder of FASTQs to match, so sarek cannot run it as it is)."""
    return export_service.ExportRequest(target=target, plan_code=plan_code, template=target == "sarek")


@st.cache_data(ttl=60, show_spinner=False)
def export_bytes(url: str, plan_code: str, target: str, username: str) -> tuple[dict[str, bytes] | None, str | None]:
    """The target's files for a plan (:func:`export_request`), or the reason it cannot be exported. Rendered for the
    download button, not recorded: the button's click records the export with the same request
    (:func:`biobank.exports.service.record_served`)."""
    try:
        with read_session(url) as session:
            files = export_service.export(session, actor=get_user(session, username),
                                          request=export_request(plan_code, target), record=False)
        return files, None
    except Exception as exc:  # shown next to the button: a refused export is information, not a crash
        return None, str(exc).splitlines()[0]


def site_codes() -> list[str]:
    """Anatomical-site codes a plan may name as its primary site (the shipped vocabulary, not the database's)."""
    from biobank.domain.sites import load_sites

    return sorted(load_sites())


def budget_settings() -> BudgetSettings:
    """The budget's defaults with the settings applied (flow cell kinds, Gb per depth, default depths, costs)."""
    return BudgetSettings.from_settings()
