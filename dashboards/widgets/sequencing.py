"""A plan's loop back from sequencing on the planner page: runs, results, data files and each sample's state."""

from __future__ import annotations

from biobank.models import User


def render(plan_code: str, user: User | None) -> None:
    """Draw each sample's sequencing state of ``plan_code`` and the forms that record what came back."""
