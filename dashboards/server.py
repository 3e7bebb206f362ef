"""The dashboard server that ``biobank serve`` runs: the app (``app.py``) plus the route that sets and clears the
HttpOnly session cookie (:func:`dashboards.shell.session.cookie_routes`), so a sign-in survives a reload."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboards.shell.session import cookie_routes  # noqa: E402

app = st.App(str(Path(__file__).with_name("app.py")), routes=cookie_routes())
