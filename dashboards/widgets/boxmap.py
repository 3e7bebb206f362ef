"""The box map: a container's grid with every row and column labelled, each cell showing the specimen's short code
(the full code on hover), free slots drawn as free, cells coloured by storage format.

The layout (:func:`layout`, :func:`next_free`, :func:`stylesheet`, :func:`html_map`) is pure and tested without
Streamlit; :func:`draw` puts it on a page. For people who may write, cells are buttons, not
``st.dataframe(selection_mode="single-cell")``: in Streamlit 1.67 a dataframe cell cannot carry a tooltip of its own
and its canvas cannot be clicked by name in a browser test, while a button has a tooltip (``help``), a key
(``boxmap_{box}_{position}``) and a CSS class (``st-key-<key>``) to colour it. Everyone else gets the same map as one
read-only HTML grid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

import streamlit as st

from biobank.domain.storage.coords import CoordinateError, Grid, Scheme
from biobank.domain.vocab import SpecimenStatus, StorageFormat

#: Cell colour of each storage format (the legend shows the ones in the box); a format not listed gets OTHER.
FORMAT_COLOURS: dict[str, str] = {
    StorageFormat.snap_frozen: "#1f77b4",
    StorageFormat.oct: "#9467bd",
    StorageFormat.rnalater: "#17becf",
    StorageFormat.frozen: "#2ca02c",
    StorageFormat.viable_cryo: "#d62728",
    StorageFormat.ffpe: "#ff7f0e",
    StorageFormat.fresh: "#8c564b",
}
OTHER = "#7f7f7f"
FREE = "#ffffff"
#: A numbered grid (a cassette drawer 1x60, a slide box 1x100) is drawn in rows of this many positions.
NUMBERED_PER_ROW = 10
#: Width in pixels of the row labels (``A``, ``51–60``).
LABEL_WIDTH = 44


def short_code(code: str) -> str:
    """What fits in a cell: the last two parts of a code (``RA0001-L01A-SF1`` -> ``L01A-SF1``)."""
    return "-".join(code.split("-")[-2:])


def cell_key(box: str, position: str) -> str:
    """The widget key of a cell (a browser test clicks ``.st-key-<key> button``)."""
    return f"boxmap_{box}_{position}"


def css_class(key: str) -> str:
    """The CSS class Streamlit gives an element with this key (its frontend replaces other characters by '-')."""
    return "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())


def text_colour(background: str) -> str:
    """Black or white, whichever reads on ``background`` (``#rrggbb``), by the WCAG relative luminance."""
    channels = [int(background[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000000" if luminance > 0.179 else "#ffffff"


@dataclass(frozen=True)
class Cell:
    """One position of the grid, with the specimen in it (``code`` None: the slot is free)."""

    position: str
    code: str | None = None
    storage_format: str | None = None
    status: str | None = None
    donor: str | None = None
    material_type: str | None = None

    @property
    def free(self) -> bool:
        return self.code is None

    @property
    def out(self) -> bool:
        """Checked out: the position stays the specimen's while it is on a bench."""
        return self.status == SpecimenStatus.in_use

    @property
    def label(self) -> str:
        """What the cell shows: the short code, or the position of a free slot."""
        return self.position if self.code is None else short_code(self.code)

    @property
    def tooltip(self) -> str:
        if self.code is None:
            return f"{self.position}: free"
        facts = [self.storage_format, self.material_type, "checked out" if self.out else self.status]
        donor = f"donor {self.donor}" if self.donor else None
        return f"{self.position}: {self.code} · " + " · ".join(str(f) for f in (*facts, donor) if f)

    @property
    def colour(self) -> str:
        if self.code is None:
            return FREE
        return FORMAT_COLOURS.get(self.storage_format or "", OTHER)


@dataclass(frozen=True)
class BoxMap:
    """A container's grid laid out for the screen: labelled rows of cells, in fill order."""

    box: str
    grid: Grid
    column_labels: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]  # (row label, its cells)
    unplaced: tuple[str, ...] = ()  # specimens in the container without a position (rows older than its grid)

    def cells(self) -> Iterator[Cell]:
        for _, cells in self.rows:
            yield from cells

    def cell(self, position: str) -> Cell | None:
        """The cell at a position as typed (``b3``, ``B03``), or None when the grid has no such position."""
        where = normalise(self.grid, position)
        return next((c for c in self.cells() if c.position == where), None) if where else None

    @property
    def occupied(self) -> set[str]:
        return {c.position for c in self.cells() if not c.free}

    @property
    def formats(self) -> list[str]:
        """The storage formats in the box, in legend order."""
        present = {c.storage_format for c in self.cells() if c.storage_format}
        return [f for f in FORMAT_COLOURS if f in present] + sorted(present - set(FORMAT_COLOURS))

    @property
    def any_out(self) -> bool:
        return any(c.out for c in self.cells())

    def first_free(self) -> str | None:
        return next_free(self.grid, self.occupied)


def grid_of_view(view: Mapping[str, Any]) -> Grid | None:
    """The grid of a :func:`biobank.queries.storage.box_view` (None for a container without positions)."""
    if not view.get("rows") or not view.get("cols"):
        return None
    return Grid(int(view["rows"]), int(view["cols"]), Scheme(view["scheme"] or Scheme.letter_number))


def normalise(grid: Grid, position: str | None) -> str | None:
    """The canonical text of a typed position (``b03`` -> ``B3``), or None when it is empty or off the grid."""
    if not position or not str(position).strip():
        return None
    try:
        return grid.normalise(str(position))
    except CoordinateError:
        return None


def layout(view: Mapping[str, Any], *, per_row: int = NUMBERED_PER_ROW) -> BoxMap | None:
    """A box view as labelled rows of cells; None for a container without a grid (shown as a list instead).

    A letter grid keeps its rows (A, B, ...) and columns (1, 2, ...). A numbered grid is one long run (a drawer's
    60 cassettes), drawn in rows of ``per_row`` labelled by their range (``11–20``) with columns 1..``per_row``.
    """
    grid = grid_of_view(view)
    if grid is None:
        return None
    by_position: dict[str, Mapping[str, Any]] = {}
    unplaced = []
    for held in view.get("cells", []):
        where = normalise(grid, held.get("position"))
        if where is None:
            unplaced.append(held["code"])
        else:
            by_position[where] = held

    def cell(position: str) -> Cell:
        held = by_position.get(position)
        if held is None:
            return Cell(position)
        return Cell(position, held["code"], held.get("storage_format"), held.get("status"), held.get("donor"),
                    held.get("material_type"))

    positions = list(grid.positions())
    if grid.scheme is Scheme.numbered:
        width = min(per_row, grid.cols)
        rows = tuple(
            (f"{start + 1}–{min(start + width, grid.size)}", tuple(cell(p) for p in positions[start : start + width]))
            for start in range(0, grid.size, width)
        )
        columns = tuple(str(c) for c in range(1, width + 1))
    else:
        rows = tuple(
            (grid.row_label(r), tuple(cell(p) for p in positions[(r - 1) * grid.cols : r * grid.cols]))
            for r in range(1, grid.rows + 1)
        )
        columns = tuple(str(c) for c in range(1, grid.cols + 1))
    return BoxMap(str(view["code"]), grid, columns, rows, tuple(unplaced))


def next_free(grid: Grid, occupied: Collection[str], after: str | None = None) -> str | None:
    """The slot to propose next: the first free position after ``after`` in fill order (row by row), wrapping round
    to the start of the grid; from the start when ``after`` is None; None when the grid is full."""
    taken = {grid.index(p) for p in occupied}
    start = grid.index(after) + 1 if after else 0
    for step in range(grid.size):
        index = (start + step) % grid.size
        if index not in taken:
            return grid.at_index(index)
    return None


def stylesheet(box_map: BoxMap, *, selected: str | None = None, target: str | None = None) -> str:
    """The CSS that colours the cells by format, draws free slots as free, fades checked-out tubes and rings the
    selected specimen (solid) and the slot to store into (dashed)."""
    box = css_class(f"boxmap_{box_map.box}")
    rules = [
        f".{box} button {{min-height: 2.5rem; padding: 1px 2px; border-radius: 4px;}}",
        f".{box} button p {{font-size: 0.7rem; line-height: 1.05; white-space: normal; overflow-wrap: anywhere;}}",
        f".{box} [data-testid='stMarkdownContainer'] {{margin-bottom: 0;}}",
        # every column as wide as the next, whatever its label; the row label keeps its own width
        f".{box} [data-testid='stHorizontalBlock'] > [data-testid='stElementContainer'] {{flex: 1 1 0; min-width: 0;}}",
        f".{box} [data-testid='stHorizontalBlock'] > [data-testid='stElementContainer']:first-child "
        f"{{flex: 0 0 {LABEL_WIDTH}px;}}",
        f".{box} [data-testid='stMarkdownContainer'] p {{margin: 0; font-size: 0.8rem;}}",
    ]
    by_colour: dict[tuple[str, bool], list[str]] = {}
    for cell in box_map.cells():
        by_colour.setdefault((cell.colour, cell.free), []).append(cell.position)
    for (colour, free), positions in by_colour.items():
        selector = _buttons(box_map.box, positions)
        if free:
            rules.append(f"{selector} {{background-color: {FREE}; color: #9a9a9a; border: 1px dashed #b5b5b5;}}")
        else:
            rules.append(f"{selector} {{background-color: {colour}; color: {text_colour(colour)}; "
                         f"border: 1px solid {colour};}}")
    out = [c.position for c in box_map.cells() if c.out]
    if out:
        selector = _buttons(box_map.box, out)
        rules.append(f"{selector} {{opacity: 0.4; font-style: italic;}}")
    rules.append(f".{box} button:hover {{filter: brightness(0.9); border-color: #111111;}}")
    if selected:
        rules.append(f"{_buttons(box_map.box, [selected])} {{outline: 3px solid #111111; outline-offset: -1px;}}")
    if target:
        rules.append(f"{_buttons(box_map.box, [target])} "
                     "{outline: 3px dashed #2e7d32; outline-offset: -1px; color: #2e7d32; font-weight: 700;}")
    return "\n".join(rules)


def _buttons(box: str, positions: Iterable[str]) -> str:
    """A selector for the buttons of these cells in every state (Streamlit restyles a hovered or focused button)."""
    return ", ".join(f".{css_class(cell_key(box, p))} button{state}" for p in positions
                     for state in ("", ":hover", ":focus", ":active"))


def legend_html(box_map: BoxMap) -> str:
    """Colour swatches for the formats in the box, free slots and (when there are any) checked-out tubes."""

    def swatch(background: str, text: str, border: str, extra: str = "") -> str:
        return (f"<span style='display:inline-flex;align-items:center;margin-right:14px;font-size:0.8rem'>"
                f"<span style='display:inline-block;width:14px;height:14px;margin-right:4px;border-radius:3px;"
                f"background:{background};border:{border};{extra}'></span>{text}</span>")

    items = [swatch(FORMAT_COLOURS.get(f, OTHER), f, "1px solid transparent") for f in box_map.formats]
    items.append(swatch(FREE, "free", "1px dashed #b5b5b5"))
    if box_map.any_out:
        items.append(swatch("#999999", "checked out (faded)", "1px solid transparent", "opacity:0.4"))
    return "<div class='boxmap-legend'>" + "".join(items) + "</div>"


def html_map(box_map: BoxMap, *, selected: str | None = None) -> str:
    """The map as one read-only HTML grid (for people who may not write: no buttons), the same labels, colours and
    tooltips (``title``) as the clickable one, the selected specimen ringed."""
    columns = len(box_map.column_labels)

    def cell_html(cell: Cell) -> str:
        text = "#9a9a9a" if cell.free else text_colour(cell.colour)
        border = "1px dashed #b5b5b5" if cell.free else f"1px solid {cell.colour}"
        extra = "opacity:0.4;font-style:italic;" if cell.out else ""
        ring = "outline:3px solid #111111;outline-offset:-1px;" if cell.position == selected else ""
        return (f"<div class='boxmap-cell' data-position='{escape(cell.position)}' title='{escape(cell.tooltip)}' "
                f"style='background:{cell.colour};color:{text};border:{border};{extra}{ring}border-radius:4px;"
                "min-height:2.5rem;display:flex;align-items:center;justify-content:center;text-align:center;"
                f"font-size:0.7rem;line-height:1.05;overflow-wrap:anywhere;padding:1px 2px'>{escape(cell.label)}</div>")

    label = "font-size:0.8rem;font-weight:700;display:flex;align-items:center;justify-content:center"
    parts = [f"<div style='{label}'></div>"]
    parts += [f"<div style='{label}'>{escape(text)}</div>" for text in box_map.column_labels]
    for row_label, cells in box_map.rows:
        parts.append(f"<div style='{label}'>{escape(row_label)}</div>")
        parts += [cell_html(cell) for cell in cells]
        parts += ["<div></div>"] * (columns - len(cells))
    return (f"<div class='boxmap' data-box='{escape(box_map.box)}' style='display:grid;"
            f"grid-template-columns:{LABEL_WIDTH}px repeat({columns}, minmax(0, 1fr));gap:4px'>"
            + "".join(parts) + "</div>")


def _markdown_text(text: str) -> str:
    """A code as button markdown: '_' would start italics (codes hold only letters, digits, '.', '_', '-')."""
    return text.replace("_", r"\_")


def draw(box_map: BoxMap, *, on_pick: Callable[[str], None] | None = None, selected: str | None = None,
         target: str | None = None) -> None:
    """The grid: a header of column labels, then each row's label and its cells.

    With ``on_pick`` every cell is a button and a click calls ``on_pick(position)`` before the rerun (the page then
    selects the specimen, or takes the free slot as the place to store). Without it the map is one read-only HTML
    grid: the pages show no buttons to people who may not write.
    """
    if on_pick is None:
        st.html(html_map(box_map, selected=selected))
    else:
        st.html(f"<style>{stylesheet(box_map, selected=selected, target=target)}</style>")
        with st.container(key=f"boxmap_{box_map.box}", gap="xxsmall"):
            with st.container(horizontal=True, gap="xxsmall", wrap=False, vertical_alignment="center"):
                st.markdown(" ", width=LABEL_WIDTH)
                for text in box_map.column_labels:
                    st.markdown(f"**{text}**", width="stretch", text_alignment="center")
            for row_label, cells in box_map.rows:
                with st.container(horizontal=True, gap="xxsmall", wrap=False, vertical_alignment="center"):
                    st.markdown(f"**{row_label}**", width=LABEL_WIDTH, text_alignment="center")
                    for cell in cells:
                        st.button(_markdown_text(cell.label), key=cell_key(box_map.box, cell.position),
                                  help=cell.tooltip, on_click=on_pick, args=(cell.position,), width="stretch",
                                  wrap=True)
                    for _ in range(len(box_map.column_labels) - len(cells)):
                        st.markdown(" ", width="stretch")  # the short last row of a numbered grid keeps the columns
    st.html(legend_html(box_map))
    if box_map.unplaced:
        st.caption("Without a position: " + ", ".join(box_map.unplaced))
