"""The layout holds: every module imports in a fresh interpreter, no import cycle (lazy imports included), and the
layers depend one way: dashboards/CLI -> services, queries, exports, imports, labels -> models -> db -> domain."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("biobank", "dashboards")

#: Layer of each top-level area; a module may import its own layer or lower ones, never a higher one.
LAYERS: dict[str, int] = {
    "biobank.config": 0,
    "biobank.domain": 0,
    "biobank.db": 1,
    "biobank.attachments": 1,
    "biobank.models": 2,
    "biobank.services": 3,
    "biobank.queries": 3,
    "biobank.exports": 3,
    "biobank.imports": 3,
    "biobank.labels": 3,
    "biobank.printables": 3,
    "biobank.demo": 4,
    "biobank.cli": 5,
    "biobank.api": 5,
    "dashboards": 5,
}


@cache
def modules() -> dict[str, Path]:
    """Every module of the project's packages (dashboard page scripts included), by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(name: str, path: Path) -> set[str]:
    """Project modules a module imports anywhere in its body (module level or inside a function)."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    return {name: imported(name, path) for name, path in modules().items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(name: str) -> int:
    best = max((area for area in LAYERS if name == area or name.startswith(area + ".")), key=len, default=None)
    assert best is not None, f"{name} belongs to no layer: add its area to LAYERS"
    return LAYERS[best]


def test_the_project_has_no_import_cycle_lazy_imports_included():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_dependencies_run_one_way_down_the_layers():
    upward = [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
        for name, targets in graph().items()
        for target in sorted(targets)
        if layer(target) > layer(name)
    ]
    assert upward == []


def third_party(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_domain_knows_no_database_and_the_library_no_streamlit():
    database = {"sqlalchemy", "sqlmodel", "psycopg", "alembic"}
    offenders = []
    for name, path in modules().items():
        roots = third_party(path)
        if name.startswith("biobank.domain") and roots & database:
            offenders.append(f"{name} imports {sorted(roots & database)}")
        if name.startswith("biobank") and "streamlit" in roots:
            offenders.append(f"{name} imports streamlit")
    assert offenders == []


def test_every_module_imports_in_a_fresh_interpreter():
    """Each library module is imported alone in a new interpreter (forked from one that has imported none of the
    project), so a module that only works once another has been imported first is found."""
    names = [n for n in modules() if n.startswith("biobank")] + [
        n for n in modules() if n.startswith("dashboards") and ".views." not in n and n not in {"dashboards.app", "dashboards.server"}
    ]
    script = """
import json, os, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(name)
            message = ""
        except BaseException:
            message = traceback.format_exc(limit=3)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    if message:
        failed[name] = message
print(json.dumps(failed))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(names)], cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}


def test_importing_any_table_installs_the_audit_hook():
    """A script that imports only one table module still writes audit rows: the hook comes with the tables."""
    script = (
        "from sqlalchemy import event\n"
        "from sqlalchemy.orm import Session\n"
        "from biobank.models.core import Specimen  # noqa: F401\n"
        "import biobank.models.audit as audit\n"
        "print(event.contains(Session, 'after_flush', audit._write_audit))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr[-2000:]
