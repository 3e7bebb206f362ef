"""Who is signed in: ``st.session_state["username"]`` holds the account name; the User is loaded per action."""

from __future__ import annotations

import streamlit as st
from sqlmodel import Session, select

from biobank.models import User

USERNAME_KEY = "username"


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
