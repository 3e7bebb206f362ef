"""tokens_and_signin_state: CLI and API tokens; service accounts; the sign-in throttle's state

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 03:45:00.000000

A new table, ``api_token`` (only each token's SHA-256 hash, its owner, kind, expiry and revocation), and three
columns on ``user_account``: ``is_service`` (a token-only account), ``failed_signins`` and ``locked_until`` (the
sign-in throttle and lockout). The columns are added with plain ``ADD COLUMN`` and server defaults, so the
referenced ``user_account`` table is not rebuilt on SQLite and its rows keep their values.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("user_account", sa.Column("is_service", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("user_account", sa.Column("failed_signins", sa.Integer(), server_default="0", nullable=False))
    op.add_column("user_account", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("length(token_hash) = 64", name=op.f("ck_api_token_token_hash_sha256")),
        sa.CheckConstraint("expires_at > created_at", name=op.f("ck_api_token_expires_after_start")),
        sa.CheckConstraint("kind IN ('personal', 'service')", name=op.f("ck_api_token_kind")),
        sa.CheckConstraint("length(trim(name)) > 0", name=op.f("ck_api_token_name_not_blank")),
        sa.ForeignKeyConstraint(["created_by_id"], ["user_account.id"], name=op.f("fk_api_token_created_by_id_user_account")),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], name=op.f("fk_api_token_user_id_user_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_api_token_user_id_name")),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_user_id"))
    op.drop_table("api_token")
    op.drop_column("user_account", "locked_until")
    op.drop_column("user_account", "failed_signins")
    op.drop_column("user_account", "is_service")
