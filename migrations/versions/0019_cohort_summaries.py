"""cohort_summaries: maintained PMI and cohort counts (issue 21, item 1)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 17:15:00.000000

Four tables written only by database triggers, in the writing statement's own transaction, on SQLite and PostgreSQL
alike (so imports, bulk loads, corrections, disposals and any service keep them exact without code):

- ``specimen_pmi``: one row per specimen, what the cohort figures need of it: donor, sampling site, case (autopsy),
  anatomical site, whether post-mortem, lineage, format, unit, status, quantity remaining, and its PMI in hours
  (stabilised, else excised, minus death: the very expression the queries used, so the same figures) with the basis,
  its PMI band ('' when none: pre-mortem, no death time, negative) and its half-hour bin (primary post-mortem
  specimens with a PMI only: the histogram's population).
- ``cohort_summary``: specimens and quantity remaining per donor x anatomical site x post-mortem x lineage x format x
  unit x status x PMI band.
- ``site_summary``: specimens per donor x anatomical site x sampling site x PMI band (distinct sampling sites per
  donor and anatomical site; keyed by donor first, so a page of donors is an index range).
- ``pmi_bin_summary``: primary post-mortem specimens per donor x half-hour PMI bin (the histogram).

- ``cohort_generation``: per donor, a number that grows with every change of what the cohort figures read of that
  donor (its specimens' rows above, the donor, case, lesions, sampling sites, consent withdrawals, models): the
  dashboard keys its cached cohort figures by the sum, so a write invalidates them only when it changed them.

Triggers on ``specimen`` (insert, update of the columns read, delete), ``sampling_site`` (its donor, case, anatomical
site or kind) and ``autopsy`` (the time of death) refresh ``specimen_pmi``; triggers on ``specimen_pmi`` move its
row's contribution between the summaries' rows (a row that falls to zero stays, with zero). Not audited: derived
data, rewritten by the audited writes they follow.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The PMI bands of biobank.domain.timing.PMI_BANDS at this revision (label, low, high hours).
BANDS = (("0-4 h", 0.0, 4.0), ("4-6 h", 4.0, 6.0), ("6-8 h", 6.0, 8.0), ("8-12 h", 8.0, 12.0), ("12+ h", 12.0, None))

#: The columns of specimen_pmi computed from specimen (s), sampling_site (ss) and autopsy (a), in this order.
PMI_COLUMNS = (
    "donor_id", "sampling_site_id", "autopsy_id", "site_code", "postmortem", "lineage", "storage_format", "unit",
    "status", "quantity_remaining", "hours", "basis", "band", "pmi_bin",
)
SUMMARY_KEYS = {
    "cohort_summary": ("donor_id", "site_code", "postmortem", "lineage", "storage_format", "unit", "status", "band"),
    "site_summary": ("donor_id", "site_code", "sampling_site_id", "postmortem", "band"),
    "pmi_bin_summary": ("donor_id", "pmi_bin"),
}
#: Tables (and the column naming their donor) whose changes move the cohort's generation.
GENERATION_SOURCES = (("donor", "id"), ("autopsy", "donor_id"), ("lesion", "donor_id"), ("sampling_site", "donor_id"),
                      ("consent_withdrawal", "donor_id"), ("derived_model", "donor_id"))
SPECIMEN_COLUMNS_READ = (
    "donor_id", "sampling_site_id", "lineage", "storage_format", "unit", "status", "quantity_remaining",
    "collected_at", "stabilised_at",
)


def _hours(dialect: str) -> str:
    """Hours from death to stabilisation, else excision: biobank.queries.core.pmi_hours_expr, compiled."""
    end = "coalesce(s.stabilised_at, s.collected_at)"
    if dialect == "sqlite":
        return f"((julianday({end}) - julianday(a.death_at)) * 24.0)"
    return f"(date_part('epoch', {end} - a.death_at) / 3600.0)"


def _computed(dialect: str, where: str) -> str:
    """specimen_id and PMI_COLUMNS for the specimens ``where`` keeps (a SELECT)."""
    postmortem = "(ss.kind <> 'premortem_blood')"
    bands = " ".join(
        f"WHEN x.hours >= {low!r}" + (f" AND x.hours < {high!r}" if high is not None else "") + f" THEN '{label}'"
        for label, low, high in BANDS
    )
    true = "true" if dialect == "postgresql" else "1"
    return f"""
