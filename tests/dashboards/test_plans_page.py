"""The planner page: a PI chooses a demo donor, reads the suggestion and the rule report, saves, approves, downloads."""

from __future__ import annotations

from sqlmodel import Session

from biobank.db.engine import session_scope
from biobank.demo.cohort import load_demo
from biobank.exports import service as export_service
from biobank.queries import plans as plan_reads
from tests.support.apptest import assert_no_exception, make_app


def test_pi_plans_saves_approves_and_gets_downloads(db_url, engine):
    with session_scope(engine) as session:
        load_demo(session, donors_count=2, seed=7)
    at = make_app(db_url, page="planner")
    at.session_state["username"] = "pi"
    at.run()
    assert_no_exception(at)
    assert at.title[0].value == "Analysis planner"

    at.multiselect(key="planner_donors").select("RA-0001").run()
    assert_no_exception(at)
    assert {m.label: m.value for m in at.metric}["Errors"] == "0"
    at.text_input(key="planner_code").input("WGS-UI-1")
    at.text_input(key="planner_name").input("Multiregional WGS of RA-0001")
    [save] = [b for b in at.button if b.label == "Save plan"]
    save.click().run()
    assert_no_exception(at)
    with Session(engine) as session:
        detail = plan_reads.plan_detail(session, "WGS-UI-1")
    assert detail["status"] == "draft" and detail["specimens"] >= 3

    assert at.selectbox(key="planner_plan").value == "WGS-UI-1"  # the saved plan is the one shown
    assert at.query_params["plan"] == "WGS-UI-1"
    assert next(s.value for s in at.success).startswith("Plan WGS-UI-1 saved as a draft")
    at.button(key="planner_approve").click().run()
    assert_no_exception(at)
    assert f"Plan WGS-UI-1 approved with {detail['specimens']} specimen(s)" in next(s.value for s in at.success)
    with Session(engine) as session:
        assert plan_reads.plan_detail(session, "WGS-UI-1")["status"] == "approved"
    downloads = at.get("download_button")
    assert len(downloads) >= 6
    # the exports are prepared with a progress bar, which ends full and says how many
    (bar,) = at.get("progress")
    assert bar.proto.value == 100 and bar.proto.text.startswith(f"Prepared {len(export_service.TARGETS)} of ")


def test_viewer_sees_the_suggestion_without_write_controls(db_url, engine):
    with session_scope(engine) as session:
        load_demo(session, donors_count=2, seed=7)
    at = make_app(db_url, page="planner")
    at.session_state["username"] = "viewer"
    at.run()
    at.multiselect(key="planner_donors").select("RA-0001").run()
    assert_no_exception(at)
    assert not at.text_input and not [b for b in at.button if b.label in ("Save plan", "Approve")]
    assert any(m.label == "Errors" for m in at.metric)
