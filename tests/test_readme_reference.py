"""The README's command list and page table are what the code makes them (``scripts/readme_reference.py``), and every
command the README's examples run exists."""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _load_writer():
    spec = importlib.util.spec_from_file_location("readme_reference", ROOT / "scripts" / "readme_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


writer = _load_writer()


@pytest.mark.parametrize("name", sorted(writer.SECTIONS))
def test_the_readme_section_is_what_the_code_makes(name):
    text = README.read_text(encoding="utf-8")
    shown = writer.section(text, name)
    made = writer.SECTIONS[name]().strip("\n")
    diff = "\n".join(difflib.unified_diff(shown.splitlines(), made.splitlines(), "README.md", "generated",
                                          lineterm="", n=0))
    assert shown == made, (
        f"README.md's {name} section differs from the real {'CLI' if name == 'commands' else 'navigation'}: "
        f"run `{writer.WRITE_COMMAND}`\n{diff[:4000]}"
    )


def test_the_writer_replaces_only_what_lies_between_the_markers():
    text = "intro\n<!-- pages:start -->\nold\n<!-- pages:end -->\noutro\n"
    assert writer.splice(text, "pages", "new\nrows\n") == "intro\n<!-- pages:start -->\nnew\nrows\n<!-- pages:end -->\noutro\n"
    assert writer.section(writer.splice(text, "pages", "x"), "pages") == "x"
    with pytest.raises(ValueError, match="exactly one"):
        writer.splice("no markers here", "pages", "x")
    with pytest.raises(ValueError, match="exactly one"):
        writer.section(text + text, "pages")


def test_the_page_table_has_a_column_for_every_role():
    from biobank.domain.vocab import Role

    header = writer.render_pages().splitlines()[0]
    assert [h.strip() for h in header.strip("|").split("|")][2:] == [writer.ROLE_HEADINGS.get(r, r) for r in Role]


def test_the_writer_checks_and_writes_a_readme(tmp_path, capsys):
    copy = tmp_path / "README.md"
    copy.write_text("# x\n<!-- commands:start -->\n<!-- commands:end -->\n<!-- pages:start -->\n<!-- pages:end -->\n")
    assert writer.main(["--readme", str(copy)]) == 1
    assert writer.WRITE_COMMAND in capsys.readouterr().err
    assert writer.main(["--readme", str(copy), "--write"]) == 0
    assert writer.main(["--readme", str(copy)]) == 0
    assert "`biobank users role USERNAME ROLE`" in copy.read_text()


# ------------------------------------------------------------------------------ the examples run real commands


def _served() -> set[tuple[str, ...]]:
    from biobank.cli import app
    from biobank.cli.reference import commands

    return {entry.path for entry in commands(app)}


def example_commands(text: str) -> list[tuple[str, ...]]:
    """The words after ``biobank`` of each command in the README's shell blocks, alternatives after `` | `` too
    (``biobank users list | disable NAME`` names ``users list`` and ``users disable``)."""
    found: list[tuple[str, ...]] = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            match = re.match(r"^(?:[A-Z_]+=\S+\s+)*(?:\S*/)?biobank\s+(.*)$", line)
            if match is None:
                continue
            first, *alternatives = match.group(1).split(" | ")
            words = [w for w in first.split() if not w.startswith("-")]
            if not words:
                continue
            found.append(tuple(words[:2]))
            found += [(words[0], alt.split()[0]) for alt in alternatives if alt.split()]
    return found


def test_every_command_in_the_readme_examples_exists():
    served = _served()
    leaves = {path[0] for path in served if len(path) == 1}
    examples = example_commands(README.read_text(encoding="utf-8"))
    assert len(examples) > 40
    unknown = sorted({words for words in examples if words[0] not in leaves and words not in served})
    assert unknown == [], f"README examples run commands the CLI does not have: {unknown}"


def test_the_example_reader_reads_alternatives_and_environment():
    text = "```sh\nBIOBANK_DEMO_MODE=true biobank demo --donors 3\nbiobank users list | disable NAME  # x | y\n```\n"
    assert example_commands(text) == [("demo", "3"), ("users", "list"), ("users", "disable")]
