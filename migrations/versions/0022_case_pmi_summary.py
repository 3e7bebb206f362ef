"""case_pmi_summary: the per-case PMI figures kept by triggers (issue 21, item 1)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 23:30:00.000000

The cohort page's table of cases (specimens, minimum, mean and maximum PMI, share within the target, count past the
limit) aggregated every primary post-mortem specimen's stored PMI on each first view (0.44 s on SQLite at a million
specimens). ``case_pmi_summary`` keeps, per case x half-hour PMI bin (x donor), the specimens of ``specimen_pmi`` in
that bin (those with a ``pmi_bin``: the histogram's population), the sum of their hours and their minimum and maximum.
The page sums a few rows per case; the target and the limit are settings, so only the one bin of a case that holds
the target (or the limit) strictly between its minimum and maximum is counted exactly from ``specimen_pmi`` (through
``ix_specimen_pmi_case``); a PMI band is a range of bins (the bands' edges are whole half hours).

Kept like 0019's summaries, by triggers on ``specimen_pmi`` in the writing transaction: a new row is added to its bin
(on PostgreSQL once per statement over the transition table, as 0020 does for the other summaries); a row that leaves
its bin (deleted, or its case, bin, hours or donor changed) has the bin it left, and the bin it entered, recomputed
from ``specimen_pmi`` (exact minimum and maximum; a bin left empty stays with zero specimens, as in the other
summaries: the application's login never deletes from them). Not audited: derived data.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ("autopsy_id", "pmi_bin", "donor_id")
#: What a change of these columns of a specimen_pmi row moves between bins.
READ = ("autopsy_id", "pmi_bin", "donor_id", "hours")
SQLITE_TRIGGERS = ("tg_case_pmi_add", "tg_case_pmi_remove", "tg_case_pmi_move")
PG_TRIGGERS = SQLITE_TRIGGERS
PG_FUNCTIONS = ("biobank_case_pmi_of_new_specimen_pmi", "biobank_case_pmi_of_specimen_pmi")


def _recompute(row: str) -> str:
    """Rewrite the bin of ``row`` (OLD or NEW of specimen_pmi) from specimen_pmi itself (an upsert; nothing when the
    row has no bin). The outer WHERE also settles SQLite's INSERT ... SELECT ... ON CONFLICT parsing."""
    matches = " AND ".join(f"p.{k} = {row}.{k}" for k in KEY)
    return (
        "INSERT INTO case_pmi_summary (autopsy_id, pmi_bin, donor_id, specimens, hours_sum, hours_min, hours_max) "
        "SELECT * FROM (SELECT "
        f"{row}.autopsy_id AS autopsy_id, {row}.pmi_bin AS pmi_bin, {row}.donor_id AS donor_id, count(p.hours) AS n, "
        "coalesce(sum(p.hours), 0) AS total, min(p.hours) AS low, max(p.hours) AS high "
        f"FROM specimen_pmi p WHERE {matches}) AS bin WHERE bin.pmi_bin IS NOT NULL AND bin.autopsy_id IS NOT NULL "
        "ON CONFLICT (autopsy_id, pmi_bin, donor_id) DO UPDATE SET specimens = excluded.specimens, "
        "hours_sum = excluded.hours_sum, hours_min = excluded.hours_min, hours_max = excluded.hours_max"
    )


def _sqlite_add() -> str:
    """Count NEW (a row with a bin) into its bin."""
    return (
        "INSERT INTO case_pmi_summary (autopsy_id, pmi_bin, donor_id, specimens, hours_sum, hours_min, hours_max) "
        "SELECT NEW.autopsy_id, NEW.pmi_bin, NEW.donor_id, 1, NEW.hours, NEW.hours, NEW.hours WHERE 1 = 1 "
        "ON CONFLICT (autopsy_id, pmi_bin, donor_id) DO UPDATE SET specimens = case_pmi_summary.specimens + 1, "
        "hours_sum = case_pmi_summary.hours_sum + excluded.hours_sum, "
        "hours_min = CASE WHEN case_pmi_summary.hours_min IS NULL OR excluded.hours_min < case_pmi_summary.hours_min "
        "THEN excluded.hours_min ELSE case_pmi_summary.hours_min END, "
        "hours_max = CASE WHEN case_pmi_summary.hours_max IS NULL OR excluded.hours_max > case_pmi_summary.hours_max "
        "THEN excluded.hours_max ELSE case_pmi_summary.hours_max END"
    )


