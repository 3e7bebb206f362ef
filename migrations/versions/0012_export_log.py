"""export_log: every export recorded (who, when, target, selection, counts, files with SHA-256), append-only

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 09:00:00.000000

Two new tables (nothing existing is rebuilt, so rows already present are untouched):

- ``export_record``: when (``exported_at``), who (``user_id``), the ``target``, the ``selection`` as asked (JSON: the
  plan, donors, specimens and options), ``donor_count``, ``specimen_count`` and ``files`` (JSON: each file's name,
  size in bytes and SHA-256).
- ``export_donor``: each donor an export carried, indexed by donor, so ``biobank donors exports CODE`` finds every
  export to tell after a withdrawal.

Both are append-only like ``audit_log``, ``custody_event`` and ``consent_withdrawal``: triggers refuse UPDATE and
DELETE (and TRUNCATE on PostgreSQL), and on PostgreSQL the database audits their inserts like every other table's.
``biobank db roles`` gives the application's login SELECT and INSERT only on them.

Downgrade drops both tables with their triggers: the log of exports made in between is lost with them.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py). The append-only and audit
# triggers come from revision 0010's frozen copy of ``biobank/db/ddl.py`` (as revision 0011 takes them). Timestamps
# are ``sa.DateTime(timezone=True)``: the DDL of ``biobank.db.engine.UTCDateTime``.

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("export_record", "export_donor")


def _audit_revision() -> ModuleType:
    """Revision 0010, whose ``forbid_changes`` and ``audit_table`` (frozen with it) install the triggers."""
    spec = importlib.util.spec_from_file_location("revision_0010", Path(__file__).with_name("0010_database_audit.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.create_table(
        "export_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("donor_count", sa.Integer(), nullable=False),
        sa.Column("specimen_count", sa.Integer(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.CheckConstraint("target IS NULL OR length(trim(target)) > 0", name=op.f("ck_export_record_target_not_blank")),
        sa.CheckConstraint("donor_count >= 0", name=op.f("ck_export_record_donor_count_not_negative")),
        sa.CheckConstraint("specimen_count >= 0", name=op.f("ck_export_record_specimen_count_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_export_record_user_id_user_account"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_record")),
    )
    with op.batch_alter_table("export_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_export_record_exported_at"), ["exported_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_export_record_target"), ["target"], unique=False)
        batch_op.create_index(batch_op.f("ix_export_record_user_id"), ["user_id"], unique=False)
    op.create_table(
        "export_donor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("export_record_id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_export_donor_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["export_record_id"], ["export_record.id"],
            name=op.f("fk_export_donor_export_record_id_export_record"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_donor")),
        sa.UniqueConstraint("export_record_id", "donor_id", name=op.f("uq_export_donor_export_record_id_donor_id")),
    )
    with op.batch_alter_table("export_donor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_export_donor_donor_id"), ["donor_id"], unique=False)
    ddl = _audit_revision()
    for table in TABLES:
        ddl.forbid_changes(table)
        ddl.audit_table(table)


def downgrade() -> None:
    ddl = _audit_revision()
    for table in reversed(TABLES):
        ddl.drop_audit_table(table)
        ddl.drop_forbid_changes(table)
    with op.batch_alter_table("export_donor", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_export_donor_donor_id"))
    op.drop_table("export_donor")
    with op.batch_alter_table("export_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_export_record_user_id"))
        batch_op.drop_index(batch_op.f("ix_export_record_target"))
        batch_op.drop_index(batch_op.f("ix_export_record_exported_at"))
    op.drop_table("export_record")
