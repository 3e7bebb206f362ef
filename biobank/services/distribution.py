"""Distribution: orders from a study, their items, approval by a PI, shipment by a technician, receipt, returns.

Consent is checked for every item when it is added, when the order is approved and again at the moment of
shipping (DOMAIN.md §2, §5): a withdrawal recorded in between stops the shipment. Shipping takes the quantity from
the specimen's remaining quantity; a specimen shipped whole leaves its position and becomes ``distributed``;
returns add the quantity back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.domain.codes import require_safe
from biobank.domain.errors import ConflictError, PermissionDeniedError, invalid
from biobank.domain.storage.kinds import TemperatureClass
from biobank.domain.storage.orders import TRANSITIONS, USE_SCOPES, DistributionUse, OrderStatus
from biobank.domain.vocab import CustodyKind, SpecimenStatus
from biobank.models import Donor, Specimen, User
from biobank.models.audit import act_as, add_as
from biobank.models.base import utcnow
from biobank.models.storage import DistributionItem, DistributionOrder
from biobank.queries import storage as storage_reads
from biobank.queries.distribution import order_items
from biobank.services import reservations, storage
from biobank.services.auth import Action, can, require
from biobank.services.checks import check_enum, check_time
from biobank.services.custody import record_event
from biobank.services.donors import require_consent
from biobank.services.inputs import OrderCreate, check_quantity
from biobank.services.lookup import by_code
from biobank.services.specimens import get_specimen

#: Statuses from which material may be promised or shipped.
DISTRIBUTABLE = frozenset({SpecimenStatus.available.value, SpecimenStatus.reserved.value})


def get_order(session: Session, code: str, *, for_update: bool = False) -> DistributionOrder:
    """The order with this code, typed in any letter case."""
    return by_code(session, DistributionOrder, DistributionOrder.code, code, what="distribution order", field="order",
                   for_update=for_update)


def _require_requester(actor: User | None) -> User:
    """Technicians (data entry) and PIs (planning) both draft orders."""
    if can(actor, Action.enter) or can(actor, Action.plan):
        return actor  # type: ignore[return-value]  # require() returned, so the actor is a user
    if actor is None or not actor.is_active:
        return require(actor, Action.enter)  # the usual "no user" / "disabled" message
    raise PermissionDeniedError(
        f"order: user {actor.username!r} has role {actor.role!r}; this needs one of: admin, pi, technician",
        field="role", value=actor.role,
    )


def _check_consent(session: Session, order: DistributionOrder, specimen: Specimen) -> None:
    donor = session.get(Donor, specimen.donor_id)
    assert donor is not None
    for scope in USE_SCOPES[DistributionUse(order.use)]:
        require_consent(session, donor, scope.value)


def _check_move(order: DistributionOrder, target: OrderStatus) -> None:
    """Refuse a status change the order's state does not allow (checked before anything is written)."""
    current = OrderStatus(order.status)
    if target not in TRANSITIONS[current]:
        raise ConflictError(
            f"order {order.code}: is {current.value}; it cannot become {target.value}", field="status", value=current.value
        )


def next_order_code(session: Session, year: int | None = None) -> str:
    year = year or utcnow().year
    prefix = f"DO-{year}-"
    count = session.exec(
        select(func.count()).select_from(DistributionOrder).where(DistributionOrder.code.like(f"{prefix}%"))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
    ).one()
    return f"{prefix}{int(count) + 1:03d}"


def create_order(
    session: Session,
    *,
    actor: User | None,
    study: str,
    recipient: str,
    use: str,
    purpose: str | None = None,
    code: str | None = None,
    note: str | None = None,
) -> DistributionOrder:
    """A draft order from a study; items are added next, then a PI approves it."""
    _require_requester(actor)
    check_enum("use", use, DistributionUse)
    if not study or not study.strip():
        raise invalid("study", study, "name the study")
    if not recipient or not recipient.strip():
        raise invalid("recipient", recipient, "name the recipient (person and institution)")
    OrderCreate.build(study=study.strip(), recipient=recipient.strip(), use=use, purpose=(purpose or "").strip() or None,
                      code=code, note=note)
    code = (code or "").strip() or next_order_code(session)
    require_safe("code", code)
    if session.exec(select(DistributionOrder.id).where(DistributionOrder.code == code)).first() is not None:
        raise ConflictError(f"code={code!r}: an order with this code already exists", field="code", value=code)
    order = DistributionOrder(
        code=code, study=study.strip(), recipient=recipient.strip(), use=str(use),
        purpose=(purpose or "").strip() or None, note=note,
    )
    return add_as(session, actor, order)


