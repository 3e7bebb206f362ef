"""plan_sequencing: per-sample assay, depth and library; reservations, versions and cancellation of plans;
sequencing runs, results and data files per plan sample; imported phylogeny and migration results

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 13:10:00.000000

- ``plan_specimen``: ``assay``, ``target_depth``, ``library`` (NULL: the plan's own) and ``quantity_reserved``
  (set when the plan is approved, in the specimen's unit).
- ``analysis_plan``: ``version`` (1 for existing plans), ``supersedes_id`` (the plan an amended version replaces,
  at most once), ``closed_at`` and ``closed_reason`` (when it was superseded or cancelled), ``flow_cell`` (the kind
  the budget uses); the status CHECK takes ``superseded`` and ``cancelled``, and a cancelled draft needs no
  approver. On SQLite the two replaced CHECKs rebuild the table (0011's frozen ``replace_check``).
- ``sequencing_run``, ``sequencing_result`` (a plan sample's outcome per run: sequenced, passed, failed_qc, with
  reads, coverage, contamination, purity and ploidy), ``sequencing_file`` (URI and checksum) and ``analysis_result``
  (a CONIPHER tree or a Metient/MACHINA migration graph for a donor, as given and as read).

Every new or changed table gets its PostgreSQL audit triggers again (0010's frozen ``audit_table``). Downgrade
refuses while a plan is superseded or cancelled, or while any new row exists.
"""

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUS_BEFORE = "status IN ('draft', 'approved', 'submitted')"
_STATUS_AFTER = "status IN ('draft', 'approved', 'submitted', 'superseded', 'cancelled')"
_APPROVER_BEFORE = "status = 'draft' OR (approved_by_id IS NOT NULL AND approved_at IS NOT NULL)"
_APPROVER_AFTER = (
    "status IN ('draft', 'cancelled') OR (approved_by_id IS NOT NULL AND approved_at IS NOT NULL)"
)
_NEW_TABLES = ("sequencing_run", "analysis_result", "sequencing_result", "sequencing_file")


def _revision(filename: str) -> ModuleType:
    """An earlier revision's module, for the helpers frozen with it: 0010's ``audit_table`` and 0011's
    ``replace_check``."""
    spec = importlib.util.spec_from_file_location(f"revision_{filename[:4]}", Path(__file__).with_name(filename))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FK = "CONSTRAINT fk_analysis_plan_supersedes_id_analysis_plan FOREIGN KEY(supersedes_id) REFERENCES analysis_plan (id) ON DELETE RESTRICT"


def _rebuild_plan_sqlite(checks: list[tuple[str, str, str]], *, add_fk: bool) -> None:
    """SQLite: rebuild analysis_plan from its own stored definition with ``checks`` (name, old, new) replaced and the
    supersedes_id reference added or removed (SQLite alters neither in place). Rows, indexes and triggers are kept.
    Other tables' triggers name analysis_plan (the draft guards): ``legacy_alter_table`` lets the rename leave their
    text alone, which still names the rebuilt table; ``PRAGMA foreign_key_check`` must find nothing afterwards."""
    bind = op.get_bind()
    objects = bind.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'analysis_plan' AND sql IS NOT NULL"
    ).all()
    sql = next(text for kind, _name, text in objects if kind == "table")
    for name, old, new in checks:
        check = f"CONSTRAINT ck_analysis_plan_{name} CHECK ({old})"
        if check not in sql:
            raise RuntimeError(f"analysis_plan's {name} CHECK is not the expected one ({old}); migrate by hand")
        sql = sql.replace(check, f"CONSTRAINT ck_analysis_plan_{name} CHECK ({new})")
    body = sql.rstrip()
    if add_fk:
        body = body[: body.rindex(")")].rstrip() + f", \n\t{_FK}\n)"
    else:
        if _FK not in body:
            raise RuntimeError("analysis_plan's supersedes_id reference is not the expected one; migrate by hand")
        body = re.sub(r",\s*" + re.escape(_FK), "", body)
    op.execute("PRAGMA legacy_alter_table = ON")
    try:
        op.execute(re.sub(r'^CREATE TABLE "?analysis_plan"?', "CREATE TABLE analysis_plan_rebuilt", body))
        op.execute("INSERT INTO analysis_plan_rebuilt SELECT * FROM analysis_plan")
        op.execute("DROP TABLE analysis_plan")
        op.execute("ALTER TABLE analysis_plan_rebuilt RENAME TO analysis_plan")
        for kind, _name, text in objects:
            if kind != "table":
                op.execute(text)
    finally:
        op.execute("PRAGMA legacy_alter_table = OFF")
    problems = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        raise RuntimeError(f"rebuilding analysis_plan broke references: {problems[:5]}")


