"""Cached reads for the live autopsy board (short TTL: the board is used while the case runs)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd
import streamlit as st

from biobank.queries import board as queries_board
from biobank.queries import core as queries
from biobank.services.checklist import case_material, checklist
from dashboards.data.core import read_session


@st.cache_data(ttl=10, show_spinner=False)
def running_cases(url: str) -> list[dict[str, Any]]:
    with read_session(url) as session:
        return queries_board.running_cases(session)


@st.cache_data(ttl=10, show_spinner=False)
def case_state(url: str, case: str) -> dict[str, Any]:
    """Everything the board shows for one case, read in one session."""
    with read_session(url) as session:
        material = case_material(session, case)
        return {
            "header": queries_board.case_header(session, case),
            "summary": queries.autopsy_summary(session, case),
            "lesions": queries_board.case_lesions(session, case),
            "specimens": pd.DataFrame(queries_board.case_specimens(session, case)),
            "checklist": [asdict(item) for item in checklist(material)],
            "model_consent": material.model_consent,  # the donor consented to model derivation (library's rule)
        }
