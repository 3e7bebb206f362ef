"""user_sessions: server-side dashboard sessions, so a browser reload does not sign the user out

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 10:12:40.118204

One new table, ``user_session``: the SHA-256 hash of the token the browser keeps in a cookie (never the token), its
user, when it started, was last seen, expires (absolute) and was revoked, and the browser's User-Agent. A new table
only: nothing existing is rebuilt, so rows already present are untouched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py). Timestamps are
# ``sa.DateTime(timezone=True)``: the DDL of ``biobank.db.engine.UTCDateTime`` (DATETIME on SQLite, TIMESTAMP WITH TIME
# ZONE on PostgreSQL).

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.CheckConstraint("length(token_hash) = 64", name=op.f("ck_user_session_token_hash_sha256")),
        sa.CheckConstraint("expires_at > created_at", name=op.f("ck_user_session_expires_after_start")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_user_session_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_session_token_hash")),
    )
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_session_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_session_user_id"))

    op.drop_table("user_session")