def _promised_elsewhere(session: Session, specimen: Specimen, order: DistributionOrder) -> list[reservations.Holder]:
    """Who else holds part of this specimen: other open (draft or approved) orders and reserving analysis plans."""
    assert specimen.id is not None, "specimen is flushed"
    return reservations.holders(session, specimen.id, except_order_id=order.id)


def _check_available(session: Session, order: DistributionOrder, specimen: Specimen, quantity: float) -> None:
    if specimen.status not in DISTRIBUTABLE:
        raise invalid("specimen", specimen.code, f"specimen is {specimen.status}; it cannot be distributed")
    held = _promised_elsewhere(session, specimen, order)
    available = specimen.quantity_remaining - sum(h.quantity for h in held)
    if quantity > available + 1e-9:
        names = ", ".join(h.text(specimen.unit) for h in held)
        total = sum(h.quantity for h in held)
        extra = f" ({total:g} promised to other open orders and plans: {names})" if held else ""
        raise invalid(
            "quantity", quantity,
            f"only {max(available, 0):g} {specimen.unit} of {specimen.code} can be distributed{extra}",
        )


def add_item(
    session: Session,
    *,
    actor: User | None,
    order_code: str,
    specimen_code: str,
    quantity: float | None = None,
) -> DistributionItem:
    """Add a specimen to a draft order (its whole remaining quantity unless ``quantity`` is given)."""
    _require_requester(actor)
    order = get_order(session, order_code, for_update=True)
    if order.status != OrderStatus.draft:
        raise ConflictError(f"order {order_code}: is {order.status}; items are added to draft orders only", field="status")
    order_code = order.code
    specimen = get_specimen(session, specimen_code, for_update=True)
    specimen_code = specimen.code
    if quantity is None:
        quantity = specimen.quantity_remaining
    if quantity is None:
        raise invalid("quantity", quantity, "must be positive")
    check_quantity("quantity", quantity, specimen.unit)
    existing = session.exec(
        select(DistributionItem.id).where(DistributionItem.order_id == order.id, DistributionItem.specimen_id == specimen.id)
    ).first()
    if existing is not None:
        raise ConflictError(f"order {order_code}: already holds {specimen_code}", field="specimen", value=specimen_code)
    _check_available(session, order, specimen, quantity)
    _check_consent(session, order, specimen)
    item = DistributionItem(order_id=order.id, specimen_id=specimen.id, quantity=float(quantity))  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
    return add_as(session, actor, item)


def approve(session: Session, *, actor: User | None, order_code: str, when: datetime | None = None) -> DistributionOrder:
    """A PI approves a draft order: every item is checked for quantity and consent first."""
    user = require(actor, Action.approve)
    check_time("when", when)
    order = get_order(session, order_code, for_update=True)
    order_code = order.code
    items = order_items(session, order)
    # an order may be entered after the fact, but nothing is approved before its material was collected
    check_time("when", when, after=[(f"{specimen.code}'s collection", specimen.collected_at) for _, specimen in items])
    if order.status == OrderStatus.draft and not items:
        raise invalid("order", order_code, "has no items; add specimens before approving")
    _check_move(order, OrderStatus.approved)
    for item, specimen in items:
        _check_available(session, order, specimen, item.quantity)
        _check_consent(session, order, specimen)
    act_as(session, actor)
    order.status = OrderStatus.approved.value
    order.approved_by_id = user.id
    order.approved_at = when or utcnow()
    session.flush()
    return order


