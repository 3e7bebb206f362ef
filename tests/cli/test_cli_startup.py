"""A quick command line (issue 21, item 5): ``biobank --help`` imports no command module and no heavy library; a
command imports its own modules only; the lazy table lists every command with its own help, in the order and with
the subcommands the CLI always had; a command still runs, from the installed ``biobank`` script too; ``specimen show``
(issue 21, item 8) loads the specimen queries and nothing heavy besides."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer._click import Context
from typer.main import get_command
from typer.testing import CliRunner

from biobank.cli import COMMANDS, app, load
from biobank.db.engine import session_scope
from biobank.services.inputs import FormatRequest
from tests.support.factories import collect, make_case

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

#: Libraries that ``biobank --help`` and ``import biobank.cli`` must not import (each costs 50 ms to 600 ms), and
#: the project's layers below the CLI (models alone take 0.3-0.5 s with SQLAlchemy and Alembic).
HEAVY = ("pandas", "numpy", "pyarrow", "reportlab", "openpyxl", "PIL", "streamlit", "fastapi", "uvicorn",
         "jsonschema", "fhir", "alembic", "sqlalchemy", "sqlmodel", "psycopg", "biobank.models", "biobank.services",
         "biobank.queries", "biobank.exports", "biobank.imports", "biobank.db", "biobank.config")

#: The top-level commands, in the order ``biobank --help`` listed them before the table (issue 21), with ``attach``
#: and ``attachments`` (issue 22).
TOP_LEVEL = ["demo", "serve", "import", "template", "labels", "backup", "restore", "login", "logout", "whoami", "attach",
             "db", "users", "donors", "autopsy", "specimen", "storage", "distribution", "models", "plan", "export",
             "print", "tokens", "results", "sequencing", "attachments"]

#: Subcommands another module adds to a group (they must be there when the group is loaded alone).
ADDED_ELSEWHERE = {
    "db": ["upgrade", "downgrade", "current", "checksums", "roles"],
    "users": ["add", "list", "disable", "enable", "reset-password", "role", "unlock"],
    "donors": ["list", "show", "add", "consent", "withdraw", "treatment", "event", "lesion", "consents", "exports"],
    "autopsy": ["summary", "open", "times", "start", "end", "notified", "labels", "checklist", "list"],
    "specimen": ["show", "aliquot", "derive", "qc", "dispose"],
}


def _loaded_after(code: str, *argv: str) -> dict:
    """Run ``code`` in a fresh interpreter (``argv`` as its arguments) and report what it imported: the heavy
    modules, the CLI's command modules, and what the code printed last (a JSON object, when it prints one)."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if m.split('.')[0] in ('biobank',) or "
        f"any(m == h or m.startswith(h + '.') for h in {HEAVY!r}))}}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return sorted({h for h in HEAVY for m in modules if m == h or m.startswith(h + ".")})


def _command_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith("biobank.cli.")]


def test_importing_the_cli_imports_nothing_heavy():
    modules = _loaded_after("import biobank.cli")["modules"]
    assert _heavy(modules) == []
    assert _command_modules(modules) == []


def test_biobank_help_imports_no_command_module_and_nothing_heavy():
    """As the installed script runs it: ``main()`` with ``--help``, which exits 0 after printing the listing."""
    code = (
        "from biobank.cli import main\n"
        "sys.argv = ['biobank', '--help']\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert stop.code in (0, None), stop.code\n"
    )
    modules = _loaded_after(code)["modules"]
    assert _heavy(modules) == [], "biobank --help imports these"
    assert _command_modules(modules) == [], "biobank --help imports command modules"


def test_a_mistyped_command_is_one_line_and_loads_nothing():
    code = (
        "import contextlib, io\n"
        "from biobank.cli import main\n"
        "sys.argv = ['biobank', 'stroage']\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        "    try:\n        main()\n    except SystemExit as stop:\n        assert stop.code == 2, stop.code\n"
        "assert err.getvalue() == \"error: No such command 'stroage'. Did you mean 'storage'? (see 'biobank --help')\\n\", "
        "err.getvalue()\n"
    )
    modules = _loaded_after(code)["modules"]
    assert _command_modules(modules) == [] and _heavy(modules) == []


def _modules_of(name: str) -> set[str]:
    entry = COMMANDS[name]
    return {entry.target.partition(":")[0], *entry.also}


def _loaded_by_help_of(name: str) -> set[str]:
    return set(_loaded_after(f"from typer.testing import CliRunner\nfrom biobank.cli import app\n"
                             f"assert CliRunner().invoke(app, [{name!r}, '--help']).exit_code == 0")["modules"])


#: Commands whose modules (and what they import) need none of pandas, pyarrow, reportlab, openpyxl, streamlit,
#: fastapi. (``storage``, ``import``, ``plan``, ``results``... do, through the services and queries they call.)
LIGHT = ["db", "users", "donors", "specimen", "models", "tokens", "whoami", "attachments"]


@pytest.mark.parametrize("name", ["storage", *LIGHT])
def test_a_command_loads_its_own_modules_only(name):
    modules = _loaded_by_help_of(name)
    others = set().union(*(_modules_of(other) for other in COMMANDS if other != name)) - _modules_of(name)
    others -= {"biobank.cli.core", "biobank.cli.ops"}  # what core's groups and ops' dangerous() share
    assert _modules_of(name) <= modules
    assert sorted(others & modules) == []
    if name in LIGHT:
        heavy = {"pandas", "pyarrow", "reportlab", "openpyxl", "streamlit", "fastapi"}
        assert sorted(heavy & set(_heavy(sorted(modules)))) == []


