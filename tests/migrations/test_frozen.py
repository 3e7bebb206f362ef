"""Frozen migrations: a revision holds its own DDL and data and imports nothing from ``biobank``.

Application code changes; a revision already applied somewhere must keep doing exactly what it did. So a revision
copies what it needs (trigger DDL, column types, vocabulary rows) instead of importing it. ``migrations/env.py`` is not
a revision: it may import the models for autogenerate.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "migrations" / "versions"
DYNAMIC_IMPORTS = {"import_module", "__import__"}


def _is_biobank(name: str | None) -> bool:
    return name is not None and (name == "biobank" or name.startswith("biobank."))


def biobank_imports(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """Every import of ``biobank`` in ``source`` as (line, statement), at any depth (functions, ``if`` blocks...).

    Catches ``import biobank...``, ``from biobank... import ...`` and ``importlib.import_module("biobank...")`` /
    ``__import__("biobank...")`` with a literal name.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            hit = any(_is_biobank(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            hit = node.level == 0 and _is_biobank(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            first = node.args[0] if node.args else None
            hit = (
                called in DYNAMIC_IMPORTS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _is_biobank(first.value)
            )
        else:
            continue
        if hit:
            found.append((node.lineno, ast.get_source_segment(source, node) or ast.unparse(node)))
    return sorted(found)


def _revision_files() -> list[Path]:
    return sorted(VERSIONS.glob("*.py"))


def test_there_are_revisions_to_check() -> None:
    assert _revision_files(), f"no revision files under {VERSIONS}"


def test_no_revision_imports_biobank() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {statement}"
        for path in _revision_files()
        for line, statement in biobank_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not problems, (
        "migrations must be frozen: copy what they use into the revision instead of importing biobank\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ("import biobank\n", [1]),
        ("import os, biobank.db.engine as e\n", [1]),
        ("from biobank.db import ddl\n", [1]),
        ("from biobank import models\n", [1]),
        ("def upgrade():\n    if True:\n        from biobank.domain.sites import load_sites\n", [3]),
        ("import importlib\nm = importlib.import_module('biobank.db.ddl')\n", [2]),
        ("m = __import__('biobank')\n", [1]),
        ("import biobankish\nfrom biobank_extra import x\nfrom . import biobank\nimport sqlalchemy\n", []),
        ("# import biobank\nDOC = 'from biobank import x'\n", []),
    ],
)
def test_the_check_finds_biobank_imports_wherever_they_are(source: str, lines: list[int]) -> None:
    assert [line for line, _ in biobank_imports(source)] == lines


def test_every_revision_loads_with_biobank_unimportable() -> None:
    """Load every revision (as Alembic does) in a process where importing ``biobank`` fails: nothing reaches it."""
    script = f"""
import sys
from importlib.abc import MetaPathFinder

class Refuse(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "biobank" or name.startswith("biobank."):
            raise ImportError(f"a migration imported {{name}}")
        return None

sys.meta_path.insert(0, Refuse())
from alembic.script import ScriptDirectory
revisions = list(ScriptDirectory({str(ROOT / "migrations")!r}).walk_revisions())
assert not [m for m in sys.modules if m == "biobank" or m.startswith("biobank.")]
print(len(revisions))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT / "migrations")
    assert result.returncode == 0, "\n".join(result.stderr.strip().splitlines()[-5:])
    assert int(result.stdout.strip()) == len(_revision_files())
