"""AppTests of the specimen list: filters narrow the table, rows link to their specimen, a bulk action runs on the
selection in one unit of work and confirms with the count; the printables every page can offer."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from biobank.db.engine import session_scope
from biobank.models import CustodyEvent, DistributionItem, Specimen, User
from biobank.queries import storage as storage_reads
from dashboards.data import specimens as data_specimens
from dashboards.shell import links
from tests.printables.reading import in_order, text
from tests.queries.test_specimen_list import LATE, A, B, stock
from tests.support.apptest import assert_no_exception, make_app
from tests.support.dbtools import snapshot

TABLE = "specimens_table"


@pytest.fixture
def bank(engine: Engine, tech: User, pi: User, viewer: User) -> Engine:
    with session_scope(engine) as session:
        stock(session, tech, pi)
    return engine


def opened(db_url: str, username: str) -> AppTest:
    at = make_app(db_url, page="specimens")
    at.session_state["username"] = username
    at.run()
    assert_no_exception(at)
    return at


def shown_codes(at: AppTest) -> list[str]:
    return [link.split("specimen=", 1)[1] for link in at.dataframe(key=TABLE).value["link"]]


def tick(at: AppTest, codes: list[str]) -> AppTest:
    """Tick the rows of these codes, as a click on the table's row checkboxes does."""
    shown = shown_codes(at)
    at.session_state[TABLE] = {"selection": {"rows": [shown.index(c) for c in codes], "columns": [], "cells": []}}
    at.run()
    assert_no_exception(at)
    return at


def status_of(engine: Engine, code: str) -> str:
    with Session(engine) as session:
        return session.exec(select(Specimen.status).where(Specimen.code == code)).one()


def test_every_specimen_is_listed_and_links_to_its_page(db_url, bank):
    at = opened(db_url, "viewer")
    table = at.dataframe(key=TABLE).value
    assert len(table) == 15 and shown_codes(at) == sorted(shown_codes(at))
    assert table["link"][0] == links.url("specimen", f"{A}FF1")
    first = table.iloc[shown_codes(at).index(f"{A}SF1")]
    assert (first["donor"], first["case"], first["site_label"], first["storage_format"], first["status"]) == (
        "RA-0001", "RAP-1", "Liver", "snap frozen", "available")
    assert first["location"] == "UH/LAB1/FRZ1/R1/BOX1:A1" and first["quantity_text"] == "50/50 mg"
    assert table.iloc[shown_codes(at).index(f"{A}FR1")]["location"] == "not stored"
    assert at.download_button(key="specimens_csv") is not None


def test_filters_narrow_the_table(db_url, bank):
    at = opened(db_url, "tech")
    at.multiselect(key="specimens_donor").set_value(["RA-0002"]).run()
    assert_no_exception(at)
    assert len(shown_codes(at)) == 9 and all(c.startswith("RA0002") for c in shown_codes(at))
    at.multiselect(key="specimens_format").set_value(["snap_frozen"]).run()
    assert shown_codes(at) == [f"{B}SF1", f"{B}SF2", f"{LATE}SF1", f"{LATE}SF2"]
    at.selectbox(key="specimens_box").set_value("FRZ1").run()
    assert shown_codes(at) == [f"{B}SF1", f"{B}SF2"]  # in the freezer's racks and boxes
    at.multiselect(key="specimens_donor").set_value([]).run()
    at.multiselect(key="specimens_format").set_value([]).run()
    at.selectbox(key="specimens_box").set_value(None).run()
    at.selectbox(key="specimens_plan").set_value("WGS-1").run()
    assert shown_codes(at) == [f"{A}SF1"]
    at.selectbox(key="specimens_plan").set_value(None).run()
    at.multiselect(key="specimens_case").set_value(["RAP-2"]).run()
    at.multiselect(key="specimens_status").set_value(["available"]).run()
    at.multiselect(key="specimens_site").set_value(["LIVER"]).run()
    at.date_input(key="specimens_collected").set_value((date(2026, 3, 15), date(2026, 3, 15))).run()
    assert_no_exception(at)
    assert shown_codes(at) == [f"{LATE}FF1", f"{LATE}SF1", f"{LATE}SF2"]


def test_a_filter_change_clears_the_selection(db_url, bank):
    at = tick(opened(db_url, "tech"), [f"{A}SF1", f"{A}SF2"])
    assert at.subheader[0].value == "2 specimens selected"
    at.multiselect(key="specimens_donor").set_value(["RA-0002"]).run()
    assert_no_exception(at)
    assert not at.subheader  # the rows moved: nothing stays selected


def test_dispose_needs_a_reason_and_confirms_with_the_count(db_url, bank):
    at = tick(opened(db_url, "tech"), [f"{A}SF2", f"{B}SF2", f"{A}OC1"])
    at.selectbox(key="specimens_action").set_value("dispose").run()
    go = at.button(key="specimens_action_go")
    assert go.disabled and go.proto.label == "Dispose 3 specimens"
    at.text_input(key="specimens_action_reason").input("freezer failure").run()
    assert not at.button(key="specimens_action_go").disabled
    at.button(key="specimens_action_go").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == ["3 specimens disposed"]
    assert not at.subheader  # the selection is cleared after the action
    for code in (f"{A}SF2", f"{B}SF2", f"{A}OC1"):
        assert status_of(bank, code) == "disposed"
    with Session(bank) as session:
        notes = session.exec(select(CustodyEvent.note).where(CustodyEvent.kind == "disposed")).all()
        assert notes == ["freezer failure"] * 3
        assert storage_reads.box_view(session, "BOX1")["occupied"] == 1  # A-SF2 left its position


