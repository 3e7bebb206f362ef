"""Roles, enforced here in the service layer so no page or command can bypass them (DOMAIN.md §2 "User")."""

from __future__ import annotations

from enum import StrEnum

from sqlmodel import Session, select

from biobank.domain.errors import PermissionDeniedError
from biobank.domain.vocab import Role
from biobank.models import User
from biobank.models.base import fetch_one


class Action(StrEnum):
    enter = "enter"  # collection, storage, models, QC: data entry
    enrol = "enrol"  # donors, consent and clinical history; the death call and the case's times
    correct = "correct"  # correcting a mistaken entry (audited with a reason)
    withdraw = "withdraw"  # record a consent withdrawal
    approve = "approve"  # approve distribution orders and analysis plans
    plan = "plan"  # draft analysis plans
    ship = "ship"  # ship and receive distributions
    export = "export"  # hand data to pipelines and partners (consent is checked separately)
    read_export_log = "read_export_log"  # who exported what to whom: the recipients to tell after a withdrawal
    manage_users = "manage_users"
    manage_vocabularies = "manage_vocabularies"


PERMISSIONS: dict[Role, frozenset[Action]] = {
    # the technician takes the death call at night and opens the case, so enrols too
    Role.technician: frozenset({Action.enter, Action.enrol, Action.correct, Action.withdraw, Action.ship}),
    Role.coordinator: frozenset({Action.enrol, Action.withdraw}),
    Role.pi: frozenset({Action.approve, Action.plan, Action.withdraw, Action.export, Action.read_export_log}),
    Role.admin: frozenset(
        {
            Action.enter,
            Action.enrol,
            Action.correct,
            Action.withdraw,
            Action.ship,
            Action.export,
            Action.read_export_log,
            Action.manage_users,
            Action.manage_vocabularies,
        }
    ),
    Role.viewer: frozenset(),
}


def can(user: User | None, action: Action) -> bool:
    return user is not None and user.is_active and action in PERMISSIONS[Role(user.role)]


def require(user: User | None, action: Action) -> User:
    """The acting user, if their role allows ``action``; else a PermissionDeniedError naming both."""
    if user is None:
        raise PermissionDeniedError(f"{action.value}: no user is signed in", field="user")
    if not user.is_active:
        raise PermissionDeniedError(f"{action.value}: user {user.username!r} is disabled")
    if action not in PERMISSIONS[Role(user.role)]:
        allowed = ", ".join(sorted(r.value for r, actions in PERMISSIONS.items() if action in actions))
        raise PermissionDeniedError(
            f"{action.value}: user {user.username!r} has role {user.role!r}; this needs one of: {allowed}",
            field="role",
            value=user.role,
        )
    return user


def get_user(session: Session, username: str) -> User:
    return fetch_one(session, select(User).where(User.username == username), what="user", field="user", value=username)
