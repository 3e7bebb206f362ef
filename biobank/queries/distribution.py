"""Reads of distribution orders: the order list, one order with its items, an order's items with their specimens."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.domain.storage.orders import USE_SCOPES, DistributionUse
from biobank.models import DistributionItem, DistributionOrder, Donor, Specimen, User
from biobank.models.base import fetch_one


def get_order(session: Session, code: str, *, for_update: bool = False) -> DistributionOrder:
    statement = select(DistributionOrder).where(DistributionOrder.code == code)
    return fetch_one(session, statement, what="distribution order", field="order", value=code, for_update=for_update)


def order_items(session: Session, order: DistributionOrder) -> list[tuple[DistributionItem, Specimen]]:
    return list(
        session.exec(
            select(DistributionItem, Specimen)
            .join(Specimen, Specimen.id == DistributionItem.specimen_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
            .where(DistributionItem.order_id == order.id)
            .order_by(Specimen.code)
        ).all()
    )


def order_rows(session: Session) -> list[dict[str, Any]]:
    """Every order with its state, item count and total quantity (one grouped query)."""
    counts = {
        order_id: (int(n), float(q or 0), float(r or 0))
        for order_id, n, q, r in session.exec(
            select(DistributionItem.order_id, func.count(), func.sum(DistributionItem.quantity),
                   func.sum(DistributionItem.quantity_returned))
            .group_by(DistributionItem.order_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        ).all()
    }
    users = {u.id: u.username for u in session.exec(select(User)).all()}
    rows = []
    for order in session.exec(select(DistributionOrder).order_by(DistributionOrder.code)).all():
        n, _q, returned = counts.get(order.id, (0, 0.0, 0.0))  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        rows.append({
            "code": order.code,
            "study": order.study,
            "recipient": order.recipient,
            "use": order.use,
            "status": order.status,
            "items": n,
            "returned_quantity": returned,
            "approved_by": users.get(order.approved_by_id),
            "approved_at": order.approved_at,
            "shipped_at": order.shipped_at,
            "shipping_temperature": order.shipping_temperature,
            "received_at": order.received_at,
        })
    return rows


def order_detail(session: Session, code: str) -> dict[str, Any]:
    order = get_order(session, code)
    users = {u.id: u.username for u in session.exec(select(User)).all()}
    donors = {d.id: d.code for d in session.exec(select(Donor)).all()}
    return {
        "code": order.code,
        "study": order.study,
        "recipient": order.recipient,
        "purpose": order.purpose,
        "use": order.use,
        "consent_needed": [s.value for s in USE_SCOPES[DistributionUse(order.use)]],
        "status": order.status,
        "created_by": users.get(order.created_by_id),
        "approved_by": users.get(order.approved_by_id),
        "approved_at": order.approved_at,
        "shipped_by": users.get(order.shipped_by_id),
        "shipped_at": order.shipped_at,
        "shipping_temperature": order.shipping_temperature,
        "tracking_ref": order.tracking_ref,
        "received_at": order.received_at,
        "items": [
            {
                "specimen": specimen.code,
                "donor": donors.get(specimen.donor_id),
                "storage_format": specimen.storage_format,
                "quantity": item.quantity,
                "returned": item.quantity_returned,
                "unit": specimen.unit,
                "specimen_status": specimen.status,
                "remaining": specimen.quantity_remaining,
            }
            for item, specimen in order_items(session, order)
        ],
    }
