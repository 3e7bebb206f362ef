"""The sign-in page: the only page shown until someone signs in."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import func
from sqlmodel import select

from biobank.config import get_settings
from biobank.models import User
from biobank.services.users import authenticate
from dashboards.data import core as data
from dashboards.shell.actions import run_write
from dashboards.shell.session import pop_notice, sign_in

ROLE_PAGES = {
    "technician": "live autopsy board, donors, specimens",
    "pi": "cohort overview, donors, specimens",
    "admin": "everything, plus the audit log",
    "viewer": "donors and specimens, read only",
}


def _no_accounts() -> bool:
    with data.read_session() as session:
        return session.exec(select(func.count()).select_from(User)).one() == 0


def render() -> None:
    settings = get_settings()
    middle = st.columns([1, 2, 1])[1]
    with middle:
        st.title("Rapid-autopsy biobank")
        st.caption("Sign in to record collections, review the cohort or look up a specimen.")
        notice = pop_notice()
        if notice:
            st.warning(notice)
        if _no_accounts():
            st.info(
                "No accounts exist yet. Create the first administrator on the server with "
                "`biobank users add NAME --role admin`, then sign in here."
            )
        with st.form("sign_in", clear_on_submit=False):
            username = st.text_input("User name", key="login_username", autocomplete="username")
            password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
            submitted = st.form_submit_button("Sign in", type="primary", key="login_submit", width="stretch")
        if submitted:
            run_write(lambda session, _nobody: authenticate(session, username=username.strip(), password=password).username,
                      on_success=sign_in)
        if settings.demo_mode:
            from biobank.demo.cohort import DEMO_ACCOUNTS

            st.subheader("Demo accounts")
            st.caption("Demo mode is on (`BIOBANK_DEMO_MODE=true`): these accounts exist for trying the tracker out.")
            st.dataframe(
                pd.DataFrame(
                    [
                        {"user name": name, "password": password, "role": str(role), "sees": ROLE_PAGES[str(role)]}
                        for name, role, password, _ in DEMO_ACCOUNTS
                    ]
                ),
                hide_index=True,
                width="stretch",
            )