def _pg_add_grouped() -> str:
    """Count the statement's new specimen_pmi rows (transition table ``added``) into their bins: one upsert per bin."""
    return (
        "INSERT INTO case_pmi_summary (autopsy_id, pmi_bin, donor_id, specimens, hours_sum, hours_min, hours_max) "
        "SELECT autopsy_id, pmi_bin, donor_id, count(*), sum(hours), min(hours), max(hours) FROM added "
        "WHERE pmi_bin IS NOT NULL AND autopsy_id IS NOT NULL AND hours IS NOT NULL GROUP BY autopsy_id, pmi_bin, donor_id "
        "ON CONFLICT (autopsy_id, pmi_bin, donor_id) DO UPDATE SET specimens = case_pmi_summary.specimens + excluded.specimens, "
        "hours_sum = case_pmi_summary.hours_sum + excluded.hours_sum, "
        "hours_min = least(case_pmi_summary.hours_min, excluded.hours_min), "
        "hours_max = greatest(case_pmi_summary.hours_max, excluded.hours_max)"
    )


def _changed(sqlite: bool) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" if sqlite else f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in READ)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "case_pmi_summary",
        sa.Column("autopsy_id", sa.Integer(), nullable=False),
        sa.Column("pmi_bin", sa.Integer(), nullable=False),
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("specimens", sa.Integer(), nullable=False),
        sa.Column("hours_sum", sa.Float(), nullable=False),
        sa.Column("hours_min", sa.Float(), nullable=True),
        sa.Column("hours_max", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(*KEY, name=op.f("pk_case_pmi_summary")),
    )
    op.execute(
        "INSERT INTO case_pmi_summary (autopsy_id, pmi_bin, donor_id, specimens, hours_sum, hours_min, hours_max) "
        "SELECT autopsy_id, pmi_bin, donor_id, count(*), sum(hours), min(hours), max(hours) FROM specimen_pmi "
        "WHERE pmi_bin IS NOT NULL AND autopsy_id IS NOT NULL AND hours IS NOT NULL GROUP BY autopsy_id, pmi_bin, donor_id"
    )
    if dialect == "sqlite":
        op.execute("CREATE TRIGGER tg_case_pmi_add AFTER INSERT ON specimen_pmi "
                   "WHEN NEW.pmi_bin IS NOT NULL AND NEW.autopsy_id IS NOT NULL AND NEW.hours IS NOT NULL "
                   f"BEGIN {_sqlite_add()}; END")
        op.execute(f"CREATE TRIGGER tg_case_pmi_remove AFTER DELETE ON specimen_pmi WHEN OLD.pmi_bin IS NOT NULL "
                   f"BEGIN {_recompute('OLD')}; END")
        op.execute(f"CREATE TRIGGER tg_case_pmi_move AFTER UPDATE ON specimen_pmi WHEN {_changed(sqlite=True)} "
                   f"BEGIN {_recompute('OLD')}; {_recompute('NEW')}; END")
        return
    op.execute(f"""CREATE OR REPLACE FUNCTION biobank_case_pmi_of_new_specimen_pmi() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_pg_add_grouped()};
    RETURN NULL;
END $$""")
    op.execute(f"""CREATE OR REPLACE FUNCTION biobank_case_pmi_of_specimen_pmi() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.pmi_bin IS NOT NULL THEN
        {_recompute('OLD')};
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.pmi_bin IS NOT NULL THEN
            {_recompute('NEW')};
        END IF;
    END IF;
    RETURN NULL;
END $$""")
    op.execute("CREATE TRIGGER tg_case_pmi_add AFTER INSERT ON specimen_pmi REFERENCING NEW TABLE AS added "
               "FOR EACH STATEMENT EXECUTE FUNCTION biobank_case_pmi_of_new_specimen_pmi()")
    op.execute("CREATE TRIGGER tg_case_pmi_remove AFTER DELETE ON specimen_pmi FOR EACH ROW WHEN (OLD.pmi_bin IS NOT NULL) "
               "EXECUTE FUNCTION biobank_case_pmi_of_specimen_pmi()")
    op.execute(f"CREATE TRIGGER tg_case_pmi_move AFTER UPDATE ON specimen_pmi FOR EACH ROW WHEN ({_changed(sqlite=False)}) "
               "EXECUTE FUNCTION biobank_case_pmi_of_specimen_pmi()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON specimen_pmi")
        for function in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("case_pmi_summary")