SELECT x.specimen_id, x.donor_id, x.sampling_site_id, x.autopsy_id, x.site_code, x.postmortem, x.lineage,
       x.storage_format, x.unit, x.status, x.quantity_remaining, x.hours,
       CASE WHEN x.hours IS NULL THEN NULL WHEN x.stabilised THEN 'stabilised' ELSE 'excised' END AS basis,
       CASE WHEN x.postmortem AND x.hours IS NOT NULL THEN (CASE {bands} ELSE '' END) ELSE '' END AS band,
       CASE WHEN x.postmortem AND x.lineage = 'primary' AND x.hours IS NOT NULL
            THEN CAST(floor(x.hours / 0.5) AS INTEGER) END AS pmi_bin
FROM (
    SELECT s.id AS specimen_id, s.donor_id, s.sampling_site_id, ss.autopsy_id, ss.site_code,
           {postmortem} AS postmortem, s.lineage, s.storage_format, s.unit, s.status, s.quantity_remaining,
           {_hours(dialect)} AS hours, (s.stabilised_at IS NOT NULL) AS stabilised
    FROM specimen s
    JOIN sampling_site ss ON ss.id = s.sampling_site_id
    LEFT JOIN autopsy a ON a.id = ss.autopsy_id
    WHERE {where} AND {true}
) x"""


def _refresh(dialect: str, where: str) -> str:
    """Rewrite the specimen_pmi rows of the specimens ``where`` keeps from the base tables."""
    assignments = ", ".join(f"{c} = c.{c}" for c in PMI_COLUMNS)
    return f"UPDATE specimen_pmi SET {assignments} FROM ({_computed(dialect, where)}) AS c " \
           f"WHERE specimen_pmi.specimen_id = c.specimen_id"


def _add(table: str, row: str, dialect: str) -> str:
    """Count ``row`` (NEW or OLD of specimen_pmi) in ``table``."""
    keys = SUMMARY_KEYS[table]
    extra, values, update = "", "1", f"specimens = {table}.specimens + 1"
    if table == "cohort_summary":
        extra, values = ", quantity_remaining", f"1, {row}.quantity_remaining"
        update += f", quantity_remaining = {table}.quantity_remaining + excluded.quantity_remaining"
    columns = ", ".join(keys)
    selected = ", ".join(f"{row}.{k}" for k in keys)
    where = f" WHERE {row}.pmi_bin IS NOT NULL" if table == "pmi_bin_summary" else " WHERE 1 = 1"
    return (f"INSERT INTO {table} ({columns}, specimens{extra}) SELECT {selected}, {values}{where} "
            f"ON CONFLICT ({columns}) DO UPDATE SET {update}")


def _bump(donor: str) -> str:
    """Advance the cohort generation of ``donor`` (an expression: NEW.donor_id, OLD.id...)."""
    return (f"INSERT INTO cohort_generation (donor_id, generation) SELECT {donor}, 1 WHERE 1 = 1 "
            "ON CONFLICT (donor_id) DO UPDATE SET generation = cohort_generation.generation + 1")


def _remove(table: str, row: str) -> str:
    """Stop counting ``row`` in ``table`` (the quantity is reset to 0 with the last specimen: no rounding residue)."""
    keys = SUMMARY_KEYS[table]
    update = "specimens = specimens - 1"
    if table == "cohort_summary":
        update += f", quantity_remaining = CASE WHEN specimens = 1 THEN 0 ELSE quantity_remaining - {row}.quantity_remaining END"
    where = " AND ".join(f"{k} = {row}.{k}" for k in keys)
    return f"UPDATE {table} SET {update} WHERE {where}"


def _changed(columns: Sequence[str]) -> str:
    return " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)


def _changed_sqlite(columns: Sequence[str]) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)


def _create_tables() -> None:
    text, flt, integer = sa.String(40), sa.Float(), sa.Integer()
    op.create_table(
        "specimen_pmi",
        sa.Column("specimen_id", integer, nullable=False),
        sa.Column("donor_id", integer, nullable=False),
        sa.Column("sampling_site_id", integer, nullable=False),
        sa.Column("autopsy_id", integer, nullable=True),
        sa.Column("site_code", text, nullable=False),
        sa.Column("postmortem", sa.Boolean(), nullable=False),
        sa.Column("lineage", sa.String(12), nullable=False),
        sa.Column("storage_format", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(10), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("quantity_remaining", flt, nullable=False),
        sa.Column("hours", flt, nullable=True),
        sa.Column("basis", sa.String(12), nullable=True),
        sa.Column("band", sa.String(12), nullable=False),
        sa.Column("pmi_bin", integer, nullable=True),
        sa.PrimaryKeyConstraint("specimen_id", name=op.f("pk_specimen_pmi")),
    )
    op.create_index("ix_specimen_pmi_case", "specimen_pmi", ["autopsy_id", "pmi_bin", "hours"])
    op.create_table(
        "cohort_summary",
        sa.Column("donor_id", integer, nullable=False),
        sa.Column("site_code", text, nullable=False),
        sa.Column("postmortem", sa.Boolean(), nullable=False),
        sa.Column("lineage", sa.String(12), nullable=False),
        sa.Column("storage_format", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(10), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("band", sa.String(12), nullable=False),
        sa.Column("specimens", integer, nullable=False),
        sa.Column("quantity_remaining", flt, nullable=False),
        sa.PrimaryKeyConstraint(*SUMMARY_KEYS["cohort_summary"], name=op.f("pk_cohort_summary")),
    )
    op.create_table(
        "site_summary",
        sa.Column("sampling_site_id", integer, nullable=False),
        sa.Column("donor_id", integer, nullable=False),
        sa.Column("site_code", text, nullable=False),
        sa.Column("postmortem", sa.Boolean(), nullable=False),
        sa.Column("band", sa.String(12), nullable=False),
        sa.Column("specimens", integer, nullable=False),
        sa.PrimaryKeyConstraint(*SUMMARY_KEYS["site_summary"], name=op.f("pk_site_summary")),
    )
    op.create_table(
        "pmi_bin_summary",
        sa.Column("donor_id", integer, nullable=False),
        sa.Column("pmi_bin", integer, nullable=False),
        sa.Column("specimens", integer, nullable=False),
        sa.PrimaryKeyConstraint(*SUMMARY_KEYS["pmi_bin_summary"], name=op.f("pk_pmi_bin_summary")),
    )


def _create_generation() -> None:
    op.create_table(
        "cohort_generation",
        sa.Column("donor_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("donor_id", name=op.f("pk_cohort_generation")),
    )


def _backfill(dialect: str) -> None:
    names = ", ".join(["specimen_id", *PMI_COLUMNS])
    op.execute(f"INSERT INTO specimen_pmi ({names}) {_computed(dialect, '1 = 1')}")
    for table, keys in SUMMARY_KEYS.items():
        columns = ", ".join(keys)
        extra = ", sum(quantity_remaining)" if table == "cohort_summary" else ""
        target = ", quantity_remaining" if table == "cohort_summary" else ""
        where = " WHERE pmi_bin IS NOT NULL" if table == "pmi_bin_summary" else ""
        op.execute(f"INSERT INTO {table} ({columns}, specimens{target}) "
                   f"SELECT {columns}, count(*){extra} FROM specimen_pmi{where} GROUP BY {columns}")


_PMI_INSERT = "INSERT INTO specimen_pmi ({names}) {computed}"
SQLITE_TRIGGERS = ("tg_specimen_pmi_ins", "tg_specimen_pmi_upd", "tg_specimen_pmi_del", "tg_sampling_site_pmi_upd",
                   "tg_autopsy_pmi_upd", "tg_summary_add", "tg_summary_remove", "tg_summary_move",
                   *(f"tg_{t}_generation_{v}" for t, _ in GENERATION_SOURCES for v in ("ins", "upd", "del")))


def _sqlite_triggers() -> list[str]:
    names = ", ".join(["specimen_id", *PMI_COLUMNS])
    read = ", ".join(SPECIMEN_COLUMNS_READ)
    add_new = ";\n".join([*(_add(t, "NEW", "sqlite") for t in SUMMARY_KEYS), _bump("NEW.donor_id")])
    remove_old = ";\n".join([*(_remove(t, "OLD") for t in SUMMARY_KEYS), _bump("OLD.donor_id")])
    generation = [
        f"CREATE TRIGGER tg_{table}_generation_{verb} AFTER {event} ON {table} BEGIN {_bump(f'{row}.{column}')}; END"
        for table, column in GENERATION_SOURCES
        for verb, event, row in (("ins", "INSERT", "NEW"), ("upd", "UPDATE", "NEW"), ("del", "DELETE", "OLD"))
    ]
    return [*generation,
        f"CREATE TRIGGER tg_specimen_pmi_ins AFTER INSERT ON specimen BEGIN "
        f"{_PMI_INSERT.format(names=names, computed=_computed('sqlite', 's.id = NEW.id'))}; END",
        f"CREATE TRIGGER tg_specimen_pmi_upd AFTER UPDATE OF {read} ON specimen WHEN {_changed_sqlite(SPECIMEN_COLUMNS_READ)} "
        f"BEGIN {_refresh('sqlite', 's.id = NEW.id')}; END",
        "CREATE TRIGGER tg_specimen_pmi_del AFTER DELETE ON specimen BEGIN "
        "DELETE FROM specimen_pmi WHERE specimen_id = OLD.id; END",
        "CREATE TRIGGER tg_sampling_site_pmi_upd AFTER UPDATE OF donor_id, autopsy_id, site_code, kind ON sampling_site "
        f"WHEN {_changed_sqlite(('donor_id', 'autopsy_id', 'site_code', 'kind'))} "
        f"BEGIN {_refresh('sqlite', 's.sampling_site_id = NEW.id')}; END",
        "CREATE TRIGGER tg_autopsy_pmi_upd AFTER UPDATE OF death_at ON autopsy WHEN OLD.death_at IS NOT NEW.death_at "
        f"BEGIN {_refresh('sqlite', 's.sampling_site_id IN (SELECT id FROM sampling_site WHERE autopsy_id = NEW.id)')}; END",
        f"CREATE TRIGGER tg_summary_add AFTER INSERT ON specimen_pmi BEGIN {add_new}; END",
        f"CREATE TRIGGER tg_summary_remove AFTER DELETE ON specimen_pmi BEGIN {remove_old}; END",
        f"CREATE TRIGGER tg_summary_move AFTER UPDATE ON specimen_pmi WHEN {_changed_sqlite(PMI_COLUMNS)} "
        f"BEGIN {remove_old};\n{add_new}; END",
    ]


PG_FUNCTIONS = ("biobank_specimen_pmi_of_specimen", "biobank_specimen_pmi_of_site", "biobank_specimen_pmi_of_autopsy",
                "biobank_summaries_of_specimen_pmi", *(f"biobank_cohort_generation_of_{t}" for t, _ in GENERATION_SOURCES))
PG_TRIGGERS = (
    ("tg_specimen_pmi_ins", "specimen"), ("tg_specimen_pmi_upd", "specimen"), ("tg_specimen_pmi_del", "specimen"),
    ("tg_sampling_site_pmi_upd", "sampling_site"), ("tg_autopsy_pmi_upd", "autopsy"),
    ("tg_summary_add", "specimen_pmi"), ("tg_summary_remove", "specimen_pmi"), ("tg_summary_move", "specimen_pmi"),
    *((f"tg_{t}_generation", t) for t, _ in GENERATION_SOURCES),
)


def _pg_statements() -> list[str]:
    names = ", ".join(["specimen_id", *PMI_COLUMNS])
    read = ", ".join(SPECIMEN_COLUMNS_READ)
    add_new = ";\n        ".join([*(_add(t, "NEW", "postgresql") for t in SUMMARY_KEYS), _bump("NEW.donor_id")])
    remove_old = ";\n        ".join([*(_remove(t, "OLD") for t in SUMMARY_KEYS), _bump("OLD.donor_id")])
    generation: list[str] = []
    for table, column in GENERATION_SOURCES:
        generation += [
            f"""CREATE OR REPLACE FUNCTION biobank_cohort_generation_of_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        {_bump(f'OLD.{column}')};
    ELSE
        {_bump(f'NEW.{column}')};
    END IF;
    RETURN NULL;