def test_the_listing_is_the_commands_as_before():
    group = get_command(app)
    assert group.list_commands(Context(group)) == TOP_LEVEL  # type: ignore[attr-defined]
    assert list(group.commands) == TOP_LEVEL  # type: ignore[attr-defined]  # all loaded, same order


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_each_row_carries_its_command_s_own_help(name):
    """The line ``biobank --help`` shows without loading is the first paragraph of the command's own help."""
    command = load(name)
    assert command.name == name
    assert COMMANDS[name].help == inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0].strip(), (
        f"COMMANDS[{name!r}].help is not the command's help: make it "
        f"{inspect.cleandoc(command.help or '').split(chr(10) * 2)[0].strip()!r}"
    )


def test_the_lazy_listing_is_the_listing_of_the_loaded_commands(monkeypatch, capsys):
    """``biobank --help`` from the table's lines reads exactly as it does from the loaded commands."""
    monkeypatch.setenv("COLUMNS", "120")
    shown = []
    for load_all in (False, True):
        group = get_command(app)
        if load_all:
            assert len(group.commands) == len(TOP_LEVEL)  # type: ignore[attr-defined]  # every command loaded
        group.main(["--help"], prog_name="biobank", standalone_mode=False)
        shown.append(capsys.readouterr().out)
    lazy, loaded = shown
    assert lazy == loaded
    for name in TOP_LEVEL:
        assert f"\n│ {name} " in lazy


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_every_top_level_help_works(name):
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: biobank {name}" in result.output
    for sub in ADDED_ELSEWHERE.get(name, []):
        assert f"│ {sub} " in result.output, f"biobank {name} --help does not list {sub}"


def test_the_groups_keep_the_subcommands_other_modules_add():
    group = get_command(app)
    for name, subcommands in ADDED_ELSEWHERE.items():
        assert list(group.get_command(Context(group), name).commands) == subcommands  # type: ignore[attr-defined]


def test_a_command_still_runs(db_url):
    kinds = runner.invoke(app, ["storage", "kinds", "--json"])
    assert kinds.exit_code == 0, kinds.output
    assert {"site", "room", "freezer"} <= {row["kind"] for row in json.loads(kinds.output)}
    script = Path(sys.executable).with_name("biobank")
    done = subprocess.run([str(script), "db", "current", "--json"], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "BIOBANK_DATABASE_URL": db_url, "HOME": str(Path.home())})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["up_to_date"] is True
    wrong = subprocess.run([str(script), "db", "curent"], capture_output=True, text=True, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "BIOBANK_DATABASE_URL": db_url, "HOME": str(Path.home())})
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert wrong.stderr == "error: No such command 'curent'. Did you mean 'current'? (see 'biobank db --help')\n"


#: What ``biobank specimen show`` needs none of: the heavy libraries of the other commands and the import and export
#: machinery (issue 21, item 8: the command took 1.0-2.2 s, mostly Alembic and what the write services pulled in;
#: ``benchmarks/cli_speed.py`` times it); nor SQLModel, the table models, the services or the ORM reads (0.85-0.98 s
#: of imports), nor SQLAlchemy (about 0.15 s) or pydantic-settings and the settings (about 0.1 s): it reads through
#: a bare driver connection (``biobank.db.direct``, ``biobank.queries.specimen_view``).
NOT_FOR_SHOW = ("pandas", "numpy", "pyarrow", "reportlab", "openpyxl", "PIL", "streamlit", "fastapi", "uvicorn",
                "jsonschema", "fhir", "alembic", "mako", "argon2", "biobank.exports", "biobank.imports",
                "biobank.labels", "biobank.printables", "biobank.services", "sqlmodel", "biobank.models",
                "biobank.queries.core", "biobank.queries.storage", "sqlalchemy", "pydantic_settings",
                "biobank.config", "biobank.db.engine")


@pytest.mark.parametrize(("typed", "found"), [("RA0001-L02A-SF1", True), ("RA0001-L02A-SF9", False)])
def test_specimen_show_imports_nothing_heavy(db_url, engine, tech, typed, found):
    """As the installed script runs it, on a database holding one specimen: the specimen shown (or, mistyped, one
    line and exit code 2), and none of :data:`NOT_FOR_SHOW` imported, found or not."""
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech, formats=[FormatRequest("snap_frozen", 50, "mg")])
    probe = (
        "import contextlib, io, json, sys\n"
        "from biobank.cli import main\n"
        "sys.argv = ['biobank', 'specimen', 'show', sys.argv[1]]\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    try:\n        main()\n    except SystemExit as stop:\n        exit_code = stop.code or 0\n"
        "print(json.dumps({'exit_code': exit_code, 'out': out.getvalue(), 'err': err.getvalue(), "
        "'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, typed], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = json.loads(done.stdout)
    if found:
        assert shown["exit_code"] == 0, shown["err"]
        assert shown["out"].startswith(f"code                   {typed}\n"), shown["out"]
        assert "custody history" in shown["out"]
    else:
        assert shown["exit_code"] == 2, shown
        assert shown["err"].startswith(f"error: specimen {typed!r} not found"), shown["err"]
    assert "biobank.queries.specimen_view" in shown["modules"]  # the lookup ran
    loaded = sorted({h for h in NOT_FOR_SHOW for m in shown["modules"] if m == h or m.startswith(h + ".")})
    assert loaded == [], "biobank specimen show imports these"
