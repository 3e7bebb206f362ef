"""Label reprints: any specimens, or a whole box in position order, scan back to their codes on the lab's paper."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from biobank.domain.errors import NotFoundError, ValidationError
from biobank.labels import LABEL_FORMATS, PAGE_SIZES_MM
from biobank.printables import labels_pdf, reprint_codes
from tests.labels.test_labels_render import check_sheets
from tests.printables.reading import page_sizes_mm
from tests.queries.test_specimen_list import A, B


def test_a_box_is_relabelled_in_position_order_on_the_labs_paper(stocked, paper):
    with Session(stocked) as session:
        codes = reprint_codes(session, box="LNBOX1")
        pdf = labels_pdf(session, box="LNBOX1")
    assert codes == [f"{B}VC1", f"{A}VC1"]  # A2 before A10
    assert page_sizes_mm(pdf) == [PAGE_SIZES_MM[paper]]
    check_sheets(pdf, LABEL_FORMATS["cryotube"], codes, paper=paper)  # each barcode in its cell, in this order


@pytest.mark.parametrize("fmt", ["cassette", "slide"])
def test_chosen_specimens_on_another_stock_leaving_used_cells_empty(stocked, paper, fmt):
    codes = [f"{A}FF1", f"{B}FF1", f"{A}FF1"]
    with Session(stocked) as session:
        pdf = labels_pdf(session, codes=codes, fmt=fmt, skip=2)
    check_sheets(pdf, LABEL_FORMATS[fmt], [f"{A}FF1", f"{B}FF1"], skip=2, paper=paper)  # once each


def test_reprint_refusals(stocked):
    with Session(stocked) as session:
        with pytest.raises(ValidationError, match="exactly one"):
            labels_pdf(session)
        with pytest.raises(ValidationError, match="exactly one"):
            labels_pdf(session, codes=[f"{A}SF1"], box="BOX1")
        with pytest.raises(ValidationError, match="nothing to label"):
            labels_pdf(session, box="BAG1")
        with pytest.raises(ValidationError, match="cryotube"):
            labels_pdf(session, codes=[f"{A}SF1"], fmt="tube")
        with pytest.raises(ValidationError, match="skip 0 to"):
            labels_pdf(session, codes=[f"{A}SF1"], skip=500)
        with pytest.raises(NotFoundError, match="RA0009"):
            labels_pdf(session, codes=["RA0009-L01A-SF1"])
