"""Label stock declared as data: label size, sheet layout, barcode and text template.

A format describes one kind of adhesive label stock (cryo-tube wrap, histology cassette, slide) and how a
specimen label is laid out on it. Everything is in millimetres and points so that the PDF sheet and the ZPL
printer output come from the same numbers. Each format checks at import time that its text template fits the
label at the declared font sizes, so a bad edit fails loudly instead of printing text over a barcode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Symbologies every renderer supports. DataMatrix (ECC 200) is the default for small labels: it is what tube
#: and rack readers in biobanks expect, it needs a one-module quiet zone where QR needs four, and for a short
#: code its smallest symbol (16x16 or 18x18) has fewer modules than the smallest QR symbol (21x21).
SYMBOLOGIES: tuple[str, ...] = ("datamatrix", "qr")

#: Paper sizes in millimetres (width, height), named as ``Settings.paper_size`` names them: every printable (label
#: sheets, pick lists, box maps, manifests) goes on the one paper the lab set.
PAGE_SIZES_MM: dict[str, tuple[float, float]] = {
    "A4": (210.0, 297.0),
    "Letter": (215.9, 279.4),
}

#: Office laser printers leave the outer 4-5 mm of a page blank; a fitted sheet keeps its labels inside this margin.
MIN_MARGIN_MM = 6.0

#: Fields of a label that a text line may show, in the order of :class:`biobank.labels.LabelData`.
LABEL_FIELDS: tuple[str, ...] = ("code", "donor", "site", "storage_format", "date", "extra")

#: Line pitch as a multiple of the font size: tight, because small labels have little height to spare, but
#: enough that descenders of one line never touch the capitals of the next.
LINE_SPACING = 1.12

#: Gap between the barcode and the text next to, above or below it.
TEXT_GAP_MM = 0.6

Region = Literal["above", "beside", "below"]


@dataclass(frozen=True)
class SheetLayout:
    """Where the labels sit on a printer sheet (laser/inkjet label stock), in millimetres.

    ``margin_left_mm``/``margin_top_mm`` locate the top-left corner of the first label; labels are filled row by
    row, left to right, ``gap_x_mm``/``gap_y_mm`` apart.
    """

    page: str
    columns: int
    rows: int
    margin_left_mm: float
    margin_top_mm: float
    gap_x_mm: float
    gap_y_mm: float

    @property
    def page_size_mm(self) -> tuple[float, float]:
        return PAGE_SIZES_MM[self.page]

    @property
    def cells(self) -> int:
        return self.columns * self.rows


def fit_sheet(
    page: str, width_mm: float, height_mm: float, gap_x_mm: float, gap_y_mm: float,
    min_margin_mm: float = MIN_MARGIN_MM,
) -> SheetLayout:
    """As many labels of this size as fit on ``page`` at these gaps and at least ``min_margin_mm`` from the edge,
    the grid centred: the layout used on a paper for which no label product is declared."""
    page_w, page_h = PAGE_SIZES_MM[page]
    columns = int((page_w - 2 * min_margin_mm + gap_x_mm) // (width_mm + gap_x_mm))
    rows = int((page_h - 2 * min_margin_mm + gap_y_mm) // (height_mm + gap_y_mm))
    if columns < 1 or rows < 1:
        raise ValueError(f"a {width_mm} x {height_mm} mm label does not fit on {page} paper")
    grid_w = columns * width_mm + (columns - 1) * gap_x_mm
    grid_h = rows * height_mm + (rows - 1) * gap_y_mm
    return SheetLayout(
        page=page,
        columns=columns,
        rows=rows,
        margin_left_mm=round((page_w - grid_w) / 2, 3),
        margin_top_mm=round((page_h - grid_h) / 2, 3),
        gap_x_mm=gap_x_mm,
        gap_y_mm=gap_y_mm,
    )


@dataclass(frozen=True)
class TextLine:
    """One line of the human-readable text template.

    ``fields`` are joined with two spaces (empty fields are left out, and a line whose fields are all empty is
    dropped, which is how the optional ``extra`` line disappears). ``region`` says where the line goes relative to
    the barcode: ``above`` and ``below`` span the full label width, ``beside`` is the column right of the barcode.
    A line showing only ``code`` uses the format's code font size and is shrunk before it is shortened, because
    the code is the one text a person must be able to read in full. ``max_lines`` > 1 lets long text wrap.
    """

    fields: tuple[str, ...]
    region: Region = "beside"
    bold: bool = False
    max_lines: int = 1

    @property
    def is_code(self) -> bool:
        return self.fields == ("code",)


@dataclass(frozen=True)
class LabelFormat:
    """A kind of label: its size, sheet layouts, default symbology, fonts and text template.

    ``sheets`` are the layouts of the label products the lab buys, at most one per paper size; on a paper without
    one, :meth:`sheet_for` fits a grid of the same label size and gaps (:func:`fit_sheet`), so the label geometry
    (and the ZPL output) never depends on the paper.

    The barcode box (``barcode_mm`` square, quiet zone included) sits at the left edge of the label's inner area,
    below any ``above`` lines. ``padding_mm`` keeps everything away from the die-cut edge, where printing on label
    stock is unreliable.
    """

    name: str
    description: str
    width_mm: float
    height_mm: float
    sheets: tuple[SheetLayout, ...]
    barcode_mm: float
    lines: tuple[TextLine, ...]
    symbology: str = "datamatrix"
    code_font_pt: float = 6.0
    text_font_pt: float = 5.0
    min_font_pt: float = 4.0
    padding_mm: float = 0.8

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError(f"label format {self.name!r} is inconsistent: " + "; ".join(problems))

    # -- geometry --------------------------------------------------------------------------------------------

    @property
    def inner_width_mm(self) -> float:
        return self.width_mm - 2 * self.padding_mm

    @property
    def inner_height_mm(self) -> float:
        return self.height_mm - 2 * self.padding_mm

    def font_size_pt(self, line: TextLine) -> float:
        return self.code_font_pt if line.is_code else self.text_font_pt

    def pitch_mm(self, line: TextLine) -> float:
        """Height of one printed line of ``line`` in millimetres."""
        return self.font_size_pt(line) * LINE_SPACING * 25.4 / 72

    def region_height_mm(self, region: Region) -> float:
        """Height the ``region`` needs when every line is present and wrapped to its ``max_lines``."""
        return sum(self.pitch_mm(ln) * ln.max_lines for ln in self.lines if ln.region == region)

    @property
    def barcode_top_mm(self) -> float:
        """Top of the barcode box, measured from the label's top edge."""
        above = self.region_height_mm("above")
        return self.padding_mm + (above + TEXT_GAP_MM if above else 0.0)

    @property
    def beside_x_mm(self) -> float:
        return self.padding_mm + self.barcode_mm + TEXT_GAP_MM

    @property
    def beside_width_mm(self) -> float:
        return self.width_mm - self.padding_mm - self.beside_x_mm

    def sheet_for(self, paper: str) -> SheetLayout:
        """The layout on ``paper`` (a key of :data:`PAGE_SIZES_MM`): the declared product, else a fitted grid."""
        if paper not in PAGE_SIZES_MM:
            raise ValueError(f"unknown paper size {paper!r}; choose one of {', '.join(PAGE_SIZES_MM)}")
        for sheet in self.sheets:
            if sheet.page == paper:
                return sheet
        model = self.sheets[0]
        return fit_sheet(paper, self.width_mm, self.height_mm, model.gap_x_mm, model.gap_y_mm)

    def cell_origin_mm(self, slot: int, paper: str) -> tuple[float, float]:
        """Top-left corner of sheet cell ``slot`` (0-based, row by row) on ``paper``, in mm from the page's
        top-left corner."""
        sheet = self.sheet_for(paper)
        if not 0 <= slot < sheet.cells:
            raise ValueError(f"slot {slot} is outside the {sheet.cells} cells of a {self.name} sheet on {paper}")
        row, col = divmod(slot, sheet.columns)
        x = sheet.margin_left_mm + col * (self.width_mm + sheet.gap_x_mm)
        y = sheet.margin_top_mm + row * (self.height_mm + sheet.gap_y_mm)
        return x, y

    def _sheet_problems(self, sheet: SheetLayout) -> list[str]:
        if sheet.page not in PAGE_SIZES_MM:
            return [f"page {sheet.page!r} is not one of {', '.join(PAGE_SIZES_MM)}"]
        if sheet.columns < 1 or sheet.rows < 1:
            return [f"a sheet needs at least one column and one row ({sheet.page})"]
        page_w, page_h = sheet.page_size_mm
        right = sheet.margin_left_mm + sheet.columns * self.width_mm + (sheet.columns - 1) * sheet.gap_x_mm
        bottom = sheet.margin_top_mm + sheet.rows * self.height_mm + (sheet.rows - 1) * sheet.gap_y_mm
        if right > page_w + 1e-6 or bottom > page_h + 1e-6:
            return [f"the label grid ({right:.1f} x {bottom:.1f} mm) does not fit the {sheet.page} page"]
        return []

    def _problems(self) -> list[str]:
        out: list[str] = []
        if self.symbology not in SYMBOLOGIES:
            out.append(f"symbology {self.symbology!r} is not one of {', '.join(SYMBOLOGIES)}")
        if not self.sheets:
            return [*out, "declare the sheet layout of at least one label product"]
        pages = [sheet.page for sheet in self.sheets]
        if len(set(pages)) < len(pages):
            out.append(f"more than one sheet layout for one paper size ({', '.join(pages)})")
        declared = [problem for sheet in self.sheets for problem in self._sheet_problems(sheet)]
        out.extend(declared)
        if not declared:  # then every paper without a declared product gets a fitted grid: check those too
            for paper in sorted(set(PAGE_SIZES_MM) - set(pages)):
                try:
                    out.extend(self._sheet_problems(self.sheet_for(paper)))
                except ValueError as exc:
                    out.append(str(exc))
        if not 0 < self.min_font_pt <= min(self.code_font_pt, self.text_font_pt):
            out.append("min_font_pt must be positive and no larger than the other font sizes")
        for ln in self.lines:
            unknown = set(ln.fields) - set(LABEL_FIELDS)
            if unknown or not ln.fields:
                out.append(f"text line {ln.fields} names unknown fields {sorted(unknown)}")
            if ln.max_lines < 1:
                out.append(f"text line {ln.fields} must allow at least one line")
        shown = {f for ln in self.lines for f in ln.fields}
        missing = set(LABEL_FIELDS) - shown
        if missing:
            out.append(f"the text template does not show {sorted(missing)}")
        if self.barcode_mm <= 0 or self.barcode_mm > self.inner_width_mm:
            out.append("the barcode is wider than the label")
        if self.barcode_top_mm + self.barcode_mm > self.height_mm - self.padding_mm + 1e-6:
            out.append("the barcode and the lines above it are taller than the label")
        beside = self.region_height_mm("beside")
        if beside:
            if self.beside_width_mm < 3.0:
                out.append("the column beside the barcode is narrower than 3 mm")
            beside_room = self.barcode_mm
            if not self.region_height_mm("below"):
                beside_room = self.height_mm - self.padding_mm - self.barcode_top_mm
            if beside > beside_room + 1e-6:
                out.append(f"the lines beside the barcode need {beside:.2f} mm but have {beside_room:.2f} mm")
        below = self.region_height_mm("below")
        if below:
            room = self.height_mm - self.padding_mm - (self.barcode_top_mm + self.barcode_mm + TEXT_GAP_MM)
            if below > room + 1e-6:
                out.append(f"the lines below the barcode need {below:.2f} mm but have {room:.2f} mm")
        return out


