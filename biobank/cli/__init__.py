"""The ``biobank`` command line: a thin Typer app over the services. Each module adds its commands here."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from biobank.cli import core, imports, ops
from biobank.cli.common import handle_errors


class OneLineErrors(TyperGroup):
    """A mistyped command line (an unknown command, a missing or unparseable value) is one line on stderr and exit
    code 2, like every other refusal of the CLI: not Click's usage block. ``--help`` and a bare group still show help.
    """

    def main(  # type: ignore[override]  # the same parameters as TyperGroup.main, passed on
        self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"error: {message}{where}", err=True)
            sys.exit(2)
        except ClickException as exc:
            typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("error: stopped", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="biobank",
    cls=OneLineErrors,
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
from biobank.cli import specimens as _specimens_cli  # noqa: E402, F401  (aliquot, derive, qc, dispose on specimen_app)

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
from biobank.cli import autopsy as _autopsy_cli  # noqa: E402, F401  (the death call and the case's day, on autopsy_app)
from biobank.cli import donors as _donors_cli  # noqa: E402, F401  (add, consent, withdraw, treatment, event, consents on donors_app)
from biobank.cli import results as _results_cli  # noqa: E402

app.add_typer(_results_cli.results_app, name="results")
from biobank.cli import sequencing as _sequencing_cli  # noqa: E402

app.add_typer(_sequencing_cli.sequencing_app, name="sequencing")
