"""Specimen labels: barcodes scan back to their codes, text stays on its label, ZPL is well formed and safe."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pypdfium2 as pdfium
import pytest
import zxingcpp

from biobank.labels import (
    LABEL_FORMATS,
    MAX_CODE_LENGTH,
    PAGE_SIZES_MM,
    ZEBRA_DOTS_PER_MM,
    LabelData,
    LabelFormat,
    render_pdf,
    render_zpl,
)
from biobank.labels.formats import MIN_MARGIN_MM
from biobank.labels.symbols import DATAMATRIX_SPECS, datamatrix_matrix, datamatrix_size, qr_matrix

MM = 72 / 25.4  # PDF points per millimetre
MATRIX_FORMATS = (zxingcpp.BarcodeFormat.DataMatrix, zxingcpp.BarcodeFormat.QRCode)
DPI = 300  # >= 2.9 px per module even for a 64-character code (36x36 symbol, 0.25 mm modules on a cassette)
PAPERS = sorted(PAGE_SIZES_MM)  # A4 and Letter: every sheet prints on either

# Codes whose ECC 200 C40 value count leaves each remainder mod 3, plus lowercase, '.', '_' and digit runs.
# reportlab's own C40 encoder appended a NUL to "Z" and "RA0001-L02B-SF"; they must scan back exactly.
EDGE_CODES = [
    "Z",
    "RA0001-L02B-SF",
    "RA0001-L02B-SF1",
    "RA0001-L02B-SF12",
    "ra0001.l02b_sf1",
    "0123456789",
    "A-B_C.d",
]


def make_codes(n: int) -> list[str]:
    """``n`` distinct, realistic specimen codes, starting with the edge cases."""
    codes = list(EDGE_CODES)
    i = 0
    while len(codes) < n:
        codes.append(
            f"RA{i // 40 + 1:04d}-{'LKPB'[i % 4]}{i % 40:02d}{'ABC'[i % 3]}-{'SF' if i % 2 else 'FF'}{i % 9}"
        )
        i += 1
    return codes[:n]


def make_labels(codes: list[str], **fields: str) -> list[LabelData]:
    base = {"donor": "RA-0001", "site": "Liver L02 B", "storage_format": "snap-frozen", "date": "2026-11-22"}
    base.update(fields)
    return [LabelData(code=code, **base) for code in codes]


def cell_rect_mm(fmt: LabelFormat, slot: int, paper: str = "A4") -> tuple[float, float, float, float]:
    x, y = fmt.cell_origin_mm(slot, paper)
    return x, y, x + fmt.width_mm, y + fmt.height_mm


def decode_page(page: pdfium.PdfPage) -> list[tuple[str, float, float]]:
    """Every barcode on the page as (text, centre x mm, centre y mm from the top)."""
    image = page.render(scale=DPI / 72, grayscale=True).to_numpy()
    found = []
    # 2-D symbols read in any orientation without zxing's rotated and downscaled retries, which only cost time here.
    for result in zxingcpp.read_barcodes(image, try_rotate=False, try_downscale=False):
        # Only the 2-D symbologies we print count (a lab scanner is set up the same way): zxing occasionally reads
        # a column of DataMatrix modules as a Codabar symbol.
        if result.format not in MATRIX_FORMATS:
            continue
        pos = result.position
        corners = [pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left]
        cx = sum(p.x for p in corners) / 4 * 25.4 / DPI
        cy = sum(p.y for p in corners) / 4 * 25.4 / DPI
        found.append((result.text, cx, cy))
    return found


def check_sheets(pdf: bytes, fmt: LabelFormat, codes: list[str], skip: int = 0, paper: str = "A4") -> None:
    """Each page is ``paper`` and its barcodes decode to exactly the codes placed on it, each inside its own cell."""
    cells = fmt.sheet_for(paper).cells
    expected_pages = (skip + len(codes) + cells - 1) // cells
    doc = pdfium.PdfDocument(pdf)
    assert len(doc) == expected_pages
    width_mm, height_mm = PAGE_SIZES_MM[paper]
    for page_no in range(len(doc)):
        page_w, page_h = doc[page_no].get_size()
        assert (round(page_w / MM, 1), round(page_h / MM, 1)) == (width_mm, height_mm)
        first = max(0, page_no * cells - skip)
        on_page = codes[first : (page_no + 1) * cells - skip]
        found = decode_page(doc[page_no])
        texts = [text for text, _, _ in found]
        assert len(texts) == len(set(texts)), "a barcode was decoded twice"
        assert set(texts) == set(on_page), f"page {page_no + 1}"
        for text, cx, cy in found:
            slot = (codes.index(text) + skip) % cells
            x0, y0, x1, y1 = cell_rect_mm(fmt, slot, paper)
            assert x0 < cx < x1 and y0 < cy < y1, f"{text} is not in cell {slot}"


# -- PDF: barcodes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("paper", PAPERS)
@pytest.mark.parametrize("fmt_name", sorted(LABEL_FORMATS))
def test_pdf_datamatrix_scans_back_on_every_page(fmt_name: str, paper: str) -> None:
    fmt = LABEL_FORMATS[fmt_name]
    assert fmt.symbology == "datamatrix"
    codes = make_codes(fmt.sheet_for(paper).cells + 4)  # a full sheet and the start of a second
    check_sheets(render_pdf(make_labels(codes), fmt_name, paper=paper), fmt, codes, paper=paper)


@pytest.mark.parametrize("paper", PAPERS)
@pytest.mark.parametrize("fmt_name", ["cassette", "slide"])
def test_pdf_qr_with_partly_used_first_sheet(fmt_name: str, paper: str) -> None:
    fmt = LABEL_FORMATS[fmt_name]
    codes = make_codes(9)
    skip = fmt.sheet_for(paper).cells - 3  # only the last three cells of the first sheet are free
    pdf = render_pdf(make_labels(codes), fmt_name, "qr", skip=skip, paper=paper)
    check_sheets(pdf, fmt, codes, skip=skip, paper=paper)


def decode_matrix(modules: list[list[bool]]) -> list[str]:
    scale, border = 4, 4
    size = (len(modules) + 2 * border) * scale
    image = np.full((size, size), 255, dtype=np.uint8)
    for r, row in enumerate(modules):
        for c, dark in enumerate(row):
            if dark:
                y, x = (r + border) * scale, (c + border) * scale
                image[y : y + scale, x : x + scale] = 0
    return [res.text for res in zxingcpp.read_barcodes(image)]


@pytest.mark.parametrize("code", [*EDGE_CODES, "x" * MAX_CODE_LENGTH])
@pytest.mark.parametrize("symbology", ["datamatrix", "qr"])
def test_symbol_matrix_decodes_exactly(symbology: str, code: str) -> None:
    modules = datamatrix_matrix(code) if symbology == "datamatrix" else qr_matrix(code)
    assert decode_matrix(modules) == [code]


@pytest.mark.parametrize("size", sorted(DATAMATRIX_SPECS))
def test_datamatrix_every_symbol_size(size: int) -> None:
    """reportlab only ships the 44x44 symbol; the sized subclass must produce every square size correctly."""
    capacity = DATAMATRIX_SPECS[size][0]
    for value in ("x" * capacity, "x" * (capacity - 1)):  # full symbol, and one with a pad codeword
        assert datamatrix_size(value) == size
        modules = datamatrix_matrix(value)
        assert len(modules) == size and all(len(row) == size for row in modules)
        assert decode_matrix(modules) == [value]
        if size in (12, 16, 20, 24):  # the fixed bottom-right pattern of sizes with 4 spare data bits
            corner = [modules[size - 3][size - 3], modules[size - 3][size - 2]]
            corner += [modules[size - 2][size - 3], modules[size - 2][size - 2]]
            assert corner == [True, False, False, True]


# -- PDF: text ---------------------------------------------------------------------------------------------------


def page_text_in(page: pdfium.PdfPage, rect_mm: tuple[float, float, float, float]) -> str:
    x0, y0, x1, y1 = rect_mm
    height = page.get_height()
    text = page.get_textpage().get_text_bounded(x0 * MM, height - y1 * MM, x1 * MM, height - y0 * MM)
    return " ".join(text.split())


def test_pdf_shows_every_field_in_its_own_cell() -> None:
    fmt = LABEL_FORMATS["cryotube"]
    labels = [
        LabelData("RA0001-L02B-SF1", "RA-0001", "Liver L02 B", "snap-frozen", "2026-11-22", "PLANNED"),
        LabelData("RA0002-K01A-FF2", "RA-0002", "Kidney\nleft   K01", "FFPE", "2026-11-23"),
    ]
    page = pdfium.PdfDocument(render_pdf(labels, "cryotube", paper="A4"))[0]
    first = page_text_in(page, cell_rect_mm(fmt, 0))
    for part in ("RA0001-L02B-SF1", "RA-0001", "2026-11-22", "Liver L02 B", "snap-frozen", "PLANNED"):
        assert part in first
    second = page_text_in(page, cell_rect_mm(fmt, 1))
    for part in ("RA0002-K01A-FF2", "RA-0002", "Kidney left K01", "FFPE"):
        assert part in second
    assert "PLANNED" not in second


def test_pdf_code_is_shrunk_rather_than_shortened() -> None:
    fmt = LABEL_FORMATS["cassette"]
    code = "RA0001-L02B-SF12"  # wider than the cassette's text column at the nominal code size
    page = pdfium.PdfDocument(render_pdf(make_labels([code]), "cassette", paper="A4"))[0]
    text = page_text_in(page, cell_rect_mm(fmt, 0))
    assert code in text and "\u2026" not in text


@pytest.mark.parametrize("fmt_name", sorted(LABEL_FORMATS))
def test_pdf_long_text_never_leaves_the_label(fmt_name: str) -> None:
    fmt = LABEL_FORMATS[fmt_name]
    long_code = "RA0001-" + "W" * (MAX_CODE_LENGTH - 12) + "-SF99"
    label = LabelData(
        code=long_code,
        donor="RA-0001 " + "M" * 60,
        site="Lymph node, para-aortic, left side, below the renal vein, " * 4,
        storage_format="snap-frozen in OCT then stored in vapour-phase liquid nitrogen",
        date="2026-11-22 03:14 UTC (time of death + 4 h 10 min)",
        extra="PLANNED " * 10,
    )
    pdf = render_pdf([label, replace(label, code=long_code[::-1])], fmt_name, paper="A4")
    page = pdfium.PdfDocument(pdf)[0]
    textpage = page.get_textpage()
    height = page.get_height()
    cells = [cell_rect_mm(fmt, 0), cell_rect_mm(fmt, 1)]
    tolerance = 0.05
    glyphs = 0
    for i in range(textpage.count_chars()):
        if not textpage.get_text_range(i, 1).strip():
            continue
        left, bottom, right, top = textpage.get_charbox(i)
        x0, x1 = left / MM, right / MM
        y0, y1 = (height - top) / MM, (height - bottom) / MM
        inside = any(
            cx0 + fmt.padding_mm - tolerance <= x0
            and x1 <= cx1 - fmt.padding_mm + tolerance
            and cy0 - tolerance <= y0
            and y1 <= cy1 + tolerance
            for cx0, cy0, cx1, cy1 in cells
        )
        assert inside, f"{textpage.get_text_range(i, 1)!r} at x {x0:.2f}-{x1:.2f} mm, y {y0:.2f}-{y1:.2f} mm"
        glyphs += 1
    assert glyphs > 40
    text = page_text_in(page, cells[0])
    # The code is shortened in the middle: its start and its distinguishing end both stay readable.
    assert "RA0001-" in text and "-SF99" in text and "\u2026" in text
    check_sheets(pdf, fmt, [long_code, long_code[::-1]])  # the barcodes still carry the full codes


def test_pdf_replaces_characters_the_font_cannot_draw() -> None:
    labels = make_labels(["RA0001-L02B-SF1"], site="Leber \u2192 \u5317 L\u00f8", donor="RA\u20110001")
    page = pdfium.PdfDocument(render_pdf(labels, "slide", paper="A4"))[0]
    text = page_text_in(page, cell_rect_mm(LABEL_FORMATS["slide"], 0))
    assert "Leber ? ? L\u00f8" in text  # arrow and CJK become '?', Latin-1 stays
    assert "RA-0001" in text  # NFKC folds the non-breaking hyphen


def test_pdf_is_reproducible() -> None:
    labels = make_labels(make_codes(5))
    assert render_pdf(labels, "slide") == render_pdf(labels, "slide")


def test_outline_draws_label_edges() -> None:
    labels = make_labels(["RA0001-L02B-SF1"])
    assert render_pdf(labels, outline=True) != render_pdf(labels)


# -- ZPL ---------------------------------------------------------------------------------------------------------


def zpl_blocks(zpl: str) -> list[str]:
    blocks = re.findall(r"\^XA.*?\^XZ", zpl, flags=re.S)
    assert "".join(blocks).count("^XA") == zpl.count("^XA")
    return blocks


def field_data(block: str) -> list[str]:
    return re.findall(r"\^FD(.*?)\^FS", block, flags=re.S)


def unhex(data: str) -> str:
    raw = re.sub(rb"_([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), data.encode("ascii"))
    return raw.decode("utf-8")


def test_zpl_one_format_per_label_with_datamatrix() -> None:
    codes = make_codes(4)
    zpl = render_zpl(make_labels(codes, extra="PLANNED"), "cryotube", dpi=300)
    blocks = zpl_blocks(zpl)
    assert len(blocks) == len(codes) == zpl.count("^XZ")
    for code, block in zip(codes, blocks, strict=True):
        assert block.count("^BX") == 1 and "^BQ" not in block
        assert f"^FD{code}^FS" in block  # the barcode field carries the code verbatim
        texts = [unhex(d) for d in field_data(block)[1:]]
        assert code in texts  # and the human-readable line shows it
        assert "PLANNED" in texts
        assert "^CI28" in block  # ^FH hex bytes are UTF-8


def test_zpl_qr() -> None:
    zpl = render_zpl(make_labels(["RA0001-L02B-SF1"]), "slide", dpi=203, symbology="qr")
    (block,) = zpl_blocks(zpl)
    assert "^BQN,2," in block and "^BX" not in block
    assert "^FDMA,RA0001-L02B-SF1^FS" in block


def test_zpl_escapes_command_characters_in_text() -> None:
    nasty = "Liver^XZ^XA~JA_5E\\&x"
    labels = make_labels(["RA0001-L02B-SF1", "RA0001-L02B-SF2"], site=nasty, donor="RA~1^FS")
    zpl = render_zpl(labels, "slide")
    blocks = zpl_blocks(zpl)
    assert len(blocks) == 2 and zpl.count("^XZ") == 2
    assert "~" not in zpl  # no control command can be smuggled in
    for block in blocks:
        data = field_data(block)
        assert all("^" not in d and "~" not in d for d in data)
        texts = " ".join(unhex(d) for d in data[1:])
        assert "RA~1^FS" in texts
        assert "Liver^XZ^XA~JA_5E/&x" in texts.replace(" ", "")  # a backslash cannot start a ^FB line break


@pytest.mark.parametrize("dpi", sorted(ZEBRA_DOTS_PER_MM))
@pytest.mark.parametrize("fmt_name", sorted(LABEL_FORMATS))
def test_zpl_sized_for_format_and_dpi(fmt_name: str, dpi: int) -> None:
    fmt = LABEL_FORMATS[fmt_name]
    dots_per_mm = ZEBRA_DOTS_PER_MM[dpi]
    code = "RA0001-L02B-SF1"
    (block,) = zpl_blocks(render_zpl(make_labels([code]), fmt_name, dpi=dpi))
    assert f"^PW{round(fmt.width_mm * dots_per_mm)}" in block
    assert f"^LL{round(fmt.height_mm * dots_per_mm)}" in block
    m = re.search(r"\^FO(\d+),(\d+)\^BXN,(\d+),200,(\d+),(\d+),6,!", block)
    assert m is not None
    x, _y, module, cols, rows = map(int, m.groups())
    assert cols == rows == datamatrix_size(code)
    assert module >= 2  # whole dots per module, never a 1-dot smear
    symbol_mm = module * cols / dots_per_mm
    assert x / dots_per_mm >= fmt.padding_mm - 0.2
    assert symbol_mm <= fmt.barcode_mm and (x + module * cols) / dots_per_mm <= fmt.beside_x_mm
    for fx, _fy in re.findall(r"\^FO(\d+),(\d+)\^A0", block):
        assert int(fx) / dots_per_mm < fmt.width_mm - fmt.padding_mm
    for width in re.findall(r"\^FB(\d+),", block):
        assert int(width) / dots_per_mm <= fmt.inner_width_mm + 0.1


# -- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["", "RA 0001", "RA0001/L02", "RA0001-\u00e9", "RA^XZ", "RA~JA", "x" * 65])
def test_bad_code_is_rejected(code: str) -> None:
    with pytest.raises(ValueError, match="specimen code"):
        LabelData(code, "RA-0001", "Liver", "FFPE", "2026-11-22")


def test_non_text_field_is_rejected() -> None:
    with pytest.raises(TypeError, match="date"):
        LabelData("RA0001", "RA-0001", "Liver", "FFPE", 20261122)  # type: ignore[arg-type]


@pytest.mark.parametrize("render", [render_pdf, render_zpl])
def test_render_errors(render) -> None:  # type: ignore[no-untyped-def]
    labels = make_labels(["RA0001-L02B-SF1"])
    with pytest.raises(ValueError, match="empty"):
        render([])
    with pytest.raises(ValueError, match=r"unknown label format 'tube'.*cryotube"):
        render(labels, "tube")
    with pytest.raises(ValueError, match=r"unknown symbology 'code128'.*datamatrix"):
        render(labels, "cryotube", symbology="code128")
    with pytest.raises(TypeError, match="LabelData"):
        render(["RA0001-L02B-SF1"])


def test_render_pdf_rejects_skip_outside_sheet() -> None:
    labels = make_labels(["RA0001-L02B-SF1"])
    with pytest.raises(ValueError, match="skip"):
        render_pdf(labels, "slide", skip=LABEL_FORMATS["slide"].sheet_for("A4").cells, paper="A4")
    with pytest.raises(ValueError, match="skip"):
        render_pdf(labels, "slide", skip=-1)


def test_render_zpl_rejects_unknown_dpi() -> None:
    with pytest.raises(ValueError, match="dpi"):
        render_zpl(make_labels(["RA0001-L02B-SF1"]), dpi=250)


# -- formats -----------------------------------------------------------------------------------------------------


def test_formats_are_declared_consistently() -> None:
    assert {"cryotube", "cassette", "slide"} <= set(LABEL_FORMATS)
    for name, fmt in LABEL_FORMATS.items():
        assert fmt.name == name
        for paper in PAPERS:
            sheet = fmt.sheet_for(paper)
            page_w, page_h = sheet.page_size_mm
            x1, y1, *_ = cell_rect_mm(fmt, 0, paper)
            *_, x2, y2 = cell_rect_mm(fmt, sheet.cells - 1, paper)
            assert x2 <= page_w and y2 <= page_h
            if sheet not in fmt.sheets:  # a fitted grid: centred, inside the printer's margin
                assert min(x1, y1, page_w - x2, page_h - y2) >= MIN_MARGIN_MM
                assert abs(x1 - (page_w - x2)) < 0.01 and abs(y1 - (page_h - y2)) < 0.01
        assert fmt.symbology in ("datamatrix", "qr")
    cryo = LABEL_FORMATS["cryotube"]
    assert (cryo.width_mm, cryo.height_mm) == (32.5, 12.7)


def test_inconsistent_format_is_refused() -> None:
    cryo = LABEL_FORMATS["cryotube"]
    with pytest.raises(ValueError, match="beside the barcode"):
        replace(cryo, text_font_pt=9.0)
    with pytest.raises(ValueError, match="does not fit"):
        replace(cryo, sheets=(replace(cryo.sheets[0], rows=30),))
    with pytest.raises(ValueError, match="more than one sheet layout"):
        replace(cryo, sheets=(cryo.sheets[0], cryo.sheets[0]))
    with pytest.raises(ValueError, match="at least one label product"):
        replace(cryo, sheets=())
    with pytest.raises(ValueError, match="symbology"):
        replace(cryo, symbology="pdf417")
