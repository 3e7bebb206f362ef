"""The box map's layout, without Streamlit or a database: labels, cells, colours, the next free slot."""

from __future__ import annotations

from typing import Any

import pytest

from biobank.domain.storage.coords import Grid, Scheme
from biobank.domain.storage.kinds import grid_of
from dashboards.widgets.boxmap import (
    FORMAT_COLOURS,
    FREE,
    OTHER,
    Cell,
    cell_key,
    css_class,
    html_map,
    layout,
    legend_html,
    next_free,
    normalise,
    short_code,
    stylesheet,
    text_colour,
)


def view(kind: str, cells: list[tuple[str | None, str, str]], code: str = "BOX1", **statuses: str) -> dict[str, Any]:
    """A box view as biobank.queries.storage.box_view returns it: (position, code, format) per specimen."""
    grid = grid_of(kind)
    return {
        "code": code,
        "rows": grid.rows if grid else None,
        "cols": grid.cols if grid else None,
        "scheme": grid.scheme.value if grid else None,
        "cells": [
            {"position": p, "code": c, "storage_format": f, "status": statuses.get(c.replace("-", "_"), "available"),
             "donor": "RA-0001", "material_type": "tissue"}
            for p, c, f in cells
        ],
    }


def test_a_9x9_box_has_nine_lettered_rows_and_nine_numbered_columns_with_codes_in_their_cells():
    box = layout(view("box_9x9", [("A1", "RA0001-L01A-SF1", "snap_frozen"), ("B3", "RA0001-L01A-SF2", "snap_frozen")]))
    assert box is not None
    assert [label for label, _ in box.rows] == list("ABCDEFGHI")
    assert box.column_labels == tuple(str(c) for c in range(1, 10))
    assert all(len(cells) == 9 for _, cells in box.rows)
    b_row = dict(box.rows)["B"]
    assert [c.position for c in b_row] == [f"B{n}" for n in range(1, 10)]
    assert b_row[2].code == "RA0001-L01A-SF2" and b_row[2].label == "L01A-SF2"
    assert b_row[0].free and b_row[0].label == "B1"
    assert box.occupied == {"A1", "B3"}


def test_a_full_cassette_drawer_is_drawn_in_rows_of_ten_labelled_by_their_range():
    drawer = layout(view("cassette_drawer", [(str(n), f"RA0001-L01A-FF{n}", "ffpe") for n in range(1, 61)], code="DRAWER1"))
    assert drawer is not None
    assert [label for label, _ in drawer.rows] == ["1–10", "11–20", "21–30", "31–40", "41–50", "51–60"]
    assert drawer.column_labels == tuple(str(c) for c in range(1, 11))
    assert [c.position for c in dict(drawer.rows)["21–30"]] == [str(n) for n in range(21, 31)]
    assert not any(c.free for c in drawer.cells())
    assert drawer.first_free() is None
    assert dict(drawer.rows)["51–60"][-1].label == "L01A-FF60"


def test_a_slide_box_has_ten_rows_of_ten_and_a_box_without_a_grid_has_no_map():
    slides = layout(view("slide_box", [], code="SLIDES1"))
    assert slides is not None and len(slides.rows) == 10 and slides.rows[-1][0] == "91–100"
    assert layout(view("bag", [("", "RA0001-L01A-SF1", "snap_frozen")], code="BAG1")) is None
    assert layout(view("rack", [], code="R1")) is None


def test_a_numbered_grid_not_a_multiple_of_the_row_width_ends_with_a_short_row():
    drawer = layout({"code": "D", "rows": 1, "cols": 25, "scheme": "numbered", "cells": []})
    assert drawer is not None
    assert [label for label, _ in drawer.rows] == ["1–10", "11–20", "21–25"]
    assert len(drawer.rows[-1][1]) == 5 and len(drawer.column_labels) == 10


def test_a_specimen_whose_position_is_not_on_the_grid_is_listed_as_unplaced():
    box = layout(view("box_9x9", [(None, "RA0001-L01A-SF1", "snap_frozen"), ("Z9", "RA0001-L01A-SF2", "oct")]))
    assert box is not None
    assert box.unplaced == ("RA0001-L01A-SF1", "RA0001-L01A-SF2") and not box.occupied


def test_the_short_code_drops_the_donor_and_the_tooltip_carries_the_full_code():
    assert short_code("RA0001-L01A-SF1") == "L01A-SF1"
    assert short_code("RA0001-L01A-SF1.2") == "L01A-SF1.2"
    assert short_code("RA0001-L01A-SF1-DNA1") == "SF1-DNA1"
    assert short_code("X1") == "X1"
    cell = Cell("B3", "RA0001-L01A-SF1", "snap_frozen", "in_use", "RA-0001", "tissue")
    assert cell.tooltip.startswith("B3: RA0001-L01A-SF1 · snap_frozen") and "checked out" in cell.tooltip
    assert cell.out and not cell.free
    assert Cell("C4").tooltip == "C4: free"


