"""The planner page with models: a model-versus-tumour plan shows the suggested organoid and PDX as role ``model``
and stores them; the primary-unsampled reason is a text field that is stored with the plan and can be cleared."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from biobank.queries import plans as plan_reads
from biobank.services import planning
from tests.support.apptest import assert_no_exception, make_app

PDX = "RA0004-L06A-PDX1-P4-SF1"
ORGANOID = "RA0004-L04A-ORG1-P5-VC1"


@pytest.mark.demo(5)
def test_pi_stores_a_model_vs_tumour_plan_with_its_models_and_the_declaration(db_url, engine):
    at = make_app(db_url, page="planner")
    at.session_state["username"] = "pi"
    at.run()
    at.selectbox(key="planner_purpose").set_value("model_vs_tumour").run()
    at.multiselect(key="planner_donors").select("RA-0004").run()
    assert_no_exception(at)
    at.text_input(key="planner_unsampled_(new plan)").input("resected 2016 at another hospital").run()
    at.text_input(key="planner_code").input("MVT-UI-1")
    at.text_input(key="planner_name").input("Models versus tumour RA-0004")
    [save] = [b for b in at.button if b.label == "Save plan"]
    save.click().run()
    assert_no_exception(at)
    with Session(engine) as session:
        detail = plan_reads.plan_detail(session, "MVT-UI-1")
        plan = planning.get_plan(session, "MVT-UI-1")
    roles = {r["specimen_code"]: r["role"] for r in detail["specimens_detail"]}
    assert roles[PDX] == roles[ORGANOID] == "model"
    assert plan.primary_unsampled_reason == "resected 2016 at another hospital"
    assert not [f for f in detail["report"] if f["rule"] == "model_material_role"]

    # the saved draft: the field shows the reason; emptied and saved, the declaration is withdrawn
    field = at.text_input(key="planner_unsampled_MVT-UI-1")
    assert field.value == "resected 2016 at another hospital"
    field.input("").run()
    at.button(key="planner_save").click().run()
    assert_no_exception(at)
    with Session(engine) as session:
        assert planning.get_plan(session, "MVT-UI-1").primary_unsampled_reason is None
        roles = {r["specimen_code"]: r["role"] for r in plan_reads.plan_detail(session, "MVT-UI-1")["specimens_detail"]}
    assert roles[PDX] == roles[ORGANOID] == "model", "saving the draft keeps the model role"
