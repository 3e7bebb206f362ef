"""The application's own database login attacks its tables (PostgreSQL): every attempt is refused, or audited.

A fresh database gets its owner and application roles from ``biobank db roles`` (run as the superuser, then again as
the owner after migrating), is migrated as the owner, and is then attacked through a connection as the application
role, the login the dashboard, CLI and API use: rewriting or deleting history, switching off or replacing the
triggers, changing the schema, back-dating the audit trail, writing around the services. It also runs the
application's own writes as that role, to show it needs nothing more.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app as cli
from biobank.config import get_settings
from biobank.db import backup, ddl
from biobank.db.engine import make_engine, session_scope
from biobank.db.roles import privileges_for
from biobank.domain.errors import BiobankError
from biobank.models import AuditLog, Container, Specimen, User
from biobank.services import donors, sessions, specimens, storage, users
from tests.support.dbtools import POSTGRES_URL, _admin_engine, create_pg_database, drop_pg_database, migrate
from tests.support.factories import collect, lab, make_case

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="set BIOBANK_TEST_POSTGRES_URL to run the tamper suite")

runner = CliRunner()


@dataclass
class Deployment:
    owner: str
    app: str
    owner_url: str
    app_url: str
    app_engine: Engine
    owner_engine: Engine
    tech_id: int
    specimen: str


def _as(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


def _roles(owner_url: str, database_url: str, owner: str, app: str) -> dict:
    """``biobank db roles --json`` as the operator runs it (the settings read from the environment)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIOBANK_OWNER_DATABASE_URL", owner_url)
        patch.setenv("BIOBANK_DATABASE_URL", database_url)
        get_settings.cache_clear()
        try:
            result = runner.invoke(cli, ["db", "roles", "--owner", owner, "--app", app, "--json"])
        finally:
            get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    suffix = uuid.uuid4().hex[:8]  # roles belong to the whole server: unique names, dropped at the end
    owner, app = f"bb_owner_{suffix}", f"bb_app_{suffix}"
    superuser_url = create_pg_database()
    owner_url, app_url = _as(superuser_url, owner), _as(superuser_url, app)
    engines: list[Engine] = []
    try:
        first = _roles(superuser_url, app_url, owner, app)
        assert sorted(first["created"]) == sorted([owner, app]) and first["tables"] == {}
        migrate(owner_url)  # biobank db upgrade with BIOBANK_OWNER_DATABASE_URL
        again = _roles(owner_url, app_url, owner, app)  # as the owner this time: narrows the new tables
        assert again["connected_as"] == owner and again["created"] == []
        app_engine, owner_engine = make_engine(app_url), make_engine(owner_url)
        engines += [app_engine, owner_engine]
        with session_scope(app_engine) as session:
            tech = User(username="tech", role="technician")
            admin = User(username="admin", role="admin")
            session.add_all([tech, admin])
            session.flush()
            make_case(session, tech)
            code = collect(session, tech)[0]
            donors.withdraw_consent(session, actor=admin, donor_code="RA-0001", requested_by="donor",
                                    withdrawn_at=datetime(2026, 4, 1, tzinfo=UTC), reason="changed mind")
            tech_id = int(tech.id or 0)
        yield Deployment(owner, app, owner_url, app_url, app_engine, owner_engine, tech_id, code)
    finally:
        for engine in engines:
            engine.dispose()
        drop_pg_database(superuser_url)
        admin_engine = _admin_engine()
        with admin_engine.connect() as connection:
            for role in (app, owner):
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        admin_engine.dispose()


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar_one())


HISTORY = ("audit_log", "custody_event", "consent_withdrawal", "export_record", "export_donor")

