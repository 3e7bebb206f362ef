"""Distribution orders: consent at the moment of shipping, only a PI approves, a technician ships, quantities add up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, ConsentError, PermissionDeniedError, ValidationError
from biobank.queries import core as queries
from biobank.queries import distribution as order_reads
from biobank.queries import storage as storage_reads
from biobank.services import distribution as orders
from biobank.services import donors, storage
from biobank.services import specimens as specimen_service
from tests.support.dbtools import snapshot
from tests.support.factories import by_format, donor_with_region, lab


@pytest.fixture
def tubes(engine, tech):
    """Two snap-frozen tubes (50 mg each) stored in BOX1 at A1 and A2."""
    with session_scope(engine) as session:
        lab(session, tech)
        codes = by_format(donor_with_region(session, tech), "snap_frozen")
        storage.store(session, actor=tech, codes=codes, box_code="BOX1", at="A1")
        return codes


def refused(engine, action, error, match=None):
    before = snapshot(engine)
    with pytest.raises(error, match=match), session_scope(engine) as session:
        action(session)
    assert snapshot(engine) == before


def draft(engine, actor, items, use="sequencing", code="DO-1"):
    with session_scope(engine) as session:
        orders.create_order(session, actor=actor, study="PHYLO-1", recipient="Dr Lee, Sequencing Core", use=use, code=code,
                            purpose="WGS for phylogeny")
        for specimen_code, quantity in items:
            orders.add_item(session, actor=actor, order_code=code, specimen_code=specimen_code, quantity=quantity)


def test_an_order_goes_from_draft_to_closed_and_quantities_stay_right(engine, tech, pi, tubes):
    whole, part = tubes
    draft(engine, pi, [(whole, None), (part, 20)])
    with session_scope(engine) as session:
        orders.approve(session, actor=pi, order_code="DO-1")
        orders.ship(session, actor=tech, order_code="DO-1", shipping_temperature="-60to-85", tracking_ref="DHL 123")
    with session_scope(engine) as session:
        shipped_whole = specimen_service.get_specimen(session, whole)
        shipped_part = specimen_service.get_specimen(session, part)
        assert (shipped_whole.status, shipped_whole.quantity_remaining) == ("distributed", 0)
        assert (shipped_part.status, shipped_part.quantity_remaining) == ("available", 30)
        assert storage_reads.find(session, whole)["stored"] is False  # its position is free again
        assert storage_reads.find(session, part)["location"].endswith("BOX1:A2")
        last = queries.specimen_detail(session, whole)["custody"][-1]
        assert (last["kind"], last["from"], last["user"]) == ("distributed", "UH/LAB1/FRZ1/R1/BOX1:A1", "tech")
        assert "DO-1" in last["to"]
        orders.receive(session, actor=tech, order_code="DO-1")
        orders.return_items(session, actor=tech, order_code="DO-1", specimen_code=whole, quantity=10, note="unused")
    with session_scope(engine) as session:
        back = specimen_service.get_specimen(session, whole)
        assert (back.status, back.quantity_remaining) == ("available", 10)
        detail = order_reads.order_detail(session, "DO-1")
        assert detail["status"] == "received"
        assert [(i["specimen"], i["quantity"], i["returned"]) for i in detail["items"]] == [(whole, 50, 10), (part, 20, 0)]
        orders.close(session, actor=tech, order_code="DO-1")
        assert order_reads.order_rows(session)[0]["status"] == "closed"


def test_only_a_pi_approves(engine, tech, pi, tubes):
    draft(engine, tech, [(tubes[0], 10)])
    refused(engine, lambda s: orders.approve(s, actor=tech, order_code="DO-1"), PermissionDeniedError, "technician")


def test_a_pi_does_not_ship_and_nothing_ships_unapproved(engine, tech, pi, tubes):
    draft(engine, tech, [(tubes[0], 10)])
    refused(engine, lambda s: orders.ship(s, actor=tech, order_code="DO-1", shipping_temperature="LN"),
            ConflictError, "is draft")
    with session_scope(engine) as session:
        orders.approve(session, actor=pi, order_code="DO-1")
    refused(engine, lambda s: orders.ship(s, actor=pi, order_code="DO-1", shipping_temperature="LN"),
            PermissionDeniedError, "pi")


def test_a_viewer_cannot_draft_an_order(engine, viewer, tubes):
    refused(engine, lambda s: orders.create_order(s, actor=viewer, study="X", recipient="Y", use="research"),
            PermissionDeniedError, "viewer")


def test_more_than_remains_is_not_distributed(engine, tech, pi, tubes):
    draft(engine, tech, [(tubes[0], 40)])
    refused(engine, lambda s: orders.add_item(s, actor=tech, order_code="DO-1", specimen_code=tubes[1], quantity=60),
            ValidationError, "only 50 mg")
    # a second open order cannot promise what the first already holds
    draft(engine, tech, [], code="DO-2")
    refused(engine, lambda s: orders.add_item(s, actor=tech, order_code="DO-2", specimen_code=tubes[0], quantity=20),
            ValidationError, "40 promised to other open orders")


def test_a_depleted_specimen_is_not_distributed(engine, tech, tubes):
    with session_scope(engine) as session:
        specimen_service.aliquot(session, actor=tech, parent_code=tubes[0], portions=[50])
    draft(engine, tech, [])
    refused(engine, lambda s: orders.add_item(s, actor=tech, order_code="DO-1", specimen_code=tubes[0], quantity=1),
            ValidationError, "depleted")


def test_no_consent_for_the_use_refuses_the_item(engine, tech, tubes):
    draft(engine, tech, [], use="model_derivation")
    refused(engine, lambda s: orders.add_item(s, actor=tech, order_code="DO-1", specimen_code=tubes[0]),
            ConsentError, "no consent to model_derivation")


def test_a_withdrawal_after_approval_stops_the_shipment(engine, tech, pi, tubes):
    draft(engine, tech, [(tubes[0], 10)])
    with session_scope(engine) as session:
        orders.approve(session, actor=pi, order_code="DO-1")
        donors.withdraw_consent(session, actor=tech, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=datetime(2026, 4, 1, tzinfo=UTC), reason="family request")
    refused(engine, lambda s: orders.ship(s, actor=tech, order_code="DO-1", shipping_temperature="-60to-85"),
            ConsentError, "withdrawn")


def test_a_checked_out_tube_is_not_shipped(engine, tech, pi, tubes):
    draft(engine, tech, [(tubes[0], 10)])
    with session_scope(engine) as session:
        orders.approve(session, actor=pi, order_code="DO-1")
        storage.check_out(session, actor=tech, code=tubes[0])
    refused(engine, lambda s: orders.ship(s, actor=tech, order_code="DO-1", shipping_temperature="-60to-85"),
            ValidationError, "checked out")


def test_more_cannot_come_back_than_was_sent(engine, tech, pi, tubes):
    draft(engine, tech, [(tubes[0], 10)])
    with session_scope(engine) as session:
        orders.approve(session, actor=pi, order_code="DO-1")
        orders.ship(session, actor=tech, order_code="DO-1", shipping_temperature="-60to-85")
    refused(engine, lambda s: orders.return_items(s, actor=tech, order_code="DO-1", specimen_code=tubes[0], quantity=11),
            ValidationError, "only 10 mg")
    refused(engine, lambda s: orders.return_items(s, actor=tech, order_code="DO-1", specimen_code=tubes[1], quantity=1),
            ValidationError, "not on order")


def test_order_codes_are_generated_per_year(engine, tech):
    with session_scope(engine) as session:
        first = orders.create_order(session, actor=tech, study="S", recipient="R", use="research")
        second = orders.create_order(session, actor=tech, study="S", recipient="R", use="research")
    assert first.code.startswith("DO-") and first.code.endswith("-001")
    assert second.code.endswith("-002")