def _check(name: str, condition: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(condition, name=name)


def _not_blank(column: str) -> sa.CheckConstraint:
    return _check(f"{column}_not_blank", f"{column} IS NULL OR length(trim({column})) > 0")


def upgrade() -> None:
    op.create_table('sequencing_run',
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('flow_cell', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('flow_cell_id', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
    sa.Column('centre', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at', name=op.f('ck_sequencing_run_completed_after_started')),
    sa.CheckConstraint('instrument IS NULL OR length(trim(instrument)) > 0', name=op.f('ck_sequencing_run_instrument_not_blank')),
    sa.CheckConstraint('run_id IS NULL OR length(trim(run_id)) > 0', name=op.f('ck_sequencing_run_run_id_not_blank')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_sequencing_run_created_by_id_user_account'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_sequencing_run_updated_by_id_user_account'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequencing_run')),
    sa.UniqueConstraint('run_id', name=op.f('uq_sequencing_run_run_id'))
    )
    op.create_table('analysis_result',
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('donor_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('tool', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('file_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('parsed', sa.JSON(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.CheckConstraint("code IS NULL OR (length(code) > 0 AND code NOT LIKE '% %' AND code NOT LIKE '%:%' AND code NOT LIKE '%/%')", name=op.f('ck_analysis_result_code_safe')),
    sa.CheckConstraint("kind IN ('clone_tree', 'migration_graph')", name=op.f('ck_analysis_result_kind')),
    sa.CheckConstraint("tool IN ('conipher', 'metient', 'machina')", name=op.f('ck_analysis_result_tool')),
    sa.CheckConstraint('file_name IS NULL OR length(trim(file_name)) > 0', name=op.f('ck_analysis_result_file_name_not_blank')),
    sa.CheckConstraint('length(sha256) = 64', name=op.f('ck_analysis_result_sha256_length')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_analysis_result_created_by_id_user_account'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['donor_id'], ['donor.id'], name=op.f('fk_analysis_result_donor_id_donor'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['plan_id'], ['analysis_plan.id'], name=op.f('fk_analysis_result_plan_id_analysis_plan'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_analysis_result_updated_by_id_user_account'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_analysis_result')),
    sa.UniqueConstraint('code', name=op.f('uq_analysis_result_code'))
    )
    with op.batch_alter_table('analysis_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analysis_result_donor_id'), ['donor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_analysis_result_plan_id'), ['plan_id'], unique=False)

    op.create_table('sequencing_result',
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_specimen_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('read_count', sa.BigInteger(), nullable=True),
    sa.Column('mean_coverage', sa.Float(), nullable=True),
    sa.Column('contamination_pct', sa.Float(), nullable=True),
    sa.Column('purity', sa.Float(), nullable=True),
    sa.Column('ploidy', sa.Float(), nullable=True),
    sa.Column('qc_note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.CheckConstraint("outcome IN ('sequenced', 'passed', 'failed_qc')", name=op.f('ck_sequencing_result_outcome')),
    sa.CheckConstraint('contamination_pct IS NULL OR (contamination_pct >= 0 AND contamination_pct <= 100)', name=op.f('ck_sequencing_result_contamination_pct_range')),
    sa.CheckConstraint('mean_coverage IS NULL OR mean_coverage >= 0', name=op.f('ck_sequencing_result_coverage_not_negative')),
    sa.CheckConstraint('ploidy IS NULL OR (ploidy > 0 AND ploidy <= 10)', name=op.f('ck_sequencing_result_ploidy_range')),
    sa.CheckConstraint('purity IS NULL OR (purity >= 0 AND purity <= 1)', name=op.f('ck_sequencing_result_purity_range')),
    sa.CheckConstraint('read_count IS NULL OR read_count >= 0', name=op.f('ck_sequencing_result_read_count_not_negative')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_sequencing_result_created_by_id_user_account'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['plan_specimen_id'], ['plan_specimen.id'], name=op.f('fk_sequencing_result_plan_specimen_id_plan_specimen'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['sequencing_run.id'], name=op.f('fk_sequencing_result_run_id_sequencing_run'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_sequencing_result_updated_by_id_user_account'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequencing_result')),
    sa.UniqueConstraint('plan_specimen_id', 'run_id', name=op.f('uq_sequencing_result_plan_specimen_id_run_id'))
    )
    with op.batch_alter_table('sequencing_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sequencing_result_plan_specimen_id'), ['plan_specimen_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sequencing_result_run_id'), ['run_id'], unique=False)

    op.create_table('sequencing_file',
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('result_id', sa.Integer(), nullable=False),
    sa.Column('uri', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('file_kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('checksum_kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('checksum', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("checksum_kind IN ('md5', 'sha256')", name=op.f('ck_sequencing_file_checksum_kind')),
    sa.CheckConstraint('checksum IS NULL OR length(trim(checksum)) > 0', name=op.f('ck_sequencing_file_checksum_not_blank')),
    sa.CheckConstraint('size_bytes IS NULL OR size_bytes >= 0', name=op.f('ck_sequencing_file_size_not_negative')),
    sa.CheckConstraint('uri IS NULL OR length(trim(uri)) > 0', name=op.f('ck_sequencing_file_uri_not_blank')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_sequencing_file_created_by_id_user_account'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['result_id'], ['sequencing_result.id'], name=op.f('fk_sequencing_file_result_id_sequencing_result'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_sequencing_file_updated_by_id_user_account'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequencing_file')),
    sa.UniqueConstraint('result_id', 'uri', name=op.f('uq_sequencing_file_result_id_uri'))
    )
    with op.batch_alter_table('sequencing_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sequencing_file_result_id'), ['result_id'], unique=False)

    plan_columns = [
        sa.Column("version", sa.Integer(), _check("version_positive", "version >= 1"),
                  nullable=False, server_default="1"),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_reason", sqlmodel.sql.sqltypes.AutoString(length=500),
                  _not_blank("closed_reason"), nullable=True),
        sa.Column("flow_cell", sqlmodel.sql.sqltypes.AutoString(length=40),
                  _not_blank("flow_cell"), nullable=True),
    ]
    for column in plan_columns:
        op.add_column("analysis_plan", column)
    op.add_column("analysis_plan", sa.Column("supersedes_id", sa.Integer(), nullable=True))
    checks = [("status", _STATUS_BEFORE, _STATUS_AFTER), ("approved_has_approver", _APPROVER_BEFORE, _APPROVER_AFTER)]
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_plan_sqlite(checks, add_fk=True)
    else:
        for name, old, new in checks:
            _revision("0011_whole_day_workflows.py").replace_check("analysis_plan", name, old, new)
        op.create_foreign_key(op.f("fk_analysis_plan_supersedes_id_analysis_plan"), "analysis_plan",
                              "analysis_plan", ["supersedes_id"], ["id"], ondelete="RESTRICT")
    op.create_index("uq_analysis_plan_supersedes_id", "analysis_plan", ["supersedes_id"], unique=True)

    specimen_columns = [
        sa.Column("assay", sqlmodel.sql.sqltypes.AutoString(length=12), _check(
            "assay", "assay IS NULL OR assay IN ('wgs', 'wes', 'panel', 'rna_seq')"), nullable=True),
        sa.Column("target_depth", sa.Float(), _check(
            "target_depth_positive", "target_depth IS NULL OR target_depth > 0"), nullable=True),
        sa.Column("library", sqlmodel.sql.sqltypes.AutoString(length=80), _not_blank("library"),
                  nullable=True),
        sa.Column("quantity_reserved", sa.Float(), _check(
            "reserved_not_negative", "quantity_reserved IS NULL OR quantity_reserved >= 0"),
            nullable=True),
    ]
    for column in specimen_columns:
        op.add_column("plan_specimen", column)

    audit = _revision("0010_database_audit.py").audit_table
    for table in ("analysis_plan", "plan_specimen", *_NEW_TABLES):
        audit(table)

def downgrade() -> None:
    bind = op.get_bind()
    closed = bind.exec_driver_sql(
        "SELECT count(*) FROM analysis_plan WHERE status IN ('superseded', 'cancelled') OR version > 1"
    ).scalar_one()
    rows = sum(bind.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one() for t in _NEW_TABLES)
    if closed or rows:
        raise RuntimeError(
            f"{closed} plan(s) are superseded, cancelled or amended versions and {rows} sequencing or result row(s) "
            "exist, which the older schema cannot hold; downgrading would lose them, so it is refused"
        )
    for table in reversed(_NEW_TABLES):
        op.drop_table(table)
    for column in ("quantity_reserved", "library", "target_depth", "assay"):
        with op.batch_alter_table("plan_specimen", schema=None, recreate="never") as batch_op:
            batch_op.drop_column(column)
    op.drop_index("uq_analysis_plan_supersedes_id", "analysis_plan")
    checks = [("status", _STATUS_AFTER, _STATUS_BEFORE), ("approved_has_approver", _APPROVER_AFTER, _APPROVER_BEFORE)]
    if bind.dialect.name == "sqlite":
        _rebuild_plan_sqlite(checks, add_fk=False)
    else:
        op.drop_constraint("fk_analysis_plan_supersedes_id_analysis_plan", "analysis_plan", type_="foreignkey")
        for name, old, new in checks:
            _revision("0011_whole_day_workflows.py").replace_check("analysis_plan", name, old, new)
    with op.batch_alter_table("analysis_plan", schema=None, recreate="never") as batch_op:
        for column in ("flow_cell", "closed_reason", "closed_at", "supersedes_id", "version"):
            batch_op.drop_column(column)
    for table in ("analysis_plan", "plan_specimen"):
        _revision("0010_database_audit.py").audit_table(table)
