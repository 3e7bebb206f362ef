"""attachments: photos and documents on records (issue 22)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 17:15:00.000000
"""

from collections.abc import Sequence

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
