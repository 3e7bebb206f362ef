"""derived models: organoids, PDX and cell lines with passages and QC; specimens gain passage_id

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:52:20.762308
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py). What it used is copied here
# as it was: the DDL helpers of ``biobank/db/ddl.py`` and, for timestamps, ``sa.DateTime(timezone=True)``: the DDL of
# ``biobank.db.engine.UTCDateTime``, a TypeDecorator over it (DATETIME on SQLite, TIMESTAMP WITH TIME ZONE on
# PostgreSQL). Later changes to those files never change what this revision does.

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: Allowed status changes (``biobank.domain.vocab_derived.STATUS_TRANSITIONS``, frozen here as of this revision).
TRANSITIONS = (
    "initiated>growing",
    "initiated>failed",
    "growing>established",
    "growing>failed",
    "growing>discontinued",
    "established>cryobanked",
    "established>discontinued",
    "cryobanked>discontinued",
)
STATUS_TRANSITION = (
    "NEW.status <> OLD.status AND (OLD.status || '>' || NEW.status) NOT IN ("
    + ", ".join(f"'{t}'" for t in TRANSITIONS)
    + ")"
)
VIABLE_SOURCE = "(SELECT s.storage_format FROM specimen s WHERE s.id = NEW.source_specimen_id) NOT IN ('fresh', 'viable_cryo')"
NUMBER_FOLLOWS_PARENT = (
    "NEW.parent_passage_id IS NOT NULL AND NEW.number <> "
    "(SELECT p.number + 1 FROM model_passage p WHERE p.id = NEW.parent_passage_id)"
)
PASSAGE_SAME_DONOR = (
    "NEW.passage_id IS NOT NULL AND NEW.donor_id <> (SELECT m.donor_id FROM model_passage p"
    " JOIN derived_model m ON m.id = p.model_id WHERE p.id = NEW.passage_id)"
)
GUARDS = (
    (
        "tg_derived_model_viable_source",
        "derived_model",
        "INSERT OR UPDATE OF source_specimen_id",
        VIABLE_SOURCE,
        "a model is derived from a fresh or viable cryopreserved specimen",
    ),
    (
        "tg_derived_model_status_transition",
        "derived_model",
        "UPDATE OF status",
        STATUS_TRANSITION,
        "this status change is not allowed",
    ),
    (
        "tg_model_passage_number_follows_parent",
        "model_passage",
        "INSERT OR UPDATE OF number, parent_passage_id",
        NUMBER_FOLLOWS_PARENT,
        "a passage number is its parent passage number plus one",
    ),
    (
        "tg_specimen_passage_same_donor",
        "specimen",
        "INSERT OR UPDATE OF passage_id",
        PASSAGE_SAME_DONOR,
        "a specimen from a passage belongs to the donor of the model",
    ),
)
#: Nothing of a model is ever deleted (like specimens): failures and discontinuations are statuses.
NO_DELETE = ("derived_model", "model_passage", "model_qc")


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


def _restore_specimen_triggers() -> None:
    """A SQLite batch rebuild drops the old table's triggers with it: put the foundation's back."""
    specimen_triggers()


def _add_specimen_passage_id() -> None:
    """specimen.passage_id with a named foreign key; SQLite rebuilds the table (rows kept, foreign keys checked)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("specimen", recreate="always" if sqlite else "auto") as batch_op:
        batch_op.add_column(sa.Column("passage_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_specimen_passage_id"), ["passage_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_specimen_passage_id_model_passage"),
            "model_passage",
            ["passage_id"],
            ["id"],
            ondelete="RESTRICT",
        )
    if sqlite:
        _restore_specimen_triggers()


def _drop_specimen_passage_id() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("specimen", recreate="always" if sqlite else "auto") as batch_op:
        batch_op.drop_index(batch_op.f("ix_specimen_passage_id"))
        if not sqlite:
            batch_op.drop_constraint(batch_op.f("fk_specimen_passage_id_model_passage"), type_="foreignkey")
        batch_op.drop_column("passage_id")
    if sqlite:
        _restore_specimen_triggers()


