"""Label sheets follow the lab's one paper size setting; the labels themselves stay the same size on either paper."""

from __future__ import annotations

from collections.abc import Iterator

import pypdfium2 as pdfium
import pytest

from biobank.config import get_settings
from biobank.labels import LABEL_FORMATS, PAGE_SIZES_MM, fit_sheet, render_pdf, resolve_paper
from tests.labels.test_labels_render import MM, check_sheets, make_codes, make_labels


@pytest.fixture
def paper_setting(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set ``BIOBANK_PAPER_SIZE`` with ``paper_setting.setenv``; the settings cache is cleared around the test."""
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def page_size_mm(pdf: bytes) -> tuple[float, float]:
    width, height = pdfium.PdfDocument(pdf)[0].get_size()
    return round(width / MM, 1), round(height / MM, 1)


@pytest.mark.parametrize("setting", ["A4", "Letter"])
@pytest.mark.parametrize("fmt_name", sorted(LABEL_FORMATS))
def test_every_label_sheet_prints_on_the_paper_the_lab_set(paper_setting, fmt_name: str, setting: str) -> None:
    paper_setting.setenv("BIOBANK_PAPER_SIZE", setting)
    get_settings.cache_clear()
    codes = make_codes(3)
    pdf = render_pdf(make_labels(codes), fmt_name)
    assert page_size_mm(pdf) == PAGE_SIZES_MM[setting]
    check_sheets(pdf, LABEL_FORMATS[fmt_name], codes, paper=setting)


def test_tube_labels_no_longer_force_letter_nor_cassettes_a4(paper_setting) -> None:
    """The two formats that used to print on different papers now share the one set."""
    labels = make_labels(make_codes(2))
    paper_setting.setenv("BIOBANK_PAPER_SIZE", "A4")
    get_settings.cache_clear()
    assert page_size_mm(render_pdf(labels, "cryotube")) == page_size_mm(render_pdf(labels, "cassette")) == (210.0, 297.0)
    paper_setting.setenv("BIOBANK_PAPER_SIZE", "Letter")
    get_settings.cache_clear()
    assert page_size_mm(render_pdf(labels, "cryotube")) == page_size_mm(render_pdf(labels, "cassette")) == (215.9, 279.4)


@pytest.mark.parametrize("fmt_name", sorted(LABEL_FORMATS))
def test_the_label_itself_is_the_same_on_either_paper(fmt_name: str) -> None:
    fmt = LABEL_FORMATS[fmt_name]
    pitches = set()
    for paper in PAGE_SIZES_MM:
        sheet = fmt.sheet_for(paper)
        (x0, y0), (x1, _), (_, y2) = (fmt.cell_origin_mm(slot, paper) for slot in (0, 1, sheet.columns))
        pitches.add((round(x1 - x0, 3), round(y2 - y0, 3)))
    assert len(pitches) == 1  # the same label pitch (size and die-cut gap) on A4 and on Letter


def test_the_declared_products_keep_their_layouts_and_the_other_paper_is_fitted() -> None:
    cryo, cassette = LABEL_FORMATS["cryotube"], LABEL_FORMATS["cassette"]
    assert cryo.sheet_for("Letter") == cryo.sheets[0] and cryo.sheet_for("Letter").cells == 85
    assert cryo.sheet_for("A4").cells == 90  # 5 x 18 of the same 32.5 x 12.7 mm labels
    assert cassette.sheet_for("A4") == cassette.sheets[0] and cassette.sheet_for("A4").cells == 120
    assert cassette.sheet_for("Letter").cells == 114  # 6 x 19
    assert LABEL_FORMATS["slide"].sheet_for("Letter").cells == 70


def test_a_label_too_big_for_the_paper_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit on A4"):
        fit_sheet("A4", 250.0, 20.0, 2.0, 2.0)


def test_paper_names_resolve_from_the_setting_or_the_caller(paper_setting) -> None:
    paper_setting.setenv("BIOBANK_PAPER_SIZE", "Letter")
    get_settings.cache_clear()
    assert resolve_paper() == "Letter"
    assert resolve_paper("a4") == "A4" and resolve_paper("LETTER") == "Letter"
    with pytest.raises(ValueError, match=r"unknown paper size 'A5'.*A4, Letter"):
        resolve_paper("A5")
    with pytest.raises(ValueError, match="unknown paper size"):
        LABEL_FORMATS["slide"].sheet_for("legal")
    labels = make_labels(["RA0001-L01A-SF1"])
    assert page_size_mm(render_pdf(labels, "slide", paper="A4")) == (210.0, 297.0)  # the caller's choice wins
