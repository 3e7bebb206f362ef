"""The ``biobank`` command line: a thin Typer app over the services.

Starting it imports no command module. Each top-level command or group is a row of :data:`COMMANDS`: where it lives
(``module:attribute``, a Typer app for a group, a function for a command), the modules that add commands to that
app, and the one line ``biobank --help`` shows for it. :class:`LazyCommands` imports a command's modules only when
that command runs or shows its own help, so ``biobank --help`` loads no service, no database driver, no pandas, and
``biobank storage ...`` loads the storage commands alone. A new top-level command is a new row (in the order
``biobank --help`` lists them); ``tests/cli/test_cli_startup.py`` checks each row's line against the command's help.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, NamedTuple

import typer
import typer.main
from typer._click import Command, Context, HelpFormatter
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperCommand, TyperGroup


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


class Lazy(NamedTuple):
    """A top-level command, imported when it runs."""

    #: ``module:attribute``: a Typer app (the group of that name) or a function (the command of that name).
    target: str
    #: The first paragraph of its help, as ``biobank --help`` lists it.
    help: str
    #: Modules that add commands to the target's app when imported (``biobank.cli.specimens`` on ``specimen``).
    also: tuple[str, ...] = ()
    #: Run once before the target is read (adds commands to its app).
    extend: Callable[[], None] | None = None
    #: The function is wrapped in ``handle_errors`` (expected failures are one line and exit code 2).
    errors: bool = False


@cache
def _more_db_commands() -> None:
    """``db checksums`` (biobank.cli.ops) and ``db roles`` (biobank.cli.roles), after core's migration commands."""
    from biobank.cli import core, ops, roles
    from biobank.cli.common import handle_errors

    core.db_app.command("checksums")(handle_errors(ops.checksums))
    core.db_app.command("roles")(handle_errors(roles.roles))


#: Every top-level command, in the order ``biobank --help`` lists them (commands, then groups).
COMMANDS: dict[str, Lazy] = {
    "demo": Lazy(
        "biobank.cli.core:demo",
        "Load the demo cohort (and demo accounts, whose passwords are published) into an empty database: only in "
        "demo\nmode (BIOBANK_DEMO_MODE=true), and never into a database that has any user account.",
        errors=True,
    ),
    "serve": Lazy(
        "biobank.cli.core:serve",
        "Start the dashboard (Streamlit), or with --api the REST API, on the configured database.",
    ),
    "import": Lazy(
        "biobank.cli.imports:import_file",
        "Import a spreadsheet of KIND in one transaction, all or nothing: every row is checked, and written as it "
        "goes.",
    ),
    "template": Lazy(
        "biobank.cli.imports:template",
        "Write the blank template of KIND: CSV with a # comment per column, or Excel with a 'columns' sheet.",
    ),
    "labels": Lazy(
        "biobank.cli.imports:labels",
        "Print specimen labels (DataMatrix or QR plus code, donor, site, format and date) as a PDF sheet or ZPL.",
    ),
    "backup": Lazy(
        "biobank.cli.ops:backup",
        "Back up the database to FILE, consistently, even while others write (SQLite backup API; pg_dump).",
        errors=True,
    ),
    "restore": Lazy(
        "biobank.cli.ops:restore",
        "Restore FILE into the configured database, which must be empty (no tables); never merges into data.",
        errors=True,
    ),
    "login": Lazy(
        "biobank.cli.tokens:login",
        "Sign in: prompts for the password and stores a personal token (mode 0600) for this database and account.",
    ),
    "logout": Lazy(
        "biobank.cli.tokens:logout",
        "Sign out: revoke the stored token of this database (the one of --user NAME when you hold several) and "
        "forget it.",
    ),
    "whoami": Lazy(
        "biobank.cli.tokens:whoami",
        "Who your commands act as on this database, proven by which token, and until when.",
    ),
    # attachments (issue 22)
    "attach": Lazy(
        "biobank.cli.attachments:attach",
        "Attach a photo or document to a record, or every file of a folder to the specimens and regions its names "
        "start with.",
    ),
    "db": Lazy(
        "biobank.cli.core:db_app",
        "Create and upgrade the database schema (Alembic migrations).",
        extend=_more_db_commands,
    ),
    "users": Lazy("biobank.cli.core:users_app", "User accounts and roles.", also=("biobank.cli.users",)),
    "donors": Lazy("biobank.cli.core:donors_app", "Donors and their consent.", also=("biobank.cli.donors",)),
    "autopsy": Lazy(
        "biobank.cli.core:autopsy_app",
        "Autopsies (cases) and their post-mortem intervals.",
        also=("biobank.cli.autopsy",),
    ),
    "specimen": Lazy(
        "biobank.cli.core:specimen_app",
        "Specimens: SPREC, PMI, lineage and chain of custody.",
        also=("biobank.cli.specimens",),
    ),
    "storage": Lazy(
        "biobank.cli.storage:storage_app",
        "Freezers, tanks, boxes and positions; store, move, find, check out and return.",
    ),
    "distribution": Lazy(
        "biobank.cli.storage:distribution_app",
        "Distribution orders: draft, approve (PI), ship and receive (technician), returns.",
    ),
    "models": Lazy(
        "biobank.cli.derived:models_app",
        "Derived models: organoids, PDX and cell lines with passages, QC and lineage.",
    ),
    "plan": Lazy(
        "biobank.cli.plans:plan_app",
        "Analysis plans: which specimens of which donors go to sequencing, and why.",
    ),
    "export": Lazy(
        "biobank.cli.plans:export_app",
        "Files for analysis pipelines and data exchange, from a plan or from donors (de-identified).",
    ),
    "print": Lazy(
        "biobank.cli.printing:print_app",
        "Printable PDFs on the lab's paper (BIOBANK_PAPER_SIZE): pick lists, box maps, manifests, labels.",
    ),
    "tokens": Lazy(
        "biobank.cli.tokens:tokens_app",
        "Service tokens for pipelines, cron jobs and instruments (BIOBANK_TOKEN); administrators create them.",
    ),
    "results": Lazy(
        "biobank.cli.results:results_app",
        "Phylogeny and migration results (CONIPHER, MACHINA, Metient) imported for a donor, drawn on its body map.",
    ),
    "sequencing": Lazy(
        "biobank.cli.sequencing:sequencing_app",
        "Sequencing results coming back for submitted plans: runs, per-sample results and files, QC outcomes.",
    ),
    # attachments (issue 22)
    "attachments": Lazy(
        "biobank.cli.attachments:attachments_app",
        "Photos and documents attached to records: list (the default: 'attachments CODE'), get, retract.",
    ),
}


