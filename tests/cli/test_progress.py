"""Progress bars of long commands (issue 19 item 8): drawn on a terminal, with rows or bytes, the rate and the time
left; quiet off a terminal and with --quiet."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from biobank.cli import app
from biobank.cli import progress as progress_module
from biobank.cli.progress import BYTES, Bar
from biobank.db import backup as backup_module

runner = CliRunner()
DONORS = "code,sex\n" + "".join(f"RA-{n:04d},female\n" for n in range(1, 41))


def fake_terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def test_a_terminal_shows_a_bar_with_rows_rate_and_time_left() -> None:
    console, out = fake_terminal()
    with Bar(console=console) as bar:
        assert bar.active
        report = bar.phases({"validate": "checking rows", "write": "writing rows"})
        for _ in range(30):
            report("validate", 1, None)
        report("write", 30, 30)
    text = out.getvalue()
    assert "checking rows" in text and "30 rows" in text
    assert "writing rows" in text and "30/30 rows" in text
    assert "rows/s" in text
    assert "0:00:00" in text  # time left and time taken


def test_bytes_are_shown_as_bytes() -> None:
    console, out = fake_terminal()
    with Bar(console=console) as bar:
        moved = bar.bytes_of("backing up")
        moved(512_000, 1_024_000)
        moved(1_024_000, 1_024_000)
    text = out.getvalue()
    assert "backing up" in text and "1.0/1.0 MB" in text
    assert BYTES == "bytes"


def test_not_a_terminal_or_quiet_draws_nothing() -> None:
    plain = io.StringIO()
    for bar in (Bar(console=Console(file=plain, force_terminal=False)), Bar(quiet=True, console=fake_terminal()[0])):
        with bar:
            assert not bar.active
            bar.phases({})("validate", 5, None)
            bar.task("x")(3)
            bar.bytes_of("y")(1, 2)
            bar.finish("x")
    assert plain.getvalue() == ""


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The commands' bars go to a fake terminal whose text the test reads."""
    out = io.StringIO()
    monkeypatch.setattr(progress_module, "Console",
                        lambda **_kw: Console(file=out, force_terminal=True, width=160, color_system=None))
    return out


def test_import_shows_reading_and_writing_on_a_terminal_and_nothing_with_quiet(
    db_url: str, tmp_path: Path, cli_login: Any, terminal: io.StringIO
) -> None:
    assert runner.invoke(app, ["users", "add", "boss", "--role", "admin", "--password", "granite-harbour-7"]).exit_code == 0
    cli_login("boss")
    path = tmp_path / "donors.csv"
    path.write_text(DONORS)
    result = runner.invoke(app, ["import", "donors", str(path), "--user", "boss", "--dry-run", "--quiet"])
    assert result.exit_code == 0, result.output
    assert terminal.getvalue() == ""
    result = runner.invoke(app, ["import", "donors", str(path), "--user", "boss"])
    assert result.exit_code == 0, result.output
    drawn = terminal.getvalue()
    assert "reading and checking" in drawn and "40 rows" in drawn
    assert "writing" in drawn and "40/40 rows" in drawn
    assert "inserted 40" in result.output and "━" not in result.output  # stdout keeps only the answer


def test_import_off_a_terminal_prints_no_bar(db_url: str, tmp_path: Path, cli_login: Any) -> None:
    assert runner.invoke(app, ["users", "add", "boss", "--role", "admin", "--password", "granite-harbour-7"]).exit_code == 0
    cli_login("boss")
    path = tmp_path / "donors.csv"
    path.write_text(DONORS)
    result = runner.invoke(app, ["import", "donors", str(path), "--user", "boss"])
    assert result.exit_code == 0, result.output
    assert "━" not in result.output and "rows/s" not in result.output


def test_sqlite_backup_and_restore_report_their_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import create_engine

    monkeypatch.setattr(backup_module, "RESTORE_PAGES", 16)
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 5000)
    seen: list[tuple[int, int | None]] = []
    engine = create_engine(f"sqlite:///{source}")
    made = backup_module.backup(engine, tmp_path / "copy.db", progress=lambda d, t: seen.append((d, t)))
    assert seen[0][0] == 0 and seen[-1] == (made.bytes, made.bytes)
    restored: list[tuple[int, int | None]] = []
    target = create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    backup_module.restore(target, made.path, progress=lambda d, t: restored.append((d, t)))
    assert len(restored) > 10  # step by step, not only the start and the end
    assert restored[-1] == (made.bytes, made.bytes)
    assert [d for d, _ in restored] == sorted(d for d, _ in restored)
    with sqlite3.connect(tmp_path / "target.db") as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (5000,)
    engine.dispose()
    target.dispose()
