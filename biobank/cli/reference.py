"""The command reference, read from the Typer app itself: every command with its arguments and the first sentence
of its help, as the Markdown table the README carries (``scripts/readme_reference.py`` writes it there, and
``tests/test_readme_reference.py`` fails when the README's copy differs from the real CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import typer
import typer.main

#: Longest first sentence of a command's help kept in the table (Click shortens a longer one with "...").
HELP_LIMIT = 300


@dataclass(frozen=True)
class CommandEntry:
    """One command of the CLI: its words after ``biobank``, its arguments as usage shows them, its short help."""

    path: tuple[str, ...]
    arguments: tuple[str, ...]
    summary: str

    @property
    def usage(self) -> str:
        return " ".join(["biobank", *self.path, *self.arguments])


def _argument(param: Any) -> str:
    """An argument as usage shows it: ``NAME``, ``[NAME]`` when optional, ``NAME...`` when it takes several."""
    shown = (param.name or "").upper()
    if param.nargs != 1:
        shown += "..."
    return shown if param.required else f"[{shown}]"


def commands(app: typer.Typer) -> Iterator[CommandEntry]:
    """Every command the app serves (not the groups, not hidden ones), in alphabetical order of their words."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[CommandEntry]:
        children = getattr(command, "commands", None)
        if children is not None:
            for name in sorted(children):
                child = children[name]
                if not getattr(child, "hidden", False):
                    yield from walk(child, (*path, name))
            return
        arguments = tuple(_argument(p) for p in command.params if p.param_type_name == "argument")
        summary = command.get_short_help_str(limit=HELP_LIMIT)
        yield CommandEntry(path, arguments, " ".join(summary.split()))

    yield from walk(typer.main.get_command(app), ())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_commands(app: typer.Typer) -> str:
    """The Markdown table of every command (usage and what it does)."""
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| `{_cell(entry.usage)}` | {_cell(entry.summary)} |" for entry in commands(app)]
    return "\n".join(lines)
