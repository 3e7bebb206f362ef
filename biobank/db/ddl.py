"""Database rules that a CHECK cannot express, written for SQLite and PostgreSQL alike (used by migrations).

Each trigger raises with its rule name first (``tg_...``) so :mod:`biobank.db.integrity` can name it to the user.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION biobank_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: % is append-only; % refused', TG_ARGV[0], TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_ARGV[0];
END $$;
"""


def _op() -> Any:
    """Alembic's ``op`` of the migration running now. Imported here, not at the top: the models read this module's
    constants (:mod:`biobank.models.audit`), and Alembic costs every command that loads the models 0.1-0.3 s."""
    from alembic import op

    return op


def _dialect() -> str:
    return _op().get_bind().dialect.name


def forbid_changes(table: str, *, update: bool = True, delete: bool = True) -> None:
    """Make ``table`` refuse UPDATE and/or DELETE (append-only history, never-deleted specimens)."""
    verbs = [verb for verb, on in (("update", update), ("delete", delete)) if on]
    if _dialect() == "postgresql":
        _op().execute(REFUSE_FUNCTION)
        for verb in verbs:
            name = f"tg_{table}_no_{verb}"
            _op().execute(
                f"CREATE TRIGGER {name} BEFORE {verb.upper()} ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION biobank_refuse_change('{name}')"
            )
        if delete:
            name = f"tg_{table}_no_truncate"
            _op().execute(
                f"CREATE TRIGGER {name} BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION biobank_refuse_change('{name}')"
            )
    else:
        for verb in verbs:
            name = f"tg_{table}_no_{verb}"
            _op().execute(
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
        _op().execute(
            f"DROP TRIGGER IF EXISTS {name} ON {table}" if postgres else f"DROP TRIGGER IF EXISTS {name}"
        )


def guard(name: str, table: str, events: str, condition_sql: str, message: str) -> None:
    """A row trigger refusing writes where ``condition_sql`` (in terms of NEW) holds.

    ``events`` is e.g. ``"INSERT OR UPDATE OF collected_at"``; ``condition_sql`` must be valid on both databases.
    """
    if _dialect() == "postgresql":
        _op().execute(
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
        _op().execute(
            f"CREATE TRIGGER {name} BEFORE {events} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_fn()"
        )
    else:
        for event in events.split(" OR "):
            suffix = "ins" if event.startswith("INSERT") else "upd"
            _op().execute(
                f"CREATE TRIGGER {name}_{suffix} BEFORE {event} ON {table} FOR EACH ROW WHEN {condition_sql} "
                f"BEGIN SELECT RAISE(ABORT, '{name}: {message}'); END"
            )


def drop_guard(name: str, table: str, events: str) -> None:
    if _dialect() == "postgresql":
        _op().execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        _op().execute(f"DROP FUNCTION IF EXISTS {name}_fn()")
    else:
        for event in events.split(" OR "):
            suffix = "ins" if event.startswith("INSERT") else "upd"
            _op().execute(f"DROP TRIGGER IF EXISTS {name}_{suffix}")


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


# --------------------------------------------------------------------------------------------- audit by the database
#
# On PostgreSQL the database writes the audit trail itself: statement triggers with transition tables on every audited
# table (one INSERT ... SELECT per statement, so a COPY of 100,000 rows costs one trigger call), taking the acting user
# and the reason from transaction-local settings the application sets (biobank.models.audit). A write by any path
# (the services, the importer's COPY, a direct UPDATE by the application's login) leaves its audit rows. SQLite keeps
# the application's hook: whoever can write the file owns it, so a trigger there would protect nothing more.

#: The transaction-local settings the triggers read (``set_config(name, value, true)``; empty means none).
ACTOR_SETTING = "biobank.user_id"
REASON_SETTING = "biobank.reason"

#: Tables whose changes the database does not audit: the audit log itself, Alembic's version row and the dashboard's
#: session rows (touched on every page view; signing in and out is audited on ``user_account``) and the REST API's
#: idempotency keys (a remembered response; the write it answers for is audited), and the cohort summaries (0019:
#: written only by triggers, derived from the audited writes they follow).
NOT_AUDITED = ("alembic_version", "api_idempotency_key", "audit_log", "case_pmi_summary", "cohort_generation",
               "cohort_summary", "pmi_bin_summary", "site_summary", "specimen_pmi", "user_session")
#: Columns never copied into the audit log; a change to one is noted as ``["<redacted>", "<redacted>"]``.
AUDIT_REDACTED = ("password_hash", "token_hash")
#: Columns whose change alone writes no update row: who and when are the audit row's own fields, and a token's use
#: (``api_token.last_used_at``, written at most once a minute) is not an event of the record.
AUDIT_BOOKKEEPING = ("created_at", "created_by_id", "updated_at", "updated_by_id", "last_used_at")

#: Audit rows inserted by a client (not by the audit triggers) get the database's clock, whatever they say, unless
#: the client is the table's owner (a migration, a restore), who could drop this trigger anyway.
AUDIT_STAMP_FUNCTION = """
CREATE OR REPLACE FUNCTION biobank_audit_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
        NEW.occurred_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
"""
AUDIT_STAMP_TRIGGER = (
    "CREATE TRIGGER tg_audit_log_stamp BEFORE INSERT ON audit_log FOR EACH ROW "
    "WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION biobank_audit_stamp()"
)

_AUDIT_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _audit_members(alias: str, columns: Sequence[tuple[str, str]], insert: bool) -> str:
    """Text of a JSON object's members (each with a leading comma) for every non-null column of ``alias``:
    ``[null, value]`` for an insert, ``[value, null]`` for a delete."""
    parts = []
    for name, _kind in columns:
        if name in AUDIT_REDACTED:
            continue
        ref = f'{alias}."{name}"'
        pair = f"'[null,' || to_json({ref})::text || ']'" if insert else f"'[' || to_json({ref})::text || ',null]'"
        parts.append(f"CASE WHEN {ref} IS NULL THEN '' ELSE ',\"{name}\":' || {pair} END")
    return "\n                || ".join(parts) or "''"


def _audit_differences(columns: Sequence[tuple[str, str]]) -> str:
    """Text of the members ``"column": [old, new]`` for every column that differs between ``o`` and ``n``."""
    parts = []
    for name, kind in columns:
        if name in AUDIT_BOOKKEEPING:
            continue
        old, new = f'o."{name}"', f'n."{name}"'
        same = (f"{old}::jsonb IS NOT DISTINCT FROM {new}::jsonb" if kind == "json"  # json has no equality
                else f"{old} IS NOT DISTINCT FROM {new}")
        if name in AUDIT_REDACTED:
            pair = "'[\"<redacted>\",\"<redacted>\"]'"
        else:
            pair = f"'[' || coalesce(to_json({old})::text, 'null') || ',' || coalesce(to_json({new})::text, 'null') || ']'"
        parts.append(f"CASE WHEN {same} THEN '' ELSE ',\"{name}\":' || {pair} END")
    return "\n                    || ".join(parts) or "''"


def audit_function_body(columns: Sequence[tuple[str, str]], keys: Sequence[str]) -> str:
    """The body of a table's audit trigger function, for ``columns`` (name, type name as in ``pg_type``) and its
    primary key ``keys``; shaped as the ORM hook writes (``{column: [old, new]}``, redactions, bookkeeping left out
    of updates). An update that changes a key is written as the old row's values and the new row's."""
    for name, _kind in columns:
        if not _AUDIT_NAME.fullmatch(name):  # written into SQL and JSON text as is
            raise ValueError(f"column {name!r} cannot be audited by a generated trigger")
    if not keys:
        raise ValueError("an audited table needs a primary key")

    def key(alias: str) -> str:
        return " || ',' || ".join(f'{alias}."{name}"::text' for name in keys)

    insert = "INSERT INTO audit_log (occurred_at, user_id, table_name, row_id, action, changes, reason)"
    joined = " AND ".join(f'o."{name}" = n."{name}"' for name in keys)
    return f"""
DECLARE
    actor integer := NULLIF(current_setting('{ACTOR_SETTING}', true), '')::integer;
    why text := NULLIF(current_setting('{REASON_SETTING}', true), '');
BEGIN
    IF TG_OP = 'INSERT' THEN
        {insert}
        SELECT clock_timestamp(), actor, TG_TABLE_NAME, {key("n")}, 'insert',
            CAST('{{' || substr({_audit_members("n", columns, True)}, 2) || '}}' AS json), why
        FROM new_rows n;
    ELSIF TG_OP = 'UPDATE' THEN
        {insert}
        SELECT clock_timestamp(), actor, TG_TABLE_NAME, d.row_id, 'update',
            CAST('{{' || substr(d.changes, 2) || '}}' AS json), why
        FROM (
            SELECT coalesce({key("n")}, {key("o")}) AS row_id,
                CASE WHEN n."{keys[0]}" IS NULL THEN {_audit_members("o", columns, False)}
                WHEN o."{keys[0]}" IS NULL THEN {_audit_members("n", columns, True)}
                ELSE {_audit_differences(columns)} END AS changes
            FROM old_rows o FULL JOIN new_rows n ON {joined}
        ) d
        WHERE d.changes <> '';
    ELSIF TG_OP = 'DELETE' THEN
        {insert}
        SELECT clock_timestamp(), actor, TG_TABLE_NAME, {key("o")}, 'delete',
            CAST('{{' || substr({_audit_members("o", columns, False)}, 2) || '}}' AS json), why
        FROM old_rows o;
    END IF;
    RETURN NULL;
END
"""


def audit_columns(table: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``table``'s columns (name, type name) and primary-key columns, read from the PostgreSQL catalog."""
    from sqlalchemy import text

    bind = _op().get_bind()
    columns = [
        (name, kind)
        for name, kind in bind.execute(
            text("SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                 "WHERE a.attrelid = CAST(:table AS regclass) AND a.attnum > 0 AND NOT a.attisdropped "
                 "ORDER BY a.attnum"),
            {"table": table},
        )
    ]
    keys = list(
        bind.execute(
            text("SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(num, pos) "
                 "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num "
                 "WHERE i.indrelid = CAST(:table AS regclass) AND i.indisprimary ORDER BY k.pos"),
            {"table": table},
        ).scalars()
    )
    return columns, keys


def audit_table(table: str) -> None:
    """(Re)install ``table``'s audit triggers on PostgreSQL from its current columns; nothing on SQLite.

    A migration that adds, drops or renames a column of an audited table, or adds a table, calls this again for it
    (``tests/db/test_audit_triggers.py`` fails otherwise).
    """
    if _dialect() != "postgresql":
        return
    columns, keys = audit_columns(table)
    schema = _op().get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    _op().execute(
        f"CREATE OR REPLACE FUNCTION biobank_audit_{table}() RETURNS trigger LANGUAGE plpgsql "
        f"SET search_path = \"{schema}\", pg_temp SET timezone = 'UTC' "
        f"AS $fn${audit_function_body(columns, keys)}$fn$"
    )
    for verb, suffix, transition in (("INSERT", "ins", "NEW TABLE AS new_rows"),
                                     ("UPDATE", "upd", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                                     ("DELETE", "del", "OLD TABLE AS old_rows")):
        name = f"tg_{table}_audit_{suffix}"
        _op().execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        _op().execute(f"CREATE TRIGGER {name} AFTER {verb} ON {table} REFERENCING {transition} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION biobank_audit_{table}()")


def drop_audit_table(table: str) -> None:
    if _dialect() != "postgresql":
        return
    for suffix in ("ins", "upd", "del"):
        _op().execute(f"DROP TRIGGER IF EXISTS tg_{table}_audit_{suffix} ON {table}")
    _op().execute(f"DROP FUNCTION IF EXISTS biobank_audit_{table}()")


def audit_stamp() -> None:
    """Client-inserted audit rows take the database's clock (no back-dated rows); PostgreSQL only."""
    if _dialect() != "postgresql":
        return
    _op().execute(AUDIT_STAMP_FUNCTION)
    _op().execute("DROP TRIGGER IF EXISTS tg_audit_log_stamp ON audit_log")
    _op().execute(AUDIT_STAMP_TRIGGER)


def analyze_function() -> None:
    """``biobank_analyze(tables)``: ANALYZE for a login that owns no table (the application's), limited to this
    schema's tables; runs as its owner. Executable only by roles granted it (``biobank db roles``)."""
    if _dialect() != "postgresql":
        return
    schema = _op().get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    _op().execute(
        f"""
        CREATE OR REPLACE FUNCTION biobank_analyze(tables text[]) RETURNS text[] LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = "{schema}", pg_temp AS $$
        DECLARE
            target text;
            done text[] := '{{}}';
        BEGIN
            FOR target IN
                SELECT c.relname FROM pg_class c
                WHERE c.relnamespace = '"{schema}"'::regnamespace AND c.relkind = 'r' AND c.relname = ANY(tables)
                ORDER BY c.relname
            LOOP
                EXECUTE format('ANALYZE %I.%I', '{schema}', target);
                done := done || target;
            END LOOP;
            RETURN done;
        END $$;
        """
    )
    _op().execute("REVOKE ALL ON FUNCTION biobank_analyze(text[]) FROM PUBLIC")
