"""Cached reads for the Enrolment page and the donor view's consent history (the library's queries; the URL first,
so two databases never share a cached result)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from biobank.domain.sites import load_sites
from biobank.queries import enrolment as queries
from dashboards.data.core import read_session

COLUMNS = ["code", "status", "diagnosis", "consent", "versions", "treatment_lines", "death_recorded"]


@st.cache_data(ttl=30, show_spinner=False)
def enrolment_rows(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(queries.enrolment_rows(session), columns=COLUMNS)


@st.cache_data(ttl=30, show_spinner=False)
def consent_history(url: str, code: str) -> dict[str, Any]:
    with read_session(url) as session:
        return queries.consent_history(session, code)


@st.cache_data(ttl=30, show_spinner=False)
def next_code(url: str) -> str:
    with read_session(url) as session:
        return queries.next_code(session)


def site_labels() -> dict[str, str]:
    """Anatomical-site codes with their labels, in label order (the shipped vocabulary)."""
    return {code: site.label for code, site in sorted(load_sites().items(), key=lambda item: item[1].label)}


def history_frame(history: dict[str, Any]) -> pd.DataFrame:
    """The consent versions as a table: newest first, as a person reads a history."""
    rows = [
        {
            "version": v["version"],
            "date": v["consented_on"],
            "change": v["change"].replace("_", " "),
            "given by": v["given_by"].replace("_", " "),
            "taken by": v["taken_by"] or "",
            "form": v["form_version"] or "",
            "scopes": ", ".join(s.replace("_", " ") for s in v["scopes"]),
            "reason": v["reason"] or "",
            "entered by": v["entered_by"] or "",
            "in force": "yes" if v["current"] and not history["withdrawn"] else "",
        }
        for v in reversed(history["versions"])
    ]
    columns = ["version", "date", "change", "given by", "taken by", "form", "scopes", "reason", "entered by", "in force"]
    return pd.DataFrame(rows, columns=columns)
