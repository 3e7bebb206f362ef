"""Foundation commands: database, demo, server, users, donors, autopsies, specimens."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from biobank.cli.common import (
    ConfirmOption,
    JsonOption,
    UserOption,
    acting_user,
    emit,
    emit_table,
    fail,
    handle_errors,
    read,
    unit_of_work,
)
from biobank.domain.vocab import Role

# Each command imports the services and queries it calls (and Alembic, the backup machinery of ``ops``, argon2)
# when it runs: ``biobank specimen show`` loads the specimen queries alone (issue 21, item 5).

db_app = typer.Typer(help="Create and upgrade the database schema (Alembic migrations).", no_args_is_help=True)
users_app = typer.Typer(help="User accounts and roles.", no_args_is_help=True)
#: The roles an account may have, for the help of every option that takes one.
ROLE_CHOICES = ", ".join(Role)
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why: kept with the audit row.")]
donors_app = typer.Typer(help="Donors and their consent.", no_args_is_help=True)
autopsy_app = typer.Typer(help="Autopsies (cases) and their post-mortem intervals.", no_args_is_help=True)
specimen_app = typer.Typer(help="Specimens: SPREC, PMI, lineage and chain of custody.", no_args_is_help=True)

ROOT = Path(__file__).resolve().parents[2]


def _alembic_config():
    from alembic.config import Config

    from biobank.db.roles import migration_url

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    # Migrations run as the owner role when BIOBANK_OWNER_DATABASE_URL is set (the application role has no DDL).
    config.set_main_option("sqlalchemy.url", migration_url().replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


@db_app.command("upgrade")
@handle_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Upgrade the database to the latest schema (or to REVISION)."""
    from alembic import command

    command.upgrade(_alembic_config(), revision)
    typer.echo(f"database at {revision}: {_redacted_url()}")


@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})  # REVISION may be "-1"
@handle_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
    confirm: ConfirmOption = None,
    user: UserOption = None,
) -> None:
    """Downgrade the schema to REVISION (data in dropped tables is lost; 'base' drops every table, the audit trail
    included). Needs an administrator's token and the database's name typed to confirm (or --confirm NAME); takes a
    backup first and says where it went."""
    from alembic import command

    from biobank.cli.ops import dangerous

    dangerous("downgrade", user, confirm)
    command.downgrade(_alembic_config(), revision)
    typer.echo(f"database at {revision}")


@db_app.command("current")
@handle_errors
def db_current(as_json: JsonOption = False) -> None:
    """Print the schema revision the database is at, and the newest one available."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from biobank.db.engine import get_engine

    with get_engine().connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    data = {"current": current, "head": head, "up_to_date": current == head, "database": _redacted_url()}
    emit(data, as_json=as_json)


def _redacted_url() -> str:
    from sqlalchemy.engine import make_url

    from biobank.config import get_settings

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


def demo(
    donors: Annotated[int, typer.Option(min=1, max=500, help="Number of donors.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same cohort.")] = 7,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing (exit 0) when donors or user accounts already exist.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Load the demo cohort (and demo accounts, whose passwords are published) into an empty database: only in demo
    mode (BIOBANK_DEMO_MODE=true), and never into a database that has any user account."""
    from biobank.demo import cohort as demo_module

    demo_module.require_demo_mode()
    with unit_of_work() as session:
        if if_empty and not demo_module.is_empty(session):
            typer.echo("database already holds donors: demo cohort not loaded")
            return
        if if_empty and demo_module.has_users(session):
            typer.echo("database already has user accounts: demo cohort not loaded")
            return
        counts = demo_module.load_demo(session, donors_count=donors, seed=seed)
    emit(counts, as_json=as_json, text=f"demo cohort loaded: {counts['donors']} donors, {counts['specimens']} specimens")


