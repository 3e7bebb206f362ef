"""AppTests for the storage browser (box map, scan to store, actions) and the distribution page."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import func, select

from biobank.db.engine import session_scope
from biobank.domain.vocab import Fixative, StorageFormat
from biobank.models import Checkout, Container, Specimen, SpecimenLocation
from biobank.services import distribution, storage
from biobank.services import specimens as specimen_service
from biobank.services.inputs import FormatRequest
from tests.conftest import DEATH
from tests.support.apptest import assert_no_exception, make_app
from tests.support.factories import by_format, collect, donor_with_region, lab, make_case


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


# ------------------------------------------------------------------------------------------------ the box map


def _signed_in(db_url, username="tech", box=None):
    at = make_app(db_url, page="storage")
    at.session_state["username"] = username
    at.run()
    assert_no_exception(at)
    if box is not None:
        at.selectbox(key="storage_box").set_value(box).run()
        assert_no_exception(at)
    return at


def _texts(at):
    return {m.value for m in at.markdown}


def _tables(at, column):
    """The tables on the page with a ``code`` and this column (a display table has no key AppTest can find)."""
    return [d.value for d in at.dataframe if {"code", column} <= set(d.value.columns)]


def _located(engine):
    """Where each stored specimen is: code -> (box, position)."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(Specimen.code, Container.code, SpecimenLocation.position)
            .join(SpecimenLocation, SpecimenLocation.specimen_id == Specimen.id)
            .join(Container, Container.id == SpecimenLocation.container_id)
        ).all()
    return {code: (box, position) for code, box, position in rows}


def test_a_9x9_box_labels_every_row_and_column_and_shows_codes_in_their_cells(db_url, engine, tech):
    codes = _stocked(engine, tech)
    at = _signed_in(db_url, box="BOX1")
    texts = _texts(at)
    assert {f"**{r}**" for r in "ABCDEFGHI"} <= texts  # every row, B, D, F and H included
    assert {f"**{c}**" for c in range(1, 10)} <= texts
    cells = {b.key: b for b in at.button if b.key and b.key.startswith("boxmap_BOX1_")}
    assert len(cells) == 81
    a1 = cells["boxmap_BOX1_A1"]
    assert a1.label == "L01A-SF1" and codes[0].endswith(a1.label)
    assert a1.help.startswith(f"A1: {codes[0]} · snap_frozen")  # the full code on hover
    assert cells["boxmap_BOX1_A2"].help.startswith(f"A2: {codes[1]}")
    assert cells["boxmap_BOX1_I9"].label == "I9" and cells["boxmap_BOX1_I9"].help == "I9: free"
    assert not any("deprecat" in w.value.lower() for w in at.warning)


def test_a_drawer_full_of_cassettes_draws_all_sixty_cells(db_url, engine, tech):
    excised = DEATH + timedelta(hours=3)
    blocks = {"stabilised_at": excised + timedelta(minutes=6), "fixative": Fixative.nbf,
              "fixation_end_at": excised + timedelta(hours=24)}
    with session_scope(engine) as session:
        lab(session, tech)
        make_case(session, tech)
        made = collect(session, tech, formats=[FormatRequest(StorageFormat.ffpe, 1, "blocks", count=50, **blocks)])
        made += collect(session, tech, region="B", formats=[FormatRequest(StorageFormat.ffpe, 1, "blocks", count=10, **blocks)])
        storage.store(session, actor=tech, codes=made, box_code="DRAWER1")
    at = _signed_in(db_url, box="DRAWER1")
    assert any("60/60 occupied" in c.value for c in at.caption)
    cells = {b.key: b for b in at.button if b.key and b.key.startswith("boxmap_DRAWER1_")}
    assert sorted(cells) == sorted(f"boxmap_DRAWER1_{n}" for n in range(1, 61))
    assert {b.help.split(": ", 1)[1].split(" · ")[0] for b in cells.values()} == set(made)
    assert {"**1–10**", "**51–60**"} <= _texts(at)
    assert any("This container is full" in c.value for c in at.caption)


