"""Shipment manifests read back from the PDF: order, recipient, purpose, items and quantities, the consent the
order's use needs, signature lines, the lab's paper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from biobank.db.engine import session_scope
from biobank.domain.errors import NotFoundError
from biobank.labels import PAGE_SIZES_MM
from biobank.printables import manifest_pdf
from biobank.services import distribution
from tests.conftest import DEATH
from tests.printables.reading import in_order, opened, page_sizes_mm, squares, text
from tests.queries.test_specimen_list import A, B

PRINTED = datetime(2026, 3, 20, 9, 30, tzinfo=UTC)


def test_a_shipped_orders_manifest_names_everything_the_recipient_signs_for(stocked, tech, pi, paper):
    with session_scope(stocked) as session:
        distribution.approve(session, actor=pi, order_code="DO-1", when=DEATH + timedelta(days=3))
        distribution.ship(session, actor=tech, order_code="DO-1", shipping_temperature="-60to-85",
                          tracking_ref="DHL 123 456", when=DEATH + timedelta(days=4))
    with Session(stocked) as session:
        pdf = manifest_pdf(session, "DO-1", printed_at=PRINTED)
    assert page_sizes_mm(pdf) == [PAGE_SIZES_MM[paper]]
    printed = text(pdf)
    for part in (
        "Shipment manifest: order DO-1", "Study PHYLO", "Recipient Dr Lee, Crick", "Purpose WGS of liver metastases",
        "Use sequencing", "Status shipped", "by pi", "by tech", "-60to-85 (-60 to -85 °C)", "Tracking DHL 123 456",
        "Items (2)", "20 mg", "100 mg", "2 item(s) in total.",
        "consent to: research use, genomic sequencing", "pseudonyms",
        "Packed by (biobank)", "Checked by (biobank)", "Received by (recipient)", "Name Signature Date",
    ):
        assert part in printed, part
    assert "not approved" not in printed
    items = printed[printed.index("Items (2)"):printed.index("in total")]
    assert in_order(items, [f"{B}VC1", f"{A}SF1"]) == [f"{A}SF1", f"{B}VC1"]  # by code, numbered
    assert "1 RA0001-L01A-SF1 RA-0001 snap frozen 20 mg" in items
    with opened(pdf) as (page,):
        assert len(squares(page, min_mm=3.0, max_mm=4.5)) == 2 * 2  # packed and received, per item


def test_a_draft_is_marked_as_not_approved_for_shipment(stocked):
    with Session(stocked) as session:
        printed = text(manifest_pdf(session, "DO-1", printed_at=PRINTED))
    assert "DRAFT: this order is not approved for shipment." in printed and "Status draft" in printed


def test_free_text_prints_as_typed(stocked, pi):
    with session_scope(stocked) as session:
        distribution.create_order(session, actor=pi, study="A & B <study>", recipient="Dr Ø. Ng\nLab 3",
                                  use="research", purpose=None, code="DO-2")
        distribution.add_item(session, actor=pi, order_code="DO-2", specimen_code=f"{B}SF2", quantity=5)
    with Session(stocked) as session:
        printed = text(manifest_pdf(session, "DO-2", printed_at=PRINTED))
    assert "Study A & B <study>" in printed and "Recipient Dr Ø. Ng Lab 3" in printed
    assert "Purpose (not stated)" in printed and "consent to: research use." in printed


def test_an_unknown_order_is_named(stocked):
    with Session(stocked) as session, pytest.raises(NotFoundError, match="DO-9"):
        manifest_pdf(session, "DO-9")
