"""The import page: preview with errors, then confirm; hidden from roles that may not import."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from biobank.models import User
from tests.support.apptest import assert_no_exception, make_app
from tests.support.cli_auth import issue_cli_token


def test_paste_preview_errors_then_fix_and_import(db_url: str, engine: Engine, tech: User) -> None:
    at = make_app(db_url, page="import_data")
    at.session_state["username"] = "tech"
    at.run()
    assert_no_exception(at)
    at.text_area(key="import_paste").input("code,sex,age_at_death\nRA-0001,F,abc\n").run()
    assert_no_exception(at)
    assert at.error and "Nothing was written" in at.error[0].value
    assert not [b for b in at.button if b.key == "import_confirm"]
    at.text_area(key="import_paste").input("code,sex,age_at_death\nRA-0001,F,61\nRA-0002,male,70\n").run()
    at.button(key="import_confirm").click().run()
    assert_no_exception(at)
    assert at.success and "inserted 2" in at.success[0].value
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM donor")).scalar() == 2


def test_a_viewer_sees_no_import_controls(db_url: str, viewer: User) -> None:
    at = make_app(db_url, page="import_data")
    at.session_state["username"] = "viewer"
    at.run()
    assert_no_exception(at)
    assert not at.text_area and at.info


def test_the_preview_reports_what_the_cli_dry_run_reports(db_url: str, engine: Engine, tech: User, tmp_path) -> None:
    """A person's name as a donor code and a mistyped site are errors in the page's preview, row by row, exactly as
    `biobank import --dry-run` lists them; nothing is written."""
    from typer.testing import CliRunner

    from biobank.cli import app

    text = "code,sex,age_at_death,primary_site_code\nJohn Smith,F,61,BREAST\nRA-0102,male,70,BREST\nRA-0103,female,,\n"
    at = make_app(db_url, page="import_data")
    at.session_state["username"] = "tech"
    at.run()
    at.text_area(key="import_paste").input(text).run()
    errors = next(d.value for d in at.dataframe if "message" in d.value.columns)
    shown = {(int(r), m) for r, m in zip(errors["row"], errors["message"], strict=True)}
    assert shown == {
        (2, "Code (John Smith): use only letters, digits, '.', '_' and '-' (no spaces or colons)"),
        (3, "Primary site (BREST): not an anatomical-site code: did you mean BREAST?"),
    }
    path = tmp_path / "donors.csv"
    path.write_text(text)
    result = CliRunner().invoke(app, ["import", "donors", str(path), "--dry-run", "--user", "tech"],
                                env={"BIOBANK_DATABASE_URL": db_url, "BIOBANK_TOKEN": issue_cli_token(db_url, "tech")})
    listed = {line for line in result.output.splitlines() if line.startswith("error:")}
    assert listed == {f"error: row {r}, {'code' if r == 2 else 'primary_site_code'}: {m}" for r, m in shown}
