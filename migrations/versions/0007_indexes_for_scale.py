"""indexes for scale

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-22 03:26:27.440035

A covering index for the PMI histogram of the home page (``queries.pmi_distribution``): at a million specimens SQLite
reads the primary specimens' site and times from the index instead of the wide table rows. Index-only: no table is
rebuilt, rows already present are indexed as the index is created.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_specimen_pmi_cover", "specimen", ["lineage", "sampling_site_id", "stabilised_at", "collected_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_specimen_pmi_cover", table_name="specimen")
