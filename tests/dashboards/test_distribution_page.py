"""The distribution page: a new draft is the order shown, times read in the lab's zone, orders have links."""

from __future__ import annotations

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.services import distribution, storage
from tests.support.apptest import assert_no_exception, make_app
from tests.support.factories import by_format, donor_with_region, lab


def _shipped(engine, tech, pi) -> str:
    with session_scope(engine) as session:
        lab(session, tech)
        made = donor_with_region(session, tech)
        code = by_format(made, "snap_frozen")[0]
        storage.store(session, actor=tech, codes=[code], box_code="BOX1", at="A1")
        distribution.create_order(session, actor=pi, study="PHYLO", recipient="Dr Lee", use="sequencing", code="DO-1")
        distribution.add_item(session, actor=pi, order_code="DO-1", specimen_code=code, quantity=10)
        distribution.approve(session, actor=pi, order_code="DO-1")
        order = distribution.ship(session, actor=tech, order_code="DO-1", shipping_temperature="-60to-85")
        return order.shipped_at.astimezone(get_settings().zone).strftime("%d %b %Y %H:%M")


def test_shipping_times_read_in_the_labs_zone_not_raw_utc(db_url, engine, tech, pi):
    shipped = _shipped(engine, tech, pi)
    at = make_app(db_url, page="distribution")
    at.session_state["username"] = "pi"
    at.run()
    assert_no_exception(at)
    table = at.dataframe[0].value
    column = f"shipped ({get_settings().timezone})"
    assert list(table[column]) == [shipped] and "+00:00" not in shipped


def test_a_new_draft_order_is_the_one_shown_and_its_link_is_in_the_address_bar(db_url, engine, tech, pi):
    _shipped(engine, tech, pi)
    at = make_app(db_url, page="distribution")
    at.session_state["username"] = "pi"
    at.run()
    at.text_input(key="distribution_new_study").input("ORGANOIDS")
    at.text_input(key="distribution_new_recipient").input("Dr Okafor")
    at.button(key="FormSubmitter:distribution_create_form-Create draft").click().run()
    assert_no_exception(at)
    new = at.success[0].value.split()[1]
    assert new != "DO-1"
    assert at.selectbox(key="distribution_order").value == new
    assert at.query_params["order"] == new


def test_an_order_link_opens_that_order(db_url, engine, tech, pi):
    _shipped(engine, tech, pi)
    with session_scope(engine) as session:
        distribution.create_order(session, actor=pi, study="OTHER", recipient="Dr Kim", use="sequencing", code="DO-2")
    at = make_app(db_url, page="distribution")
    at.session_state["username"] = "pi"
    at.query_params["order"] = "DO-1"
    at.run()
    assert at.selectbox(key="distribution_order").value == "DO-1"


def test_an_order_offers_its_pick_list_and_manifest_and_they_name_its_items(db_url, engine, tech, pi):
    from biobank.printables import manifest_pdf, pick_list_pdf

    _shipped(engine, tech, pi)
    at = make_app(db_url, page="distribution")
    at.session_state["username"] = "tech"
    at.run()
    labels = {b.label for b in at.get("download_button")}
    assert {"Pick list (PDF)", "Shipment manifest (PDF)"} <= labels
    with session_scope(engine) as session:
        assert pick_list_pdf(session, order="DO-1").startswith(b"%PDF")
        assert manifest_pdf(session, "DO-1").startswith(b"%PDF")
