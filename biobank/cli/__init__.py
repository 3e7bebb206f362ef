"""The ``biobank`` command line: a thin Typer app over the services. Each module adds its commands here."""

from __future__ import annotations

import typer

from biobank.cli import core, ops
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

app.command("backup")(handle_errors(ops.backup))
app.command("restore")(handle_errors(ops.restore))
core.db_app.command("checksums")(handle_errors(ops.checksums))


def main() -> None:
    app()
