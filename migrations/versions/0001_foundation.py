"""foundation

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:37:53.905942
"""

import csv
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py). What it used is copied here
# as it was: the DDL helpers of ``biobank/db/ddl.py``, the site vocabulary of ``biobank/data/anatomical_sites.csv``
# (as ``0001_anatomical_sites.csv`` beside this file) and, for timestamps, ``sa.DateTime(timezone=True)``: the DDL of
# ``biobank.db.engine.UTCDateTime``, a TypeDecorator over it (DATETIME on SQLite, TIMESTAMP WITH TIME ZONE on
# PostgreSQL). Later changes to those files never change what this revision does.

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


SITE_BEFORE_DEATH = (
    "NEW.kind <> 'premortem_blood' AND NEW.excised_at < "
    "(SELECT a.death_at FROM autopsy a WHERE a.donor_id = NEW.donor_id AND a.death_at IS NOT NULL)"
)

#: The anatomical-site vocabulary this revision seeds (a frozen copy of ``biobank/data/anatomical_sites.csv``).
SITES_CSV = Path(__file__).with_name("0001_anatomical_sites.csv")


# --- Frozen copy of biobank/db/ddl.py (the parts this revision uses) ------------------------------------------------

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION biobank_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: % is append-only; % refused', TG_ARGV[0], TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_ARGV[0];
END $$;
"""


def _dialect() -> str:
    return op.get_bind().dialect.name


def forbid_changes(table: str, *, update: bool = True, delete: bool = True) -> None:
    """Make ``table`` refuse UPDATE and/or DELETE (append-only history, never-deleted specimens)."""
    verbs = [verb for verb, on in (("update", update), ("delete", delete)) if on]
    if _dialect() == "postgresql":
        op.execute(REFUSE_FUNCTION)
        for verb in verbs:
            name = f"tg_{table}_no_{verb}"
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb.upper()} ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION biobank_refuse_change('{name}')"
            )
        if delete:
            name = f"tg_{table}_no_truncate"
            op.execute(
                f"CREATE TRIGGER {name} BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION biobank_refuse_change('{name}')"
            )
    else:
        for verb in verbs:
            name = f"tg_{table}_no_{verb}"
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb.upper()} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{name}: {table} is append-only; {verb} refused'); END"
            )


def drop_forbid_changes(table: str, *, update: bool = True, delete: bool = True) -> None:
    verbs = [verb for verb, on in (("update", update), ("delete", delete)) if on]
    postgres = _dialect() == "postgresql"
    names = [f"tg_{table}_no_{verb}" for verb in verbs]
    if postgres and delete:
        names.append(f"tg_{table}_no_truncate")
    for name in names:
        op.execute(
            f"DROP TRIGGER IF EXISTS {name} ON {table}" if postgres else f"DROP TRIGGER IF EXISTS {name}"
        )


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


#: A specimen collected before its donor's death, unless its site is a pre-mortem draw (DOMAIN.md §3).
SPECIMEN_COLLECTED_BEFORE_DEATH = (
    "NEW.collected_at < (SELECT a.death_at FROM autopsy a WHERE a.donor_id = NEW.donor_id AND a.death_at IS NOT NULL)"
    " AND (SELECT s.kind FROM sampling_site s WHERE s.id = NEW.sampling_site_id) <> 'premortem_blood'"
)


def specimen_triggers() -> None:
    """The foundation's rules on ``specimen``: never deleted, never collected before death.

    A SQLite batch rebuild of ``specimen`` drops its triggers; a migration that rebuilds it calls this again.
    """
    forbid_changes("specimen", update=False)
    guard(
        "tg_specimen_collected_after_death",
        "specimen",
        "INSERT OR UPDATE OF collected_at",
        SPECIMEN_COLLECTED_BEFORE_DEATH,
        "a specimen cannot be collected before death (only a pre-mortem blood draw can)",
    )


# --- End of the copy of biobank/db/ddl.py ---------------------------------------------------------------------------


def _parse_bool(value: str, code: str) -> bool:
    """Only ``true``/``false`` (as ``biobank.domain.sites`` read the file at this revision)."""
    if value == "true":
        return True
    if value == "false":
        return False
    raise ValueError(f"anatomical site {code!r}: laterality_applies must be 'true' or 'false', not {value!r}")


def _load_sites() -> dict[str, dict[str, str | bool | None]]:
    """The frozen vocabulary by code: the columns of ``anatomical_site``, empty strings as NULL."""
    sites: dict[str, dict[str, str | bool | None]] = {}
    for row in csv.DictReader(SITES_CSV.read_text(encoding="utf-8").splitlines()):
        code = row["code"]
        if code in sites:
            raise ValueError(f"anatomical site {code!r} appears twice in {SITES_CSV.name}")
        sites[code] = {
            "code": code,
            "label": row["label"],
            "uberon_id": row["uberon_id"] or None,
            "icdo3_topography": row["icdo3_topography"] or None,
            "laterality_applies": _parse_bool(row["laterality_applies"], code),
            "parent_code": row["parent_code"] or None,
            "category": row["category"],
        }
    return sites


def _seed_sites() -> None:
    """Load the anatomical-site vocabulary frozen with this revision, parents before children."""
    sites = _load_sites()

    def depth(code: str) -> int:
        parent = sites[code]["parent_code"]
        return 0 if not parent else 1 + depth(str(parent))

    table = sa.table(
        "anatomical_site",
        sa.column("code"),
        sa.column("label"),
        sa.column("uberon_id"),
        sa.column("icdo3_topography"),
        sa.column("laterality_applies", sa.Boolean),
        sa.column("parent_code"),
        sa.column("category"),
    )
    rows = [sites[code] for code in sorted(sites, key=lambda code: (depth(code), code))]
    op.bulk_insert(table, rows)


def upgrade() -> None:
    op.create_table(
        "anatomical_site",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("uberon_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("icdo3_topography", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("laterality_applies", sa.Boolean(), nullable=False),
        sa.Column("parent_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_code"],
            ["anatomical_site.code"],
            name=op.f("fk_anatomical_site_parent_code_anatomical_site"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_anatomical_site")),
    )
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("full_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('technician', 'pi', 'admin', 'viewer')", name=op.f("ck_user_account_role")
        ),
        sa.CheckConstraint("username NOT LIKE '% %'", name=op.f("ck_user_account_username_no_spaces")),
        sa.CheckConstraint(
            "username IS NULL OR length(trim(username)) > 0", name=op.f("ck_user_account_username_not_blank")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("username", name=op.f("uq_user_account_username")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("table_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("row_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.CheckConstraint("action IN ('insert', 'update')", name=op.f("ck_audit_log_action")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_audit_log_user_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_occurred_at"), ["occurred_at"], unique=False)
        batch_op.create_index("ix_audit_log_table_row", ["table_name", "row_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_user_id"), ["user_id"], unique=False)

    op.create_table(
        "donor",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("sex", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("age_at_death", sa.Integer(), nullable=True),
        sa.Column("primary_diagnosis", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("primary_site_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("icdo3_topography", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("icdo3_morphology", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("diagnosis_days_before_death", sa.Integer(), nullable=True),
        sa.Column("er_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("pr_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("her2_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("cause_of_death", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("hardy_scale", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.CheckConstraint(
            "code IS NULL OR (length(code) > 0 AND code NOT LIKE '% %' AND code NOT LIKE '%:%' AND code NOT LIKE '%/%')",
            name=op.f("ck_donor_code_safe"),
        ),
        sa.CheckConstraint(
            "er_status IS NULL OR er_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_donor_er_status"),
        ),
        sa.CheckConstraint(
            "her2_status IS NULL OR her2_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_donor_her2_status"),
        ),
        sa.CheckConstraint(
            "pr_status IS NULL OR pr_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_donor_pr_status"),
        ),
        sa.CheckConstraint(
            "sex IN ('male', 'female', 'unknown', 'undifferentiated', 'not_applicable')",
            name=op.f("ck_donor_sex"),
        ),
        sa.CheckConstraint(
            "status IN ('enrolled', 'deceased', 'autopsy_done', 'withdrawn')", name=op.f("ck_donor_status")
        ),
        sa.CheckConstraint(
            "age_at_death IS NULL OR (age_at_death >= 0 AND age_at_death <= 130)",
            name=op.f("ck_donor_age_at_death_range"),
        ),
        sa.CheckConstraint(
            "diagnosis_days_before_death IS NULL OR diagnosis_days_before_death >= 0",
            name=op.f("ck_donor_diagnosis_before_death"),
        ),
        sa.CheckConstraint(
            "hardy_scale IS NULL OR (hardy_scale >= 0 AND hardy_scale <= 4)",
            name=op.f("ck_donor_hardy_scale_range"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_donor_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["primary_site_code"],
            ["anatomical_site.code"],
            name=op.f("fk_donor_primary_site_code_anatomical_site"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_donor_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_donor")),
        sa.UniqueConstraint("code", name=op.f("uq_donor_code")),
    )
    op.create_table(
        "autopsy",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("case_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("death_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refrigerated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("institution", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("prosector", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("team", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.CheckConstraint(
            "case_code IS NULL OR (length(case_code) > 0 AND case_code NOT LIKE '% %' AND case_code NOT LIKE '%:%' AND case_code NOT LIKE '%/%')",
            name=op.f("ck_autopsy_case_code_safe"),
        ),
        sa.CheckConstraint(
            "status = 'scheduled' OR death_at IS NOT NULL", name=op.f("ck_autopsy_death_time_when_started")
        ),
        sa.CheckConstraint(
            "status IN ('scheduled', 'in_progress', 'complete')", name=op.f("ck_autopsy_status")
        ),
        sa.CheckConstraint(
            "end_at IS NULL OR (start_at IS NOT NULL AND end_at >= start_at)",
            name=op.f("ck_autopsy_end_after_start"),
        ),
        sa.CheckConstraint(
            "refrigerated_at IS NULL OR refrigerated_at >= death_at",
            name=op.f("ck_autopsy_refrigerated_after_death"),
        ),
        sa.CheckConstraint(
            "start_at IS NULL OR start_at >= death_at", name=op.f("ck_autopsy_start_after_death")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_autopsy_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_autopsy_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_autopsy_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autopsy")),
        sa.UniqueConstraint("case_code", name=op.f("uq_autopsy_case_code")),
        sa.UniqueConstraint("donor_id", name=op.f("uq_autopsy_donor_id")),
        sa.UniqueConstraint("id", "donor_id", name=op.f("uq_autopsy_id_donor_id")),
    )
    op.create_table(
        "clinical_event",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("days_before_death", sa.Integer(), nullable=False),
        sa.Column("site_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.CheckConstraint(
            "kind IN ('fracture', 'spinal_cord_compression', 'hypercalcaemia', 'vertebroplasty', 'orthopaedic_surgery', 'other')",
            name=op.f("ck_clinical_event_kind"),
        ),
        sa.CheckConstraint("days_before_death >= 0", name=op.f("ck_clinical_event_before_death")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_clinical_event_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_clinical_event_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["site_code"], ["anatomical_site.code"], name=op.f("fk_clinical_event_site_code_anatomical_site")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_clinical_event_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_event")),
    )
    with op.batch_alter_table("clinical_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clinical_event_donor_id"), ["donor_id"], unique=False)

    op.create_table(
        "consent",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("given_by", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("consented_on", sa.Date(), nullable=False),
        sa.Column("research_use", sa.Boolean(), nullable=False),
        sa.Column("genomic_sequencing", sa.Boolean(), nullable=False),
        sa.Column("model_derivation", sa.Boolean(), nullable=False),
        sa.Column("external_sharing", sa.Boolean(), nullable=False),
        sa.Column("recontact", sa.Boolean(), nullable=False),
        sa.Column("document_ref", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.CheckConstraint(
            "given_by IN ('donor', 'next_of_kin', 'legal_representative')", name=op.f("ck_consent_given_by")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_consent_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_consent_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_consent_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_donor_id"), ["donor_id"], unique=False)

    op.create_table(
        "consent_withdrawal",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("entered_by_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "requested_by IN ('donor', 'next_of_kin', 'legal_representative')",
            name=op.f("ck_consent_withdrawal_requested_by"),
        ),
        sa.CheckConstraint(
            "reason IS NULL OR length(trim(reason)) > 0", name=op.f("ck_consent_withdrawal_reason_not_blank")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_consent_withdrawal_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_consent_withdrawal_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["entered_by_id"],
            ["user_account.id"],
            name=op.f("fk_consent_withdrawal_entered_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_consent_withdrawal_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_withdrawal")),
        sa.UniqueConstraint("donor_id", name=op.f("uq_consent_withdrawal_donor_id")),
    )
    op.create_table(
        "lesion",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("site_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("laterality", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("bone_phenotype", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("size_mm", sa.Float(), nullable=True),
        sa.Column("imaging_response", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("er_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("pr_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("her2_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.CheckConstraint(
            "bone_phenotype IS NULL OR bone_phenotype IN ('osteolytic', 'osteoblastic', 'mixed')",
            name=op.f("ck_lesion_bone_phenotype"),
        ),
        sa.CheckConstraint(
            "code IS NULL OR (length(code) > 0 AND code NOT LIKE '% %' AND code NOT LIKE '%:%' AND code NOT LIKE '%/%')",
            name=op.f("ck_lesion_code_safe"),
        ),
        sa.CheckConstraint("code LIKE 'L%'", name=op.f("ck_lesion_code_format")),
        sa.CheckConstraint(
            "er_status IS NULL OR er_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_lesion_er_status"),
        ),
        sa.CheckConstraint(
            "her2_status IS NULL OR her2_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_lesion_her2_status"),
        ),
        sa.CheckConstraint(
            "imaging_response IN ('progressing', 'stable', 'responding', 'unknown')",
            name=op.f("ck_lesion_imaging_response"),
        ),
        sa.CheckConstraint(
            "kind IN ('primary', 'metastasis', 'local_recurrence', 'lymph_node')", name=op.f("ck_lesion_kind")
        ),
        sa.CheckConstraint(
            "laterality IN ('left', 'right', 'bilateral', 'midline', 'not_applicable', 'unknown')",
            name=op.f("ck_lesion_laterality"),
        ),
        sa.CheckConstraint(
            "pr_status IS NULL OR pr_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_lesion_pr_status"),
        ),
        sa.CheckConstraint("size_mm IS NULL OR size_mm > 0", name=op.f("ck_lesion_size_positive")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_lesion_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_lesion_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["site_code"], ["anatomical_site.code"], name=op.f("fk_lesion_site_code_anatomical_site")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_lesion_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesion")),
        sa.UniqueConstraint("donor_id", "code", name=op.f("uq_lesion_donor_id_code")),
        sa.UniqueConstraint("id", "donor_id", name=op.f("uq_lesion_id_donor_id")),
    )
    with op.batch_alter_table("lesion", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lesion_donor_id"), ["donor_id"], unique=False)

    op.create_table(
        "treatment_line",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("agents", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("intent", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("start_days_before_death", sa.Integer(), nullable=False),
        sa.Column("end_days_before_death", sa.Integer(), nullable=True),
        sa.Column("best_response", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.CheckConstraint(
            "best_response IN ('complete', 'partial', 'stable', 'progressive', 'not_evaluable', 'unknown')",
            name=op.f("ck_treatment_line_best_response"),
        ),
        sa.CheckConstraint(
            "category IN ('endocrine', 'cdk46_inhibitor', 'mtor_inhibitor', 'pi3k_inhibitor', 'her2_targeted', 'chemotherapy', 'immunotherapy', 'bone_targeted', 'radiotherapy', 'surgery', 'other')",
            name=op.f("ck_treatment_line_category"),
        ),
        sa.CheckConstraint(
            "intent IN ('neoadjuvant', 'adjuvant', 'curative', 'palliative', 'unknown')",
            name=op.f("ck_treatment_line_intent"),
        ),
        sa.CheckConstraint(
            "end_days_before_death IS NULL OR (end_days_before_death >= 0 AND end_days_before_death <= start_days_before_death)",
            name=op.f("ck_treatment_line_end_after_start"),
        ),
        sa.CheckConstraint("line_number >= 1", name=op.f("ck_treatment_line_line_number_positive")),
        sa.CheckConstraint("start_days_before_death >= 0", name=op.f("ck_treatment_line_start_before_death")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_treatment_line_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_treatment_line_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_treatment_line_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treatment_line")),
        sa.UniqueConstraint("donor_id", "line_number", name=op.f("uq_treatment_line_donor_id_line_number")),
    )
    with op.batch_alter_table("treatment_line", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_treatment_line_donor_id"), ["donor_id"], unique=False)

    op.create_table(
        "sampling_site",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("autopsy_id", sa.Integer(), nullable=True),
        sa.Column("lesion_id", sa.Integer(), nullable=True),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("region_label", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("tissue_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("distance_to_tumour_mm", sa.Float(), nullable=True),
        sa.Column("site_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("laterality", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("excised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prosector", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("gross_description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.CheckConstraint(
            "(kind = 'tumour_region' AND lesion_id IS NOT NULL AND tissue_status = 'tumour') OR (kind <> 'tumour_region' AND lesion_id IS NULL AND tissue_status <> 'tumour')",
            name=op.f("ck_sampling_site_lesion_iff_tumour_region"),
        ),
        sa.CheckConstraint(
            "code IS NULL OR (length(code) > 0 AND code NOT LIKE '% %' AND code NOT LIKE '%:%' AND code NOT LIKE '%/%')",
            name=op.f("ck_sampling_site_code_safe"),
        ),
        sa.CheckConstraint(
            "kind = 'premortem_blood' OR autopsy_id IS NOT NULL",
            name=op.f("ck_sampling_site_autopsy_unless_premortem"),
        ),
        sa.CheckConstraint(
            "kind IN ('tumour_region', 'normal_tissue', 'germline_blood', 'bone_marrow', 'premortem_blood')",
            name=op.f("ck_sampling_site_kind"),
        ),
        sa.CheckConstraint(
            "laterality IN ('left', 'right', 'bilateral', 'midline', 'not_applicable', 'unknown')",
            name=op.f("ck_sampling_site_laterality"),
        ),
        sa.CheckConstraint(
            "tissue_status IN ('tumour', 'normal', 'adjacent_normal')",
            name=op.f("ck_sampling_site_tissue_status"),
        ),
        sa.CheckConstraint(
            "distance_to_tumour_mm IS NULL OR distance_to_tumour_mm >= 0",
            name=op.f("ck_sampling_site_distance_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["autopsy_id", "donor_id"],
            ["autopsy.id", "autopsy.donor_id"],
            name=op.f("fk_sampling_site_autopsy_id_donor_id_autopsy"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_sampling_site_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_sampling_site_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["lesion_id", "donor_id"],
            ["lesion.id", "lesion.donor_id"],
            name=op.f("fk_sampling_site_lesion_id_donor_id_lesion"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["site_code"], ["anatomical_site.code"], name=op.f("fk_sampling_site_site_code_anatomical_site")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_sampling_site_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sampling_site")),
        sa.UniqueConstraint("donor_id", "code", name=op.f("uq_sampling_site_donor_id_code")),
        sa.UniqueConstraint("id", "donor_id", name=op.f("uq_sampling_site_id_donor_id")),
    )
    with op.batch_alter_table("sampling_site", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sampling_site_autopsy_id"), ["autopsy_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sampling_site_donor_id"), ["donor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sampling_site_lesion_id"), ["lesion_id"], unique=False)

    op.create_table(
        "specimen",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("barcode", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("sampling_site_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("lineage", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("material_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("storage_format", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stabilised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fixation_end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fixative", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("decalcification_agent", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("decalcification_hours", sa.Float(), nullable=True),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("quantity_remaining", sa.Float(), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("parent_quantity_used", sa.Float(), nullable=True),
        sa.Column("concentration_ng_ul", sa.Float(), nullable=True),
        sa.Column("freeze_thaw_count", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("er_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("pr_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("her2_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("tumour_cellularity_pct", sa.Float(), nullable=True),
        sa.Column("necrosis_pct", sa.Float(), nullable=True),
        sa.Column("pathology_reviewer", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("yield_ng", sa.Float(), nullable=True),
        sa.Column("a260_280", sa.Float(), nullable=True),
        sa.Column("rin", sa.Float(), nullable=True),
        sa.Column("din", sa.Float(), nullable=True),
        sa.Column("dv200_pct", sa.Float(), nullable=True),
        sa.Column("notes", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(lineage = 'primary' AND parent_id IS NULL) OR (lineage <> 'primary' AND parent_id IS NOT NULL)",
            name=op.f("ck_specimen_parent_iff_not_primary"),
        ),
        sa.CheckConstraint(
            "code IS NULL OR (length(code) > 0 AND code NOT LIKE '% %' AND code NOT LIKE '%:%' AND code NOT LIKE '%/%')",
            name=op.f("ck_specimen_code_safe"),
        ),
        sa.CheckConstraint(
            "decalcification_agent IS NULL OR decalcification_agent IN ('edta', 'formic_acid', 'hydrochloric_acid', 'nitric_acid', 'other_acid')",
            name=op.f("ck_specimen_decalcification_agent"),
        ),
        sa.CheckConstraint(
            "er_status IS NULL OR er_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_specimen_er_status"),
        ),
        sa.CheckConstraint(
            "fixative IS NULL OR fixative IN ('nbf', 'formalin', 'aldehyde', 'alcohol', 'paxgene', 'other')",
            name=op.f("ck_specimen_fixative"),
        ),
        sa.CheckConstraint(
            "her2_status IS NULL OR her2_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_specimen_her2_status"),
        ),
        sa.CheckConstraint(
            "lineage IN ('primary', 'aliquot', 'derivative')", name=op.f("ck_specimen_lineage")
        ),
        sa.CheckConstraint(
            "material_type IN ('tissue', 'whole_blood', 'plasma', 'buffy_coat', 'bone_marrow', 'dna', 'rna', 'cells', 'section')",
            name=op.f("ck_specimen_material_type"),
        ),
        sa.CheckConstraint(
            "pr_status IS NULL OR pr_status IN ('positive', 'negative', 'equivocal', 'low', 'unknown')",
            name=op.f("ck_specimen_pr_status"),
        ),
        sa.CheckConstraint(
            "status IN ('available', 'reserved', 'in_use', 'depleted', 'distributed', 'disposed')",
            name=op.f("ck_specimen_status"),
        ),
        sa.CheckConstraint(
            "storage_format <> 'ffpe' OR fixative IS NOT NULL", name=op.f("ck_specimen_ffpe_has_fixative")
        ),
        sa.CheckConstraint(
            "storage_format IN ('fresh', 'snap_frozen', 'oct', 'ffpe', 'rnalater', 'viable_cryo', 'frozen')",
            name=op.f("ck_specimen_storage_format"),
        ),
        sa.CheckConstraint(
            "unit IN ('mg', 'ul', 'cells', 'sections', 'blocks', 'ng')", name=op.f("ck_specimen_unit")
        ),
        sa.CheckConstraint(
            "a260_280 IS NULL OR (a260_280 >= 0 AND a260_280 <= 5)", name=op.f("ck_specimen_a260_280_range")
        ),
        sa.CheckConstraint(
            "barcode IS NULL OR length(trim(barcode)) > 0", name=op.f("ck_specimen_barcode_not_blank")
        ),
        sa.CheckConstraint(
            "concentration_ng_ul IS NULL OR concentration_ng_ul >= 0",
            name=op.f("ck_specimen_concentration_not_negative"),
        ),
        sa.CheckConstraint(
            "decalcification_hours IS NULL OR (decalcification_hours >= 0 AND decalcification_agent IS NOT NULL)",
            name=op.f("ck_specimen_decalcification_hours_with_agent"),
        ),
        sa.CheckConstraint("din IS NULL OR (din >= 0 AND din <= 10)", name=op.f("ck_specimen_din_range")),
        sa.CheckConstraint(
            "dv200_pct IS NULL OR (dv200_pct >= 0 AND dv200_pct <= 100)", name=op.f("ck_specimen_dv200_range")
        ),
        sa.CheckConstraint(
            "fixation_end_at IS NULL OR (stabilised_at IS NOT NULL AND fixation_end_at >= stabilised_at)",
            name=op.f("ck_specimen_fixation_end_after_start"),
        ),
        sa.CheckConstraint("freeze_thaw_count >= 0", name=op.f("ck_specimen_freeze_thaw_not_negative")),
        sa.CheckConstraint(
            "necrosis_pct IS NULL OR (necrosis_pct >= 0 AND necrosis_pct <= 100)",
            name=op.f("ck_specimen_necrosis_range"),
        ),
        sa.CheckConstraint("parent_id IS NULL OR parent_id <> id", name=op.f("ck_specimen_not_own_parent")),
        sa.CheckConstraint(
            "parent_quantity_used IS NULL OR parent_quantity_used >= 0",
            name=op.f("ck_specimen_used_not_negative"),
        ),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_specimen_quantity_not_negative")),
        sa.CheckConstraint(
            "quantity_remaining >= 0 AND quantity_remaining <= quantity",
            name=op.f("ck_specimen_remaining_within_quantity"),
        ),
        sa.CheckConstraint("rin IS NULL OR (rin >= 0 AND rin <= 10)", name=op.f("ck_specimen_rin_range")),
        sa.CheckConstraint(
            "stabilised_at IS NULL OR stabilised_at >= collected_at",
            name=op.f("ck_specimen_stabilised_after_collected"),
        ),
        sa.CheckConstraint(
            "tumour_cellularity_pct IS NULL OR (tumour_cellularity_pct >= 0 AND tumour_cellularity_pct <= 100)",
            name=op.f("ck_specimen_tumour_cellularity_range"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_specimen_version_positive")),
        sa.CheckConstraint("yield_ng IS NULL OR yield_ng >= 0", name=op.f("ck_specimen_yield_not_negative")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_specimen_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_specimen_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id", "donor_id"],
            ["specimen.id", "specimen.donor_id"],
            name=op.f("fk_specimen_parent_id_donor_id_specimen"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["sampling_site_id", "donor_id"],
            ["sampling_site.id", "sampling_site.donor_id"],
            name=op.f("fk_specimen_sampling_site_id_donor_id_sampling_site"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_specimen_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_specimen")),
        sa.UniqueConstraint("barcode", name=op.f("uq_specimen_barcode")),
        sa.UniqueConstraint("code", name=op.f("uq_specimen_code")),
        sa.UniqueConstraint("id", "donor_id", name=op.f("uq_specimen_id_donor_id")),
    )
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_specimen_donor_id"), ["donor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_specimen_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_specimen_sampling_site_id"), ["sampling_site_id"], unique=False)
        batch_op.create_index("ix_specimen_site_format", ["sampling_site_id", "storage_format"], unique=False)

    op.create_table(
        "custody_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("from_location", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("to_location", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.CheckConstraint(
            "kind IN ('collected', 'stabilised', 'stored', 'moved', 'checked_out', 'returned', 'thawed', 'aliquoted', 'derived', 'qc_recorded', 'reserved', 'distributed', 'disposed', 'corrected')",
            name=op.f("ck_custody_event_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"],
            ["specimen.id"],
            name=op.f("fk_custody_event_specimen_id_specimen"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_custody_event_user_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_event")),
    )
    with op.batch_alter_table("custody_event", schema=None) as batch_op:
        batch_op.create_index("ix_custody_event_specimen_time", ["specimen_id", "occurred_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_custody_event_user_id"), ["user_id"], unique=False)

    _seed_sites()
    forbid_changes("audit_log")
    forbid_changes("custody_event")
    guard(
        "tg_sampling_site_excised_after_death",
        "sampling_site",
        "INSERT OR UPDATE OF excised_at",
        SITE_BEFORE_DEATH,
        "material cannot be excised before death (only a pre-mortem blood draw can)",
    )
    specimen_triggers()


def downgrade() -> None:
    drop_guard("tg_specimen_collected_after_death", "specimen", "INSERT OR UPDATE OF collected_at")
    drop_guard("tg_sampling_site_excised_after_death", "sampling_site", "INSERT OR UPDATE OF excised_at")
    drop_forbid_changes("specimen", update=False)
    drop_forbid_changes("custody_event")
    drop_forbid_changes("audit_log")
    with op.batch_alter_table("custody_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_custody_event_user_id"))
        batch_op.drop_index("ix_custody_event_specimen_time")

    op.drop_table("custody_event")
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.drop_index("ix_specimen_site_format")
        batch_op.drop_index(batch_op.f("ix_specimen_sampling_site_id"))
        batch_op.drop_index(batch_op.f("ix_specimen_parent_id"))
        batch_op.drop_index(batch_op.f("ix_specimen_donor_id"))

    op.drop_table("specimen")
    with op.batch_alter_table("sampling_site", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sampling_site_lesion_id"))
        batch_op.drop_index(batch_op.f("ix_sampling_site_donor_id"))
        batch_op.drop_index(batch_op.f("ix_sampling_site_autopsy_id"))

    op.drop_table("sampling_site")
    with op.batch_alter_table("treatment_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_treatment_line_donor_id"))

    op.drop_table("treatment_line")
    with op.batch_alter_table("lesion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_donor_id"))

    op.drop_table("lesion")
    op.drop_table("consent_withdrawal")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_donor_id"))

    op.drop_table("consent")
    with op.batch_alter_table("clinical_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinical_event_donor_id"))

    op.drop_table("clinical_event")
    op.drop_table("autopsy")
    op.drop_table("donor")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_user_id"))
        batch_op.drop_index("ix_audit_log_table_row")
        batch_op.drop_index(batch_op.f("ix_audit_log_occurred_at"))

    op.drop_table("audit_log")
    op.drop_table("user_account")
    op.drop_table("anatomical_site")