def _side_template() -> tuple[TextLine, ...]:
    """Barcode on the left, everything else in one column next to it: the layout of narrow, short labels."""
    return (
        TextLine(("code",), bold=True),
        TextLine(("donor", "date")),
        TextLine(("site",)),
        TextLine(("storage_format",)),
        TextLine(("extra",), bold=True),
    )


#: The label stock the programme prints on. Sizes follow common commercial stock; sheet layouts are for plain
#: laser label sheets (adjust margins/gaps here if a lab buys a different product, or add the layout of the
#: product sold on the other paper size; without one, the other paper gets a fitted, centred grid).
LABEL_FORMATS: dict[str, LabelFormat] = {
    fmt.name: fmt
    for fmt in (
        LabelFormat(
            name="cryotube",
            description='Cryo-tube wrap-around label, 1.28" x 0.5" (32.5 x 12.7 mm), 85 per US-letter sheet '
            "(90 on A4)",
            width_mm=32.5,
            height_mm=12.7,
            sheets=(
                SheetLayout(
                    page="Letter",
                    columns=5,
                    rows=17,
                    margin_left_mm=14.0,
                    margin_top_mm=6.35,
                    gap_x_mm=6.35,
                    gap_y_mm=3.175,
                ),
            ),
            barcode_mm=11.1,
            lines=_side_template(),
            code_font_pt=6.3,
            text_font_pt=5.0,
            padding_mm=0.8,
        ),
        LabelFormat(
            name="cassette",
            description="Histology cassette label, 28 x 11 mm, 120 per A4 sheet (114 on Letter)",
            width_mm=28.0,
            height_mm=11.0,
            sheets=(
                SheetLayout(
                    page="A4",
                    columns=6,
                    rows=20,
                    margin_left_mm=11.0,
                    margin_top_mm=10.0,
                    gap_x_mm=4.0,
                    gap_y_mm=3.0,
                ),
            ),
            barcode_mm=9.6,
            lines=_side_template(),
            code_font_pt=5.5,
            text_font_pt=4.4,
            min_font_pt=3.8,
            padding_mm=0.7,
        ),
        LabelFormat(
            name="slide",
            description="Microscope slide label, 22 x 22 mm, 77 per A4 sheet (70 on Letter)",
            width_mm=22.0,
            height_mm=22.0,
            sheets=(
                SheetLayout(
                    page="A4",
                    columns=7,
                    rows=11,
                    margin_left_mm=16.0,
                    margin_top_mm=12.5,
                    gap_x_mm=4.0,
                    gap_y_mm=3.0,
                ),
            ),
            barcode_mm=9.6,
            lines=(
                TextLine(("code",), region="above", bold=True),
                TextLine(("donor",)),
                TextLine(("date",)),
                TextLine(("extra",), bold=True),
                TextLine(("site",), region="below", max_lines=2),
                TextLine(("storage_format",), region="below"),
            ),
            code_font_pt=6.5,
            text_font_pt=5.2,
            padding_mm=1.0,
        ),
    )
}
