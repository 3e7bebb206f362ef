"""Bulk inserts through the DB-API ``executemany``, for the import engine's write path.

SQLAlchemy's per-row bind processing costs more than the database's own work on large imports, so values are
converted here once per column, the way the column types would convert them (UTC datetimes, dates, JSON), and
handed to the driver. Everything still runs in the caller's transaction, and every constraint and trigger applies.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Date, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from biobank.db.engine import UTCDateTime
from biobank.domain.timing import as_utc, is_naive


def _memo(convert: Callable[[Any], Any], limit: int = 100_000) -> Callable[[Any], Any]:
    """``convert`` remembered per value for one call of :func:`insert_rows` (bulk rows repeat their times)."""
    cache: dict[Any, Any] = {}

    def memo(value: Any) -> Any:
        try:
            return cache[value]
        except KeyError:
            result = cache[value] = convert(value)
            if len(cache) > limit:
                cache.clear()
            return result

    return memo


def _converter(column: Any, dialect: str) -> Callable[[Any], Any] | None:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        if dialect == "sqlite":
            def sqlite_time(value: Any) -> Any:
                if value is None:
                    return None
                return as_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")

            return _memo(sqlite_time)

        def pg_time(value: Any) -> Any:
            if value is not None and is_naive(value):
                as_utc(value)  # refuses it
            return value

        return pg_time
    if isinstance(kind, JSON):
        encode = _JSON.encode
        return lambda value: None if value is None else encode(value)
    if isinstance(kind, Date) and dialect == "sqlite":
        return lambda value: value.isoformat() if isinstance(value, date) else value
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: SQLite batches of at least this many rows go in through one JSON parameter (``->>`` needs SQLite 3.38).
_JSON_ROWS = 50
_SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38, 0)
#: Rows of plain values (strings, numbers, None): anything else is a bug upstream, never silently stringified.
_ROWS_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False)

#: One encoder for every JSON cell (``json.dumps`` with ``default=`` builds a new encoder per call).
_JSON = json.JSONEncoder(default=_json_default)


def _defaults(table: Table, given: list[str]) -> dict[str, Any]:
    """Python-side column defaults (``version=1``, ``created_at=now``...) that Core would have applied."""
    out: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or default is None or column.primary_key:
            continue
        if getattr(default, "is_scalar", False):
            out[column.name] = default.arg  # type: ignore[attr-defined]  # a scalar column default has .arg
        elif getattr(default, "is_callable", False):
            out[column.name] = default.arg(None)  # type: ignore[attr-defined]  # a callable column default has .arg
    return out


def _null_everywhere(column: Any, name: str, rows: Sequence[dict[str, Any]]) -> bool:
    """True when every row gives ``column`` as None and leaving it out stores the same NULL (no default of any kind):
    such columns are left out of the statement (an import's record names every optional column, most files few)."""
    if column.primary_key or column.default is not None or column.server_default is not None:
        return False
    return all(row[name] is None for row in rows)


@dataclass
class PreparedRows:
    """Rows ready for :func:`insert_prepared`: the columns given values and each row's values in that order, already
    converted for the driver. Made without a connection (so the import can prepare one batch while the database
    writes the previous one)."""

    names: list[str]
    params: list[list[Any]]


def prepare_rows(table: Table, rows: Sequence[dict[str, Any]], dialect: str) -> PreparedRows:
    """Python-side defaults applied, columns NULL in every row left out, values converted as the column types
    would (see the module docstring)."""
    if not rows:
        return PreparedRows([], [])
    names = list(rows[0])
    defaults = _defaults(table, names)
    if defaults:
        rows = [{**defaults, **row} for row in rows]
        names = list(rows[0])
    names = [name for name in names if not _null_everywhere(table.c[name], name, rows)] or names[:1]
    getter = itemgetter(*names)
    params = [[getter(row)] for row in rows] if len(names) == 1 else [list(getter(row)) for row in rows]
    for index, name in enumerate(names):
        convert = _converter(table.c[name], dialect)
        if convert is not None:
            for values in params:
                values[index] = convert(values[index])
    return PreparedRows(names, params)


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> list[str]:
    """``INSERT`` every row (dicts with the same keys) in one statement; returns the columns given values (a column
    left out is NULL in every row: its value was None everywhere and it has no default)."""
    return insert_prepared(session, table, prepare_rows(table, rows, session.connection().dialect.name))


def insert_prepared(session: Session, table: Table, rows: PreparedRows, *, ids: Sequence[int] | None = None) -> list[str]:
    """``INSERT`` prepared rows (``ids``: their primary keys, when drawn beforehand) in the session's transaction:
    ``COPY`` on PostgreSQL, one ``INSERT ... SELECT`` over a JSON array on SQLite (``executemany`` for small
    batches). Every constraint and trigger applies. Returns the columns given values."""
    if not rows.params:
        return []
    names, params = rows.names, rows.params
    if ids is not None:
        names = ["id", *names]
        params = [[new_id, *values] for new_id, values in zip(ids, params, strict=True)]
    connection = session.connection()
    dialect = connection.dialect
    preparer = dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(n) for n in names)})"
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
    try:
        return _insert_with(cursor, dialect, target, names, params)
    except dialect.loaded_dbapi.Error as exc:
        # the driver's own error, as SQLAlchemy would have raised it (an IntegrityError for a refused row), so the
        # callers handle a refusal of this path as one of any other statement
        raise DBAPIError.instance(f"INSERT INTO {target}", None, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc


def _insert_with(cursor: Any, dialect: Any, target: str, names: list[str], params: list[list[Any]]) -> list[str]:
    if dialect.name == "postgresql":
        # COPY is PostgreSQL's bulk path; constraints, foreign keys and triggers apply as for INSERT.
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for values in params:
                copy.write_row(values)
        return names
    if len(params) >= _JSON_ROWS and _SQLITE_JSON:
        # One statement for the whole batch: SQLite reads the rows from one JSON array (json_each), so the insert
        # runs in C from start to end (one driver call instead of one per row); the same rows, types and checks.
        selected = ", ".join(f"value ->> {index}" for index in range(len(names)))
        cursor.execute(f"INSERT INTO {target} SELECT {selected} FROM json_each(?) ORDER BY key",
                       (_ROWS_JSON.encode(params),))
        return names
    # The driver's own executemany (SQLAlchemy's exec_driver_sql would insist on tuples); same transaction.
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    cursor.executemany(f"INSERT INTO {target} VALUES ({', '.join(marker for _ in names)})", params)
    return names


def id_filter(dialect: str, ids: Sequence[int]) -> tuple[str, dict[str, Any]]:
    """A ``WHERE`` condition (on a column named ``id``) and its bound parameters selecting exactly ``ids``: for the
    ``INSERT ... SELECT`` statements that derive rows (audit, custody) from a batch just written."""
    if ids and ids[-1] - ids[0] == len(ids) - 1 and list(ids) == list(range(ids[0], ids[0] + len(ids))):
        return "id BETWEEN :low AND :high", {"low": ids[0], "high": ids[-1]}  # a run (the importer's batches)
    if dialect == "postgresql":
        return "id = ANY(:ids)", {"ids": list(ids)}
    return "id IN (SELECT value FROM json_each(:ids))", {"ids": json.dumps(list(ids))}


def key_in(column: Any, values: Sequence[Any], dialect: str) -> Any:
    """``column IN values`` as one bound parameter, for lookups by thousands of keys (codes, ids).

    PostgreSQL: ``= ANY(array)``, planned once for the whole set (an IN list is planned value by value).
    SQLite: ``IN (SELECT value FROM json_each(?))`` (no parameter per value to bind and no limit on their number);
    the values must be strings or integers, as keys are. Elsewhere a plain IN list.
    """
    from sqlalchemy import ARRAY, any_, bindparam, select
    from sqlalchemy import func as sql_func

    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    if dialect == "sqlite" and _SQLITE_JSON:
        if any(value.__class__ not in (str, int) for value in values):
            raise TypeError(f"{column}: keys must be strings or integers")
        each = sql_func.json_each(bindparam(None, _ROWS_JSON.encode(list(values)))).table_valued("value")
        return column.in_(select(each.c.value))
    return column.in_(list(values))


def next_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` ids taken from a PostgreSQL table's id sequence, ascending (so rows keep the file's order)."""
    from sqlalchemy import text

    # The sequence is looked up once (an init plan), not once per id: ten times faster for a batch of 5,000.
    drawn = session.execute(
        text("SELECT array_agg(nextval((SELECT pg_get_serial_sequence(:table, 'id'))::regclass)) "
             "FROM generate_series(1, :count)"),
        {"table": table.name, "count": count},
    ).scalar_one()
    return sorted(drawn)