def upgrade() -> None:
    op.create_table(
        "derived_model",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("source_specimen_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("initiated_on", sa.Date(), nullable=False),
        sa.Column("established_on", sa.Date(), nullable=True),
        sa.Column("failed_on", sa.Date(), nullable=True),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("host_strain_name", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("host_strain_nomenclature", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("engraftment_site", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("engraftment_type", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("tumour_preparation", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("humanised", sa.Boolean(), nullable=False),
        sa.Column("humanisation_type", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("medium", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("matrix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("growth_properties", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("notes", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.CheckConstraint(
            "code IS NULL OR (length(code) > 0 AND code NOT LIKE '% %' AND code NOT LIKE '%:%' AND code NOT LIKE '%/%')",
            name=op.f("ck_derived_model_code_safe"),
        ),
        sa.CheckConstraint(
            "engraftment_type IS NULL OR engraftment_type IN ('orthotopic', 'heterotopic')",
            name=op.f("ck_derived_model_engraftment_type"),
        ),
        sa.CheckConstraint(
            "growth_properties IS NULL OR growth_properties IN ('embedded_3d', 'adherent', 'adherent_and_suspension', 'suspension')",
            name=op.f("ck_derived_model_growth_properties"),
        ),
        sa.CheckConstraint(
            "kind <> 'pdx' OR (medium IS NULL AND matrix IS NULL AND growth_properties IS NULL)",
            name=op.f("ck_derived_model_culture_fields_not_pdx"),
        ),
        sa.CheckConstraint(
            "kind <> 'pdx' OR host_strain_name IS NOT NULL", name=op.f("ck_derived_model_pdx_has_host_strain")
        ),
        sa.CheckConstraint(
            "kind = 'pdx' OR (host_strain_name IS NULL AND host_strain_nomenclature IS NULL AND engraftment_site IS NULL AND engraftment_type IS NULL AND tumour_preparation IS NULL AND NOT humanised)",
            name=op.f("ck_derived_model_pdx_fields_only_pdx"),
        ),
        sa.CheckConstraint("kind IN ('organoid', 'pdx', 'cell_line')", name=op.f("ck_derived_model_kind")),
        sa.CheckConstraint(
            "matrix IS NULL OR matrix IN ('matrigel_bme', 'collagen', 'none')",
            name=op.f("ck_derived_model_matrix"),
        ),
        sa.CheckConstraint(
            "status <> 'discontinued' OR ended_on IS NOT NULL",
            name=op.f("ck_derived_model_discontinued_has_date"),
        ),
        sa.CheckConstraint(
            "status <> 'failed' OR failed_on IS NOT NULL", name=op.f("ck_derived_model_failed_has_date")
        ),
        sa.CheckConstraint(
            "status IN ('initiated', 'growing', 'established', 'failed', 'cryobanked', 'discontinued')",
            name=op.f("ck_derived_model_status"),
        ),
        sa.CheckConstraint(
            "status NOT IN ('established', 'cryobanked') OR established_on IS NOT NULL",
            name=op.f("ck_derived_model_established_has_date"),
        ),
        sa.CheckConstraint(
            "tumour_preparation IS NULL OR tumour_preparation IN ('fragment', 'cell_suspension')",
            name=op.f("ck_derived_model_tumour_preparation"),
        ),
        sa.CheckConstraint(
            "ended_on IS NULL OR ended_on >= initiated_on",
            name=op.f("ck_derived_model_ended_after_initiated"),
        ),
        sa.CheckConstraint(
            "established_on IS NULL OR established_on >= initiated_on",
            name=op.f("ck_derived_model_established_after_initiated"),
        ),
        sa.CheckConstraint(
            "failed_on IS NULL OR established_on IS NULL",
            name=op.f("ck_derived_model_failed_never_established"),
        ),
        sa.CheckConstraint(
            "failed_on IS NULL OR failed_on >= initiated_on",
            name=op.f("ck_derived_model_failed_after_initiated"),
        ),
        sa.CheckConstraint(
            "host_strain_name IS NULL OR length(trim(host_strain_name)) > 0",
            name=op.f("ck_derived_model_host_strain_name_not_blank"),
        ),
        sa.CheckConstraint(
            "humanisation_type IS NULL OR humanised",
            name=op.f("ck_derived_model_humanisation_type_if_humanised"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_derived_model_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["donor_id"], ["donor.id"], name=op.f("fk_derived_model_donor_id_donor"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["source_specimen_id", "donor_id"],
            ["specimen.id", "specimen.donor_id"],
            name=op.f("fk_derived_model_source_specimen_id_donor_id_specimen"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_derived_model_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_model")),
        sa.UniqueConstraint("code", name=op.f("uq_derived_model_code")),
        sa.UniqueConstraint("id", "donor_id", name=op.f("uq_derived_model_id_donor_id")),
    )
    with op.batch_alter_table("derived_model", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_derived_model_donor_id"), ["donor_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_derived_model_source_specimen_id"), ["source_specimen_id"], unique=False
        )

    op.create_table(
        "model_passage",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("parent_passage_id", sa.Integer(), nullable=True),
        sa.Column("passaged_on", sa.Date(), nullable=False),
        sa.Column("mouse_or_vessel_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("latency_days", sa.Integer(), nullable=True),
        sa.Column("doubling_time_hours", sa.Float(), nullable=True),
        sa.Column("distributed_on", sa.Date(), nullable=True),
        sa.Column("distributed_to", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("notes", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.CheckConstraint(
            "label IS NULL OR (length(label) > 0 AND label NOT LIKE '% %' AND label NOT LIKE '%:%' AND label NOT LIKE '%/%')",
            name=op.f("ck_model_passage_label_safe"),
        ),
        sa.CheckConstraint(
            "(distributed_on IS NULL AND distributed_to IS NULL) OR (distributed_on IS NOT NULL AND distributed_to IS NOT NULL)",
            name=op.f("ck_model_passage_distribution_complete"),
        ),
        sa.CheckConstraint(
            "(number = 0 AND parent_passage_id IS NULL) OR (number > 0 AND parent_passage_id IS NOT NULL)",
            name=op.f("ck_model_passage_parent_iff_not_p0"),
        ),
        sa.CheckConstraint(
            "distributed_on IS NULL OR distributed_on >= passaged_on",
            name=op.f("ck_model_passage_distributed_after_passaged"),
        ),
        sa.CheckConstraint(
            "doubling_time_hours IS NULL OR doubling_time_hours > 0",
            name=op.f("ck_model_passage_doubling_time_positive"),
        ),
        sa.CheckConstraint(
            "latency_days IS NULL OR latency_days >= 0", name=op.f("ck_model_passage_latency_not_negative")
        ),
        sa.CheckConstraint("number >= 0", name=op.f("ck_model_passage_number_not_negative")),
        sa.CheckConstraint(
            "parent_passage_id IS NULL OR parent_passage_id <> id",
            name=op.f("ck_model_passage_not_own_parent"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_model_passage_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["derived_model.id"],
            name=op.f("fk_model_passage_model_id_derived_model"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["parent_passage_id", "model_id"],
            ["model_passage.id", "model_passage.model_id"],
            name=op.f("fk_model_passage_parent_passage_id_model_id_model_passage"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_model_passage_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_passage")),
        sa.UniqueConstraint("id", "model_id", name=op.f("uq_model_passage_id_model_id")),
        sa.UniqueConstraint("model_id", "label", name=op.f("uq_model_passage_model_id_label")),
    )
    with op.batch_alter_table("model_passage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_passage_model_id"), ["model_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_model_passage_parent_passage_id"), ["parent_passage_id"], unique=False
        )

    op.create_table(
        "model_qc",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("passage_id", sa.Integer(), nullable=False),
        sa.Column("tested_on", sa.Date(), nullable=False),
        sa.Column("identity_method", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
        sa.Column("identity_match_pct", sa.Float(), nullable=True),
        sa.Column("mycoplasma", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("mouse_content_pct", sa.Float(), nullable=True),
        sa.Column("histology_concordant", sa.Boolean(), nullable=True),
        sa.Column("not_mouse_or_ebv_origin", sa.Boolean(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("notes", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.CheckConstraint(
            "identity_method IS NULL OR identity_method IN ('STR', 'SNP')",
            name=op.f("ck_model_qc_identity_method"),
        ),
        sa.CheckConstraint(
            "mycoplasma IN ('negative', 'positive', 'not_tested')", name=op.f("ck_model_qc_mycoplasma")
        ),
        sa.CheckConstraint(
            "identity_match_pct IS NULL OR (identity_match_pct >= 0 AND identity_match_pct <= 100)",
            name=op.f("ck_model_qc_identity_match_range"),
        ),
        sa.CheckConstraint(
            "identity_match_pct IS NULL OR identity_method IS NOT NULL",
            name=op.f("ck_model_qc_identity_match_has_method"),
        ),
        sa.CheckConstraint(
            "mouse_content_pct IS NULL OR (mouse_content_pct >= 0 AND mouse_content_pct <= 100)",
            name=op.f("ck_model_qc_mouse_content_range"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_model_qc_created_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["passage_id"],
            ["model_passage.id"],
            name=op.f("fk_model_qc_passage_id_model_passage"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_model_qc_updated_by_id_user_account"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_qc")),
    )
    with op.batch_alter_table("model_qc", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_qc_passage_id"), ["passage_id"], unique=False)

    _add_specimen_passage_id()
    for name, table, events, condition, message in GUARDS:
        guard(name, table, events, condition, message)
    for table in NO_DELETE:
        forbid_changes(table, update=False)


def downgrade() -> None:
    for table in NO_DELETE:
        drop_forbid_changes(table, update=False)
    for name, table, events, _condition, _message in GUARDS:
        drop_guard(name, table, events)
    _drop_specimen_passage_id()
    with op.batch_alter_table("model_qc", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_qc_passage_id"))

    op.drop_table("model_qc")
    with op.batch_alter_table("model_passage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_passage_parent_passage_id"))
        batch_op.drop_index(batch_op.f("ix_model_passage_model_id"))

    op.drop_table("model_passage")
    with op.batch_alter_table("derived_model", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_derived_model_source_specimen_id"))
        batch_op.drop_index(batch_op.f("ix_derived_model_donor_id"))

    op.drop_table("derived_model")
