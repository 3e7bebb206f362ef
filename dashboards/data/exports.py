"""Cached reads for the Exports page: the export log (administrators and PIs may read it; the page is the
administrators')."""

from __future__ import annotations

from typing import Any

import streamlit as st

from biobank.exports import log
from biobank.services.auth import get_user
from dashboards.data.core import read_session


@st.cache_data(ttl=30, show_spinner=False)
def export_log(url: str, username: str, target: str | None, donor: str | None, limit: int) -> list[dict[str, Any]]:
    """The recorded exports, newest first, of one target and/or carrying one donor."""
    with read_session(url) as session:
        return log.export_log(session, actor=get_user(session, username), limit=limit, target=target,
                              donor_code=donor)


@st.cache_data(ttl=30, show_spinner=False)
def donors_in_log(url: str, username: str) -> list[str]:
    with read_session(url) as session:
        return log.donors_in_log(session, actor=get_user(session, username))