def test_cells_are_coloured_by_format_and_the_legend_names_the_formats_present():
    box = layout(view("box_9x9", [("A1", "RA0001-L01A-OC1", "oct"), ("A2", "RA0001-L01A-SF1", "snap_frozen"),
                                  ("A3", "RA0001-L01A-XX1", "novel")]))
    assert box is not None
    a = dict(box.rows)["A"]
    assert [c.colour for c in a[:4]] == [FORMAT_COLOURS["oct"], FORMAT_COLOURS["snap_frozen"], OTHER, FREE]
    assert box.formats == ["snap_frozen", "oct", "novel"]
    legend = legend_html(box)
    assert all(name in legend for name in ("snap_frozen", "oct", "novel", "free"))
    assert "checked out" not in legend


def test_the_stylesheet_colours_each_cell_rings_the_selection_and_fades_checked_out_tubes():
    box = layout(view("box_9x9", [("A1", "RA0001-L01A-SF1", "snap_frozen"), ("A2", "RA0001-L01A-SF2", "snap_frozen")],
                      RA0001_L01A_SF2="in_use"))
    assert box is not None
    rules = stylesheet(box, selected="A1", target="A3").splitlines()

    def rule(declaration: str) -> str:
        (found,) = [r for r in rules if declaration in r]
        return found

    blue = rule(f"background-color: {FORMAT_COLOURS['snap_frozen']}")
    assert ".st-key-boxmap_BOX1_A1 button," in blue and ".st-key-boxmap_BOX1_A2 button:hover," in blue
    free = rule("border: 1px dashed")  # the free cells share one rule
    assert ".st-key-boxmap_BOX1_A3 button," in free and ".st-key-boxmap_BOX1_I9 button:focus," in free
    assert "_A1 " not in free
    assert rule("opacity: 0.4").startswith(".st-key-boxmap_BOX1_A2 button,")
    assert rule("outline: 3px solid").startswith(".st-key-boxmap_BOX1_A1 button,")
    assert rule("outline: 3px dashed").startswith(".st-key-boxmap_BOX1_A3 button,")
    assert "checked out" in legend_html(box)


def test_keys_and_css_classes_follow_streamlit_for_codes_with_dots():
    assert cell_key("BOX-1.2", "B3") == "boxmap_BOX-1.2_B3"
    assert css_class(cell_key("BOX-1.2", "B3")) == "st-key-boxmap_BOX-1-2_B3"


@pytest.mark.parametrize(("background", "text"), [("#ffffff", "#000000"), ("#1f77b4", "#ffffff"),
                                                  ("#ff7f0e", "#000000"), ("#d62728", "#ffffff")])
def test_cell_text_is_black_or_white_whichever_reads_on_the_colour(background, text):
    assert text_colour(background) == text


def test_the_next_free_slot_follows_the_last_one_filled_and_wraps_round():
    grid = Grid(9, 9)
    assert next_free(grid, set()) == "A1"
    assert next_free(grid, {"A1", "A2"}) == "A3"
    assert next_free(grid, {"A1", "B3"}, after="B3") == "B4"
    assert next_free(grid, {"A9", "B1"}, after="A9") == "B2"
    assert next_free(grid, {"I9"}, after="I9") == "A1"
    assert next_free(grid, set(grid.positions())) is None
    drawer = Grid(1, 60, Scheme.numbered)
    assert next_free(drawer, {"1", "2", "3"}, after="3") == "4"


def test_a_typed_position_is_normalised_or_refused():
    grid = Grid(9, 9)
    assert normalise(grid, "b03") == "B3"
    assert normalise(grid, " ") is None and normalise(grid, None) is None
    assert normalise(grid, "K1") is None
    box = layout(view("box_9x9", [("B3", "RA0001-L01A-SF1", "snap_frozen")]))
    assert box is not None
    found = box.cell("b3")
    assert found is not None and found.code == "RA0001-L01A-SF1"
    assert box.cell("Z1") is None


def test_the_read_only_map_has_the_same_labels_codes_tooltips_and_colours():
    box = layout(view("box_9x9", [("A1", "RA0001-L01A-SF1", "snap_frozen"), ("B3", "RA0001-L01A-OC1", "oct")]))
    assert box is not None
    grid = html_map(box, selected="B3")
    assert grid.count("class='boxmap-cell'") == 81
    assert all(f">{r}</div>" in grid for r in "ABCDEFGHI")
    assert f"title='A1: RA0001-L01A-SF1 · snap_frozen · tissue · available · donor RA-0001' " \
           f"style='background:{FORMAT_COLOURS['snap_frozen']}" in grid
    assert ">L01A-SF1</div>" in grid and "title='C4: free'" in grid
    b3 = grid[grid.index("data-position='B3'"):]
    assert "outline:3px solid" in b3[: b3.index("</div>")]
    assert grid.count("outline:3px solid") == 1


def test_the_read_only_map_escapes_what_it_shows():
    box = layout({"code": "B<1>", "rows": 1, "cols": 2, "scheme": "numbered",
                  "cells": [{"position": "1", "code": "X-'<b>", "storage_format": "oct"}]})
    assert box is not None
    grid = html_map(box)
    assert "<b>" not in grid and "&#x27;&lt;b&gt;" in grid and "data-box='B&lt;1&gt;'" in grid
