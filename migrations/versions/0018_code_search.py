"""code_search: a normalised code index and trigram suggestions for specimen search (issue 21, item 4)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 17:15:00.000000

- ``upper(code)`` expression indexes on every table whose code is looked up in any letter case
  (``services.lookup.by_code`` / ``stored_code``): specimen, donor, autopsy (``case_code``), lesion, container,
  distribution order, derived model, model passage (``label``), analysis plan and analysis result.
- ``ix_specimen_code_bare``: the specimen code typed without its hyphens (upper case, without ``-``, ``_``, ``.``).
- Suggestions (``queries.search.similar_codes``) through a trigram index of that bare code:
  on PostgreSQL ``pg_trgm`` (``CREATE EXTENSION IF NOT EXISTS``: a trusted extension, so the database's owner, who
  runs migrations, may create it; in schema ``extensions``, so ``biobank db roles`` run by the owner does not meet
  functions it cannot own) and the GIN index ``ix_specimen_code_trgm``; on SQLite the FTS5 table
  ``specimen_code_fts`` (trigram tokenizer, rowid = specimen id, the bare code in column ``bare``), filled from the
  specimens present and kept in step by three triggers (insert, update of the code, delete).

Index-only on PostgreSQL: no table is rebuilt. Downgrade removes all of it (the extension only when nothing else
uses it).
"""

from collections.abc import Sequence

from alembic import op

# Frozen: this revision imports nothing from ``biobank`` (tests/migrations/test_frozen.py).

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UPPER = (
    ("ix_specimen_code_upper", "specimen", "code"),
    ("ix_donor_code_upper", "donor", "code"),
    ("ix_autopsy_case_code_upper", "autopsy", "case_code"),
    ("ix_lesion_code_upper", "lesion", "code"),
    ("ix_container_code_upper", "container", "code"),
    ("ix_distribution_order_code_upper", "distribution_order", "code"),
    ("ix_derived_model_code_upper", "derived_model", "code"),
    ("ix_model_passage_label_upper", "model_passage", "label"),
    ("ix_analysis_plan_code_upper", "analysis_plan", "code"),
    ("ix_analysis_result_code_upper", "analysis_result", "code"),
)


def _bare(column: str) -> str:
    return f"replace(replace(replace(upper({column}), '-', ''), '_', ''), '.', '')"


FTS = "specimen_code_fts"
_TRIGGERS = {
    f"{FTS}_ins": f"CREATE TRIGGER {FTS}_ins AFTER INSERT ON specimen BEGIN "
                  f"INSERT INTO {FTS} (rowid, bare) VALUES (new.id, {_bare('new.code')}); END",
    f"{FTS}_upd": f"CREATE TRIGGER {FTS}_upd AFTER UPDATE OF code ON specimen BEGIN "
                  f"UPDATE {FTS} SET bare = {_bare('new.code')} WHERE rowid = old.id; END",
    f"{FTS}_del": f"CREATE TRIGGER {FTS}_del AFTER DELETE ON specimen BEGIN "
                  f"DELETE FROM {FTS} WHERE rowid = old.id; END",
}


def upgrade() -> None:
    for name, table, column in _UPPER:
        op.execute(f"CREATE INDEX {name} ON {table} (upper({column}))")
    op.execute(f"CREATE INDEX ix_specimen_code_bare ON specimen ({_bare('code')})")
    if op.get_bind().dialect.name == "postgresql":
        # in a schema of its own: its functions are then not objects of the application's schema, which
        # ``biobank db roles`` gives to the owner (a trusted extension's functions belong to the bootstrap superuser)
        op.execute("CREATE SCHEMA IF NOT EXISTS extensions")
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA extensions")
        # the operator class wherever the extension is (a database may have had it before, in another schema)
        op.execute(
            "DO $$ DECLARE home text; BEGIN "
            "SELECT n.nspname INTO home FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'; "
            f"EXECUTE format('CREATE INDEX ix_specimen_code_trgm ON specimen USING gin (%s %I.gin_trgm_ops)', "
            f"$x${_bare('code')}$x$, home); END $$"
        )
    else:
        op.execute(f"CREATE VIRTUAL TABLE {FTS} USING fts5(bare, tokenize = 'trigram')")
        op.execute(f"INSERT INTO {FTS} (rowid, bare) SELECT id, {_bare('code')} FROM specimen")
        for statement in _TRIGGERS.values():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_specimen_code_trgm")
        # the extension goes too unless something else (another index, another schema's use) still needs it
        op.execute("DO $$ BEGIN DROP EXTENSION IF EXISTS pg_trgm; "
                   "EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$")
        op.execute("DO $$ BEGIN DROP SCHEMA IF EXISTS extensions; "
                   "EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$")
    else:
        for name in _TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    op.execute("DROP INDEX IF EXISTS ix_specimen_code_bare")
    for name, _table, _column in reversed(_UPPER):
        op.execute(f"DROP INDEX IF EXISTS {name}")
