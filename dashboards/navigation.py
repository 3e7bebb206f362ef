"""The list of pages, grouped for the sidebar. A page module lives in ``dashboards/views/``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parent / "views"


def build_pages() -> dict[str, list[st.Page]]:
    return {
        "Cohort": [
            st.Page(str(VIEWS / "home.py"), title="Home", icon="🏠", url_path="home", default=True),
        ],
    }
