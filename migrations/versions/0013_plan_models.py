"""plan_models: the ``model`` role of a plan's sample; a plan's declaration that its primary is unsampled, with why

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 10:00:00.000000

- ``plan_specimen.role``: ``model`` (material grown in a PDX, organoid or cell line, or made from it) joins the role
  CHECK. On PostgreSQL the CHECK is replaced; on SQLite, where a CHECK cannot be altered, ``plan_specimen`` is
  rebuilt from its own stored definition with only that CHECK changed (foreign keys are off while migrations run;
  the rows, indexes and triggers are kept, and ``PRAGMA foreign_key_check`` must find nothing afterwards). A model
  sample is paired with its source by what its rows already say (the model's source specimen and region), so no
  pairing column is added.
- ``analysis_plan.primary_unsampled_reason`` (at most 500 characters, NULL when nothing is declared, never blank):
  why a migration-history plan holds no sample of the primary tumour. Before this revision the declaration was kept
  as a ``Primary unsampled: <reason>`` line of the description: the upgrade moves such lines into the column, and
  the downgrade moves the column back into the description.

The new column changes ``analysis_plan``'s columns, so its PostgreSQL audit triggers are installed again for them
(revision 0010's frozen ``audit_table``). Downgrade refuses while a plan holds a sample with the role ``model``.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES_BEFORE = "role IN ('tumour', 'germline_normal', 'normal_tissue')"
_ROLES_AFTER = "role IN ('tumour', 'germline_normal', 'normal_tissue', 'model')"
#: The description line that held the declaration before this revision (``biobank.services.planning`` at 0012).
_PREFIX = "Primary unsampled: "
_REASON_LENGTH = 500
_DESCRIPTION_LENGTH = 1000


def _revision(filename: str) -> ModuleType:
    """An earlier revision's module, for the helpers frozen with it: 0010's ``audit_table`` (reinstalls a table's
    audit triggers for its columns) and 0011's ``replace_check`` (a CHECK replaced, SQLite by a table rebuild)."""
    spec = importlib.util.spec_from_file_location(f"revision_{filename[:4]}", Path(__file__).with_name(filename))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _set_role_check(old: str, new: str) -> None:
    _revision("0011_whole_day_workflows.py").replace_check("plan_specimen", "role", old, new)


def split_declaration(description: str | None) -> tuple[str | None, str | None]:
    """(the description without its ``Primary unsampled:`` lines, the declared reason or None), as 0012 read it:
    the last such line with a reason wins."""
    lines = (description or "").splitlines()
    reason = None
    for line in reversed(lines):
        if line.startswith(_PREFIX) and line.removeprefix(_PREFIX).strip():
            reason = " ".join(line.removeprefix(_PREFIX).split())[:_REASON_LENGTH]
            break
    kept = "\n".join(line for line in lines if not line.startswith(_PREFIX)).strip()
    return kept or None, reason


def _move_into_column() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, description FROM analysis_plan WHERE description LIKE :like"),
        {"like": f"%{_PREFIX}%"},
    ).all()
    for plan_id, description in rows:
        kept, reason = split_declaration(description)
        if kept != description or reason is not None:
            bind.execute(
                sa.text("UPDATE analysis_plan SET description = :d, primary_unsampled_reason = :r WHERE id = :i"),
                {"d": kept, "r": reason, "i": plan_id},
            )


def _move_into_description() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, code, description, primary_unsampled_reason FROM analysis_plan "
                "WHERE primary_unsampled_reason IS NOT NULL")
    ).all()
    updates = []
    for plan_id, code, description, reason in rows:
        joined = "\n".join(x for x in ((description or "").strip(), _PREFIX + " ".join(reason.split())) if x)
        if len(joined) > _DESCRIPTION_LENGTH:
            raise RuntimeError(
                f"plan {code}: its description with the primary-unsampled reason exceeds {_DESCRIPTION_LENGTH} "
                "characters, which the older schema keeps in the description; shorten it first"
            )
        updates.append({"d": joined, "i": plan_id})
    for values in updates:
        bind.execute(sa.text("UPDATE analysis_plan SET description = :d WHERE id = :i"), values)


def upgrade() -> None:
    op.add_column(
        "analysis_plan",
        sa.Column(
            "primary_unsampled_reason",
            sqlmodel.sql.sqltypes.AutoString(length=_REASON_LENGTH),
            sa.CheckConstraint(
                "primary_unsampled_reason IS NULL OR length(trim(primary_unsampled_reason)) > 0",
                name="primary_unsampled_reason_not_blank",
            ),
            nullable=True,
        ),
    )
    _revision("0010_database_audit.py").audit_table("analysis_plan")
    _move_into_column()
    _set_role_check(_ROLES_BEFORE, _ROLES_AFTER)


def downgrade() -> None:
    models = op.get_bind().exec_driver_sql("SELECT count(*) FROM plan_specimen WHERE role = 'model'").scalar_one()
    if models:
        raise RuntimeError(
            f"{models} plan sample row(s), included or excluded, have the role model, which the older schema does "
            "not know; downgrading would have to rewrite plans' contents, so it is refused"
        )
    _set_role_check(_ROLES_AFTER, _ROLES_BEFORE)
    _move_into_description()
    with op.batch_alter_table("analysis_plan", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("primary_unsampled_reason")
    _revision("0010_database_audit.py").audit_table("analysis_plan")
