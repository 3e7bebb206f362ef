"""Writes from a page: one service call in one unit of work, as the signed-in user; the error in one line, or the
success message kept for the next run and a rerun so the page shows the new state.

Every page that writes goes through :func:`run_write`::

    run_write(lambda session, user: storage.check_out(session, actor=user, code=code),
              flash="storage_flash", success=f"{code} checked out")

and shows what the last write left with :func:`show_flash` near its top.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from sqlmodel import Session

from biobank.domain.errors import BiobankError
from biobank.models import User
from dashboards.data import core as data
from dashboards.shell.session import current_user

T = TypeVar("T")

#: A write: the service call(s) to run in the unit of work, given the session and the signed-in user (or None).
Write = Callable[[Session, User | None], T]


def in_unit_of_work(action: Write[T]) -> T:
    """``action(session, user)`` in one unit of work: committed whole or rolled back, then the cached reads dropped."""
    with data.unit_of_work() as session:
        return action(session, current_user(session))


def run_write(
    action: Write[T],
    *,
    flash: str | None = None,
    success: str | Callable[[T], str] | None = None,
    on_success: Callable[[T], object] | None = None,
    error: Callable[[BiobankError], str] = str,
    rerun: bool = True,
) -> T | None:
    """Run ``action(session, user)`` in one unit of work; show a refusal as one error line where the page stands.

    A :class:`BiobankError` (raised by the action or by the commit) rolls everything back and is shown with
    ``st.error(error(exc))``; then None is returned and the page goes on. On success ``on_success(result)`` runs, the
    message (``success`` as given, or ``success(result)``) is stored in ``st.session_state[flash]`` and the script
    reruns, so every table on the page is read again (the caches were just cleared). With ``rerun=False`` the
    message is shown in place instead and the result is returned.
    """
    try:
        result = in_unit_of_work(action)
    except BiobankError as exc:
        st.error(error(exc))
        return None
    if on_success is not None:
        on_success(result)
    message = success(result) if callable(success) else success
    if not rerun:
        if message:
            st.success(message)
        return result
    if message:
        if flash is None:
            raise ValueError("run_write: a success message needs a flash key to survive the rerun")
        st.session_state[flash] = message
    st.rerun()


def labelled(label: str) -> Callable[[BiobankError], str]:
    """An ``error`` formatter that names the action: ``"move: specimen X is checked out"``."""
    return lambda exc: f"{label}: {exc}"


def show_flash(flash: str) -> None:
    """Show (once) the success message the last write stored under ``flash``."""
    message = st.session_state.pop(flash, None)
    if message:
        st.success(message)
