"""The import, template and labels commands: exit codes, error CSV, templates that re-import."""

from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import load_workbook
from typer.testing import CliRunner

from biobank.cli import app
from biobank.imports.engine import kind_names

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def test_template_csv_explains_every_column_and_imports_once_filled(db_url: str, tmp_path: Path, cli_login) -> None:
    assert invoke("users", "add", "boss", "--role", "admin", "--password", "granite-harbour-7").exit_code == 0
    cli_login("boss")
    for kind in kind_names():
        result = invoke("template", kind)
        assert result.exit_code == 0
        comments = [line for line in result.output.splitlines() if line.startswith("#")]
        header = result.output.splitlines()[len(comments)].split(",")
        assert all(any(line.startswith(f"# {name}:") for line in comments) for name in header)
    filled = invoke("template", "donors").output + "RA-0009,female,55,,,,,,,,,,,\n"
    path = tmp_path / "donors.csv"
    path.write_text(filled)
    result = invoke("import", "donors", str(path), "--user", "boss")
    assert result.exit_code == 0, result.output
    assert "inserted 1" in result.output


def test_template_xlsx_has_a_columns_sheet(tmp_path: Path) -> None:
    out = tmp_path / "specimens.xlsx"
    assert invoke("template", "specimens", "-o", str(out)).exit_code == 0
    book = load_workbook(out)
    assert book.sheetnames == ["specimens", "columns"]
    described = [row[0] for row in book["columns"].iter_rows(min_row=2, values_only=True) if row[0]]
    assert "storage_format" in described and "parent_code" in described


def test_import_with_errors_exits_2_and_writes_the_error_csv(db_url: str, tmp_path: Path, cli_login) -> None:
    invoke("users", "add", "boss", "--role", "admin", "--password", "granite-harbour-7")
    cli_login("boss")
    path = tmp_path / "donors.csv"
    path.write_text("code,sex,age_at_death\nRA-0001,F,abc\n")
    errors = tmp_path / "errors.csv"
    result = invoke("import", "donors", str(path), "--errors", str(errors), "--user", "boss")
    assert result.exit_code == 2
    assert "row 2, age_at_death" in result.output and "nothing was written" in result.output
    rows = list(csv.DictReader(errors.open()))
    assert [(r["row"], r["column"], r["value"], r["severity"]) for r in rows] == [
        ("2", "age_at_death", "abc", "error"), ("2", "sex", "", "note")]
    assert invoke("import", "donors", str(path), "--user", "boss", "--dry-run", "--json").exit_code == 2
    assert invoke("import", "plants", str(path), "--user", "boss").exit_code == 2


def test_labels_command_writes_pdf_and_needs_one_source(db_url: str, tmp_path: Path) -> None:
    assert invoke("labels", "-o", str(tmp_path / "x.pdf")).exit_code == 2
    assert invoke("labels", "NOPE", "-o", str(tmp_path / "x.pdf")).exit_code == 2


def test_the_command_line_adds_its_own_flag_to_the_librarys_neutral_advice(db_url: str, tmp_path: Path, cli_login) -> None:
    """The library says "choose upsert mode"; only the command line knows the flag is --mode upsert."""
    invoke("users", "add", "boss", "--role", "admin", "--password", "granite-harbour-7")
    cli_login("boss")
    path = tmp_path / "donors.csv"
    path.write_text("code,sex\nRA-0001,female\n")
    assert invoke("import", "donors", str(path), "--user", "boss").exit_code == 0
    again = invoke("import", "donors", str(path), "--user", "boss")
    assert again.exit_code == 2
    assert "choose upsert mode to update existing rows" in again.output
    assert "hint: run again with --mode upsert" in again.output


def test_a_command_without_a_user_says_how_to_give_one(db_url: str) -> None:
    invoke("users", "add", "boss", "--role", "admin", "--password", "granite-harbour-7")
    result = invoke("storage", "add", "UH", "--kind", "site")
    assert result.exit_code == 2
    assert result.output.strip() == "error: enter: no user is signed in (run 'biobank login', or set BIOBANK_TOKEN)"