#: Run as the application's login, each in a transaction of its own: every one refused by PostgreSQL's privileges
#: (``permission denied``) or ownership (``must be owner``); the triggers stand behind the privileges.
REFUSED = [
    # history: the audit trail, the chain of custody, consent withdrawals
    *(f"DELETE FROM {table}" for table in HISTORY),
    *(f"TRUNCATE {table}" for table in HISTORY),
    "UPDATE audit_log SET reason = 'nothing happened'",
    "UPDATE audit_log SET occurred_at = '2020-01-01'",
    "UPDATE custody_event SET note = 'rewritten'",
    "UPDATE consent_withdrawal SET reason = 'never withdrew'",
    "UPDATE export_record SET target = 'tables', files = '[]'",
    "UPDATE export_donor SET donor_id = 1",
    "SELECT * FROM audit_log FOR UPDATE",
    # switching the triggers off or replacing them
    "ALTER TABLE specimen DISABLE TRIGGER USER",
    "ALTER TABLE specimen DISABLE TRIGGER tg_specimen_audit_upd",
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    "DROP TRIGGER tg_specimen_audit_upd ON specimen",
    "DROP TRIGGER tg_audit_log_no_delete ON audit_log",
    "DROP TRIGGER tg_audit_log_stamp ON audit_log",
    "CREATE OR REPLACE FUNCTION biobank_audit_specimen() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION biobank_refuse_change() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION biobank_audit_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "ALTER FUNCTION biobank_audit_specimen() OWNER TO CURRENT_USER",
    "DROP FUNCTION biobank_audit_specimen() CASCADE",
    "SET session_replication_role = replica",
    # the schema
    "DROP TABLE audit_log",
    "DROP TABLE specimen CASCADE",
    "ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action",
    "ALTER TABLE audit_log ALTER COLUMN occurred_at SET DEFAULT '2020-01-01'",
    "ALTER TABLE specimen ADD COLUMN secret text",
    "ALTER TABLE audit_log RENAME TO old_audit_log",
    "CREATE TABLE shadow (id integer)",
    "CREATE TEMP TABLE audit_log (id integer)",  # would shadow the real audit log for this session
    "CREATE SCHEMA shadow",
    "CREATE FUNCTION shadow() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
    "CREATE INDEX ix_shadow ON specimen (notes)",
    "COMMENT ON TABLE audit_log IS 'nothing to see'",
    "SET ROLE postgres",
    # rows the application never deletes or writes
    "DELETE FROM specimen",
    "DELETE FROM donor",
    "UPDATE alembic_version SET version_num = '0001'",
    "INSERT INTO anatomical_site (code, label, laterality_applies, category) VALUES ('X', 'X', false, 'organ')",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_application_login_is_refused(deployment: Deployment, statement: str) -> None:
    before = _count(deployment.owner_engine, "SELECT count(*) FROM audit_log")
    with pytest.raises(DBAPIError) as refused, deployment.app_engine.begin() as connection:
        connection.exec_driver_sql(statement)
    assert re.search("permission denied|must be owner", str(refused.value.orig)), str(refused.value.orig)
    assert _count(deployment.owner_engine, "SELECT count(*) FROM audit_log") == before


def test_the_application_login_can_neither_grant_itself_more_nor_take_the_database(deployment: Deployment) -> None:
    name = make_url(deployment.app_url).database
    with pytest.raises(DBAPIError, match=r"must be owner|permission denied"), deployment.app_engine.begin() as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" OWNER TO CURRENT_USER')
    with deployment.app_engine.begin() as connection:
        connection.exec_driver_sql("GRANT UPDATE, DELETE ON audit_log TO PUBLIC")  # PostgreSQL only warns
    with deployment.owner_engine.connect() as connection:
        gained = connection.execute(text(
            "SELECT has_table_privilege(:app, 'audit_log', 'UPDATE') OR has_table_privilege(:app, 'audit_log', 'DELETE')"
        ), {"app": deployment.app}).scalar()
    assert gained is False


def test_nothing_was_switched_off_or_replaced(deployment: Deployment) -> None:
    """After every attempt: all triggers enabled, each function still the owner's, the app owning nothing."""
    with deployment.owner_engine.connect() as connection:
        disabled = connection.execute(text(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'O'")).scalars().all()
        foreign = connection.execute(text(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace "
            "AND pg_get_userbyid(proowner) <> :owner"), {"owner": deployment.owner}).scalars().all()
        owned = connection.execute(text(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = :app)"),
            {"app": deployment.app}).scalar_one()
        audited = connection.execute(text(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tg\\_%\\_audit\\_%'")).scalar_one()
        # every table but those the database does not audit (export_* since 0012, sequencing_* since 0014)
        tables = connection.execute(text(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
            "AND NOT (tablename = ANY(:not_audited))"), {"not_audited": list(ddl.NOT_AUDITED)}).scalar_one()
    assert disabled == [] and foreign == [] and owned == 0
    assert tables >= 30 and audited == 3 * tables


def test_a_direct_update_of_a_specimen_is_audited_naming_the_change(deployment: Deployment) -> None:
    with deployment.app_engine.begin() as connection:
        specimen_id, quantity = connection.execute(
            text("SELECT id, quantity FROM specimen WHERE code = :code"), {"code": deployment.specimen}).one()
        connection.execute(text("UPDATE specimen SET quantity = 12.5, quantity_remaining = 12.5 WHERE code = :code"),
                           {"code": deployment.specimen})
    with Session(deployment.owner_engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.table_name == "specimen", AuditLog.action == "update",
                                                  AuditLog.row_id == str(specimen_id))
                           .order_by(AuditLog.id.desc())).first()  # type: ignore[union-attr]
    assert row is not None
    assert row.changes == {"quantity": [quantity, 12.5], "quantity_remaining": [quantity, 12.5]}
    assert row.user_id is None  # written around the application: no acting user was given
    assert abs(row.occurred_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_direct_update_that_claims_a_user_is_audited_under_that_user(deployment: Deployment) -> None:
    with deployment.app_engine.begin() as connection:
        connection.execute(text("SELECT set_config('biobank.user_id', :user, true), "
                                "set_config('biobank.reason', 'typed in psql', true)"),
                           {"user": str(deployment.tech_id)})
        connection.execute(text("UPDATE specimen SET notes = 'psql was here' WHERE code = :code"),
                           {"code": deployment.specimen})
    with Session(deployment.owner_engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.reason == "typed in psql")).one()
    assert (row.table_name, row.user_id, row.changes) == ("specimen", deployment.tech_id, {"notes": [None, "psql was here"]})


def test_a_back_dated_audit_row_is_stamped_with_the_databases_clock(deployment: Deployment) -> None:
    with deployment.app_engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO audit_log (occurred_at, user_id, table_name, row_id, action, changes, reason) "
            "VALUES ('2020-01-01 00:00:00+00', NULL, 'specimen', '1', 'update', '{}', 'back-dated')"))
    with Session(deployment.owner_engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.reason == "back-dated")).one()
    assert abs(row.occurred_at - datetime.now(UTC)) < timedelta(minutes=5), row.occurred_at


def test_a_freed_position_deleted_directly_is_audited(deployment: Deployment) -> None:
    """The one table the application deletes from: a delete by any path leaves its row."""
    with session_scope(deployment.app_engine) as session:
        tech = session.get(User, deployment.tech_id)
        if session.exec(select(Container).where(Container.code == "BOX1")).first() is None:
            lab(session, tech)
        storage.store(session, actor=tech, codes=[deployment.specimen], box_code="BOX1")
    with deployment.app_engine.begin() as connection:
        location = connection.execute(text(
            "DELETE FROM specimen_location WHERE specimen_id = (SELECT id FROM specimen WHERE code = :code) "
            "RETURNING id"), {"code": deployment.specimen}).scalar_one()
    with Session(deployment.owner_engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.table_name == "specimen_location",
                                                  AuditLog.action == "delete", AuditLog.row_id == str(location))).one()
    assert row.row_id == str(location) and row.changes["container_id"][1] is None


