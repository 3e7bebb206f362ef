"""whole_day_workflows: consent versions, the withdrawal's material, the death call, extraction and QC details

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 06:00:00.000000

Columns for the programme's working day (enrolment to the last QC result):

- ``consent``: ``form_version`` (the version of the form signed), ``taken_by`` (who took the consent), ``change``
  (initial, re_consent, scope_change or partial_withdrawal) and ``reason``; each re-consent or scope change is a new
  row, so the rows of a donor are the consent's history.
- ``consent_withdrawal``: ``material`` (destroy, keep_blocked or allow_distributed).
- ``autopsy``: ``death_place``, ``death_reported_by``, ``death_reported_at``, ``labels_printed_at`` and
  ``team_notified_at`` (the death call and its checklist).
- ``user_account``: the role ``coordinator`` (enrolment, consent, the death call) joins the role CHECK. On
  PostgreSQL the CHECK is replaced; on SQLite, where a CHECK cannot be altered, ``user_account`` is rebuilt from its
  own stored definition with only that CHECK changed (foreign keys are off while migrations run; the rows, indexes
  and the references to it are kept, and ``PRAGMA foreign_key_check`` must find nothing afterwards).
- ``specimen``: ``extraction_method``, ``extraction_kit``, ``elution_volume_ul``, ``a260_230`` and ``slide_ref``.

Every column is added with a plain ``ADD COLUMN`` (its CHECK, where it has one, on the column and named by the
naming convention: ``ck_<table>_<name>``), so no table is
rebuilt on SQLite and the triggers on these tables stay as they are.
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

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


_CHANGES = "'initial', 're_consent', 'scope_change', 'partial_withdrawal'"
_MATERIAL = "'destroy', 'keep_blocked', 'allow_distributed'"

_COLUMNS: tuple[tuple[str, sa.Column], ...] = (
    ("consent", sa.Column("form_version", _text(40), nullable=True)),
    ("consent", sa.Column("taken_by", _text(120), nullable=True)),
    (
        "consent",
        sa.Column(
            "change", _text(20), sa.CheckConstraint(f"change IN ({_CHANGES})", name="change"),
            server_default="initial", nullable=False,
        ),
    ),
    ("consent", sa.Column("reason", _text(500), nullable=True)),
    (
        "consent_withdrawal",
        sa.Column(
            "material", _text(24),
            sa.CheckConstraint(f"material IN ({_MATERIAL})", name="material"),
            server_default="keep_blocked", nullable=False,
        ),
    ),
    ("autopsy", sa.Column("death_place", _text(200), nullable=True)),
    ("autopsy", sa.Column("death_reported_by", _text(120), nullable=True)),
    ("autopsy", sa.Column("death_reported_at", sa.DateTime(timezone=True), nullable=True)),
    ("autopsy", sa.Column("labels_printed_at", sa.DateTime(timezone=True), nullable=True)),
    ("autopsy", sa.Column("team_notified_at", sa.DateTime(timezone=True), nullable=True)),
    ("specimen", sa.Column("extraction_method", _text(40), nullable=True)),
    ("specimen", sa.Column("extraction_kit", _text(120), nullable=True)),
    (
        "specimen",
        sa.Column(
            "elution_volume_ul", sa.Float(),
            sa.CheckConstraint(
                "elution_volume_ul IS NULL OR elution_volume_ul > 0", name="elution_volume_positive"
            ),
            nullable=True,
        ),
    ),
    (
        "specimen",
        sa.Column(
            "a260_230", sa.Float(),
            sa.CheckConstraint(
                "a260_230 IS NULL OR (a260_230 >= 0 AND a260_230 <= 5)", name="a260_230_range"
            ),
            nullable=True,
        ),
    ),
    ("specimen", sa.Column("slide_ref", _text(64), nullable=True)),
)


def _audit_revision() -> ModuleType:
    """Revision 0010, whose ``audit_table`` (frozen with it) reinstalls a table's audit triggers for its columns."""
    spec = importlib.util.spec_from_file_location("revision_0010", Path(__file__).with_name("0010_database_audit.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reaudit() -> None:
    """On PostgreSQL the audit triggers list each table's columns: install them again for the new set."""
    audit = _audit_revision()
    for table in dict.fromkeys(table for table, _column in _COLUMNS):
        audit.audit_table(table)


_ROLES_BEFORE = "role IN ('technician', 'pi', 'admin', 'viewer')"
_ROLES_AFTER = "role IN ('technician', 'coordinator', 'pi', 'admin', 'viewer')"


def replace_check(table: str, name: str, old: str, new: str) -> None:
    """Replace ``table``'s CHECK ``ck_<table>_<name>`` (expected to read ``old``) by one reading ``new``. On SQLite,
    where a CHECK cannot be altered, the table is rebuilt from its own stored definition with only that CHECK
    changed: rows, indexes and triggers kept, and ``PRAGMA foreign_key_check`` must find nothing afterwards. Later
    revisions load this one to call it (it is frozen with this revision)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
        op.create_check_constraint(name, table, new)
        return
    objects = bind.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL", (table,)
    ).all()
    table_sql = next(sql for kind, _name, sql in objects if kind == "table")
    check = f"CONSTRAINT ck_{table}_{name} CHECK ({old})"
    if check not in table_sql:
        raise RuntimeError(f"{table}'s {name} CHECK is not the expected one ({old}); migrate by hand")
    new_sql = re.sub(rf'^CREATE TABLE "?{table}"?', f"CREATE TABLE {table}_rebuilt",
                     table_sql.replace(check, f"CONSTRAINT ck_{table}_{name} CHECK ({new})"))
    op.execute(new_sql)
    op.execute(f"INSERT INTO {table}_rebuilt SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
    for kind, _name, sql in objects:
        if kind != "table":
            op.execute(sql)
    problems = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        raise RuntimeError(f"rebuilding {table} broke references: {problems[:5]}")


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.add_column(table, column)
    replace_check("user_account", "role", _ROLES_BEFORE, _ROLES_AFTER)
    _reaudit()


def downgrade() -> None:
    coordinators = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM user_account WHERE role = 'coordinator'"
    ).scalar_one()
    if coordinators:
        raise RuntimeError(
            f"{coordinators} account(s) have the role coordinator, which the older schema does not know; "
            "give them another role first (biobank users role NAME ROLE)"
        )
    replace_check("user_account", "role", _ROLES_AFTER, _ROLES_BEFORE)
    for table, column in reversed(_COLUMNS):
        with op.batch_alter_table(table, schema=None, recreate="never") as batch_op:
            batch_op.drop_column(column.name)
    _reaudit()
