"""Who is signed in: ``st.session_state["username"]`` holds the account name; the User is loaded per action.

Sign-in sets the name and a last-activity time; every full run of the app checks the idle time
(``BIOBANK_SESSION_IDLE_MINUTES``) and signs out with a message when it has passed. The role is read from the
database on every run, so disabling an account or changing its role takes effect at the next click.
"""

from __future__ import annotations

import time

import streamlit as st
from sqlmodel import Session, select

from biobank.models import User

USERNAME_KEY = "username"
LAST_ACTIVITY_KEY = "last_activity"
NOTICE_KEY = "signin_notice"


def current_username() -> str | None:
    return st.session_state.get(USERNAME_KEY)


def current_user(session: Session) -> User | None:
    """The signed-in account, loaded in the caller's session (services check its role)."""
    name = current_username()
    if not name:
        return None
    return session.exec(select(User).where(User.username == name)).first()


def current_role(session: Session) -> str | None:
    user = current_user(session)
    return user.role if user is not None and user.is_active else None


def sign_in(username: str, *, now: float | None = None) -> None:
    st.session_state[USERNAME_KEY] = username
    st.session_state[LAST_ACTIVITY_KEY] = time.time() if now is None else now
    st.session_state.pop(NOTICE_KEY, None)


def sign_out(notice: str | None = None) -> None:
    """Forget the account and everything the pages kept for it in this browser session."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if notice:
        st.session_state[NOTICE_KEY] = notice


def check_idle(idle_minutes: float, *, now: float | None = None) -> str | None:
    """The signed-in name, or None after signing out an idle session (with a notice for the sign-in page).

    A session signed in without a recorded activity time (a test harness setting the name) starts its clock now.
    """
    name = current_username()
    if not name:
        return None
    now = time.time() if now is None else now
    last = st.session_state.get(LAST_ACTIVITY_KEY)
    if last is not None and now - float(last) > idle_minutes * 60:
        sign_out(f"You were signed out after {idle_minutes:g} minutes without activity. Sign in again to continue.")
        return None
    st.session_state[LAST_ACTIVITY_KEY] = now
    return name


def pop_notice() -> str | None:
    return st.session_state.pop(NOTICE_KEY, None)
