"""cohort_summary_cover: an index covering the cohort overview's read of the cohort summary (issue 21)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 21:00:00.000000

The cohort page sums ``cohort_summary`` (about 250,000 rows at a million specimens) by storage format, unit,
anatomical site, lineage and status. Without an index in that order SQLite sorts every row in a temporary B-tree
(0.35-0.55 s); with this covering index it reads the index in order and aggregates as it goes (about 60 ms).
"""

from collections.abc import Sequence

from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["storage_format", "unit", "site_code", "lineage", "status", "specimens", "quantity_remaining"]


def upgrade() -> None:
    op.create_index("ix_cohort_summary_format_cover", "cohort_summary", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_cohort_summary_format_cover", table_name="cohort_summary")
