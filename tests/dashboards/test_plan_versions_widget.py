"""The reservations and versions part of the planner page: a PI sees what approval reserved, amends the plan (the
page moves to the new draft), cancels the draft after confirming; a viewer sees the table without forms."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from biobank.models.plans import AnalysisPlan
from tests.support.apptest import assert_no_exception, click, make_app
from tests.support.factories import wgs_plan_of_ra0001

GERMLINE = "RA0001-GB1-FZ1-BUF1-DNA1"




def statuses(engine) -> dict[str, tuple[str, str | None]]:
    with Session(engine) as session:
        plans = session.exec(select(AnalysisPlan)).all()
        ids = {p.id: p.code for p in plans}
        return {p.code: (p.status, ids.get(p.supersedes_id)) for p in plans}


def reservation_table(at):
    """The reservation table (a read-only dataframe: AppTest does not expose its key)."""
    [frame] = [d.value for d in at.dataframe if "Reserved" in getattr(d.value, "columns", [])]
    return frame



@pytest.mark.demo(1)
def test_pi_amends_then_cancels_the_draft_from_the_planner_page(db_url, engine):
    wgs_plan_of_ra0001(engine)
    at = make_app(db_url, page="planner")
    at.session_state["username"] = "pi"
    at.query_params["plan"] = "WGS-1"
    at.run()
    assert_no_exception(at)
    assert any(s.value == "Reservations and versions" for s in at.subheader)
    frame = reservation_table(at)
    assert frame.set_index("Specimen").loc[GERMLINE, "Reserved"] == 1000

    at.text_input(key="plan_versions_amend_reason_WGS-1").input("swap region L07-B")
    click(at, "Amend plan")
    assert statuses(engine)["WGS-1-v2"] == ("draft", "WGS-1")
    assert at.selectbox(key="planner_plan").value == "WGS-1-v2", "the page shows the new draft"
    assert any("Plan WGS-1-v2 drafted from WGS-1" in s.value for s in at.success)

    # cancelling needs the tick; then the draft is cancelled and the approved plan stays as it was
    at.text_input(key="plan_versions_cancel_reason_WGS-1-v2").input("not needed after all")
    click(at, "Cancel plan")
    assert any("Tick 'Yes, cancel WGS-1-v2'" in e.value for e in at.error)
    assert statuses(engine)["WGS-1-v2"][0] == "draft"
    at.checkbox(key="plan_versions_cancel_confirm_WGS-1-v2").check()
    click(at, "Cancel plan")
    assert any("Plan WGS-1-v2 cancelled" in s.value for s in at.success)
    assert statuses(engine) == {"WGS-1": ("approved", None), "WGS-1-v2": ("cancelled", None)}

    # the approved plan is cancelled from its own page; a refusal (blank reason) is one error line
    at.query_params["plan"] = "WGS-1"  # the page follows the link's plan
    at.run()
    assert not at.checkbox(key="plan_versions_cancel_confirm_WGS-1").value, "a tick never carries to another plan"
    at.checkbox(key="plan_versions_cancel_confirm_WGS-1").check()
    click(at, "Cancel plan")
    assert any("Reason" in e.value for e in at.error)
    at.text_input(key="plan_versions_cancel_reason_WGS-1").input("funding withdrawn")
    click(at, "Cancel plan")
    assert statuses(engine)["WGS-1"] == ("cancelled", None)
    assert any("holds nothing any more" in c.value for c in at.caption)


@pytest.mark.demo(1)
def test_viewer_sees_reservations_without_forms(db_url, engine):
    wgs_plan_of_ra0001(engine)
    at = make_app(db_url, page="planner")
    at.session_state["username"] = "viewer"
    at.query_params["plan"] = "WGS-1"
    at.run()
    assert_no_exception(at)
    assert not reservation_table(at).empty
    assert not [b for b in at.button if b.label in ("Amend plan", "Cancel plan")]
