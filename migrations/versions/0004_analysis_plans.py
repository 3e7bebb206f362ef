"""analysis_plans: plans, their donors and specimens with roles; contents frozen once a plan leaves draft

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 02:51:05.718737
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py). What it used is copied here
# as it was: the DDL helpers of ``biobank/db/ddl.py`` and, for timestamps, ``sa.DateTime(timezone=True)``: the DDL of
# ``biobank.db.engine.UTCDateTime``, a TypeDecorator over it (DATETIME on SQLite, TIMESTAMP WITH TIME ZONE on
# PostgreSQL). Later changes to those files never change what this revision does.

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: A plan's donors and specimens change only while it is a draft (approval freezes what was checked).
PLAN_NOT_DRAFT = "(SELECT p.status FROM analysis_plan p WHERE p.id = NEW.plan_id) <> 'draft'"
NOT_DRAFT_MESSAGE = "the plan is no longer a draft; its donors and specimens cannot change"


# --- Frozen copy of biobank/db/ddl.py (the parts this revision uses) ------------------------------------------------

def _dialect() -> str:
    return op.get_bind().dialect.name


def guard(name: str, table: str, events: str, condition_sql: str, message: str) -> None:
    """A row trigger refusing writes where ``condition_sql`` (in terms of NEW) holds.

    ``events`` is e.g. ``"INSERT OR UPDATE OF collected_at"``; ``condition_sql`` must be valid on both databases.
    """
    if _dialect() == "postgresql":
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {condition_sql} THEN
                    RAISE EXCEPTION '{name}: {message}' USING ERRCODE = 'check_violation', CONSTRAINT = '{name}';
                END IF;
                RETURN NEW;
            END $$;
            """
        )
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {events} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_fn()"
        )
    else:
        for event in events.split(" OR "):
            suffix = "ins" if event.startswith("INSERT") else "upd"
            op.execute(
                f"CREATE TRIGGER {name}_{suffix} BEFORE {event} ON {table} FOR EACH ROW WHEN {condition_sql} "
                f"BEGIN SELECT RAISE(ABORT, '{name}: {message}'); END"
            )


def drop_guard(name: str, table: str, events: str) -> None:
    if _dialect() == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {name}_fn()")
    else:
        for event in events.split(" OR "):
            suffix = "ins" if event.startswith("INSERT") else "upd"
            op.execute(f"DROP TRIGGER IF EXISTS {name}_{suffix}")


# --- End of the copy of biobank/db/ddl.py ---------------------------------------------------------------------------


def upgrade() -> None:
    op.create_table(
        "analysis_plan",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("assay", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("target_depth", sa.Float(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("primary_site_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("unknown_primary", sa.Boolean(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("approved_by_id", sa.Integer(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "assay IN ('wgs', 'wes', 'panel', 'rna_seq')", name=op.f("ck_analysis_plan_assay")
        ),
        sa.CheckConstraint(
            "code IS NULL OR (length(code) > 0 AND code NOT LIKE '% %' AND code NOT LIKE '%:%' AND code NOT LIKE '%/%')",
            name=op.f("ck_analysis_plan_code_safe"),
        ),
        sa.CheckConstraint(
            "purpose IN ('phylogeny', 'migration_history', 'model_vs_tumour')",
            name=op.f("ck_analysis_plan_purpose"),
        ),
        sa.CheckConstraint(
            "status = 'draft' OR (approved_by_id IS NOT NULL AND approved_at IS NOT NULL)",
            name=op.f("ck_analysis_plan_approved_has_approver"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'approved', 'submitted')", name=op.f("ck_analysis_plan_status")
        ),
        sa.CheckConstraint(
            "NOT (unknown_primary AND primary_site_code IS NOT NULL)",
            name=op.f("ck_analysis_plan_primary_site_or_unknown"),
        ),
        sa.CheckConstraint(
            "name IS NULL OR length(trim(name)) > 0", name=op.f("ck_analysis_plan_name_not_blank")
        ),
        sa.CheckConstraint(
            "target_depth IS NULL OR target_depth > 0", name=op.f("ck_analysis_plan_target_depth_positive")
        ),
        sa.ForeignKeyConstraint(
            ["approved_by_id"],
            ["user_account.id"],
            name=op.f("fk_analysis_plan_approved_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_analysis_plan_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["primary_site_code"],
            ["anatomical_site.code"],
            name=op.f("fk_analysis_plan_primary_site_code_anatomical_site"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_analysis_plan_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_plan")),
        sa.UniqueConstraint("code", name=op.f("uq_analysis_plan_code")),
        sa.UniqueConstraint("name", name=op.f("uq_analysis_plan_name")),
    )
    op.create_table(
        "plan_donor",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_plan_donor_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_plan_donor_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["analysis_plan.id"],
            name=op.f("fk_plan_donor_plan_id_analysis_plan"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_plan_donor_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_donor")),
        sa.UniqueConstraint("plan_id", "donor_id", name=op.f("uq_plan_donor_plan_id_donor_id")),
    )
    with op.batch_alter_table("plan_donor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_donor_donor_id"), ["donor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_donor_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "plan_specimen",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("included", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "role IN ('tumour', 'germline_normal', 'normal_tissue')", name=op.f("ck_plan_specimen_role")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_plan_specimen_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id", "donor_id"],
            ["plan_donor.plan_id", "plan_donor.donor_id"],
            name=op.f("fk_plan_specimen_plan_id_donor_id_plan_donor"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id", "donor_id"],
            ["specimen.id", "specimen.donor_id"],
            name=op.f("fk_plan_specimen_specimen_id_donor_id_specimen"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_plan_specimen_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_specimen")),
        sa.UniqueConstraint("plan_id", "specimen_id", name=op.f("uq_plan_specimen_plan_id_specimen_id")),
    )
    with op.batch_alter_table("plan_specimen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_specimen_donor_id"), ["donor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_specimen_plan_id"), ["plan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_specimen_specimen_id"), ["specimen_id"], unique=False)

    for table in ("plan_donor", "plan_specimen"):
        guard(f"tg_{table}_plan_is_draft", table, "INSERT OR UPDATE", PLAN_NOT_DRAFT, NOT_DRAFT_MESSAGE)


def downgrade() -> None:
    for table in ("plan_donor", "plan_specimen"):
        drop_guard(f"tg_{table}_plan_is_draft", table, "INSERT OR UPDATE")
    with op.batch_alter_table("plan_specimen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_specimen_specimen_id"))
        batch_op.drop_index(batch_op.f("ix_plan_specimen_plan_id"))
        batch_op.drop_index(batch_op.f("ix_plan_specimen_donor_id"))

    op.drop_table("plan_specimen")
    with op.batch_alter_table("plan_donor", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_donor_plan_id"))
        batch_op.drop_index(batch_op.f("ix_plan_donor_donor_id"))

    op.drop_table("plan_donor")
    op.drop_table("analysis_plan")
