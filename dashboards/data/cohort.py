"""Cached loaders for the cohort overview, the donor view, the specimen view and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from biobank.queries import cohort as queries_cohort
from biobank.queries import core as queries
from biobank.queries.cohort import CohortFilter
from dashboards.data.core import by_generation, read_session

#: Donors per page of the donor x site matrix (the heat map is at most this many rows tall).
DONORS_PER_PAGE = 50


@by_generation
def filter_options(url: str, generation: int) -> dict[str, Any]:
    with read_session(url) as session:
        return queries_cohort.filter_options(session)


@by_generation
def cohort(url: str, generation: int, f: CohortFilter) -> dict[str, Any]:
    """Every aggregate the overview draws for one filter (from the maintained summaries), but the donor x site matrix,
    which comes a page at a time (:func:`donor_sites_page`)."""
    with read_session(url) as session:
        overview = queries_cohort.cohort_overview(session, f)  # counts, formats x sites and stock in one pass
        return {
            "counts": overview["counts"],
            "pmi": pd.DataFrame(queries_cohort.pmi_histogram(session, f), columns=["pmi_hours", "specimens"]),
            "cases": pd.DataFrame(queries_cohort.case_pmi_summary(session, f)),
            "format_sites": pd.DataFrame(overview["format_sites"], columns=["storage_format", "site", "specimens"]),
            "stock": pd.DataFrame(overview["stock"]),
            "has_models": queries_cohort.has_models(session),
            "models": queries_cohort.model_counts(session, f),
            "model_outcomes": queries_cohort.model_outcomes(session, f),
        }


@by_generation
def donor_sites_page(url: str, generation: int, f: CohortFilter, page: int, per_page: int = DONORS_PER_PAGE) -> dict[str, Any]:
    """Page ``page`` (from 1) of the donor x site matrix: its rows, its donors and how many donors have sites."""
    with read_session(url) as session:
        rows, donors, total = queries_cohort.donor_site_page(session, f, limit=per_page, offset=(max(page, 1) - 1) * per_page)
    return {"rows": pd.DataFrame(rows, columns=["donor", "site", "sampling_sites"]), "donors": donors, "total": total}


@by_generation
def case_specimen_pmis(url: str, generation: int, cases: tuple[str, ...], f: CohortFilter) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(queries_cohort.case_specimen_pmis(session, list(cases), f))


@st.cache_data(ttl=60, show_spinner=False)
def donor_codes(url: str) -> list[str]:
    with read_session(url) as session:
        return queries_cohort.donor_codes(session)


@st.cache_data(ttl=60, show_spinner=False)
def donor_of_case(url: str, case_code: str) -> str | None:
    with read_session(url) as session:
        return queries_cohort.donor_of_case(session, case_code)


@st.cache_data(ttl=30, show_spinner=False)
def donor(url: str, code: str) -> dict[str, Any]:
    with read_session(url) as session:
        return {
            "detail": queries.donor_detail(session, code),
            "timeline": queries_cohort.donor_timeline(session, code),
            "sites": pd.DataFrame(queries_cohort.donor_sites(session, code)),
            "lesions": pd.DataFrame(queries_cohort.donor_lesions(session, code)),
            "specimens": pd.DataFrame(queries_cohort.donor_specimens(session, code)),
            "models": pd.DataFrame(queries_cohort.donor_models(session, code)),
        }


@st.cache_data(ttl=30, show_spinner=False)
def specimen(url: str, code: str) -> dict[str, Any]:
    with read_session(url) as session:
        return queries.specimen_detail(session, code)


@st.cache_data(ttl=30, show_spinner=False)
def audit_options(url: str) -> dict[str, list[str]]:
    with read_session(url) as session:
        return queries_cohort.audit_filter_options(session)


@st.cache_data(ttl=10, show_spinner=False)
def audit_page(
    url: str, username: str | None, table: str | None, start: datetime | None, end: datetime | None, limit: int, offset: int
) -> tuple[pd.DataFrame, int]:
    with read_session(url) as session:
        rows, total = queries_cohort.audit_page(
            session, username=username, table=table, start=start, end=end, limit=limit, offset=offset
        )
    return pd.DataFrame(rows, columns=["at", "user", "table", "record", "action", "changes", "reason"]), total


@st.cache_data(ttl=30, show_spinner=False)
def find_specimen(url: str, typed: str) -> tuple[str | None, list[str]]:
    """The code a typed or scanned value stands for, or near matches."""
    with read_session(url) as session:
        code = queries_cohort.resolve_specimen_code(session, typed)
        return code, ([] if code else queries_cohort.similar_codes(session, typed))