END $$""",
            f"CREATE TRIGGER tg_{table}_generation AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION biobank_cohort_generation_of_{table}()",
        ]
    return [*generation,
        f"""CREATE OR REPLACE FUNCTION biobank_specimen_pmi_of_specimen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_PMI_INSERT.format(names=names, computed=_computed('postgresql', 's.id = NEW.id'))};
    ELSIF TG_OP = 'UPDATE' THEN
        {_refresh('postgresql', 's.id = NEW.id')};
    ELSE
        DELETE FROM specimen_pmi WHERE specimen_id = OLD.id;
    END IF;
    RETURN NULL;
END $$""",
        f"""CREATE OR REPLACE FUNCTION biobank_specimen_pmi_of_site() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_refresh('postgresql', 's.sampling_site_id = NEW.id')};
    RETURN NULL;
END $$""",
        f"""CREATE OR REPLACE FUNCTION biobank_specimen_pmi_of_autopsy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_refresh('postgresql', 's.sampling_site_id IN (SELECT id FROM sampling_site WHERE autopsy_id = NEW.id)')};
    RETURN NULL;
END $$""",
        f"""CREATE OR REPLACE FUNCTION biobank_summaries_of_specimen_pmi() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {remove_old};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {add_new};
    END IF;
    RETURN NULL;
