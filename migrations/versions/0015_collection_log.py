"""collection_log: what a lab's own collection log carries that had to be invented before

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 14:00:00.000000

- ``lesion.kind`` takes ``unknown`` (a log that does not say; flagged by the checklist and the planner). On SQLite,
  where a CHECK cannot be altered, ``lesion`` is rebuilt by 0011's frozen ``replace_check`` (with
  ``legacy_alter_table`` on, so other tables' triggers that name ``lesion`` are left as they are).
- ``autopsy.start_estimated`` and ``autopsy.end_estimated``: the times were estimated from the first and last sample.
- ``sampling_site.excised_estimated``: the excision time is the site's earliest stabilisation, not a written time;
  ``sampling_site.site_description``: finer detail than the anatomical site (rib 6, frontal lobe, segment 7).
- ``specimen.collected_by``: who took the specimen at the table, as the lab writes it (not the user who entered it).

Every changed table gets its PostgreSQL audit triggers again (0010's frozen ``audit_table``). Downgrade refuses while
a lesion is of kind ``unknown``.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
import sqlmodel
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS_BEFORE = "kind IN ('primary', 'metastasis', 'local_recurrence', 'lymph_node')"
_KINDS_AFTER = "kind IN ('primary', 'metastasis', 'local_recurrence', 'lymph_node', 'unknown')"
_COLUMNS = (
    ("autopsy", sa.Column("start_estimated", sa.Boolean(), nullable=False, server_default=sa.false())),
    ("autopsy", sa.Column("end_estimated", sa.Boolean(), nullable=False, server_default=sa.false())),
    ("sampling_site", sa.Column("excised_estimated", sa.Boolean(), nullable=False, server_default=sa.false())),
    ("sampling_site", sa.Column("site_description", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)),
    ("specimen", sa.Column("collected_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True)),
)


def _revision(filename: str) -> ModuleType:
    """An earlier revision's module, for the helpers frozen with it: 0010's ``audit_table`` and 0011's
    ``replace_check``."""
    spec = importlib.util.spec_from_file_location(f"revision_{filename[:4]}", Path(__file__).with_name(filename))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lesion_kinds(old: str, new: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("PRAGMA legacy_alter_table = ON")
    try:
        _revision("0011_whole_day_workflows.py").replace_check("lesion", "kind", old, new)
    finally:
        if sqlite:
            op.execute("PRAGMA legacy_alter_table = OFF")


def _reaudit() -> None:
    audit = _revision("0010_database_audit.py").audit_table
    for table in ("lesion", "autopsy", "sampling_site", "specimen"):
        audit(table)


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.add_column(table, column)
    _lesion_kinds(_KINDS_BEFORE, _KINDS_AFTER)
    _reaudit()


def downgrade() -> None:
    unknown = op.get_bind().exec_driver_sql("SELECT count(*) FROM lesion WHERE kind = 'unknown'").scalar_one()
    if unknown:
        raise RuntimeError(
            f"{unknown} lesion(s) are of kind unknown, which the older schema does not know; set their kind first"
        )
    _lesion_kinds(_KINDS_AFTER, _KINDS_BEFORE)
    for table, column in reversed(_COLUMNS):
        with op.batch_alter_table(table, schema=None, recreate="never") as batch_op:
            batch_op.drop_column(column.name)
    _reaudit()
