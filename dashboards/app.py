"""Dashboard entry script: sign-in, then the navigation of the pages the role may open (``biobank serve``)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from biobank.config import get_settings  # noqa: E402
from dashboards.data import core as data  # noqa: E402
from dashboards.shell import login  # noqa: E402
from dashboards.shell.navigation import PAGES, build_pages  # noqa: E402
from dashboards.shell.session import check_idle, current_user, deliver_cookie, sign_out  # noqa: E402

ROLE_NAMES = {"technician": "Technician", "coordinator": "Programme coordinator", "pi": "Principal investigator", "admin": "Administrator", "viewer": "Viewer"}

st.set_page_config(page_title="Biobank", page_icon="🧬", layout="wide")
settings = get_settings()

role: str | None = None
name = full_name = ""
if check_idle(settings.session_idle_minutes):
    with data.read_session() as session:
        user = current_user(session)
        if user is not None and user.is_active:
            role, name, full_name = user.role, user.username, user.full_name or ""
    if role is None:
        sign_out("That account is disabled or no longer exists. Sign in with another account.")

if role is None:
    # Every page's address shows the sign-in form (not "page not found"), so a bookmarked link such as
    # /specimen?specimen=RA0001-L01A-SF1 keeps its page and record through the sign-in and opens once signed in:
    # Streamlit identifies a page by its url path, which the signed-in navigation shares.
    signin = [st.Page(login.render, title="Sign in", icon=":material/login:", url_path="login", default=True)]
    signin += [st.Page(login.render, title="Sign in", url_path=spec.module) for spec in PAGES if not spec.default]
    page = st.navigation(signin, position="hidden")
else:
    with st.sidebar:
        st.markdown(f"Signed in as **{name}**" + (f"  \n{full_name}" if full_name and full_name != ROLE_NAMES.get(role) else ""))
        st.caption(f"Role: {ROLE_NAMES.get(role, role)}")
        st.button("Sign out", key="sign_out", on_click=sign_out, args=("You signed out.",), width="stretch")
        if settings.demo_mode:
            st.caption("Demo mode")
    page = st.navigation(build_pages(role))
page.run()
deliver_cookie()  # a cookie change this run queued (sign-in, sign-out) goes to the browser now, not next run
