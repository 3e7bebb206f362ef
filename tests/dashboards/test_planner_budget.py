"""The planner page's per-sample assay, depth and library and its budget line (issue #18 items 3 and 7): the budget
follows the editor's rows and the flow cell chosen (no write), and a per-sample depth edited in a draft is saved."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import text
from sqlmodel import Session

from biobank.services import planning
from tests.support.apptest import assert_no_exception, make_app

NEW_EDITOR = "planner_editor_(new plan)_RA-0001_wgs"


def edits(rows: dict[int, dict[str, object]]) -> dict[str, object]:
    """What st.data_editor keeps in the session state after the user edited ``rows`` (by row position)."""
    return {"edited_rows": rows, "added_rows": [], "deleted_rows": []}


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.demo(1)
def test_budget_follows_the_toggles_and_the_flow_cell_and_a_depth_edit_is_saved(db_url, engine):
    at = make_app(db_url, page="planner")
    at.session_state["username"] = "pi"
    at.run()
    at.multiselect(key="planner_donors").select("RA-0001").run()
    assert_no_exception(at)
    before = metrics(at)
    gb = float(before["Sequence (Gb)"].replace(",", ""))
    assert before["Lanes"] != "0" and before["Cost (USD)"] != "0"
    assert any(c.value.startswith("Budget: ") and "NovaSeq X 10B" in c.value for c in at.caption)

    # rows are sorted included first, the germline blood (GB1) before the tumour regions (L..): row 1 is a tumour,
    # at its default 90x of WGS (3.3 Gb per 1x)
    at.session_state[NEW_EDITOR] = edits({1: {"include": False}})
    at.run()
    assert_no_exception(at)
    assert float(metrics(at)["Sequence (Gb)"].replace(",", "")) == pytest.approx(gb - 297, abs=1)

    at.selectbox(key="planner_flow_cell_(new plan)").set_value("NextSeq 2000 P3").run()
    assert_no_exception(at)
    after = metrics(at)
    assert int(before["Lanes"]) == math.ceil(gb / 375)  # NovaSeq X 10B: 3,000 Gb on 8 lanes
    shown = float(after["Sequence (Gb)"].replace(",", ""))
    assert int(after["Lanes"]) == int(after["Flow cells"]) == math.ceil(shown / 360)  # one lane of 360 Gb per P3
    assert any("NextSeq 2000 P3" in c.value for c in at.caption)

    at.session_state[NEW_EDITOR] = edits({})
    at.text_input(key="planner_code").input("BUD-UI-1")
    at.text_input(key="planner_name").input("Budget of RA-0001")
    [save] = [b for b in at.button if b.label == "Save plan"]
    save.click().run()
    assert_no_exception(at)
    with Session(engine) as session:
        assert planning.get_plan(session, "BUD-UI-1").flow_cell == "NextSeq 2000 P3"
        assert session.execute(text("SELECT count(*) FROM plan_specimen WHERE target_depth IS NOT NULL")).scalar_one() == 0

    # the saved draft: a tumour's depth edited to 120x (and a library kit named) is saved for that sample only
    at.session_state["planner_editor_BUD-UI-1_RA-0001_wgs"] = edits(
        {1: {"target_depth": 120.0, "library": "TruSeq DNA PCR-free"}})
    at.run()
    assert_no_exception(at)
    at.button(key="planner_save").click().run()
    assert_no_exception(at)
    with Session(engine) as session:
        saved = session.execute(text(
            "SELECT ps.role, ps.assay, ps.target_depth, ps.library FROM plan_specimen ps JOIN analysis_plan p "
            "ON p.id = ps.plan_id WHERE p.code = 'BUD-UI-1' AND ps.included AND ps.target_depth IS NOT NULL")).all()
        cost = planning.plan_budget(session, "BUD-UI-1")
    assert [tuple(r) for r in saved] == [("tumour", None, 120.0, "TruSeq DNA PCR-free")]
    assert sorted(s.depth for s in cost.samples if s.role == "tumour")[-1] == 120.0
    assert f"{cost.gb:,.0f}" == metrics(at)["Sequence (Gb)"]
