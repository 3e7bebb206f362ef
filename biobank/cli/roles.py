"""``biobank db roles``: the PostgreSQL owner and application logins (docs/deploy.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from biobank.cli.common import JsonOption, emit
from biobank.db.engine import make_engine
from biobank.db.roles import migration_url, setup_roles


def roles(
    owner: Annotated[str, typer.Option("--owner", help="Role that owns every object and runs the migrations.")],
    app: Annotated[str, typer.Option("--app", help="Role the dashboard, CLI and API log in as: only the DML they need.")],
    as_json: JsonOption = False,
) -> None:
    """Set up the PostgreSQL owner and application roles (idempotent; run as a superuser or the owner).

    Connects with BIOBANK_OWNER_DATABASE_URL (else BIOBANK_DATABASE_URL). Creates missing roles (as a superuser,
    without a password), gives the owner the database and every object in it, and the application role SELECT,
    INSERT and UPDATE where it writes, only INSERT on the audit log, custody events and consent withdrawals, no DDL.
    Run it again after every upgrade.
    """
    engine = make_engine(migration_url())
    try:
        report = setup_roles(engine, owner=owner, app=app)
    finally:
        engine.dispose()
    data = report.as_dict()
    lines = [f"database {report.database} (schema {report.schema}), set up as {report.connected_as}:",
             f"  owner {report.owner}: owns the database and every object in it; runs 'biobank db upgrade'",
             f"  app   {report.app}: {len(report.tables)} tables, no DDL"]
    if report.created:
        lines.append(f"  created roles: {', '.join(report.created)} (no password yet: ALTER ROLE name PASSWORD ...)")
    if report.reassigned:
        lines.append(f"  given to the owner: {len(report.reassigned)} objects")
    if report.memberships_revoked:
        lines.append(f"  {report.app} no longer belongs to: {', '.join(report.memberships_revoked)}")
    limited = [f"    {name}: {', '.join(privileges)}" for name, privileges in report.tables.items()
               if privileges != ["SELECT", "INSERT", "UPDATE"]]
    if limited:
        lines.append("  tables the app may not update (everything else: SELECT, INSERT, UPDATE):")
        lines.extend(limited)
    emit(data, as_json=as_json, text="\n".join(lines))
