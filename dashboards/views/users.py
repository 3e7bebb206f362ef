"""Users, for administrators: every account with its role, state and sign-ins; add an account, change a role,
disable or enable, reset a password, lift a sign-in lockout. Each change is asked for, confirmed, then made by the
services (which hold every rule: the password policy, the last administrator, who may do what) and audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.vocab import Role
from biobank.models import User
from biobank.models.base import utcnow
from biobank.services import users
from biobank.services.passwords import MIN_LENGTH
from dashboards.data import core as data
from dashboards.shell.actions import labelled, run_write, show_flash

FLASH = "users_flash"
#: the change awaiting confirmation: (action, account)
PENDING = "users_pending"
#: widget keys to empty at the top of the next run (the password fields after a change)
CLEAR = "users_clear"
NEW = ("users_new_username", "users_new_full_name", "users_new_password", "users_new_password_again")
RESET = ("users_reset_password", "users_reset_password_again")
ROLES = [role.value for role in Role]
POLICY = (f"At least {MIN_LENGTH} characters; not the user name or containing it; not a common password (also with "
          "digits or symbols added); not a run or repetition such as 'abcdefghij' or 'pipipipipi'.")


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def confirmed(action: str, account: str, label: str, question: str, write: Callable[[Session, User | None], Any],
              success: str, *, disabled: bool = False, clear: tuple[str, ...] = ()) -> None:
    """A button that asks first: pressing it shows ``question`` with Confirm and Cancel; Confirm makes the change in
    one unit of work (``run_write``), Cancel forgets it."""
    key = f"users_{action}"
    if st.button(label, key=key, disabled=disabled):
        st.session_state[PENDING] = (action, account)
    if st.session_state.get(PENDING) != (action, account):
        return
    with st.container(border=True):
        st.warning(question)
        yes, no = st.columns(2)
        if yes.button("Confirm", key=f"{key}_confirm", type="primary", width="stretch"):
            st.session_state.pop(PENDING, None)
            run_write(write, flash=FLASH, success=success, error=labelled(label.lower()),
                      on_success=lambda _user: st.session_state.update({CLEAR: clear}))
        if no.button("Cancel", key=f"{key}_cancel", width="stretch"):
            st.session_state.pop(PENDING, None)
            st.rerun()


def passwords_typed(first_key: str, again_key: str) -> tuple[str, bool]:
    """A new password typed twice; whether the two agree (and something was typed)."""
    first = st.text_input("New password", type="password", key=first_key, autocomplete="new-password", help=POLICY)
    again = st.text_input("The same again", type="password", key=again_key, autocomplete="new-password")
    if first and again and first != again:
        st.error("The two passwords differ.")
    return first, bool(first) and first == again


settings = get_settings()
zone = settings.zone
for cleared in st.session_state.pop(CLEAR, ()):
    st.session_state.pop(cleared, None)

st.title("Users")
st.caption("Accounts, their roles and sign-ins. Every change is confirmed first and kept in the audit log.")
show_flash(FLASH)

with data.read_session() as session:
    accounts = {account.username: account for account in users.list_users(session)}
now = utcnow()
st.dataframe(
    pd.DataFrame(
        [
            {
                "user name": a.username,
                "name": a.full_name or "",
                "role": a.role,
                "kind": "service (API tokens)" if a.is_service else "person",
                "active": a.is_active,
                "locked until": when(a.locked_until) if users.is_locked(a, now) else "",
                "failed sign-ins": a.failed_signins,
                "last sign-in": when(a.last_login_at),
            }
            for a in accounts.values()
        ],
        columns=["user name", "name", "role", "kind", "active", "locked until", "failed sign-ins", "last sign-in"],
    ),
    hide_index=True,
    width="stretch",
    key="users_table",
)

# ------------------------------------------------------------------------------------------ one account

st.subheader("Change an account")
chosen = st.selectbox("Account", list(accounts), index=None, placeholder="choose an account", key="users_account")
if chosen is not None:
    account = accounts[chosen]
    locked = users.is_locked(account, now)
    state = [account.role, "active" if account.is_active else "disabled"]
    if locked:
        state.append(f"locked until {when(account.locked_until)}")
    elif account.failed_signins:
        state.append(f"{account.failed_signins} failed sign-in(s) since the last success")
    st.caption(f"**{chosen}**: " + ", ".join(state))

    left, right = st.columns(2)
    with left, st.container(border=True):
        st.markdown("**Role**")
        role = st.selectbox("New role", ROLES, index=ROLES.index(account.role), key=f"users_role_{chosen}")
        reason = st.text_input("Reason (kept in the audit log)", key=f"users_role_reason_{chosen}")
        confirmed("role", chosen, "Change role", f"Change the role of {chosen} from {account.role} to {role}?",
                  lambda session, actor: users.set_role(session, actor=actor, username=chosen, role=role,
                                                        reason=reason or None),
                  f"{chosen} is now {role}", disabled=role == account.role)
    with right, st.container(border=True):
        st.markdown("**Access**")
        why = st.text_input("Reason (kept in the audit log)", key=f"users_access_reason_{chosen}")
        if account.is_active:
            confirmed("disable", chosen, "Disable account",
                      f"Disable {chosen}? They are signed out everywhere and can no longer sign in or write.",
                      lambda session, actor: users.set_active(session, actor=actor, username=chosen, active=False,
                                                              reason=why or None),
                      f"{chosen} disabled")
        else:
            confirmed("enable", chosen, "Enable account", f"Enable {chosen} again?",
                      lambda session, actor: users.set_active(session, actor=actor, username=chosen, active=True,
                                                              reason=why or None),
                      f"{chosen} enabled")
        confirmed("unlock", chosen, "Unlock sign-in",
                  f"Lift the sign-in lockout of {chosen} and clear its {account.failed_signins} failed sign-in(s)?",
                  lambda session, actor: users.unlock_user(session, actor=actor, username=chosen, reason=why or None),
                  f"{chosen} unlocked", disabled=not locked and not account.failed_signins)
    if account.is_service:
        st.caption(f"{chosen} is a service account: it signs in with API tokens only and has no password.")
    else:
        with st.container(border=True):
            st.markdown("**Reset the password**")
            new_password, agreed = passwords_typed(*RESET)
            confirmed("password", chosen, "Reset password", f"Give {chosen} this new password?",
                      lambda session, actor: users.set_password(session, actor=actor, username=chosen,
                                                                password=new_password),
                      f"password of {chosen} reset", disabled=not agreed, clear=RESET)

# ------------------------------------------------------------------------------------------- new account

st.subheader("Add an account")
with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    username = c1.text_input("User name", key="users_new_username",
                             help="Lower-case letters, digits, '.', '_' or '-', starting with a letter.").strip()
    full_name = c2.text_input("Name", key="users_new_full_name").strip()
    new_role = c3.selectbox("Role", ROLES, key="users_new_role")
    service = st.checkbox("Service account: a pipeline or an instrument that signs in with API tokens only, never "
                          "with a password", key="users_new_service")
    password, agreed = ("", True) if service else passwords_typed(NEW[2], NEW[3])
    kind = "service account" if service else "account"
    confirmed("add", username, "Add account", f"Add the {kind} {username} with role {new_role}?",
              lambda session, actor: users.add_user(session, actor=actor, username=username, role=new_role,
                                                    password=None if service else password,
                                                    full_name=full_name or None, service=service),
              f"{username} added as {new_role}", disabled=not username or not agreed, clear=NEW)