END $$""",
        "CREATE TRIGGER tg_specimen_pmi_ins AFTER INSERT ON specimen FOR EACH ROW "
        "EXECUTE FUNCTION biobank_specimen_pmi_of_specimen()",
        f"CREATE TRIGGER tg_specimen_pmi_upd AFTER UPDATE OF {read} ON specimen FOR EACH ROW "
        f"WHEN ({_changed(SPECIMEN_COLUMNS_READ)}) EXECUTE FUNCTION biobank_specimen_pmi_of_specimen()",
        "CREATE TRIGGER tg_specimen_pmi_del AFTER DELETE ON specimen FOR EACH ROW "
        "EXECUTE FUNCTION biobank_specimen_pmi_of_specimen()",
        "CREATE TRIGGER tg_sampling_site_pmi_upd AFTER UPDATE OF donor_id, autopsy_id, site_code, kind ON sampling_site "
        f"FOR EACH ROW WHEN ({_changed(('donor_id', 'autopsy_id', 'site_code', 'kind'))}) "
        "EXECUTE FUNCTION biobank_specimen_pmi_of_site()",
        "CREATE TRIGGER tg_autopsy_pmi_upd AFTER UPDATE OF death_at ON autopsy FOR EACH ROW "
        "WHEN (OLD.death_at IS DISTINCT FROM NEW.death_at) EXECUTE FUNCTION biobank_specimen_pmi_of_autopsy()",
        "CREATE TRIGGER tg_summary_add AFTER INSERT ON specimen_pmi FOR EACH ROW "
        "EXECUTE FUNCTION biobank_summaries_of_specimen_pmi()",
        "CREATE TRIGGER tg_summary_remove AFTER DELETE ON specimen_pmi FOR EACH ROW "
        "EXECUTE FUNCTION biobank_summaries_of_specimen_pmi()",
        f"CREATE TRIGGER tg_summary_move AFTER UPDATE ON specimen_pmi FOR EACH ROW WHEN ({_changed(PMI_COLUMNS)}) "
        "EXECUTE FUNCTION biobank_summaries_of_specimen_pmi()",
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _create_tables()
    _create_generation()
    _backfill(dialect)
    for statement in _sqlite_triggers() if dialect == "sqlite" else _pg_statements():
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name, table in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    for table in ("cohort_generation", "pmi_bin_summary", "site_summary", "cohort_summary"):
        op.drop_table(table)
    op.drop_index("ix_specimen_pmi_case", table_name="specimen_pmi")
    op.drop_table("specimen_pmi")