def test_the_roles_command_is_idempotent_and_gives_each_table_its_privileges(deployment: Deployment) -> None:
    report = _roles(deployment.owner_url, deployment.app_url, deployment.owner, deployment.app)
    assert report["reassigned"] == [] and report["created"] == []
    assert report["tables"]["audit_log"] == ["SELECT", "INSERT"]
    assert report["tables"]["custody_event"] == ["SELECT", "INSERT"]
    assert report["tables"]["consent_withdrawal"] == ["SELECT", "INSERT"]
    assert report["tables"]["specimen"] == ["SELECT", "INSERT", "UPDATE"]
    assert report["tables"]["specimen_location"] == ["SELECT", "INSERT", "UPDATE", "DELETE"]
    assert report["tables"]["anatomical_site"] == ["SELECT"]
    assert {name: privileges for name, privileges in report["tables"].items()} == {
        name: list(privileges_for(name)) for name in report["tables"]}


def test_a_table_a_later_migration_adds_follows_the_default_privileges(deployment: Deployment) -> None:
    with deployment.owner_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE later_table (id serial PRIMARY KEY, note text)")
    try:
        with deployment.app_engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO later_table (note) VALUES ('written')")
            connection.exec_driver_sql("UPDATE later_table SET note = 'changed'")
            with pytest.raises(DBAPIError, match="permission denied"), connection.begin_nested():
                connection.exec_driver_sql("DELETE FROM later_table")
    finally:
        with deployment.owner_engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE later_table")


