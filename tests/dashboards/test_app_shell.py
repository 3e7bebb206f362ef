"""The app shell renders on an empty database and on the demo cohort."""

from __future__ import annotations

from biobank.db.engine import session_scope
from biobank.demo.cohort import load_demo
from tests.support.apptest import assert_no_exception, make_app


def test_home_page_renders_on_an_empty_database(db_url, viewer):
    at = make_app(db_url)
    at.session_state["username"] = "viewer"
    at.run()
    assert_no_exception(at)
    assert at.title[0].value == "Rapid-autopsy biobank"
    assert any("No specimens yet" in i.value for i in at.info)


def test_home_page_shows_cohort_counts_of_the_demo(db_url, engine):
    with session_scope(engine) as session:
        counts = load_demo(session, donors_count=3, seed=1)
    at = make_app(db_url)
    at.session_state["username"] = "pi"
    at.run()
    assert_no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Donors"] == "3"
    assert metrics["Specimens"] == f"{counts['specimens']:,}"
