"""Reads of the storage tree: where a specimen is, at what temperature, what a box holds, what is checked out.

The storage service (writes) and the pages, the command line and the exports all read through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.domain.storage.coords import Grid
from biobank.domain.storage.kinds import grid_of, spec
from biobank.models import Checkout, Container, Donor, Specimen, SpecimenLocation, User
from biobank.models.base import fetch_one, utcnow
from biobank.services.specimens import get_specimen


def get_container(session: Session, code: str, *, for_update: bool = False) -> Container:
    statement = select(Container).where(Container.code == code)
    return fetch_one(session, statement, what="container", field="container", value=code, for_update=for_update)


def lineage_of(session: Session, container: Container) -> list[Container]:
    """The container and its ancestors, root first."""
    chain = [container]
    seen = {container.id}
    while chain[0].parent_id is not None:
        parent = session.get(Container, chain[0].parent_id)
        if parent is None or parent.id in seen:
            break
        seen.add(parent.id)
        chain.insert(0, parent)
    return chain


def path_of(session: Session, container: Container) -> str:
    return "/".join(c.code for c in lineage_of(session, container))


def temperature_of_container(session: Session, container: Container) -> str | None:
    """The MIABIS class a container sits at: its own, or the nearest ancestor's (inherited down the tree)."""
    for node in reversed(lineage_of(session, container)):
        if node.temperature_class is not None:
            return node.temperature_class
    return None


def grid(container: Container) -> Grid | None:
    return grid_of(container.kind, container.grid_rows, container.grid_cols)


def location_of(session: Session, specimen_id: int | None) -> SpecimenLocation | None:
    return session.exec(select(SpecimenLocation).where(SpecimenLocation.specimen_id == specimen_id)).first()


def label(session: Session, container: Container, position: str | None) -> str:
    """How a location reads in custody events and listings: ``SITE/ROOM/FRZ-01/R1/BOX-001:A1``."""
    path = path_of(session, container)
    return f"{path}:{position}" if position else path


def place_label(session: Session, location: SpecimenLocation) -> str:
    """How a stored specimen's location reads (:func:`label` of its box and position)."""
    container = session.get(Container, location.container_id)
    assert container is not None
    return label(session, container, location.position)


def open_checkout(session: Session, specimen_id: int | None) -> Checkout | None:
    return session.exec(
        select(Checkout).where(Checkout.specimen_id == specimen_id, Checkout.returned_at.is_(None))  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
    ).first()


def location_label(session: Session, specimen: Specimen) -> str | None:
    """Hook for the specimen view: where the specimen is (and whether it is out on a bench)."""
    location = location_of(session, specimen.id)
    if location is None:
        return None
    text = place_label(session, location)
    if open_checkout(session, specimen.id) is not None:
        text += " (checked out)"
    return text


def storage_temperature(session: Session, specimen: Specimen) -> str | None:
    """Hook for SPREC long-term storage: the MIABIS class of the specimen's container."""
    location = location_of(session, specimen.id)
    if location is None:
        return None
    container = session.get(Container, location.container_id)
    return temperature_of_container(session, container) if container is not None else None


def storage_temperatures(session: Session, specimen_ids: Sequence[int]) -> dict[int, str | None]:
    """Bulk hook for exports: the MIABIS class per stored specimen (one query per 5,000 ids, one walk per box)."""
    found: dict[int, str | None] = {}
    by_container: dict[int, str | None] = {}
    ids = list(specimen_ids)
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = session.exec(
            select(SpecimenLocation.specimen_id, SpecimenLocation.container_id).where(
                SpecimenLocation.specimen_id.in_(chunk)  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
            )
        ).all()
        for specimen_id, container_id in rows:
            if container_id not in by_container:
                container = session.get(Container, container_id)
                by_container[container_id] = temperature_of_container(session, container) if container else None
            found[specimen_id] = by_container[container_id]
    return found