def test_clicking_a_tube_selects_it_and_a_technician_checks_it_out(db_url, engine, tech):
    codes = _stocked(engine, tech)
    at = _signed_in(db_url, box="BOX1")
    at.button(key="boxmap_BOX1_A2").click().run()
    assert_no_exception(at)
    assert at.selectbox(key="storage_cell").value == f"A2 · {codes[1]}"
    assert any(m.value.startswith(f"**{codes[1]}**") for m in at.markdown)
    at.button(key="storage_checkout").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == [f"{codes[1]} checked out"]
    assert at.selectbox(key="storage_cell").value == f"A2 · {codes[1]}"  # still selected, now to return
    assert "checked out" in at.button(key="boxmap_BOX1_A2").help
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(Checkout)).one() == 1


def test_clicking_a_tube_then_disposing_of_it_frees_its_cell(db_url, engine, tech):
    codes = _stocked(engine, tech)
    at = _signed_in(db_url, box="BOX1")
    at.button(key="boxmap_BOX1_A1").click().run()
    at.text_input(key="storage_dispose_reason").input("tube cracked")
    at.button(key="storage_dispose_go").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == [f"{codes[0]} disposed of"]
    assert at.button(key="boxmap_BOX1_A1").help == "A1: free"
    assert at.selectbox(key="storage_cell").value is None
    with session_scope(engine) as session:
        assert specimen_service.get_specimen(session, codes[0]).status == "disposed"


