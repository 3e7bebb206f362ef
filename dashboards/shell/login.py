"""The sign-in page: the only page shown until someone signs in."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import func
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.models import User
from biobank.services.sessions import start_session
from biobank.services.users import authenticate
from dashboards.data import core as data
from dashboards.shell.actions import run_write
from dashboards.shell.session import client_user_agent, pop_notice, sign_in

ROLE_PAGES = {
    "technician": "live autopsy board, donors, specimens",
    "coordinator": "enrolment and consent, the death call and cases, donors",
    "pi": "cohort overview, donors, specimens",
    "admin": "everything, plus the audit log and the user accounts",
    "viewer": "donors and specimens, read only",
}


def _no_accounts() -> bool:
    with data.read_session() as session:
        return session.exec(select(func.count()).select_from(User)).one() == 0


def client_address() -> str | None:
    """The browser's address, for the sign-in throttle's per-client count: the websocket's peer, or, when that is
    this machine (Streamlit then reports none: a reverse proxy here, as docs/deploy.md sets up), the address the
    proxy saw, which nginx appends last to ``X-Forwarded-For``. None when there is neither (a local browser)."""
    address = st.context.ip_address
    if isinstance(address, str) and address.strip():
        return address.strip()
    forwarded = st.context.headers.get("X-Forwarded-For")
    if isinstance(forwarded, str) and forwarded.strip():
        return forwarded.split(",")[-1].strip() or None
    return None


def _authenticate(
    session: Session, username: str, password: str, user_agent: str | None, client: str | None
) -> tuple[str, str]:
    """The account's name and the token of a new server-side session (kept by the browser, so a reload keeps it).

    A refused sign-in raises: the page shows the service's words, which never say whether the name or the password
    was wrong, and, once the account is locked, until when."""
    user = authenticate(session, username=username, password=password, client=client)
    return user.username, start_session(session, user=user, user_agent=user_agent)


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
            agent, client = client_user_agent(), client_address()
            with st.spinner("Signing in…"):  # after failed sign-ins the check waits a few seconds
                run_write(lambda session, _nobody: _authenticate(session, username.strip(), password, agent, client),
                          on_success=lambda signed: sign_in(signed[0], token=signed[1]))
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
