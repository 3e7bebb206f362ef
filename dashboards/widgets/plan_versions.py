"""A plan's reservations and versions on the planner page: what approval reserved, amend and cancel."""

from __future__ import annotations

from biobank.models import User


def render(plan_code: str, user: User | None) -> None:
    """Draw the reservation state of ``plan_code`` and the amend and cancel forms (for those who may)."""