def _region_unstored(engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        made = donor_with_region(session, tech)
        return by_format(made, "snap_frozen") + by_format(made, "oct")


def test_clicking_a_free_slot_then_scanning_a_tube_stores_it_there(db_url, engine, tech):
    tubes = _region_unstored(engine, tech)
    at = _signed_in(db_url, box="BOX1")
    at.button(key="boxmap_BOX1_E5").click().run()
    assert_no_exception(at)
    assert at.text_input(key="storage_scan_at").value == "E5"
    at.text_input(key="storage_scan_code").input(tubes[0])
    at.button(key="storage_scan_submit").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == [f"{tubes[0]} stored in BOX1 E5"]
    assert _located(engine) == {tubes[0]: ("BOX1", "E5")}
    assert at.button(key="boxmap_BOX1_E5").label == "L01A-SF1"
    assert at.text_input(key="storage_scan_code").value == ""  # ready for the next tube
    assert at.text_input(key="storage_scan_at").value == "E6"


def test_scanning_three_tubes_in_a_row_fills_the_proposed_free_slots_with_a_confirmation_each(db_url, engine, tech):
    tubes = _region_unstored(engine, tech)
    with session_scope(engine) as session:
        other = by_format(donor_with_region(session, tech, code="RA-0002", case="RAP-2"), "snap_frozen")[0]
        storage.store(session, actor=tech, codes=[other], box_code="BOX1", at="A2")
    at = _signed_in(db_url, box="BOX1")
    assert at.text_input(key="storage_scan_at").value == "A1"  # the first free slot
    for tube, slot, proposed in zip(tubes, ["A1", "A3", "A4"], ["A3", "A4", "A5"], strict=True):
        at.text_input(key="storage_scan_code").input(tube)
        at.button(key="storage_scan_submit").click().run()
        assert_no_exception(at)
        assert [s.value for s in at.success] == [f"{tube} stored in BOX1 {slot}"]
        assert at.text_input(key="storage_scan_at").value == proposed  # A2 was taken: skipped
    assert _located(engine) == {other: ("BOX1", "A2"), tubes[0]: ("BOX1", "A1"), tubes[1]: ("BOX1", "A3"),
                                tubes[2]: ("BOX1", "A4")}


def test_a_scanned_code_in_lower_case_is_stored_under_its_own_code(db_url, engine, tech):
    tubes = _region_unstored(engine, tech)
    at = _signed_in(db_url, box="LNBOX1")
    at.text_input(key="storage_scan_code").input(f"  {tubes[0].lower()} ")
    at.text_input(key="storage_scan_at").input("b3")
    at.button(key="storage_scan_submit").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == [f"{tubes[0]} stored in LNBOX1 B3"]
    assert _located(engine) == {tubes[0]: ("LNBOX1", "B3")}


def test_a_bad_code_shows_one_error_line_and_writes_nothing(db_url, engine, tech):
    _region_unstored(engine, tech)
    at = _signed_in(db_url, box="BOX1")
    at.text_input(key="storage_scan_code").input("RA9999-NOPE-SF1")
    at.button(key="storage_scan_submit").click().run()
    assert_no_exception(at)
    assert len(at.error) == 1 and at.error[0].value.startswith("store: ") and "RA9999-NOPE-SF1" in at.error[0].value
    assert not at.success
    assert _located(engine) == {}
    assert at.text_input(key="storage_scan_code").value == ""  # emptied for the next scan; the error names the code
    assert at.text_input(key="storage_scan_at").value == "A1"


def test_scanning_into_a_cassette_drawer_takes_numbered_slots(db_url, engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        block = by_format(donor_with_region(session, tech), "ffpe")[0]
    at = _signed_in(db_url, box="DRAWER1")
    assert at.text_input(key="storage_scan_at").value == "1"
    at.button(key="boxmap_DRAWER1_12").click().run()
    at.text_input(key="storage_scan_code").input(block)
    at.button(key="storage_scan_submit").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == [f"{block} stored in DRAWER1 12"]
    assert at.text_input(key="storage_scan_at").value == "13"
    assert _located(engine) == {block: ("DRAWER1", "12")}


def test_a_container_without_a_grid_lists_its_contents(db_url, engine, tech):
    _stocked(engine, tech)
    at = _signed_in(db_url, box="R1")
    assert not [b for b in at.button if b.key and b.key.startswith("boxmap_")]
    assert [list(t["code"]) for t in _tables(at, "kind")] == [["BOX1", "BOX2"]]
    assert not [t for t in at.text_input if t.key == "storage_scan_code"]  # a rack holds boxes, not tubes

    with session_scope(engine) as session:
        tube = by_format(donor_with_region(session, tech, code="RA-0002", case="RAP-2"), "snap_frozen")[0]
    at.selectbox(key="storage_box").set_value("BAG1").run()
    assert not [t for t in at.text_input if t.key == "storage_scan_at"]  # a bag has no positions
    at.text_input(key="storage_scan_code").input(tube)
    at.button(key="storage_scan_submit").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == [f"{tube} stored in BAG1"]
    assert [list(t["code"]) for t in _tables(at, "storage_format")] == [[tube]]


def test_the_page_opens_the_box_named_in_the_link_and_writes_the_chosen_box_back(db_url, engine, tech):
    _stocked(engine, tech)
    at = make_app(db_url, page="storage")
    at.session_state["username"] = "tech"
    at.query_params["box"] = "lnbox1"
    at.run()
    assert_no_exception(at)
    assert at.selectbox(key="storage_box").value == "LNBOX1"
    assert at.button(key="boxmap_LNBOX1_J10").label == "J10"  # a 10x10 box
    at.selectbox(key="storage_box").set_value("BOX1").run()
    assert at.query_params["box"] == "BOX1"


def test_a_viewer_sees_the_map_read_only_and_opens_a_tube_from_the_list(db_url, engine, tech, viewer):
    codes = _stocked(engine, tech)
    at = _signed_in(db_url, username="viewer", box="BOX1")
    assert [b.key for b in at.button] == ["sign_out"]  # no buttons for people who may not write, not even cells
    (grid,) = [h.value for h in at.html if "class='boxmap'" in h.value]
    assert f"title='A1: {codes[0]} · snap_frozen" in grid and ">L01A-SF1<" in grid and "title='I9: free'" in grid
    at.selectbox(key="storage_cell").set_value(f"A1 · {codes[0]}").run()
    assert_no_exception(at)
    assert any(m.value.startswith(f"**{codes[0]}**") for m in at.markdown)
    (grid,) = [h.value for h in at.html if "class='boxmap'" in h.value]
    assert "data-position='A1' title=" in grid and "outline:3px solid" in grid
    assert not [t for t in at.text_input if t.key == "storage_scan_code"] and not at.form_submit_button
