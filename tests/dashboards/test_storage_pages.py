"""AppTests for the storage browser and the distribution page."""

from __future__ import annotations

from biobank.db.engine import session_scope
from biobank.services import distribution, storage
from biobank.services import specimens as specimen_service
from tests.support.apptest import assert_no_exception, make_app
from tests.support.factories import by_format, donor_with_region, lab


def _stocked(engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        made = donor_with_region(session, tech)
        storage.store(session, actor=tech, codes=by_format(made, "snap_frozen"), box_code="BOX1", at="A1")
        return by_format(made, "snap_frozen")


def test_storage_page_renders_on_an_empty_database(db_url, tech):
    at = make_app(db_url, page="storage")
    at.session_state["username"] = "tech"
    at.run()
    assert_no_exception(at)
    assert any("No containers yet" in i.value for i in at.info)


def test_a_technician_opens_a_box_picks_a_tube_and_checks_it_out_and_back(db_url, engine, tech):
    codes = _stocked(engine, tech)
    at = make_app(db_url, page="storage")
    at.session_state["username"] = "tech"
    at.run()
    assert_no_exception(at)
    at.selectbox(key="storage_box").set_value("BOX1").run()
    cell = at.selectbox(key="storage_cell")
    assert cell.options == [f"A1 · {codes[0]}", f"A2 · {codes[1]}"]
    cell.set_value(f"A1 · {codes[0]}").run()
    assert_no_exception(at)
    at.button(key="storage_checkout").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == [f"{codes[0]} checked out"]
    at.button(key="storage_return").click().run()
    assert [s.value for s in at.success] == [f"{codes[0]} returned"]
    with session_scope(engine) as session:
        assert specimen_service.get_specimen(session, codes[0]).freeze_thaw_count == 1


def test_a_technician_stores_a_region_from_the_page(db_url, engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        donor_with_region(session, tech)
    at = make_app(db_url, page="storage")
    at.session_state["username"] = "tech"
    at.run()
    at.text_input(key="storage_store_region").input("RAP-1/L01-A")
    at.multiselect(key="storage_store_boxes").set_value(["BOX1", "LNBOX1", "DRAWER1"])
    at.button(key="FormSubmitter:storage_store_form-Store").click().run()
    assert_no_exception(at)
    assert at.success and at.success[0].value.startswith("stored 5:")


def test_a_viewer_sees_the_box_but_no_write_controls(db_url, engine, tech, viewer):
    codes = _stocked(engine, tech)
    at = make_app(db_url, page="storage")
    at.session_state["username"] = "viewer"
    at.run()
    at.selectbox(key="storage_box").set_value("BOX1").run()
    at.selectbox(key="storage_cell").set_value(f"A1 · {codes[0]}").run()
    assert_no_exception(at)
    keys = {b.key for b in at.button}
    assert "storage_checkout" not in keys and not at.tabs


def test_a_pi_approves_an_order_and_a_technician_ships_it(db_url, engine, tech, pi):
    codes = _stocked(engine, tech)
    with session_scope(engine) as session:
        distribution.create_order(session, actor=pi, study="PHYLO", recipient="Dr Lee", use="sequencing", code="DO-1")
        distribution.add_item(session, actor=pi, order_code="DO-1", specimen_code=codes[0], quantity=10)
    at = make_app(db_url, page="distribution")
    at.session_state["username"] = "pi"
    at.run()
    assert_no_exception(at)
    at.button(key="distribution_approve").click().run()
    assert [s.value for s in at.success] == ["DO-1 approved"]
    assert "distribution_ship_form" not in str(at)  # a PI does not ship

    at = make_app(db_url, page="distribution")
    at.session_state["username"] = "tech"
    at.run()
    assert not any(b.key == "distribution_approve" for b in at.button)
    at.button(key="FormSubmitter:distribution_ship_form-Ship").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == ["DO-1 shipped"]
    with session_scope(engine) as session:
        assert distribution.get_order(session, "DO-1").shipping_temperature == "-60to-85"
        assert specimen_service.get_specimen(session, codes[0]).quantity_remaining == 40
