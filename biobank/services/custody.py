"""Chain of custody: every movement or change of a specimen is an event; its history reads from them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from biobank.domain.vocab import CustodyKind
from biobank.models import CustodyEvent, Specimen, User
from biobank.models.base import utcnow


def record_event(
    session: Session,
    *,
    specimen: Specimen,
    kind: CustodyKind,
    actor: User | None,
    at: datetime | None = None,
    from_location: str | None = None,
    to_location: str | None = None,
    note: str | None = None,
) -> CustodyEvent:
    event = CustodyEvent(
        specimen_id=specimen.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        kind=kind.value,
        occurred_at=at or utcnow(),
        user_id=actor.id if actor is not None else None,
        from_location=from_location,
        to_location=to_location,
        note=note,
    )
    session.add(event)
    return event


def history(session: Session, specimen_id: int) -> list[CustodyEvent]:
    return list(
        session.exec(
            select(CustodyEvent)
            .where(CustodyEvent.specimen_id == specimen_id)
            .order_by(CustodyEvent.occurred_at, CustodyEvent.id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        )
    )
