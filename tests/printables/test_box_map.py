"""Box maps read back from the PDF: every cell of the grid drawn in fill order, each code inside its own cell,
row and column labels, the lab's paper."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from reportlab.pdfbase.pdfmetrics import stringWidth
from sqlmodel import Session

from biobank.db.engine import session_scope
from biobank.domain.errors import NotFoundError, ValidationError
from biobank.domain.storage.coords import Grid
from biobank.labels import PAGE_SIZES_MM
from biobank.printables import box_map_pdf, render_box_map
from biobank.printables.boxmap import CODE_SIZES_PT, MIN_CELL_MM, fit_code
from biobank.queries import storage as storage_reads
from biobank.services import storage
from tests.printables.reading import MM, in_order, opened, page_sizes_mm, page_text, squares, text, text_in
from tests.queries.test_specimen_list import A, B

PRINTED = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


def cell_texts(pdf: bytes) -> list[list[str]]:
    """Per page, the text inside each grid cell (squares of at least the smallest cell), top row first."""
    with opened(pdf) as sheets:
        out = []
        for page in sheets:
            cells = sorted(squares(page, min_mm=MIN_CELL_MM - 0.5), key=lambda b: (-round(b[3]), b[0]))
            out.append([text_in(page, cell) for cell in cells])
        return out


def test_each_code_is_printed_inside_its_own_cell_of_the_grid(stocked, tech, paper):
    with session_scope(stocked) as session:
        storage.move_specimen(session, actor=tech, code=f"{B}SF1", box_code="BOX1", at="I9")
        storage.check_out(session, actor=tech, code=f"{A}SF2")
    with Session(stocked) as session:
        pdf = box_map_pdf(session, "BOX1", printed_at=PRINTED)
    assert page_sizes_mm(pdf) == [PAGE_SIZES_MM[paper]]
    (cells,) = cell_texts(pdf)
    grid = Grid(9, 9)
    assert len(cells) == grid.size  # every position drawn, occupied or free
    expected = {"A1": f"{A}SF1SF", "A2": f"{A}SF2SFout", "I9": f"{B}SF1SF"}
    for index, position in enumerate(grid.positions()):
        assert cells[index] == expected.get(position, ""), position
    printed = text(pdf)
    assert "Box map: BOX1" in printed and "UH/LAB1/FRZ1/R1/BOX1" in printed and "3/81 occupied" in printed
    assert "1 2 3 4 5 6 7 8 9" in printed  # column labels
    assert in_order(printed, ["A", "B", "C", "D", "E", "F", "G", "H", "I"])  # row labels, top to bottom
    contents = printed[printed.index("Contents"):]
    assert in_order(contents, [f"{B}SF1", f"{A}SF2", f"{A}SF1"]) == [f"{A}SF1", f"{A}SF2", f"{B}SF1"]


def test_a_ten_by_ten_box_puts_a10_at_the_end_of_the_first_row(stocked):
    with Session(stocked) as session:
        pdf = box_map_pdf(session, "LNBOX1", printed_at=PRINTED)
    (cells,) = cell_texts(pdf)
    assert len(cells) == 100
    assert cells[1] == f"{B}VC1VC" and cells[9] == f"{A}VC1VC"  # A2, A10
    assert "1 2 3 4 5 6 7 8 9 10" in text(pdf)


def test_a_numbered_drawer_is_drawn_ten_to_a_row_with_its_numbers(stocked):
    with Session(stocked) as session:
        pdf = box_map_pdf(session, "DRAWER1", printed_at=PRINTED)
    (cells,) = cell_texts(pdf)
    assert len(cells) == 60
    assert cells[0] == f"1{A}FF1FF"  # position number, code, format
    assert cells[10] == "11" and cells[59] == "60"


def test_a_bag_without_positions_shows_its_specimens_by_code(stocked, tech):
    with session_scope(stocked) as session:
        storage.store(session, actor=tech, codes=[f"{B}OC1", f"{A}OC1"], box_code="BAG1")
    with Session(stocked) as session:
        pdf = box_map_pdf(session, "BAG1", printed_at=PRINTED)
    (cells,) = cell_texts(pdf)
    assert [c for c in cells if c] == [f"{A}OC1OC", f"{B}OC1OC"]
    assert "bag (no grid)" in text(pdf)


def test_an_empty_box_and_a_rack_and_an_unknown_box(stocked):
    with Session(stocked) as session:
        empty = box_map_pdf(session, "BAG1", printed_at=PRINTED)
        assert "The box is empty." in text(empty) and "0 specimen(s)" in text(empty)
        with pytest.raises(ValidationError, match="holds containers"):
            box_map_pdf(session, "R1")
        with pytest.raises(NotFoundError, match="NOPE"):
            box_map_pdf(session, "NOPE")


def test_a_box_taller_than_the_page_continues_on_the_next_with_its_column_labels(stocked, tech, paper):
    """A 26 x 12 grid (a custom rack of tubes) needs two pages whatever the paper."""
    with Session(stocked) as session:
        view = storage_reads.box_view(session, "BOX1")
    view |= {"rows": 26, "cols": 12, "capacity": 312}
    view["cells"] = [
        {"position": f"{letter}{col}", "row": r, "col": col, "code": f"RA0001-L01A-SF{r * 12 + col}",
         "storage_format": "snap_frozen", "status": "available", "donor": "RA-0001", "quantity_remaining": 50.0,
         "unit": "mg", "material_type": "tissue"}
        for r, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=1) for col in (1, 12)
    ]
    pdf = render_box_map(view, printed_at=PRINTED)
    per_page = cell_texts(pdf)
    assert len(per_page) >= 2 and sum(len(cells) for cells in per_page) == 26 * 12
    flat = [cell for cells in per_page for cell in cells]
    for r in range(1, 27):
        row = flat[(r - 1) * 12 : r * 12]
        assert row[0] == f"RA0001-L01A-SF{r * 12 + 1}SF" and row[11] == f"RA0001-L01A-SF{r * 12 + 12}SF"
        assert row[1:11] == [""] * 10
    with opened(pdf) as sheets:
        for page, cells in zip(sheets, per_page, strict=True):
            if cells:  # the column labels head every page of the grid
                assert "1 2 3 4 5 6 7 8 9 10 11 12" in page_text(page)
    assert all(size == PAGE_SIZES_MM[paper] for size in page_sizes_mm(pdf))


@pytest.mark.parametrize("code", ["RA0001-L01A-SF1", "A", "RA0001-" + "W" * 40 + "-SF99", "x" * 64])
def test_a_code_is_fitted_whole_into_its_cell(code):
    width, height = 15 * MM, 12 * MM
    size, lines = fit_code(code, width, height)
    assert "".join(lines) == code
    assert CODE_SIZES_PT[-1] <= size <= CODE_SIZES_PT[0]
    assert all(stringWidth(line, "Helvetica", size) <= width for line in lines)
    if len(code) <= 16:
        assert len(lines) <= 2 and size >= 6.0  # a usual code stays big: at most one break, after a hyphen