def load(name: str) -> Command:
    """The Click command of the top-level command ``name``, its modules imported (built as ``app.add_typer`` or
    ``app.command`` would build it)."""
    entry = COMMANDS[name]
    module, _, attribute = entry.target.partition(":")
    for extra in entry.also:
        importlib.import_module(extra)
    if entry.extend is not None:
        entry.extend()
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        if entry.errors:
            from biobank.cli.common import handle_errors

            target = handle_errors(target)
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


class LazyCommands(OneLineErrors):
    """The top-level group: a command of :data:`COMMANDS` is loaded when it is resolved; the group's own help lists
    the rows' help lines without loading any. ``commands`` (what code walking the whole tree reads) loads them all."""

    _listing = False

    @property  # TyperGroup's attribute, read through the lazy table
    def commands(self) -> MutableMapping[str, Command]:
        """Every command, all loaded, in listing order (a copy: add commands with ``add_command``)."""
        found: dict[str, Command] = {}
        for name in self.list_commands(None):  # type: ignore[arg-type]  # the context is not used
            command = self.get_command(None, name)  # type: ignore[arg-type]
            if command is not None:
                found[name] = command
        return found

    @commands.setter
    def commands(self, value: MutableMapping[str, Command]) -> None:
        self._loaded: dict[str, Command] = dict(value)

    def add_command(self, cmd: Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name is None:
            raise TypeError("Command has no name.")
        self._loaded[name] = cmd

    def list_commands(self, ctx: Context) -> list[str]:
        return [*COMMANDS, *(name for name in self._loaded if name not in COMMANDS)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in self._loaded and cmd_name in COMMANDS:
            if self._listing:
                return TyperCommand(name=cmd_name, help=COMMANDS[cmd_name].help)
            self._loaded[cmd_name] = load(cmd_name)
        return self._loaded.get(cmd_name)

    @contextmanager
    def listing(self) -> Iterator[None]:
        """While inside, an unloaded command is a stand-in that only names it and carries its help line."""
        before, self._listing = self._listing, True
        try:
            yield
        finally:
            self._listing = before

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        with self.listing():
            super().format_help(ctx, formatter)

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        if args and args[0] not in self.list_commands(ctx):  # a typo: suggestions from the names, nothing loaded
            with self.listing():
                return super().resolve_command(ctx, args)
        return super().resolve_command(ctx, args)


def _group() -> None:
    """(The group's own callback: it has no options; every command is a subcommand.)"""


app = typer.Typer(
    name="biobank",
    cls=LazyCommands,
    callback=_group,
    help="Specimen tracker for rapid-autopsy cancer research programmes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def main() -> None:
    app()
