"""The import page: preview with errors, then confirm; hidden from roles that may not import."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from biobank.models import User
from tests.support.apptest import assert_no_exception, make_app


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
