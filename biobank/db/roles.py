"""PostgreSQL logins: an owner that owns every object and runs the migrations, and the application's login with only
the DML the application needs (``biobank db roles``; docs/deploy.md).

The application's login (the dashboard, the CLI, the API) cannot change the schema, its triggers or the functions
behind them, cannot rewrite or remove history (no UPDATE, DELETE or TRUNCATE on the audit log, the chain of custody,
consent withdrawals or the export log) and cannot create anything, temporary tables included (a temporary ``audit_log`` would shadow the
real one for its session). Every change it may make is audited by the database (migration 0010). SQLite has no
logins: whoever can write the file owns it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from biobank.config import Settings, get_settings
from biobank.domain.errors import PermissionDeniedError, ValidationError

#: The application only appends to these, never UPDATE, DELETE or TRUNCATE: a history that can be rewritten is no
#: history (the audit trail, the chain of custody, consent withdrawals: a deleted one gives consent back; the export
#: log: a deleted one hides a recipient to tell after a withdrawal).
APPEND_ONLY = frozenset({"audit_log", "consent_withdrawal", "custody_event", "export_donor", "export_record"})
#: Read and never written by the application: the schema version (the owner migrates) and the anatomical-site
#: vocabulary (shipped by the migrations).
READ_ONLY = frozenset({"alembic_version", "anatomical_site"})
#: The tables the application deletes rows from: a storage position freed by a disposal or a move, and the REST
#: API's idempotency keys once they expire.
DELETES_FROM = frozenset({"api_idempotency_key", "specimen_location"})
#: Every other table (and any table a later migration adds: the default privileges): SELECT, INSERT, UPDATE. The
#: cohort summaries (0019: specimen_pmi, cohort_summary, site_summary, pmi_bin_summary, cohort_generation; 0022:
#: case_pmi_summary) need exactly these: their triggers run as the writing login, upsert and never delete.
WRITABLE = ("SELECT", "INSERT", "UPDATE")

#: A role name this command accepts: a plain lower-case identifier, not a reserved one.
_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = {"public", "postgres", "current_user", "session_user", "current_role", "none"}


def privileges_for(table: str) -> tuple[str, ...]:
    """What the application's login may do on ``table``."""
    if table in READ_ONLY:
        return ("SELECT",)
    if table in APPEND_ONLY:
        return ("SELECT", "INSERT")
    if table in DELETES_FROM:
        return (*WRITABLE, "DELETE")
    return WRITABLE


def migration_url(settings: Settings | None = None) -> str:
    """The URL migrations (and ``biobank db roles``) connect with: ``BIOBANK_OWNER_DATABASE_URL`` when set, so the
    schema's owner changes the schema, else ``BIOBANK_DATABASE_URL`` (one login for everything, as on SQLite)."""
    settings = settings or get_settings()
    return settings.owner_database_url or settings.database_url


@dataclass
class RolesReport:
    """What :func:`setup_roles` found and did."""

    database: str
    schema: str
    owner: str
    app: str
    connected_as: str
    created: list[str] = field(default_factory=list)
    memberships_revoked: list[str] = field(default_factory=list)
    reassigned: list[str] = field(default_factory=list)
    #: table -> the application's privileges on it, read back from the database.
    tables: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_name(role: str, what: str) -> None:
    if not _ROLE.fullmatch(role) or role in _RESERVED or role.startswith("pg_"):
        raise ValidationError(
            f"{what} role {role!r}: use a plain lower-case name (letters, digits, _), not a reserved one",
            field=what, value=role,
        )


def setup_roles(engine: Engine, *, owner: str, app: str) -> RolesReport:
    """Make ``owner`` own the database, its schema and every object in it, and give ``app`` exactly the privileges
    of :func:`privileges_for`, plus default privileges so tables the owner creates later follow. Idempotent: run it
    again after every upgrade. Runs in one transaction as a superuser (which may also create missing roles, without
    a password: set one with ``ALTER ROLE ... PASSWORD``) or as ``owner`` (once everything is the owner's)."""
    _check_name(owner, "owner")
    _check_name(app, "app")
    if owner == app:
        raise ValidationError("the owner and the application must be different roles", field="app", value=app)
    if engine.dialect.name != "postgresql":
        raise ValidationError(
            "database roles need PostgreSQL: SQLite has no logins (whoever can write the file owns it)",
            field="database_url",
        )
    try:
        with engine.begin() as connection:
            return _setup(connection, owner=owner, app=app)
    except DBAPIError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        if "permission denied" in detail or "must be" in detail:
            raise PermissionDeniedError(
                f"database roles: {detail} (run 'biobank db roles' as a superuser: BIOBANK_OWNER_DATABASE_URL)",
                field="user",
            ) from exc
        raise


