"""Audit trail: every insert, update and delete of a tracked table writes an audit row in the same transaction.

The acting user rides on ``session.info`` (set by :func:`act_as`); the hook fills ``created_by``/``updated_by``.
Who writes the audit rows depends on the database:

- **PostgreSQL**: the database itself (statement triggers on every audited table, migration 0010,
  :mod:`biobank.db.ddl`), so a write by any path is audited, whoever's login made it. The application only tells it
  who acts and why: :func:`act_as` and :func:`audit_reason` set the transaction-local settings ``biobank.user_id`` and
  ``biobank.reason`` (again at each new transaction of the session, and before each flush when they changed). This
  hook, :func:`record_inserted` and :func:`record_bulk` then write nothing, so no change has two rows.
- **SQLite**: this hook writes one :class:`AuditLog` row per changed object with the changed fields' old and new
  values, and the bulk paths call :func:`record_inserted` / :func:`record_bulk`. Whoever can write the file can write
  around it (documented in docs/security.md): SQLite has no logins to separate.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, Boolean, Table, bindparam, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction, UOWTransaction
from sqlalchemy.orm.base import NO_VALUE

from biobank.db.bulk import id_filter, insert_rows
from biobank.db.ddl import ACTOR_SETTING, AUDIT_BOOKKEEPING, AUDIT_REDACTED, REASON_SETTING
from biobank.db.engine import UTCDateTime
from biobank.domain.errors import invalid
from biobank.domain.plain import plain
from biobank.models.base import table_of, utcnow
from biobank.models.core import AuditLog, User

T = TypeVar("T")

#: Columns never copied into the audit log.
REDACTED = set(AUDIT_REDACTED)
#: Bookkeeping columns whose change alone is not worth an audit line.
BOOKKEEPING = set(AUDIT_BOOKKEEPING)
#: ``session.info`` key: the (actor, reason) last sent to the database in the current transaction.
_SENT = "_audit_context_sent"


#: The longest reason the audit log keeps (``audit_log.reason``).
REASON_LENGTH = 500


def _checked_reason(reason: str | None) -> str | None:
    """A reason as the audit log keeps it: trimmed, none when blank, refused when longer than its column."""
    if reason is None or not reason.strip():
        return None
    if len(reason.strip()) > REASON_LENGTH:
        raise invalid("reason", reason, f"is {len(reason.strip()):,} characters long; at most {REASON_LENGTH}")
    return reason.strip()


def act_as(session: OrmSession, user: User | None, *, reason: str | None = None) -> None:
    """Make ``user`` the author of everything this session writes from now on."""
    session.info["actor_id"] = user.id if user is not None else None
    session.info["audit_reason"] = _checked_reason(reason)
    _send_context(session)


def add_as(session: OrmSession, user: User | None, row: T) -> T:
    """Store the new ``row`` with ``user`` as its author (:func:`act_as`) and flush it, so its primary key is set."""
    act_as(session, user)
    session.add(row)
    session.flush()
    return row


@contextmanager
def audit_reason(session: OrmSession, reason: str) -> Iterator[None]:
    """Attach a reason (e.g. a correction's justification) to the audit rows written inside the block."""
    previous = session.info.get("audit_reason")
    session.info["audit_reason"] = _checked_reason(reason)
    _send_context(session)
    try:
        yield
        session.flush()
    finally:
        session.info["audit_reason"] = previous
    _send_context(session)  # not after a failure: the transaction is lost anyway


# ------------------------------------------------------------------------ PostgreSQL: the database writes the audit

#: Per engine: whether its database writes the audit rows itself (PostgreSQL at migration 0010 or later).
_DATABASE_AUDITS: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def database_audits(connection: Connection) -> bool:
    """Whether the database behind ``connection`` writes audit rows itself (looked up once per engine): PostgreSQL
    with the audit triggers installed. A database not yet upgraded keeps the application's hook, so nothing goes
    unaudited in between."""
    if connection.dialect.name != "postgresql":
        return False
    engine = connection.engine
    known = _DATABASE_AUDITS.get(engine)
    if known is None:
        known = bool(connection.execute(text(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'tg_audit_log_stamp' "
            "AND tgrelid = to_regclass('audit_log'))")).scalar())
        _DATABASE_AUDITS[engine] = known
    return known


def _wanted(session: OrmSession) -> tuple[Any, Any]:
    return session.info.get("actor_id"), session.info.get("audit_reason")


def _set_context(connection: Connection, actor: Any, reason: Any) -> None:
    connection.execute(
        text("SELECT set_config(:actor_setting, :actor, true), set_config(:reason_setting, :reason, true)"),
        {"actor_setting": ACTOR_SETTING, "actor": "" if actor is None else str(int(actor)),
         "reason_setting": REASON_SETTING, "reason": reason or ""},
    )


def _send_context(session: OrmSession) -> None:
    """On PostgreSQL, tell the database who acts and why, for the triggers of the current transaction."""
    if session.get_bind().dialect.name != "postgresql":
        return
    connection = session.connection()  # begins the transaction if need be (after_begin then sends the context)
    wanted = _wanted(session)
    if session.info.get(_SENT) != wanted:
        _set_context(connection, *wanted)
        session.info[_SENT] = wanted


@event.listens_for(OrmSession, "after_begin")
def _context_on_begin(session: OrmSession, transaction: SessionTransaction, connection: Connection) -> None:
    """Each new transaction starts without the settings (they are transaction-local): send them again."""
    if transaction.nested or connection.dialect.name != "postgresql":
        return
    wanted = _wanted(session)
    if wanted != (None, None):
        _set_context(connection, *wanted)
    session.info[_SENT] = wanted


@event.listens_for(OrmSession, "after_transaction_end")
def _context_forgotten(session: OrmSession, _transaction: SessionTransaction) -> None:
    """A savepoint rolled back takes the settings made inside it along: resend before the next write."""
    session.info.pop(_SENT, None)


def _tracked(obj: Any) -> bool:
    return hasattr(type(obj), "__table__") and not isinstance(obj, AuditLog)


def _row_id(obj: Any) -> str:
    """The primary key (already assigned by the database when after_flush runs)."""
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join(str(part) for part in key)


def _check_values(obj: Any, *, changed_only: bool) -> None:
    """What no column may hold, whichever path wrote it and on either database: text longer than its column (SQLite
    would keep it; PostgreSQL would fail with a DataError), blank text (a nullable column gets NULL instead; any other
    is refused) and a number that is not finite. The input models refuse these first; this is the floor under them."""
    state = inspect(obj)
    for attr in state.attrs:
        column = state.mapper.columns.get(attr.key)
        if column is None:
            continue
        if changed_only:
            added = attr.history.added
            if not added:
                continue
            value = added[0]
        else:
            value = attr.loaded_value
        row = column.table.name.replace("_", " ")  # "custody event: Note (...) is 10,000 characters long; ..."
        if isinstance(value, str):
            length = getattr(column.type, "length", None)
            if length is not None and len(value) > length:
                raise invalid(attr.key, value, f"is {len(value):,} characters long; at most {length}", row=row)
            if not value.strip():
                if not column.nullable:
                    raise invalid(attr.key, value, "cannot be empty", row=row)
                setattr(obj, attr.key, None)
        elif isinstance(value, float) and not math.isfinite(value):
            raise invalid(attr.key, value, "must be a finite number", row=row)


@event.listens_for(OrmSession, "before_flush")
def _stamp(session: OrmSession, _flush: UOWTransaction, _instances: Any) -> None:
    _send_context(session)
    actor_id = session.info.get("actor_id")
    now = utcnow()
    for obj in session.new:
        if _tracked(obj):
            _check_values(obj, changed_only=False)
        if hasattr(obj, "created_by_id") and obj.created_by_id is None:
            obj.created_by_id = actor_id
    for obj in session.dirty:
        if _tracked(obj):
            _check_values(obj, changed_only=True)
        if hasattr(obj, "updated_by_id") and session.is_modified(obj, include_collections=False):
            obj.updated_at = now
            obj.updated_by_id = actor_id


@event.listens_for(OrmSession, "after_flush")
def _write_audit(session: OrmSession, _flush: UOWTransaction) -> None:
    if database_audits(session.connection()):
        return
    actor_id = session.info.get("actor_id")
    reason = session.info.get("audit_reason")
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for obj in session.new:
        if not _tracked(obj):
            continue
        state = inspect(obj)
        changes = {
            attr.key: [None, plain(attr.value)]
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
                        ["<redacted>", "<redacted>"] if attr.key in REDACTED else [plain(old), plain(new)]
                    )
        if changes:
            rows.append(_audit_row(now, actor_id, obj, "update", changes, reason))
    for obj in session.deleted:
        if not _tracked(obj):
            continue
        state = inspect(obj)
        changes = {}
        for attr in state.attrs:
            if attr.key not in state.mapper.columns or attr.key in REDACTED:
                continue
            value = attr.loaded_value  # never loads: the row is gone
            if value is not NO_VALUE and value is not None:
                changes[attr.key] = [plain(value), None]
        rows.append(_audit_row(now, actor_id, obj, "delete", changes, reason))
    if rows:
        session.connection().execute(table_of(AuditLog).insert(), rows)


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


def _insert_changes_sql(table: Table, dialect: str, columns: frozenset[str] | None = None) -> str:
    """SQL for an insert's ``changes`` built by the database from the row itself, shaped as the ORM hook writes them
    (``{column: [null, value]}`` for every non-null column; times as ISO 8601 in UTC, booleans as JSON booleans).

    The object's text is concatenated from one member per non-null column (each value JSON-encoded by the
    database): several times cheaper than building the object with the JSON functions and stripping its nulls.
    """
    members = []
    for column in table.columns:
        name = column.name
        if name in REDACTED or not _may_hold_value(column, columns):
            continue
        if not _PLAIN_NAME.fullmatch(name):  # the name is written into the JSON text as is
            raise ValueError(f"{table.name}.{name}: column name cannot be audited by record_inserted")
        ref = f'"{name}"'
        if dialect == "postgresql":
            # The engine pins the session to UTC, so a timestamptz becomes exactly Python's isoformat.
            value = f"to_json({ref})::text"
        elif isinstance(column.type, UTCDateTime):
            # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC); Python's isoformat drops zero microseconds
            value = (f"json_quote(CASE WHEN substr({ref}, 21, 6) = '000000' THEN replace(substr({ref}, 1, 19), ' ', 'T') "
                     f"ELSE replace({ref}, ' ', 'T') END || '+00:00')")
        elif isinstance(column.type, Boolean):
            value = f"CASE WHEN {ref} THEN 'true' ELSE 'false' END"
        elif isinstance(column.type, JSON):
            value = f"json({ref})"
        else:
            value = f"json_quote({ref})"
        members.append(f"CASE WHEN {ref} IS NULL THEN '' ELSE ',\"{name}\":[null,' || {value} || ']' END")
    body = f"'{{' || substr({' || '.join(members)}, 2) || '}}'"
    return f"CAST({body} AS json)" if dialect == "postgresql" else body


def _may_hold_value(column: Any, given: frozenset[str] | None) -> bool:
    """Whether ``column`` may be non-NULL in rows inserted with values for the ``given`` columns only (None: all).
    No trigger of this schema sets a column on insert, so only the given columns and those with defaults can."""
    if given is None or column.name in given or column.primary_key:
        return True
    return column.default is not None or column.server_default is not None


#: Column names written into the audit JSON text without escaping.
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def record_inserted(
    session: OrmSession, table: Table, ids: Sequence[int], *, columns: Sequence[str] | None = None
) -> int:
    """Audit rows for rows a bulk Core insert wrote (``ids``, ascending), one per row, in the caller's transaction.

    The database builds each row's ``changes`` from the row as stored (same shape as the ORM hook's), in one
    ``INSERT ... SELECT``: nothing is formatted per row in Python. ``columns``: the columns the insert gave values
    (as :func:`biobank.db.bulk.insert_rows` returns them); the others, NULL unless they have a default, are not
    looked at. Returns the number written: none on PostgreSQL, whose triggers audited the insert itself.
    """
    if not ids:
        return 0
    connection = session.connection()
    if database_audits(connection):
        return 0
    dialect = connection.dialect.name
    given = None if columns is None else frozenset(columns)
    key = (table.name, dialect, given)
    changes = _INSERT_SQL.get(key)
    if changes is None:
        changes = _INSERT_SQL[key] = _insert_changes_sql(table, dialect, given)
    where, params = id_filter(dialect, ids)
    statement = text(
        f"INSERT INTO audit_log (occurred_at, user_id, table_name, row_id, action, changes, reason) "
        f"SELECT :now, :actor, :table, CAST(id AS TEXT), 'insert', {changes}, :reason FROM {table.name} "
        f"WHERE {where} ORDER BY id"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    result = connection.execute(statement, {
        "now": utcnow(), "actor": session.info.get("actor_id"), "table": table.name,
        "reason": session.info.get("audit_reason"), **params,
    })
    return result.rowcount


_INSERT_SQL: dict[tuple[str, str, frozenset[str] | None], str] = {}


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
    (``{column: [old, new]}``); one executemany writes them all. Returns the number written: none on PostgreSQL, whose
    triggers audited the write itself (with the reason set by :func:`audit_reason` at the time).
    """
    if not rows or database_audits(session.connection()):
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
    insert_rows(session, table_of(AuditLog), values)
    return len(values)
