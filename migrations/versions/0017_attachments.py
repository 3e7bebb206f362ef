"""attachments: photos and documents on records (issue 22)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 17:15:00.000000

One new table, ``attachment``: per file attached to a record (donor, case, lesion, sampling site, specimen, model,
passage, distribution order, plan) its kind, caption, when and by whom it was taken, file name, media type, size and
SHA-256 (the bytes live in the content-addressed store, not in the database), its thumbnail's and (when kept) the
original's SHA-256, and its state: ``active`` or ``retracted`` (with when, by whom and why). Nothing is deleted: a
trigger refuses DELETE on both databases (UPDATE stays allowed for the retraction, which the audit trail records).
PostgreSQL audit triggers as for every table (0010's frozen ``audit_table``). Downgrade refuses while a row exists.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TARGETS = ("donor", "case", "lesion", "sampling_site", "specimen", "model", "passage", "distribution", "plan")
_KINDS = ("gross_photo", "histology_image", "pathology_report", "consent_form", "manifest", "other")


def _audit_revision() -> ModuleType:
    """0010's module, for its frozen ``audit_table`` and ``forbid_changes``."""
    path = Path(__file__).with_name("0010_database_audit.py")
    spec = importlib.util.spec_from_file_location("revision_0010", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _not_blank(column: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"{column} IS NULL OR length(trim({column})) > 0",
                              name=op.f(f"ck_attachment_{column}_not_blank"))


def upgrade() -> None:
    op.create_table(
        "attachment",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("target_code", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("caption", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taken_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("thumbnail_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("original_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("retracted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retracted_by_id", sa.Integer(), nullable=True),
        sa.Column("retraction_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.CheckConstraint(_in("target", _TARGETS), name=op.f("ck_attachment_target")),
        sa.CheckConstraint(_in("kind", _KINDS), name=op.f("ck_attachment_kind")),
        sa.CheckConstraint(_in("state", ("active", "retracted")), name=op.f("ck_attachment_state")),
        _not_blank("target_code"),
        _not_blank("filename"),
        _not_blank("caption"),
        _not_blank("taken_by"),
        sa.CheckConstraint("length(sha256) = 64", name=op.f("ck_attachment_sha256_length")),
        sa.CheckConstraint("thumbnail_sha256 IS NULL OR length(thumbnail_sha256) = 64",
                           name=op.f("ck_attachment_thumbnail_sha256_length")),
        sa.CheckConstraint("original_sha256 IS NULL OR length(original_sha256) = 64",
                           name=op.f("ck_attachment_original_sha256_length")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_attachment_size_not_negative")),
        sa.CheckConstraint("state = 'active' OR (retracted_at IS NOT NULL AND retraction_reason IS NOT NULL)",
                           name=op.f("ck_attachment_retraction_recorded")),
        sa.ForeignKeyConstraint(["created_by_id"], ["user_account.id"],
                                name=op.f("fk_attachment_created_by_id_user_account"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["updated_by_id"], ["user_account.id"],
                                name=op.f("fk_attachment_updated_by_id_user_account"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["retracted_by_id"], ["user_account.id"],
                                name=op.f("fk_attachment_retracted_by_id_user_account"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["donor_id"], ["donor.id"], name=op.f("fk_attachment_donor_id_donor"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment")),
    )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_donor_id"), ["donor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachment_sha256"), ["sha256"], unique=False)
        batch_op.create_index("ix_attachment_target_record", ["target", "record_id"], unique=False)
    ddl = _audit_revision()
    ddl.forbid_changes("attachment", update=False)
    ddl.audit_table("attachment")


def downgrade() -> None:
    rows = op.get_bind().exec_driver_sql("SELECT count(*) FROM attachment").scalar_one()
    if rows:
        raise RuntimeError(
            f"{rows} attachment(s) exist, which the older schema cannot hold; downgrading would lose them, so it is "
            "refused"
        )
    ddl = _audit_revision()
    ddl.drop_audit_table("attachment")
    ddl.drop_forbid_changes("attachment", update=False)
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_index("ix_attachment_target_record")
        batch_op.drop_index(batch_op.f("ix_attachment_sha256"))
        batch_op.drop_index(batch_op.f("ix_attachment_donor_id"))
    op.drop_table("attachment")
