"""``biobank users role|unlock``: role changes and sign-in unlocks, each audited (added to ``users_app``)."""

from __future__ import annotations

from typing import Annotated

import typer

from biobank.cli.common import UserOption, acting_user, handle_errors, unit_of_work
from biobank.cli.core import ROLE_CHOICES, ReasonOption, users_app
from biobank.services import users as user_service
from biobank.services.auth import get_user


@users_app.command("role")
@handle_errors
def users_role(
    username: Annotated[str, typer.Argument(help="The account.")],
    role: Annotated[str, typer.Argument(help=f"The new role: one of {ROLE_CHOICES}.")],
    reason: ReasonOption = None,
    user: UserOption = None,
) -> None:
    """Give an account another role (admins only; the last active admin keeps theirs). Audited, old and new."""
    with unit_of_work() as session:
        before = get_user(session, username).role
        changed = user_service.set_role(
            session, actor=acting_user(session, user), username=username, role=role, reason=reason
        )
        after = changed.role
    if before == after:
        typer.echo(f"user {username} already has role {after}")
    else:
        typer.echo(f"user {username}: role {before} -> {after}")


@users_app.command("unlock")
@handle_errors
def users_unlock(
    username: Annotated[str, typer.Argument(help="The account.")],
    reason: ReasonOption = None,
    user: UserOption = None,
) -> None:
    """Lift an account's sign-in lockout and clear its failed sign-ins (admins only). Audited."""
    with unit_of_work() as session:
        user_service.unlock_user(session, actor=acting_user(session, user), username=username, reason=reason)
    typer.echo(f"user {username} unlocked: it may sign in again")
