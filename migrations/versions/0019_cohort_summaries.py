"""cohort_summaries: maintained PMI and cohort counts (issue 21, item 1)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 17:15:00.000000
"""

from collections.abc import Sequence

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
