"""Pick lists read back from the PDF: the codes in walking order (freezer, rack, box, position, A2 before A10), one
tick box per specimen, on the lab's paper."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from biobank.db.engine import session_scope
from biobank.domain.errors import NotFoundError, ValidationError
from biobank.labels import PAGE_SIZES_MM
from biobank.printables import PickList, PickRow, pick_list, pick_list_pdf, render_pick_list
from biobank.queries.specimens import Place, Shelf
from biobank.services import storage
from tests.printables.reading import in_order, opened, page_sizes_mm, page_text, squares, text
from tests.queries.test_specimen_list import A, B

PRINTED = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


def test_a_selection_is_listed_in_walking_order_with_a_tick_box_each(stocked, paper):
    chosen = [f"{A}FR1", f"{A}VC1", f"{B}SF1", f"{B}VC1", f"{A}SF2", f"{B}SF2", f"{A}FF1", f"{A}SF1"]
    with Session(stocked) as session:
        pdf = pick_list_pdf(session, codes=chosen, printed_at=PRINTED)
    assert page_sizes_mm(pdf) == [PAGE_SIZES_MM[paper]]
    printed = text(pdf)
    assert in_order(printed, chosen) == [
        f"{A}FF1",  # CAB1/DRAWER1:1 (cabinet before freezer before tank)
        f"{A}SF1", f"{A}SF2",  # FRZ1/R1/BOX1:A1, A2
        f"{B}SF2",  # FRZ1/R1/BOX2:B3
        f"{B}SF1",  # FRZ1/R1/BOX10:A1 (BOX10 after BOX2)
        f"{B}VC1", f"{A}VC1",  # LN1/LNBOX1:A2 before A10
        f"{A}FR1",  # not in storage: last
    ]
    assert "not in storage" in printed and "Pick list: selected specimens" in printed
    assert "printed 2026-03-16 09:30 (Europe/London)" in printed and "page 1 of 1" in printed
    with opened(pdf) as (page,):
        assert len(squares(page, min_mm=3.0, max_mm=4.5)) == len(chosen)  # one tick box per row


def test_an_orders_pick_list_says_how_much_to_take(stocked):
    with Session(stocked) as session:
        picks = pick_list(session, order="DO-1")
        pdf = pick_list_pdf(session, order="DO-1", printed_at=PRINTED)
    assert [(r.code, r.quantity, r.place.label if r.place else None) for r in picks.rows] == [
        (f"{A}SF1", 20.0, "UH/LAB1/FRZ1/R1/BOX1:A1"),
        (f"{B}VC1", 100.0, "UH/LAB1/LN1/LNBOX1:A2"),
    ]
    printed = text(pdf)
    assert "Pick list: order DO-1" in printed and "PHYLO for Dr Lee, Crick" in printed
    assert "Take" in printed and "20 mg" in printed
    assert in_order(printed, [f"{B}VC1", f"{A}SF1"]) == [f"{A}SF1", f"{B}VC1"]


def test_a_plans_pick_list_holds_its_included_specimens_with_their_roles(stocked, tech):
    with session_scope(stocked) as session:
        storage.check_out(session, actor=tech, code=f"{A}SF1")
    with Session(stocked) as session:
        picks = pick_list(session, plan="WGS-1")
        pdf = pick_list_pdf(session, plan="WGS-1", printed_at=PRINTED)
    assert [r.code for r in picks.rows] == [f"{A}SF1"]  # A-SF2 was taken out of the plan
    assert picks.rows[0].note == "tumour; checked out"
    printed = text(pdf)
    assert "Pick list: plan WGS-1" in printed and "Liver WGS" in printed and "tumour; checked out" in printed
    assert f"{A}SF2" not in printed


def test_a_long_list_runs_over_pages_with_its_header_repeated(paper):
    rack = (Shelf("UH", "site"), Shelf("LAB1", "room"), Shelf("FRZ1", "freezer"), Shelf("R1", "rack"))
    rows = tuple(
        PickRow(f"RA{n:04d}-L01A-SF1", f"RA-{n:04d}", "snap_frozen", 50.0, "mg", "available",
                Place((*rack, Shelf(f"BOX{n // 81 + 1}", "box_9x9")), f"{'ABCDEFGHI'[n % 81 // 9]}{n % 9 + 1}"))
        for n in range(120)
    )
    pdf = render_pick_list(PickList("Pick list: many", ("120 specimens.",), rows), printed_at=PRINTED)
    with opened(pdf) as sheets:
        assert len(sheets) >= 2
        per_page = [page_text(page) for page in sheets]
        ticks = sum(len(squares(page, min_mm=3.0, max_mm=4.5)) for page in sheets)
    assert all(size == PAGE_SIZES_MM[paper] for size in page_sizes_mm(pdf))
    assert all("Specimen" in t and "Freezer" in t for t in per_page)  # the table header on every page
    assert f"page {len(per_page)} of {len(per_page)}" in per_page[-1]
    assert ticks == len(rows)
    codes = [r.code for r in rows]
    assert in_order(text(pdf), codes) == codes


def test_a_pick_list_needs_exactly_one_source_and_known_codes(stocked):
    with Session(stocked) as session:
        with pytest.raises(ValidationError, match="exactly one"):
            pick_list(session)
        with pytest.raises(ValidationError, match="exactly one"):
            pick_list(session, order="DO-1", plan="WGS-1")
        with pytest.raises(NotFoundError, match="DO-9"):
            pick_list(session, order="DO-9")
        with pytest.raises(NotFoundError, match="NOPE"):
            pick_list(session, plan="NOPE")
        with pytest.raises(NotFoundError, match="RA0009"):
            pick_list(session, codes=["RA0009-L01A-SF1"])


def test_the_same_data_prints_the_same_bytes(stocked):
    with Session(stocked) as session:
        assert pick_list_pdf(session, order="DO-1", printed_at=PRINTED) == pick_list_pdf(
            session, order="DO-1", printed_at=PRINTED
        )
