"""Dashboard entry script: builds the navigation and runs the chosen page (``biobank serve`` starts it)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboards.navigation import build_pages  # noqa: E402

st.set_page_config(page_title="Biobank", page_icon="🧬", layout="wide")
page = st.navigation(build_pages())
page.run()