def test_a_bulk_action_is_all_or_nothing(db_url, bank):
    """Checking out two stored tubes and one that was never stored: the third refuses, so none goes out."""
    at = tick(opened(db_url, "tech"), [f"{A}SF1", f"{A}FR1", f"{B}SF1"])
    at.selectbox(key="specimens_action").set_value("check_out").run()
    before = snapshot(bank)
    at.button(key="specimens_action_go").click().run()
    assert_no_exception(at)
    assert not at.success and "check out:" in at.error[0].value and "FR1" in at.error[0].value
    assert snapshot(bank) == before
    tick(at, [f"{A}SF1", f"{B}SF1"])
    at.selectbox(key="specimens_action").set_value("check_out").run()
    at.text_input(key="specimens_action_purpose").input("RNA extraction").run()
    at.button(key="specimens_action_go").click().run()
    assert [s.value for s in at.success] == ["2 specimens checked out"]
    assert status_of(bank, f"{A}SF1") == status_of(bank, f"{B}SF1") == "in_use"
    tick(at, [f"{A}SF1", f"{B}SF1"])
    at.selectbox(key="specimens_action").set_value("return").run()
    at.checkbox(key="specimens_action_kept_frozen").check().run()
    at.button(key="specimens_action_go").click().run()
    assert [s.value for s in at.success] == ["2 specimens returned"]
    assert status_of(bank, f"{A}SF1") == "available"


def test_store_then_move_a_selection(db_url, bank):
    at = tick(opened(db_url, "tech"), [f"{A}OC1", f"{B}OC1"])
    at.selectbox(key="specimens_action").set_value("store").run()
    assert at.button(key="specimens_action_go").disabled  # no box chosen yet
    at.selectbox(key="specimens_action_box").set_value("BOX2").run()
    at.text_input(key="specimens_action_at").input("C1").run()
    at.button(key="specimens_action_go").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == ["2 specimens stored"]
    with Session(bank) as session:
        cells = {c["position"]: c["code"] for c in storage_reads.box_view(session, "BOX2")["cells"]}
    assert cells == {"B3": f"{B}SF2", "C1": f"{A}OC1", "C2": f"{B}OC1"}
    tick(at, [f"{A}OC1", f"{B}OC1"])
    at.selectbox(key="specimens_action").set_value("move").run()
    at.selectbox(key="specimens_action_box").set_value("BOX10").run()
    at.button(key="specimens_action_go").click().run()
    assert [s.value for s in at.success] == ["2 specimens moved"]
    with Session(bank) as session:
        cells = {c["position"]: c["code"] for c in storage_reads.box_view(session, "BOX10")["cells"]}
    assert cells == {"A1": f"{B}SF1", "A2": f"{A}OC1", "A3": f"{B}OC1"}


def test_a_pi_adds_a_selection_to_a_draft_order(db_url, bank):
    at = tick(opened(db_url, "pi"), [f"{A}SF2", f"{B}SF1"])
    assert at.selectbox(key="specimens_action").options == ["Add to order"]  # a PI does not store or dispose
    at.selectbox(key="specimens_action").set_value("add_to_order").run()
    at.selectbox(key="specimens_action_order").set_value("DO-1").run()
    at.button(key="specimens_action_go").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == ["2 specimens added to DO-1"]
    with Session(bank) as session:
        assert len(session.exec(select(DistributionItem)).all()) == 4


def test_a_viewer_can_print_and_export_but_not_act(db_url, bank):
    at = tick(opened(db_url, "viewer"), [f"{A}SF1"])
    assert at.subheader[0].value == "1 specimen selected"
    assert {d.key for d in at.download_button} == {"specimens_csv", "specimens_labels_pdf", "specimens_pick_list_pdf"}
    assert [b.key for b in at.button] == ["sign_out"]
    assert "specimens_action" not in {s.key for s in at.selectbox}


def test_the_printables_the_pages_offer(db_url, bank):
    order_pick = text(data_specimens.order_pick_list_pdf(db_url, "DO-1"))
    assert in_order(order_pick, [f"{B}VC1", f"{A}SF1"]) == [f"{A}SF1", f"{B}VC1"]
    assert "Shipment manifest: order DO-1" in text(data_specimens.order_manifest_pdf(db_url, "DO-1"))
    assert f"{A}SF1" in text(data_specimens.plan_pick_list_pdf(db_url, "WGS-1"))
    box = text(data_specimens.box_map_pdf(db_url, "LNBOX1"))
    assert in_order(box, [f"{A}VC1", f"{B}VC1"]) == [f"{B}VC1", f"{A}VC1"]
    chosen = text(data_specimens.selection_pick_list_pdf(db_url, [f"{A}VC1", f"{A}SF1"]))
    assert in_order(chosen, [f"{A}VC1", f"{A}SF1"]) == [f"{A}SF1", f"{A}VC1"]
    assert data_specimens.selection_labels_pdf(db_url, [f"{A}SF1"]).startswith(b"%PDF")
    assert data_specimens.box_labels_pdf(db_url, "BOX1", "cassette").startswith(b"%PDF")


def test_an_empty_bank_shows_an_empty_list(db_url, tech):
    at = opened(db_url, "tech")
    assert at.dataframe(key=TABLE).value.empty
    assert at.caption[0].value.startswith("0 specimens")
    assert at.download_button(key="specimens_csv").proto.disabled
