"""Every public write service is reachable by people: a CLI command and a dashboard form call it, or it is exempt,
with a reason, in :data:`EXEMPT`.

A *write service* is a public function defined in a ``biobank/services`` module that takes an ``actor`` (found by
inspecting the signatures). Who calls it is read from the source of ``biobank/cli/**`` and ``dashboards/**`` with
``ast``, without importing or running anything: every reference to the function counts, whether called at module
level or in a function, through the module (``storage.dispose(...)``, ``biobank.services.storage.dispose``, ``import
... as orders`` then ``orders.ship``), imported by name (``from biobank.services.storage import dispose [as x]``,
relative imports too) or passed as a value (``run_write(lambda s, u: collection.open_autopsy(...))``,
``functools.partial(storage.dispose, ...)``, ``read(users.list_users)``). Imports are read wherever they stand; a
local name that shadows an imported one is not told apart (no module here does that).

A service reached through another counts too: ``biobank specimen aliquot`` and the Processing page call
``worklist.apply``, whose ``_run`` calls ``specimens.aliquot``, so ``specimens.aliquot`` is reached from both (shown as
``biobank.cli.specimens via worklist.apply``). The services' own source is read the same way, per top-level function,
class and module-level name (a dispatch table), and followed through any number of calls.

The exemption list is kept honest: an exemption naming a service that no longer exists, or one that a CLI command
and a dashboard form both reach after all, fails too. A dashboard form counts only when a page in the navigation
(``dashboards/shell/navigation.py`` ``PAGES``) is, or uses, the module that holds it; a CLI module's commands only
when the app registers them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = "biobank.services"

#: Write services that need not be reachable from both the CLI and the dashboard: ``module.function`` (within
#: ``biobank.services``) -> why. Only what no person should need from both belongs here (a check, a read, a step of
#: another service); a service that lacks a command or a form it ought to have is not exempted.
EXEMPT: dict[str, str] = {
    "tokens.create_service_account": "internal: tokens.create_service_token makes the account when it is missing "
    "(biobank tokens create), and users.add_user(service=True) adds one from the Users page or biobank users add",
    "tokens.require_admin": "a permission check the services and 'biobank db downgrade|restore' call; it writes nothing",
    "tokens.list_tokens": "a read (which tokens the actor may see), not a write",
    # The table's work: the live board is the way in; at the bench nobody types a region into a terminal, and the
    # collection log import (biobank import) brings in what was written on paper.
    "collection.collect_region": "the live board (and biobank import specimens): regions are recorded at the table",
    "specimens.correct_specimen": "the live board's correction form (and biobank import --mode upsert)",
    "planning.update_plan_settings": "the planner page; from the CLI a draft is made again with biobank plan create",
    "planning.add_donors": "called by no command or page yet: biobank plan create --donor and the planner page "
    "choose the donors when the draft is made",
    # Done from the CLI by the people who do it; the dashboard shows the state and links to the command.
    "planning.submit_plan": "biobank plan submit: the sequencing core's hand-off is scripted",
    "derived.distribute_passage": "biobank models distribute (the Derived models page shows where passages went)",
    "derived.passage_specimens": "biobank models specimens (vials of a passage are registered at the culture hood "
    "terminal)",
    "distribution.cancel": "biobank distribution cancel (the Distribution page lists orders by state)",
    "distribution.close": "biobank distribution close",
    "distribution.return_items": "biobank distribution return",
    "tokens.create_service_token": "biobank tokens create: a token is shown once, in a terminal, never on a page",
    "tokens.revoke_token": "biobank tokens revoke (the token's owner or an admin, at a terminal)",
}


# ------------------------------------------------------------------------------------------------ the services


def write_services() -> dict[str, str]:
    """Every public write service: ``module.function`` (within biobank.services) -> its fully qualified name."""
    package = importlib.import_module(SERVICES)
    found: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{SERVICES}.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or function.__module__ != module.__name__:
                continue  # private, or imported from elsewhere (counted where it is defined)
            if "actor" in inspect.signature(function).parameters:
                found[f"{info.name}.{name}"] = f"{module.__name__}.{name}"
    return found


# ------------------------------------------------------------------------------------------- reading the source


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _bindings(tree: ast.AST, name: str, is_package: bool) -> dict[str, set[str]]:
    """What each name imported anywhere in a module (module level or inside a function) stands for: a dotted name."""
    package = name if is_package else name.rpartition(".")[0]
    bound: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound.setdefault(alias.asname, set()).add(alias.name)
                else:  # ``import a.b.c`` binds ``a``
                    head = alias.name.split(".")[0]
                    bound.setdefault(head, set()).add(head)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                if alias.name != "*":
                    bound.setdefault(alias.asname or alias.name, set()).add(f"{base}.{alias.name}")
    return bound


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None for anything else (a call's result, a subscript ...)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _resolve(scope: ast.AST, bound: dict[str, set[str]]) -> set[str]:
    """The fully qualified names the code under ``scope`` refers to through ``bound``; each prefix of an attribute
    chain is included, so a chain through a module names the module as well."""
    found: set[str] = set()
    for node in ast.walk(scope):
        if not isinstance(node, ast.Name | ast.Attribute) or not isinstance(node.ctx, ast.Load):
            continue
        parts = _dotted(node)
        if parts is None:
            continue
        for target in bound.get(parts[0], ()):
            found.add(".".join([target, *parts[1:]]))
    return found


def references(source: str, name: str, *, is_package: bool = False) -> set[str]:
    """The fully qualified names a module's code refers to through its imports (``biobank.services.storage.dispose``
    for ``storage.dispose(...)`` after ``from biobank.services import storage``)."""
    tree = ast.parse(source)
    return _resolve(tree, _bindings(tree, name, is_package))


def delegations(source: str, module: str) -> dict[str, set[str]]:
    """What each top-level function, class and module-level name of a services module refers to: names it imports,
    and the module's own top-level names (``_run``, a dispatch table), all fully qualified."""
    tree = ast.parse(source)
    bound = _bindings(tree, module, False)
    scopes: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scopes[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    scopes[target.id] = node.value
    for name in scopes:
        bound.setdefault(name, set()).add(f"{module}.{name}")
    return {f"{module}.{name}": _resolve(scope, bound) for name, scope in scopes.items()}


def sources(*packages: str) -> Iterable[tuple[str, Path]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path), path


@cache
def service_graph() -> dict[str, set[str]]:
    """Every top-level name of the services -> the names its code refers to (who delegates to whom)."""
    graph: dict[str, set[str]] = {}
    for name, path in sources("biobank/services"):
        graph.update(delegations(path.read_text(), name))
    return graph


def delegated(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every name ``start`` reaches in ``graph``, through any number of calls (``start`` itself not included)."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen and name != start:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


@cache
def callers() -> dict[str, dict[str, set[str]]]:
    """For each side ("cli", "dashboard"), each fully qualified name its modules refer to -> the modules that do so.

    A service that a service they call delegates to counts as well (``worklist.apply`` runs ``specimens.aliquot``): the
    caller is then shown as ``module via worklist.apply``."""
    sides = {"cli": ("biobank/cli",), "dashboard": ("dashboards",)}
    graph = service_graph()
    out: dict[str, dict[str, set[str]]] = {}
    for side, packages in sides.items():
        direct: dict[str, set[str]] = {}
        for name, path in sources(*packages):
            for target in references(path.read_text(), name, is_package=path.name == "__init__.py"):
                direct.setdefault(target, set()).add(name)
        table = {target: set(modules) for target, modules in direct.items()}
        for target, modules in direct.items():
            for reached in delegated(graph, target):
                short = target.removeprefix(f"{SERVICES}.")
                table.setdefault(reached, set()).update(f"{module} via {short}" for module in modules)
        out[side] = table
    return out


def reached_by(qualified: str) -> dict[str, set[str]]:
    """The CLI and dashboard modules that call (or pass on) a service, themselves or through another service."""
    return {side: set(table.get(qualified, ())) for side, table in callers().items()}


def _missing(reached: dict[str, set[str]]) -> list[str]:
    return [side for side in ("cli", "dashboard") if not reached[side]]


# --------------------------------------------------------------------------------------------------- the tests

SERVICES_FOUND = write_services()


def test_write_services_are_found():
    assert {"users.set_role", "storage.store", "distribution.ship"} <= set(SERVICES_FOUND)
    assert "users.authenticate" not in SERVICES_FOUND  # takes no actor


@pytest.mark.parametrize("service", sorted(set(SERVICES_FOUND) - set(EXEMPT)))
def test_every_write_service_has_a_command_and_a_form(service):
    reached = reached_by(SERVICES_FOUND[service])
    missing = _missing(reached)
    words = {"cli": "no CLI command (biobank/cli)", "dashboard": "no dashboard form (dashboards/)"}
    assert not missing, (
        f"{service} is called by {' and by '.join(words[side] for side in missing)}: add one, or exempt it with a "
        f"reason in tests/test_reachability.py EXEMPT (called from: {sorted(reached['cli'] | reached['dashboard'])})"
    )


def exemption_problems(exempt: dict[str, str], services: dict[str, str]) -> list[str]:
    """What is wrong with an exemption list: a name that is no write service, no reason, or a service that a CLI
    command and a dashboard form both call after all (the exemption is no longer needed)."""
    problems = []
    for service, reason in sorted(exempt.items()):
        if service not in services:
            problems.append(f"{service}: no such write service (any more): remove the exemption")
        elif not reason.strip():
            problems.append(f"{service}: the exemption gives no reason")
        elif not _missing(reached := reached_by(services[service])):
            problems.append(f"{service}: a CLI command ({sorted(reached['cli'])}) and a dashboard form "
                            f"({sorted(reached['dashboard'])}) both call it: remove the exemption")
    return problems


def test_every_exemption_is_still_needed():
    assert exemption_problems(EXEMPT, SERVICES_FOUND) == []


def test_a_stale_or_needless_exemption_fails():
    problems = exemption_problems(
        {"users.set_role": "reachable from both", "storage.no_such_thing": "gone", "custody.record_event": " "},
        SERVICES_FOUND,
    )
    assert [problem.split(":")[0] for problem in problems] == [
        "custody.record_event", "storage.no_such_thing", "users.set_role"]
    assert "no reason" in problems[0] and "no such write service" in problems[1] and "both call it" in problems[2]


def _writing_modules(side: str, prefix: str) -> set[str]:
    """The modules of a side that call a write service themselves or through another service."""
    qualified = set(SERVICES_FOUND.values())
    return {
        caller.split(" via ")[0]
        for target, modules in callers()[side].items()
        if target in qualified
        for caller in modules
        if caller.startswith(prefix)
    }


def dashboard_uses() -> dict[str, set[str]]:
    """Each dashboards module -> the dashboards modules its code uses (a page -> the widget that holds its form)."""
    found = {name: path for name, path in sources("dashboards")}
    uses: dict[str, set[str]] = {}
    for name, path in found.items():
        referred = references(path.read_text(), name, is_package=path.name == "__init__.py")
        uses[name] = {
            other for other in found
            if other != name and any(r == other or r.startswith(other + ".") for r in referred)
        }
    return uses


def test_every_dashboard_form_is_on_a_page_in_the_navigation():
    """A module that writes (a page, or a widget holding a form) is a page of navigation.PAGES or used by one."""
    from dashboards.shell.navigation import PAGES

    uses = dashboard_uses()
    shown = {f"dashboards.views.{spec.module}" for spec in PAGES} | {"dashboards.app", "dashboards.server"}
    todo = list(shown)
    while todo:
        for used in uses.get(todo.pop(), ()):
            if used not in shown:
                shown.add(used)
                todo.append(used)
    unlisted = sorted(_writing_modules("dashboard", "dashboards.") - shown)
    assert unlisted == [], f"forms no one can open (add their page to navigation.PAGES): {unlisted}"


def test_every_cli_module_that_writes_has_its_commands_registered():
    """A CLI module that calls a write service defines commands the app serves (not a module no one imports)."""
    import typer.main

    from biobank.cli import app

    served: set[str] = set()

    def walk(command) -> None:
        callback = getattr(command, "callback", None)
        if callback is not None:
            served.add(inspect.unwrap(callback).__module__)
        for child in getattr(command, "commands", {}).values():
            walk(child)

    walk(typer.main.get_command(app))
    helpers = {"biobank.cli.common"}  # shared by the commands (the acting user, errors, units of work)
    unserved = sorted(_writing_modules("cli", "biobank.cli") - served - helpers)
    assert unserved == [], f"CLI modules that write but whose commands the app does not register: {unserved}"


# ------------------------------------------------------------------------------------------- the reader itself

_FIXTURE = '''
import functools
import biobank.services.distribution
from biobank.services import storage, planning as plans
from biobank.services.collection import open_autopsy, add_lesion as lesion
from ..services import derived

storage.dispose(session, actor=user)

def page():
    from biobank.services.users import set_role
    run_write(lambda s, u: collection_ref(s, u))
    run_write(lambda s, u: open_autopsy(s, actor=u))
    run_write(functools.partial(plans.approve_plan, plan="P"))
    biobank.services.distribution.ship(s, actor=u)
    read(set_role)
    handler = {"add": lesion}
    return derived.set_status
'''


def test_the_reader_resolves_every_way_of_naming_a_service():
    found = references(_FIXTURE, "biobank.cli.example")
    assert {
        "biobank.services.storage.dispose",
        "biobank.services.collection.open_autopsy",
        "biobank.services.collection.add_lesion",
        "biobank.services.planning.approve_plan",
        "biobank.services.distribution.ship",
        "biobank.services.users.set_role",
        "biobank.services.derived.set_status",  # relative import from biobank/cli
    } <= found
    assert "biobank.services.storage.store" not in found


def test_the_reader_ignores_names_in_strings_and_unused_imports():
    found = references('from biobank.services import storage\n"storage.dispose"\nx = "dispose"\n', "dashboards.views.x")
    assert "biobank.services.storage.dispose" not in found


_SERVICE = """
from biobank.services import specimens, storage
from biobank.services.custody import record_event

TABLE = {"dispose": storage.dispose}


def apply(session, *, actor, operation):
    return _run(session, actor, operation)


def _run(session, actor, operation):
    if operation == "aliquot":
        return specimens.aliquot(session, actor=actor)
    return TABLE[operation](session, actor=actor)


def alone(session, *, actor):
    record_event(session)
"""


def test_a_service_reached_through_another_counts():
    graph = delegations(_SERVICE, "biobank.services.worklist")
    reached = delegated(graph, "biobank.services.worklist.apply")
    assert {"biobank.services.worklist._run", "biobank.services.specimens.aliquot",
            "biobank.services.worklist.TABLE", "biobank.services.storage.dispose"} <= reached
    assert "biobank.services.custody.record_event" not in reached  # only ``alone`` calls it
    assert "biobank.services.custody.record_event" in delegated(graph, "biobank.services.worklist.alone")
