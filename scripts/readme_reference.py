"""Write (``--write``) or check (the default) the README's generated sections: the command list, read from the Typer
app (:func:`biobank.cli.reference.render_commands`), and the page table, read from the dashboard's navigation
(``dashboards.shell.navigation.PAGES``: which roles may open each page).

Each section sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in README.md; only what lies between
them is replaced. ``tests/test_readme_reference.py`` fails when the README differs from what this writes::

    .venv/bin/python scripts/readme_reference.py --write

(This lives outside ``biobank/`` because it imports the dashboard, which the library never does.)
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

README = ROOT / "README.md"
WRITE_COMMAND = ".venv/bin/python scripts/readme_reference.py --write"
#: How a role is headed in the page table (the rest by their name).
ROLE_HEADINGS = {"pi": "PI"}


def render_commands() -> str:
    from biobank.cli import app
    from biobank.cli.reference import render_commands as table

    return table(app)


def render_pages() -> str:
    """The Markdown table of every page: its section, title and address, and a tick for each role that may open it
    (the roles in the order of :class:`biobank.domain.vocab.Role`)."""
    from biobank.domain.vocab import Role
    from dashboards.shell.navigation import PAGES

    roles = [role.value for role in Role]
    unknown = sorted({role for spec in PAGES for role in spec.roles} - set(roles))
    if unknown:
        raise ValueError(f"navigation.PAGES names roles that are no Role: {unknown}")
    headings = [ROLE_HEADINGS.get(role, role) for role in roles]
    lines = [
        "| section | page | " + " | ".join(headings) + " |",
        "|---|---|" + ":-:|" * len(roles),
    ]
    for spec in PAGES:
        ticks = " | ".join("✓" if role in spec.roles else "" for role in roles)
        lines.append(f"| {spec.section} | **{spec.title}** (`/{spec.module}`) | {ticks} |")
    return "\n".join(lines)


SECTIONS: dict[str, Callable[[], str]] = {"commands": render_commands, "pages": render_pages}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def section(text: str, name: str) -> str:
    """What stands between a section's markers (without the blank lines around it)."""
    start, end = markers(name)
    found = re.search(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), text, flags=re.S)
    if found is None or text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"README.md must hold exactly one {start} ... {end} pair")
    return found.group(1).strip("\n")


def splice(text: str, name: str, body: str) -> str:
    """``text`` with the section ``name`` replaced by ``body``; everything outside the markers stays as it is."""
    section(text, name)  # both markers present, once each
    start, end = markers(name)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.S)
    return pattern.sub(lambda _match: f"{start}\n{body.strip()}\n{end}", text, count=1)


def generated(text: str) -> str:
    """The README ``text`` with every generated section as the code makes it now."""
    for name, render in SECTIONS.items():
        text = splice(text, name, render())
    return text


def stale(text: str) -> list[str]:
    """The sections of ``text`` that differ from what the code makes now."""
    return [name for name, render in SECTIONS.items() if section(text, name) != render().strip("\n")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the sections in README.md")
    parser.add_argument("--readme", type=Path, default=README, help="the README to check or write")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    if args.write:
        updated = generated(text)
        if updated != text:
            args.readme.write_text(updated, encoding="utf-8")
            print(f"{args.readme}: sections rewritten ({', '.join(SECTIONS)})")
        else:
            print(f"{args.readme}: up to date")
        return 0
    out_of_date = stale(text)
    if out_of_date:
        print(f"{args.readme}: out of date: {', '.join(out_of_date)}; run {WRITE_COMMAND}", file=sys.stderr)
        return 1
    print(f"{args.readme}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
