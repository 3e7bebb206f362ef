"""The ``biobank`` command line: a thin Typer app over the services. Each module adds its commands here."""

from __future__ import annotations

import typer

from biobank.cli import core, imports, ops
from biobank.cli.common import handle_errors

app = typer.Typer(
    name="biobank",
    help="Specimen tracker for rapid-autopsy cancer research programmes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(core.db_app, name="db")
app.add_typer(core.users_app, name="users")
app.add_typer(core.donors_app, name="donors")
app.add_typer(core.autopsy_app, name="autopsy")
app.add_typer(core.specimen_app, name="specimen")
app.command("demo")(handle_errors(core.demo))
app.command("serve")(core.serve)
app.command("import")(imports.import_file)
app.command("template")(imports.template)
app.command("labels")(imports.labels)

# Storage and distribution (issue 3).
from biobank.cli import storage as _storage_cli  # noqa: E402

app.add_typer(_storage_cli.storage_app, name="storage")
app.add_typer(_storage_cli.distribution_app, name="distribution")

app.command("backup")(handle_errors(ops.backup))
app.command("restore")(handle_errors(ops.restore))
core.db_app.command("checksums")(handle_errors(ops.checksums))


def main() -> None:
    app()

from biobank.cli.derived import models_app  # noqa: E402

app.add_typer(models_app, name="models")
from biobank.cli import plans as _plans  # noqa: E402

app.add_typer(_plans.plan_app, name="plan")
app.add_typer(_plans.export_app, name="export")
from biobank.cli import printing as _printing  # noqa: E402

app.add_typer(_printing.print_app, name="print")
from biobank.cli import roles as _roles_cli  # noqa: E402
from biobank.cli import users as _users_cli  # noqa: E402, F401  (role and unlock, on users_app)

core.db_app.command("roles")(handle_errors(_roles_cli.roles))
from biobank.cli import tokens as _tokens_cli  # noqa: E402

app.command("login")(_tokens_cli.login)
app.command("logout")(_tokens_cli.logout)
app.command("whoami")(_tokens_cli.whoami)
app.add_typer(_tokens_cli.tokens_app, name="tokens")
