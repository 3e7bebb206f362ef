"""summaries_per_statement: PostgreSQL counts a bulk insert into the cohort summaries once per statement (issue 21)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 20:45:00.000000

Migration 0019's triggers count every new specimen into its donor's summary rows one row at a time. On PostgreSQL an
update writes a new version of the row, and the versions written by a transaction still open cannot be pruned: a
``COPY`` of 100,000 specimens of one donor updated the same summary rows 100,000 times in one transaction, each
update walking past the versions before it (quadratic: an import of one donor's rows ran at a fraction of the raw
``COPY``'s rate, the synthetic loader slowed as it grew). Here, on PostgreSQL only, the two insert triggers run once
per statement over its transition table: the new specimens' ``specimen_pmi`` rows in one ``INSERT ... SELECT``, then
each summary row touched once per statement with the statement's counts (``GROUP BY`` its key), and each donor's
generation advanced once. Updates and deletes keep 0019's row triggers (one statement per row in every writer).
SQLite keeps 0019's triggers: it has no statement triggers, and it updates a row in place.
"""

from collections.abc import Sequence

from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The PMI bands of biobank.domain.timing.PMI_BANDS at this revision (label, low, high hours): as in 0019.
BANDS = (("0-4 h", 0.0, 4.0), ("4-6 h", 4.0, 6.0), ("6-8 h", 6.0, 8.0), ("8-12 h", 8.0, 12.0), ("12+ h", 12.0, None))
PMI_COLUMNS = (
    "donor_id", "sampling_site_id", "autopsy_id", "site_code", "postmortem", "lineage", "storage_format", "unit",
    "status", "quantity_remaining", "hours", "basis", "band", "pmi_bin",
)
SUMMARY_KEYS = {
    "cohort_summary": ("donor_id", "site_code", "postmortem", "lineage", "storage_format", "unit", "status", "band"),
    "site_summary": ("donor_id", "site_code", "sampling_site_id", "postmortem", "band"),
    "pmi_bin_summary": ("donor_id", "pmi_bin"),
}


def _computed_from_new() -> str:
    """specimen_id and PMI_COLUMNS of the statement's new specimens (transition table ``new_specimen``): 0019's
    expression over the transition table instead of ``specimen``."""
    bands = " ".join(
        f"WHEN x.hours >= {low!r}" + (f" AND x.hours < {high!r}" if high is not None else "") + f" THEN '{label}'"
        for label, low, high in BANDS
    )
    end = "coalesce(s.stabilised_at, s.collected_at)"
    return f"""
SELECT x.specimen_id, x.donor_id, x.sampling_site_id, x.autopsy_id, x.site_code, x.postmortem, x.lineage,
       x.storage_format, x.unit, x.status, x.quantity_remaining, x.hours,
       CASE WHEN x.hours IS NULL THEN NULL WHEN x.stabilised THEN 'stabilised' ELSE 'excised' END AS basis,
       CASE WHEN x.postmortem AND x.hours IS NOT NULL THEN (CASE {bands} ELSE '' END) ELSE '' END AS band,
       CASE WHEN x.postmortem AND x.lineage = 'primary' AND x.hours IS NOT NULL
            THEN CAST(floor(x.hours / 0.5) AS INTEGER) END AS pmi_bin
FROM (
    SELECT s.id AS specimen_id, s.donor_id, s.sampling_site_id, ss.autopsy_id, ss.site_code,
           (ss.kind <> 'premortem_blood') AS postmortem, s.lineage, s.storage_format, s.unit, s.status,
           s.quantity_remaining, (date_part('epoch', {end} - a.death_at) / 3600.0) AS hours,
           (s.stabilised_at IS NOT NULL) AS stabilised
    FROM new_specimen s
    JOIN sampling_site ss ON ss.id = s.sampling_site_id
    LEFT JOIN autopsy a ON a.id = ss.autopsy_id
) x"""


def _add_grouped(table: str) -> str:
    """Count the statement's new specimen_pmi rows (transition table ``added``) into ``table``: one upsert per key."""
    keys = SUMMARY_KEYS[table]
    columns = ", ".join(keys)
    extra, values, update = "", "count(*)", f"specimens = {table}.specimens + excluded.specimens"
    if table == "cohort_summary":
        extra, values = ", quantity_remaining", "count(*), sum(quantity_remaining)"
        update += f", quantity_remaining = {table}.quantity_remaining + excluded.quantity_remaining"
    where = " WHERE pmi_bin IS NOT NULL" if table == "pmi_bin_summary" else ""
    return (f"INSERT INTO {table} ({columns}, specimens{extra}) SELECT {columns}, {values} FROM added{where} "
            f"GROUP BY {columns} ON CONFLICT ({columns}) DO UPDATE SET {update}")


def _functions() -> list[str]:
    names = ", ".join(["specimen_id", *PMI_COLUMNS])
    add = ";\n    ".join(_add_grouped(t) for t in SUMMARY_KEYS)
    return [
        f"""CREATE OR REPLACE FUNCTION biobank_specimen_pmi_of_new_specimens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO specimen_pmi ({names}) {_computed_from_new()};
    RETURN NULL;
END $$""",
        f"""CREATE OR REPLACE FUNCTION biobank_summaries_of_new_specimen_pmi() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {add};
    INSERT INTO cohort_generation (donor_id, generation) SELECT DISTINCT donor_id, 1 FROM added
        ON CONFLICT (donor_id) DO UPDATE SET generation = cohort_generation.generation + 1;
    RETURN NULL;
END $$""",
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _functions():
        op.execute(statement)
    op.execute("DROP TRIGGER tg_specimen_pmi_ins ON specimen")
    op.execute("DROP TRIGGER tg_summary_add ON specimen_pmi")
    op.execute("CREATE TRIGGER tg_specimen_pmi_ins AFTER INSERT ON specimen REFERENCING NEW TABLE AS new_specimen "
               "FOR EACH STATEMENT EXECUTE FUNCTION biobank_specimen_pmi_of_new_specimens()")
    op.execute("CREATE TRIGGER tg_summary_add AFTER INSERT ON specimen_pmi REFERENCING NEW TABLE AS added "
               "FOR EACH STATEMENT EXECUTE FUNCTION biobank_summaries_of_new_specimen_pmi()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER tg_summary_add ON specimen_pmi")
    op.execute("DROP TRIGGER tg_specimen_pmi_ins ON specimen")
    # 0019's row triggers: their functions handle INSERT too and were never dropped
    op.execute("CREATE TRIGGER tg_specimen_pmi_ins AFTER INSERT ON specimen FOR EACH ROW "
               "EXECUTE FUNCTION biobank_specimen_pmi_of_specimen()")
    op.execute("CREATE TRIGGER tg_summary_add AFTER INSERT ON specimen_pmi FOR EACH ROW "
               "EXECUTE FUNCTION biobank_summaries_of_specimen_pmi()")
    op.execute("DROP FUNCTION IF EXISTS biobank_summaries_of_new_specimen_pmi()")
    op.execute("DROP FUNCTION IF EXISTS biobank_specimen_pmi_of_new_specimens()")