def serve(
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8501; 8000 with --api).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    headless: Annotated[bool, typer.Option(help="Do not open a browser.")] = True,
    api: Annotated[bool, typer.Option("--api", help="Serve the REST API (uvicorn, /api/v1) instead of the dashboard.")]
    = False,
) -> None:
    """Start the dashboard (Streamlit), or with --api the REST API, on the configured database."""
    if api:
        # Become the uvicorn process (signals and Ctrl-C reach it); the docs are at /api/v1/docs.
        uvicorn = [sys.executable, "-m", "uvicorn", "biobank.api:create_app", "--factory",
                   "--host", host, "--port", str(port or 8000)]
        os.execve(sys.executable, uvicorn, os.environ.copy())
        return
    port = port or 8501
    app_path = ROOT / "dashboards" / "server.py"  # the app plus its session-cookie route
    if not app_path.exists():
        raise fail(f"dashboard entry script not found at {app_path}")
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path),
        "--server.port", str(port), "--server.address", host,
        "--server.headless", str(headless).lower(), "--browser.gatherUsageStats", "false",
        # Lab staff see no developer toolbar (no "Deploy", no rerun/settings menu for the code).
        "--client.toolbarMode", "minimal",
    ]
    # Become the Streamlit process, so a process manager's signals (and Ctrl-C) reach the server itself.
    os.execve(sys.executable, command, os.environ.copy())


@users_app.command("add")
@handle_errors
def users_add(
    username: Annotated[str, typer.Argument(help="Login name: lower-case letters, digits, '.', '_', '-'.")],
    role: Annotated[str, typer.Option(help=f"One of {ROLE_CHOICES}.")],
    full_name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="BIOBANK_NEW_PASSWORD", help="Password (at least 10 characters); prompted for when omitted on a terminal."),
    ] = None,
    service: Annotated[
        bool, typer.Option("--service", help="A service account: signs in with API tokens only, never a password.")
    ] = False,
    user: UserOption = None,
) -> None:
    """Add an account (administrators; the very first one, an admin, needs no sign-in). Audited with its values,
    never the password. Every later account needs an administrator's sign-in (biobank login)."""
    from sqlmodel import select

    from biobank.models import User
    from biobank.services import users as user_service

    if password is None and not service and sys.stdin.isatty():
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with unit_of_work() as session:
        # While no account exists there is no token to present: add_user allows exactly one admin then.
        first = session.exec(select(User.id).limit(1)).first() is None
        actor = None if first else acting_user(session, user)
        created = user_service.add_user(session, actor=actor, username=username, role=role, password=password,
                                        full_name=full_name, service=service)
        kind = "service account" if created.is_service else "user"
        typer.echo(f"{kind} {created.username} added with role {created.role}")


@users_app.command("list")
@handle_errors
def users_list(as_json: JsonOption = False) -> None:
    """List accounts with role and state: active, service (API tokens only), locked, failed sign-ins."""
    from biobank.models.base import utcnow
    from biobank.services import users as user_service

    now = utcnow()
    rows = [
        {"username": u.username, "role": u.role, "full_name": u.full_name, "active": u.is_active,
         "service": u.is_service, "has_password": u.password_hash is not None,
         "locked_until": u.locked_until if user_service.is_locked(u, now) else None,
         "failed_signins": u.failed_signins, "last_login_at": u.last_login_at}
        for u in read(user_service.list_users)
    ]
    emit(rows, as_json=as_json)


def _set_active(username: str, user: str | None, reason: str | None, *, active: bool) -> None:
    """Enable or disable an account and say so (or that it already was)."""
    from biobank.services import users as user_service
    from biobank.services.auth import get_user

    word = "enabled" if active else "disabled"
    with unit_of_work() as session:
        before = get_user(session, username).is_active
        user_service.set_active(
            session, actor=acting_user(session, user), username=username, active=active, reason=reason
        )
    typer.echo(f"user {username} already {word}" if before == active else f"user {username} {word}")


@users_app.command("disable")
@handle_errors
def users_disable(
    username: Annotated[str, typer.Argument(help="The account.")], reason: ReasonOption = None, user: UserOption = None
) -> None:
    """Disable an account: it is signed out everywhere and can no longer sign in or write (admins only; not your
    own, not the last active admin). Audited, old and new."""
    _set_active(username, user, reason, active=False)


@users_app.command("enable")
@handle_errors
def users_enable(
    username: Annotated[str, typer.Argument(help="The account.")], reason: ReasonOption = None, user: UserOption = None
) -> None:
    """Enable a disabled account (admins only). Audited, old and new."""
    _set_active(username, user, reason, active=True)