def test_the_application_works_as_its_login(deployment: Deployment, tmp_path: Path) -> None:
    """The services' writes (accounts, sign-in sessions, a case, collection, aliquots, a correction, storage,
    disposal), planner statistics and a backup, all as the application's login: nothing needs more privilege, and
    every change is audited under its user."""
    engine = deployment.app_engine
    with session_scope(engine) as session:
        admin = session.exec(select(User).where(User.username == "admin")).one()
        lead = users.add_user(session, actor=admin, username="lead", role="technician",
                              password="a long and unusual password 7")
        token = sessions.start_session(session, user=lead)
        make_case(session, lead, donor="RA-0002", case="RAP-2")
        made = collect(session, lead, case="RAP-2")
    assert token
    with session_scope(engine) as session:
        lead = session.exec(select(User).where(User.username == "lead")).one()
        children = specimens.aliquot(session, actor=lead, parent_code=made[0], portions=[10, 10])
        specimens.correct_specimen(session, actor=lead, code=made[1], reason="weighed again", expected_version=1,
                                   quantity=40, quantity_remaining=40)
        # a corrected time moves the specimen's PMI, and the triggers move it between the summaries' bins as this login
        collected = session.exec(select(Specimen.collected_at).where(Specimen.code == made[1])).one()
        specimens.correct_specimen(session, actor=lead, code=made[1], reason="clock was wrong",
                                   stabilised_at=collected + timedelta(hours=2))
        if session.exec(select(Container).where(Container.code == "BOX2")).first() is None:
            lab(session, lead)
        storage.store(session, actor=lead, codes=[c.code for c in children], box_code="BOX2")
        storage.dispose(session, actor=lead, code=children[0].code, reason="tube cracked")
        lead_id = lead.id
        assert sessions.end_session(session, token)
    with Session(deployment.owner_engine) as session:
        written = session.exec(select(AuditLog.table_name, AuditLog.action, AuditLog.reason)
                               .where(AuditLog.user_id == lead_id)).all()
        corrected = session.exec(select(Specimen.quantity).where(Specimen.code == made[1])).one()
        binned, in_case_bins = session.execute(text(
            "SELECT (SELECT count(*) FROM specimen_pmi WHERE pmi_bin IS NOT NULL), "
            "(SELECT coalesce(sum(specimens), 0) FROM case_pmi_summary)")).one()
        basis = session.execute(text("SELECT p.basis FROM specimen_pmi p JOIN specimen s ON s.id = p.specimen_id "
                                     "WHERE s.code = :code"), {"code": made[1]}).scalar_one()
    assert corrected == 40
    assert basis == "stabilised" and binned == in_case_bins > 0
    kinds = {(table, action) for table, action, _reason in written}
    assert {("specimen", "insert"), ("specimen", "update"), ("custody_event", "insert"),
            ("specimen_location", "insert"), ("specimen_location", "delete"), ("donor", "insert")} <= kinds
    assert ("specimen", "update", "weighed again") in set(written)
    # planner statistics for tables the login does not own, through biobank_analyze (the importer's path)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT biobank_analyze(ARRAY['specimen', 'not_a_table'])")).scalar() == [
            "specimen"]
    assert _count(deployment.owner_engine, "SELECT reltuples FROM pg_class WHERE relname = 'specimen'") > 0
    # the nightly backup runs as the same login
    result = backup.backup(engine, tmp_path / "nightly.dump")
    assert result.bytes > 0 and result.tables >= 25


def test_even_the_owner_meets_the_append_only_triggers(deployment: Deployment) -> None:
    """Behind the privileges: the owner (migrations, a careless psql session) cannot delete a withdrawal either."""
    with pytest.raises(BiobankError, match="never changed or deleted"), session_scope(deployment.owner_engine) as s:
        s.execute(text("DELETE FROM consent_withdrawal"))


def test_an_installation_where_the_application_owned_everything_is_handed_to_the_owner() -> None:
    """Before roles were separated the application's login owned the database and every object (docs/deploy.md as
    it was): one run of ``biobank db roles`` as the superuser leaves it owning nothing and able to tamper with
    nothing, its data intact."""
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"bb_owner_{suffix}", f"bb_app_{suffix}"
    admin_engine = _admin_engine()
    superuser_url = create_pg_database()
    name = make_url(superuser_url).database
    try:
        with admin_engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE ROLE "{app}" LOGIN CREATEDB')
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" OWNER TO "{app}"')
        app_url = _as(superuser_url, app)
        migrate(app_url)  # the old way: the application's login creates and owns the schema
        app_engine = make_engine(app_url)
        with session_scope(app_engine) as session:
            tech = User(username="tech", role="technician")
            session.add(tech)
            session.flush()
            make_case(session, tech)
        app_engine.dispose()
        report = _roles(superuser_url, app_url, owner, app)
        assert report["created"] == [owner] and f"database {name}" in report["reassigned"]
        assert len(report["reassigned"]) > 30  # tables and trigger functions
        app_engine = make_engine(app_url)
        try:
            for statement in ("DROP TRIGGER tg_audit_log_no_delete ON audit_log", "DELETE FROM audit_log",
                              "ALTER TABLE specimen DISABLE TRIGGER USER", "CREATE TABLE shadow (id integer)"):
                with pytest.raises(DBAPIError, match=r"permission denied|must be owner"), app_engine.begin() as conn:
                    conn.exec_driver_sql(statement)
            with app_engine.connect() as connection:
                assert connection.execute(text("SELECT code FROM donor")).scalars().all() == ["RA-0001"]
                assert connection.execute(text(
                    "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user")).scalar() is False
        finally:
            app_engine.dispose()
    finally:
        drop_pg_database(superuser_url)
        with admin_engine.connect() as connection:
            for role in (app, owner):
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        admin_engine.dispose()
