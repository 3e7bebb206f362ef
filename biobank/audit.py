"""Audit trail: every insert and update of a tracked table writes an audit row in the same transaction.

The acting user rides on ``session.info`` (set by :func:`act_as`); the hook fills ``created_by``/``updated_by`` and
writes one :class:`AuditLog` row per changed object with the changed fields' old and new values.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction

from biobank.models.base import utcnow
from biobank.models.core import AuditLog, User

#: Columns never copied into the audit log.
REDACTED = {"password_hash"}
#: Bookkeeping columns whose change alone is not worth an audit line.
BOOKKEEPING = {"created_at", "created_by_id", "updated_at", "updated_by_id"}


def act_as(session: OrmSession, user: User | None, *, reason: str | None = None) -> None:
    """Make ``user`` the author of everything this session writes from now on."""
    session.info["actor_id"] = user.id if user is not None else None
    session.info["audit_reason"] = reason


@contextmanager
def audit_reason(session: OrmSession, reason: str) -> Iterator[None]:
    """Attach a reason (e.g. a correction's justification) to the audit rows written inside the block."""
    previous = session.info.get("audit_reason")
    session.info["audit_reason"] = reason
    try:
        yield
    finally:
        session.flush()
        session.info["audit_reason"] = previous


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _tracked(obj: Any) -> bool:
    return hasattr(type(obj), "__table__") and not isinstance(obj, AuditLog)


def _row_id(obj: Any) -> str:
    """The primary key (already assigned by the database when after_flush runs)."""
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join(str(part) for part in key)


@event.listens_for(OrmSession, "before_flush")
def _stamp(session: OrmSession, _flush: UOWTransaction, _instances: Any) -> None:
    actor_id = session.info.get("actor_id")
    now = utcnow()
    for obj in session.new:
        if hasattr(obj, "created_by_id") and obj.created_by_id is None:
            obj.created_by_id = actor_id
    for obj in session.dirty:
        if hasattr(obj, "updated_by_id") and session.is_modified(obj, include_collections=False):
            obj.updated_at = now
            obj.updated_by_id = actor_id


@event.listens_for(OrmSession, "after_flush")
def _write_audit(session: OrmSession, _flush: UOWTransaction) -> None:
    actor_id = session.info.get("actor_id")
    reason = session.info.get("audit_reason")
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for obj in session.new:
        if not _tracked(obj):
            continue
        state = inspect(obj)
        changes = {
            attr.key: [None, _plain(attr.value)]
            for attr in state.attrs
            if attr.key in state.mapper.columns and attr.value is not None and attr.key not in REDACTED
        }
        rows.append(_audit_row(now, actor_id, obj, "insert", changes, reason))
    for obj in session.dirty:
        if not _tracked(obj):
            continue
        state = inspect(obj)
        changes = {}
        for attr in state.attrs:
            if attr.key not in state.mapper.columns or attr.key in BOOKKEEPING:
                continue
            history = attr.history
            if history.has_changes():
                old = history.deleted[0] if history.deleted else None
                new = history.added[0] if history.added else None
                if old != new:
                    changes[attr.key] = (
                        ["<redacted>", "<redacted>"] if attr.key in REDACTED else [_plain(old), _plain(new)]
                    )
        if changes:
            rows.append(_audit_row(now, actor_id, obj, "update", changes, reason))
    if rows:
        session.connection().execute(AuditLog.__table__.insert(), rows)  # type: ignore[attr-defined]


def _audit_row(
    now: datetime, actor_id: int | None, obj: Any, action: str, changes: dict, reason: str | None
) -> dict:
    return {
        "occurred_at": now,
        "user_id": actor_id,
        "table_name": type(obj).__tablename__,
        "row_id": _row_id(obj),
        "action": action,
        "changes": changes,
        "reason": reason,
    }


def audit_changes_for_insert(record: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The ``changes`` of an insert as the ORM hook writes them: every non-null column, old value ``None``."""
    out: dict[str, list[Any]] = {}
    for key, value in record.items():
        if value is None or key in REDACTED:
            continue
        kind = type(value)
        out[key] = [None, value if kind in _SIMPLE else value.isoformat() if kind is datetime else _plain(value)]
    return out


_SIMPLE = frozenset({str, int, float, bool})


def record_bulk(
    session: OrmSession,
    table: str,
    rows: list[tuple[Any, dict[str, Any]]],
    action: str,
    *,
    reason: str | None = None,
) -> int:
    """Audit rows for a bulk Core write (which bypasses the ORM hook), in the caller's transaction.

    ``rows`` holds ``(row_id, changes)`` pairs with ``changes`` shaped as the hook writes them
    (``{column: [old, new]}``); one executemany writes them all. Returns the number written.
    """
    if not rows:
        return 0
    actor_id = session.info.get("actor_id")
    reason = reason if reason is not None else session.info.get("audit_reason")
    now = utcnow()
    values = [
        {
            "occurred_at": now,
            "user_id": actor_id,
            "table_name": table,
            "row_id": str(row_id),
            "action": action,
            "changes": changes,
            "reason": reason,
        }
        for row_id, changes in rows
    ]
    from biobank.bulk import insert_rows

    insert_rows(session, AuditLog.__table__, values)  # type: ignore[attr-defined]
    return len(values)