@users_app.command("reset-password")
@handle_errors
def users_reset_password(
    username: Annotated[str, typer.Argument(help="The account.")],
    password: Annotated[str | None, typer.Option(envvar="BIOBANK_NEW_PASSWORD", help="New password; prompted for when omitted.")] = None,
    reason: ReasonOption = None,
    user: UserOption = None,
) -> None:
    """Set a new password for an account (admins, or the account itself). Audited as a password change, never
    with the password or its hash."""
    from biobank.services import users as user_service

    if password is None:
        if not sys.stdin.isatty():
            raise fail("give --password or BIOBANK_NEW_PASSWORD when not on a terminal")
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    with unit_of_work() as session:
        user_service.set_password(
            session, actor=acting_user(session, user), username=username, password=password, reason=reason
        )
    typer.echo(f"password of {username} reset")


@donors_app.command("list")
@handle_errors
def donors_list(as_json: JsonOption = False) -> None:
    """List donors with diagnosis, case, consent state and specimen count."""
    from biobank.queries import core as queries

    columns = ["code", "sex", "age_at_death", "diagnosis", "status", "consent_withdrawn", "case", "specimens"]
    emit(read(queries.donor_rows), as_json=as_json, columns=columns)


@donors_app.command("show")
@handle_errors
def donors_show(code: str, as_json: JsonOption = False) -> None:
    """Show a donor: diagnosis, consent, treatment lines."""
    from biobank.queries import core as queries

    data = read(queries.donor_detail, code)
    emit(data, as_json=as_json)
    if as_json:
        return
    typer.echo(f"consent      {', '.join(data['consent_scopes']) or 'none'}")
    if data["withdrawal"]:
        typer.echo(f"WITHDRAWN    {data['withdrawal']['at']}: {data['withdrawal']['reason']}")
    typer.echo("")
    emit_table(data["treatment_lines"])


@autopsy_app.command("summary")
@handle_errors
def autopsy_summary(case: str, as_json: JsonOption = False) -> None:
    """Times, warm PMI, PMI at start, last-specimen and median PMI, share within target, specimens by format."""
    from biobank.queries import core as queries

    data = read(queries.autopsy_summary, case)
    by_format = [{"storage_format": k, "specimens": v} for k, v in data["specimens_by_format"].items()]
    if as_json:
        emit(data, as_json=True)
        return
    shown = dict(data)
    for name in ("start", "end"):
        if shown.get(f"{name}_estimated") and shown.get(f"{name}_at"):
            shown[f"{name}_at"] = f"{shown[f'{name}_at']} (estimated)"
            if name == "start" and shown.get("pmi_at_start_hours") is not None:
                shown["pmi_at_start_hours"] = f"{shown['pmi_at_start_hours']} (estimated)"
    emit(shown, as_json=False, skip=("start_estimated", "end_estimated"),
         tables=[(by_format, None), (data["lesions"], None)])


@specimen_app.command("show")
@handle_errors
def specimen_show(code: str, as_json: JsonOption = False) -> None:
    """A specimen with SPREC, PMI, QC, lineage and its custody history."""
    # A bare driver connection and the plain-SQL read of the specimen view: no SQLAlchemy, pydantic, SQLModel or
    # table models (issue 21: a fresh process within 0.4 s). The read begins DEFERRED on SQLite: it takes no write
    # lock and waits for no writer.
    from biobank.db.direct import reading
    from biobank.queries.specimen_view import specimen_detail

    with reading() as connection:
        data = specimen_detail(connection, code)
    if as_json:
        emit(data, as_json=True)
        return
    shown = dict(data)
    if shown.get("excised_estimated") and shown.get("excised_at"):
        shown["excised_at"] = f"{shown['excised_at']} (estimated)"
    emit(shown, as_json=False, skip=("excised_estimated",))
    qc = {k: v for k, v in data["qc"].items() if v is not None}
    typer.echo(f"qc                     {', '.join(f'{k}={v}' for k, v in qc.items()) or 'none recorded'}")
    tree = data["lineage_tree"]
    chain = " > ".join([*tree["ancestors"], data["code"]])
    typer.echo(f"lineage                {chain}")
    for child in tree["children"]:
        typer.echo(f"  └ {child['code']} ({child['lineage']}, {child['material_type']})")
    typer.echo("")
    typer.echo("custody history")
    emit_table(data["custody"])