def _setup(connection: Connection, *, owner: str, app: str) -> RolesReport:
    quote = connection.dialect.identifier_preparer.quote
    me, superuser, createrole = connection.execute(text(
        "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")).one()
    database, schema = connection.execute(text("SELECT current_database(), current_schema()")).one()
    report = RolesReport(database=database, schema=schema, owner=owner, app=app, connected_as=me)
    if not superuser and me != owner:
        raise PermissionDeniedError(
            f"database roles are set up by a superuser or by the owner role {owner!r}, not by {me!r}", field="user")
    if me == app:
        raise PermissionDeniedError("the application role cannot set up its own privileges", field="user")

    for role in (owner, app):
        if connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first() is None:
            if not (superuser or createrole):
                raise PermissionDeniedError(
                    f"role {role!r} does not exist: create it (createuser --pwprompt {role}) or run this as a superuser",
                    field="user")
            connection.exec_driver_sql(f"CREATE ROLE {quote(role)} LOGIN")
            report.created.append(role)

    _restrict_app(connection, report)
    _reassign(connection, report, superuser=superuser)
    _grant(connection, report)
    _verify(connection, report)
    return report


def _restrict_app(connection: Connection, report: RolesReport) -> None:
    """The application's login may not be, or become, anyone more powerful."""
    quote = connection.dialect.identifier_preparer.quote
    app = report.app
    flags = connection.execute(text(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = :app"),
        {"app": app}).one()
    if flags.rolsuper:
        raise ValidationError(f"the application role {app!r} is a superuser: give the application an ordinary login",
                              field="app", value=app)
    if flags.rolcreaterole or flags.rolcreatedb or flags.rolreplication or flags.rolbypassrls:
        connection.exec_driver_sql(f"ALTER ROLE {quote(app)} NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS")
    groups = connection.execute(text(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = :app ORDER BY 1"), {"app": app}).scalars().all()
    for group in groups:  # the application needs no group: each could lend it the owner's or anyone's rights
        connection.exec_driver_sql(f"REVOKE {quote(group)} FROM {quote(app)}")
        report.memberships_revoked.append(group)


#: Give the owner every object of the current schema that someone else owns (the application's login owned them all
#: before roles were separated). The owner's name comes in the transaction-local setting biobank.roles_owner.
_REASSIGN = """
DO $$
DECLARE
    target text := current_setting('biobank.roles_owner');
    item record;
BEGIN
    FOR item IN
        SELECT format('ALTER %s %s OWNER TO %I',
                      CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                     WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                      c.oid::regclass, target) AS statement
        FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND pg_get_userbyid(c.relowner) <> target
          AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
        UNION ALL
        SELECT format('ALTER %s %s OWNER TO %I', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                      p.oid::regprocedure, target)
        FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace AND pg_get_userbyid(p.proowner) <> target
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
        UNION ALL
        SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, target)
        FROM pg_type t
        WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype IN ('e', 'd', 'r', 'c')
          AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
          AND pg_get_userbyid(t.typowner) <> target
    LOOP
        EXECUTE item.statement;
    END LOOP;
END $$;
"""


def _reassign(connection: Connection, report: RolesReport, *, superuser: bool) -> None:
    quote = connection.dialect.identifier_preparer.quote
    owner = report.owner
    database_owner = connection.execute(text(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")).scalar_one()
    if database_owner != owner:
        connection.exec_driver_sql(f"ALTER DATABASE {quote(report.database)} OWNER TO {quote(owner)}")
        report.reassigned.append(f"database {report.database}")
    schema_owner = connection.execute(text(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE oid = current_schema()::regnamespace")).scalar_one()
    if schema_owner not in (owner, "pg_database_owner"):  # PostgreSQL 15: public belongs to the database's owner
        connection.exec_driver_sql(f"ALTER SCHEMA {quote(report.schema)} OWNER TO {quote(owner)}")
        report.reassigned.append(f"schema {report.schema}")
    connection.execute(text("SELECT set_config('biobank.roles_owner', :owner, true)"), {"owner": owner})
    before = _not_owned(connection, owner)
    if before and not superuser:
        raise PermissionDeniedError(
            f"{len(before)} objects belong to other roles (e.g. {before[0]}): run 'biobank db roles' once as a "
            "superuser to give them to the owner", field="user")
    connection.execute(text(_REASSIGN))
    report.reassigned.extend(before)


def _not_owned(connection: Connection, owner: str) -> list[str]:
    return list(connection.execute(text(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relkind IN ('r', 'p', 'v', 'm') AND pg_get_userbyid(c.relowner) <> :owner "
        "UNION ALL SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace "
        "AND pg_get_userbyid(p.proowner) <> :owner "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
        "AND d.deptype = 'e') ORDER BY 1"), {"owner": owner}).scalars())


def _grant(connection: Connection, report: RolesReport) -> None:
    quote = connection.dialect.identifier_preparer.quote

    # no temporary objects but by grant: a temporary table would shadow the real one in its session
    connection.exec_driver_sql(f"REVOKE TEMPORARY ON DATABASE {quote(report.database)} FROM PUBLIC")
    connection.exec_driver_sql(f"REVOKE ALL ON DATABASE {quote(report.database)} FROM {quote(report.app)}")
    connection.exec_driver_sql(f"GRANT CONNECT ON DATABASE {quote(report.database)} TO {quote(report.app)}")
    connection.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {quote(report.schema)} FROM PUBLIC")
    connection.exec_driver_sql(f"REVOKE ALL ON SCHEMA {quote(report.schema)} FROM {quote(report.app)}")
    connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA {quote(report.schema)} TO {quote(report.app)}")
    connection.exec_driver_sql(f"REVOKE ALL ON ALL TABLES IN SCHEMA {quote(report.schema)} FROM PUBLIC")
    connection.exec_driver_sql(f"REVOKE ALL ON ALL TABLES IN SCHEMA {quote(report.schema)} FROM {quote(report.app)}")
    connection.exec_driver_sql(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {quote(report.schema)} FROM PUBLIC")
    connection.exec_driver_sql(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {quote(report.schema)} FROM {quote(report.app)}")
    connection.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quote(report.schema)} TO {quote(report.app)}")
    # tables and sequences the owner creates later (a migration) follow; ``biobank db roles`` again narrows them
    connection.exec_driver_sql(f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(report.owner)} IN SCHEMA {quote(report.schema)} "
                                  f"GRANT SELECT, INSERT, UPDATE ON TABLES TO {quote(report.app)}")
    connection.exec_driver_sql(f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(report.owner)} IN SCHEMA {quote(report.schema)} "
                                  f"GRANT USAGE, SELECT ON SEQUENCES TO {quote(report.app)}")
    tables = connection.execute(text(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1")).scalars().all()
    for name in tables:
        granted = privileges_for(name)
        if granted == ("SELECT",):
            connection.exec_driver_sql(f"GRANT SELECT ON {quote(report.schema)}.{quote(name)} TO {quote(report.app)}")
        elif granted == ("SELECT", "INSERT"):
            connection.exec_driver_sql(f"GRANT SELECT, INSERT ON {quote(report.schema)}.{quote(name)} TO {quote(report.app)}")
        elif "DELETE" in granted:
            connection.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {quote(report.schema)}.{quote(name)} TO {quote(report.app)}")
        else:
            connection.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE ON {quote(report.schema)}.{quote(name)} TO {quote(report.app)}")
    if connection.execute(text("SELECT to_regprocedure('biobank_analyze(text[])') IS NOT NULL")).scalar():
        connection.exec_driver_sql("REVOKE ALL ON FUNCTION biobank_analyze(text[]) FROM PUBLIC")
        connection.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION biobank_analyze(text[]) TO {quote(report.app)}")


_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _verify(connection: Connection, report: RolesReport) -> None:
    """Read back what the application may do, and check it owns nothing and cannot create anything."""
    owned = connection.execute(text(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid AND relnamespace = current_schema()::regnamespace)"
        " + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid AND pronamespace = current_schema()::regnamespace)"
        " + (SELECT count(*) FROM pg_database WHERE datdba = r.oid AND datname = current_database())"
        " + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid AND oid = current_schema()::regnamespace) "
        "FROM pg_roles r WHERE r.rolname = :app"), {"app": report.app}).scalar_one()
    creates = connection.execute(text(
        "SELECT has_schema_privilege(:app, current_schema(), 'CREATE') "
        "OR has_database_privilege(:app, current_database(), 'CREATE') "
        "OR has_database_privilege(:app, current_database(), 'TEMPORARY')"), {"app": report.app}).scalar_one()
    if owned or creates:
        raise PermissionDeniedError(
            f"the application role {report.app!r} still owns {owned} objects or may create some: check the roles "
            "it belongs to", field="app")
    rows = connection.execute(text(
        "SELECT c.relname, p.privilege FROM pg_class c CROSS JOIN unnest(CAST(:privileges AS text[])) AS p(privilege) "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') "
        "AND has_table_privilege(:app, c.oid, p.privilege) ORDER BY c.relname"),
        {"app": report.app, "privileges": list(_PRIVILEGES)}).all()
    for name, privilege in rows:
        report.tables.setdefault(name, []).append(privilege)
    for privileges in report.tables.values():
        privileges.sort(key=_PRIVILEGES.index)