def ship(
    session: Session,
    *,
    actor: User | None,
    order_code: str,
    shipping_temperature: str,
    tracking_ref: str | None = None,
    when: datetime | None = None,
) -> DistributionOrder:
    """A technician ships an approved order: consent and quantities are checked again for every item, then each
    specimen gives up the shipped quantity (and its position, when nothing is left)."""
    user = require(actor, Action.ship)
    check_time("when", when)
    check_enum("shipping_temperature", shipping_temperature, TemperatureClass)
    order = get_order(session, order_code, for_update=True)
    at = when or utcnow()
    _check_move(order, OrderStatus.shipped)
    check_time("when", at, after=[("the approval", order.approved_at)])
    items = order_items(session, order)
    locked = [(item, get_specimen(session, specimen.code, for_update=True)) for item, specimen in items]
    for item, specimen in locked:
        check_time("when", at, after=[(f"{specimen.code}'s collection", specimen.collected_at)])
        _check_consent(session, order, specimen)
        if storage_reads.open_checkout(session, specimen.id) is not None:
            raise invalid("specimen", specimen.code, "is checked out; return it before shipping")
        _check_available(session, order, specimen, item.quantity)
    act_as(session, actor)
    order.status = OrderStatus.shipped.value
    order.shipped_at = at
    order.shipped_by_id = user.id
    order.shipping_temperature = str(shipping_temperature)
    order.tracking_ref = tracking_ref
    for item, specimen in locked:
        remaining = max(specimen.quantity_remaining - item.quantity, 0.0)
        specimen.quantity_remaining = remaining
        specimen.version += 1
        where = None
        if remaining <= 1e-9:
            specimen.quantity_remaining = 0.0
            specimen.status = SpecimenStatus.distributed.value
            where = storage.release_location(session, specimen)
        record_event(
            session, specimen=specimen, kind=CustodyKind.distributed, actor=actor, at=at,
            from_location=where or storage_reads.location_label(session, specimen),
            to_location=f"{order.recipient} (order {order.code})"[:200],
            note=f"{item.quantity:g} {specimen.unit} shipped at {shipping_temperature}",
        )
    session.flush()
    return order


def receive(session: Session, *, actor: User | None, order_code: str, when: datetime | None = None) -> DistributionOrder:
    """The recipient confirmed receipt."""
    require(actor, Action.ship)
    check_time("when", when)
    order = get_order(session, order_code, for_update=True)
    at = when or utcnow()
    _check_move(order, OrderStatus.received)
    check_time("when", at, after=[("the shipment", order.shipped_at)])
    act_as(session, actor)
    order.status = OrderStatus.received.value
    order.received_at = at
    session.flush()
    return order


def return_items(
    session: Session,
    *,
    actor: User | None,
    order_code: str,
    specimen_code: str,
    quantity: float,
    when: datetime | None = None,
    note: str | None = None,
) -> DistributionItem:
    """Material came back: the quantity is added back to the specimen, which is available again (store it next)."""
    require(actor, Action.ship)
    check_time("when", when)
    order = get_order(session, order_code, for_update=True)
    order_code = order.code
    if order.status not in (OrderStatus.shipped, OrderStatus.received):
        raise ConflictError(f"order {order_code}: is {order.status}; only shipped material comes back", field="status")
    check_time("when", when, after=[("the shipment", order.shipped_at)])
    specimen = get_specimen(session, specimen_code, for_update=True)
    specimen_code = specimen.code
    item = session.exec(
        select(DistributionItem).where(DistributionItem.order_id == order.id, DistributionItem.specimen_id == specimen.id)
    ).first()
    if item is None:
        raise invalid("specimen", specimen_code, f"is not on order {order_code}")
    outstanding = item.quantity - item.quantity_returned
    if quantity is None:
        raise invalid("quantity", quantity, "must be positive")
    check_quantity("quantity", quantity, specimen.unit)
    if quantity > outstanding + 1e-9:
        raise invalid("quantity", quantity, f"only {outstanding:g} {specimen.unit} of {specimen_code} are out on this order")
    act_as(session, actor)
    item.quantity_returned += float(quantity)
    specimen.quantity_remaining = min(specimen.quantity_remaining + float(quantity), specimen.quantity)
    if specimen.status in (SpecimenStatus.distributed, SpecimenStatus.depleted):
        specimen.status = SpecimenStatus.available.value
    specimen.version += 1
    record_event(
        session, specimen=specimen, kind=CustodyKind.returned, actor=actor, at=when or utcnow(),
        from_location=f"{order.recipient} (order {order.code})"[:200],
        to_location=storage_reads.location_label(session, specimen) or "unplaced (store it)",
        note="; ".join(p for p in (f"{quantity:g} {specimen.unit} returned", note) if p),
    )
    session.flush()
    return item


def close(session: Session, *, actor: User | None, order_code: str) -> DistributionOrder:
    require(actor, Action.ship)
    order = get_order(session, order_code, for_update=True)
    _check_move(order, OrderStatus.closed)
    act_as(session, actor)
    order.status = OrderStatus.closed.value
    session.flush()
    return order


def cancel(session: Session, *, actor: User | None, order_code: str) -> DistributionOrder:
    """Cancel a draft or approved order (nothing has left yet); its items stop holding quantity."""
    _require_requester(actor)
    order = get_order(session, order_code, for_update=True)
    _check_move(order, OrderStatus.cancelled)
    act_as(session, actor)
    order.status = OrderStatus.cancelled.value
    session.flush()
    return order




