"""The derived-models page: list, lineage graph, take-rate chart, and a technician's passage form."""

from __future__ import annotations

from datetime import date

from biobank.db.engine import session_scope
from biobank.queries import derived as derived_reads
from biobank.services import derived
from biobank.services.inputs import ModelCreate, PassageCreate
from tests.support.apptest import assert_no_exception, make_app
from tests.support.factories import donor_with_material


def _model(engine, tech, death) -> str:
    with session_scope(engine) as session:
        made = donor_with_material(session, tech, death=death)
        model = derived.create_model(session, actor=tech, data=ModelCreate(source_code=made["L02-fresh"].code, kind="organoid", initiated_on=date(2026, 3, 15), matrix="matrigel_bme"))
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=date(2026, 3, 15)))
        return model.code


def test_page_renders_on_an_empty_database(db_url, viewer):
    at = make_app(db_url, page="derived")
    at.session_state["username"] = "viewer"
    at.run()
    assert_no_exception(at)
    assert any("No derived models yet" in i.value for i in at.info)


def test_page_lists_models_and_draws_the_lineage(db_url, engine, tech, viewer, death):
    code = _model(engine, tech, death)
    at = make_app(db_url, page="derived")
    at.session_state["username"] = "viewer"
    at.run()
    assert_no_exception(at)
    assert at.dataframe[0].value["code"].tolist() == [code]
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "donor\\nRA-0001" in dot or "RA-0001" in dot
    assert "p_P0" in dot and "region L02-A" in dot
    assert not at.tabs  # a viewer sees no write forms


def test_technician_records_a_passage_from_the_page(db_url, engine, tech, death):
    code = _model(engine, tech, death)
    at = make_app(db_url, page="derived")
    at.session_state["username"] = "tech"
    at.run()
    at.text_input(key="models_passage_parent").set_value("P0")
    at.text_input(key="models_passage_vessel").set_value("T75-2")
    at.date_input(key="models_passage_on").set_value(date(2026, 3, 29))
    form_buttons = [b for b in at.button if b.label == "Record passage"]
    form_buttons[0].click().run()
    assert_no_exception(at)
    assert any("passage P1 recorded" in s.value for s in at.success), [e.value for e in at.error]
    with session_scope(engine) as session:
        assert derived_reads.model_detail(session, code)["newest_passage"] == "P1"