def checkouts(session: Session, *, now: datetime | None = None, overdue_only: bool = False) -> list[dict[str, Any]]:
    """Open check-outs, oldest first, with hours out and whether they are overdue (settings.checkout_overdue_hours)."""
    now = now or utcnow()
    limit = timedelta(hours=get_settings().checkout_overdue_hours)
    statement = (
        select(Checkout, Specimen.code, Specimen.storage_format, User.username)
        .join(Specimen, Specimen.id == Checkout.specimen_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .join(User, User.id == Checkout.checked_out_by_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .where(Checkout.returned_at.is_(None))  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
        .order_by(Checkout.checked_out_at)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
    )
    if overdue_only:
        statement = statement.where(Checkout.checked_out_at < now - limit)
    rows = []
    for checkout, code, fmt, username in session.exec(statement).all():
        out = now - checkout.checked_out_at
        rows.append({
            "code": code,
            "storage_format": fmt,
            "checked_out_by": username,
            "checked_out_at": checkout.checked_out_at,
            "hours_out": round(out.total_seconds() / 3600, 1),
            "overdue": out > limit,
            "from": checkout.from_location,
            "purpose": checkout.purpose,
        })
    return rows


def overdue(session: Session, *, now: datetime | None = None) -> list[dict[str, Any]]:
    return checkouts(session, now=now, overdue_only=True)


def tree(session: Session) -> list[dict[str, Any]]:
    """Every container in tree order with depth, path, temperature and how many specimens sit directly in it."""
    containers = list(session.exec(select(Container).order_by(Container.code)))
    counts = dict(
        session.exec(select(SpecimenLocation.container_id, func.count()).group_by(SpecimenLocation.container_id)).all()  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
    )
    children: dict[int | None, list[Container]] = {}
    for c in containers:
        children.setdefault(c.parent_id, []).append(c)
    rows: list[dict[str, Any]] = []

    def walk(node: Container, depth: int, path: str, temperature: str | None) -> None:
        temperature = node.temperature_class or temperature
        box_grid = grid(node)
        rows.append({
            "code": node.code,
            "kind": node.kind,
            "name": node.name,
            "depth": depth,
            "path": path,
            "parent": path.rsplit("/", 1)[0] if "/" in path else None,
            "temperature": temperature,
            "capacity": box_grid.size if box_grid else None,
            "specimens": int(counts.get(node.id, 0)),  # type: ignore[arg-type]  # stored containers have an id
        })
        for child in children.get(node.id, []):
            walk(child, depth + 1, f"{path}/{child.code}", temperature)

    for root in children.get(None, []):
        walk(root, 0, root.code, None)
    return rows


def box_view(session: Session, code: str) -> dict[str, Any]:
    """A box as a grid: every occupied cell with its specimen, format, status and donor."""
    box = get_container(session, code)
    box_grid = grid(box)
    statement = (
        select(SpecimenLocation.position, Specimen.code, Specimen.storage_format, Specimen.material_type,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
               Specimen.status, Donor.code, Specimen.quantity_remaining, Specimen.unit)
        .join(Specimen, Specimen.id == SpecimenLocation.specimen_id)
        .join(Donor, Donor.id == Specimen.donor_id)
        .where(SpecimenLocation.container_id == box.id)
        .order_by(SpecimenLocation.position)
    )
    cells = []
    for position, scode, fmt, material, status, donor, remaining, unit in session.exec(statement).all():
        row, col = box_grid.parse(position) if (box_grid and position) else (None, None)
        cells.append({
            "position": position, "row": row, "col": col, "code": scode, "storage_format": fmt,
            "material_type": material, "status": status, "donor": donor,
            "quantity_remaining": remaining, "unit": unit,
        })
    if box_grid:
        cells.sort(key=lambda c: box_grid.index(c["position"]) if c["position"] else -1)
    return {
        "code": box.code,
        "kind": box.kind,
        "name": box.name,
        "path": path_of(session, box),
        "temperature": temperature_of_container(session, box),
        "holds_specimens": spec(box.kind).holds_specimens,
        "rows": box_grid.rows if box_grid else None,
        "cols": box_grid.cols if box_grid else None,
        "scheme": box_grid.scheme.value if box_grid else None,
        "capacity": box_grid.size if box_grid else None,
        "occupied": len(cells),
        "cells": cells,
    }


def find(session: Session, code: str) -> dict[str, Any]:
    """Where a specimen is, or why it is nowhere (never stored, out on loan, distributed)."""
    specimen = get_specimen(session, code)
    location = location_of(session, specimen.id)
    checkout = open_checkout(session, specimen.id)
    data: dict[str, Any] = {"code": specimen.code, "status": specimen.status, "stored": location is not None}
    if location is not None:
        container = session.get(Container, location.container_id)
        assert container is not None
        data.update({
            "container": container.code,
            "position": location.position,
            "location": label(session, container, location.position),
            "temperature": temperature_of_container(session, container),
            "placed_at": location.placed_at,
        })
    if checkout is not None:
        user = session.get(User, checkout.checked_out_by_id)
        data.update({"checked_out_by": user.username if user else None, "checked_out_at": checkout.checked_out_at})
    return data
