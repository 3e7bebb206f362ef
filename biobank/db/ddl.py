"""Database rules that a CHECK cannot express, written for SQLite and PostgreSQL alike (used by migrations).

Each trigger raises with its rule name first (``tg_...``) so :mod:`biobank.db.integrity` can name it to the user.
"""

from __future__ import annotations

from alembic import op

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
