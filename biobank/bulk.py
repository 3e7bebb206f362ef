"""Bulk inserts through the DB-API ``executemany``, for the import engine's write path.

SQLAlchemy's per-row bind processing costs more than the database's own work on large imports, so values are
converted here once per column, the way the column types would convert them (UTC datetimes, dates, JSON), and
handed to the driver. Everything still runs in the caller's transaction, and every constraint and trigger applies.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Date, Table
from sqlalchemy.orm import Session

from biobank.db import UTCDateTime


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
                if value.tzinfo is None or value.utcoffset() is None:
                    raise ValueError(f"naive datetime {value.isoformat()} refused: give a time zone")
                return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

            return _memo(sqlite_time)

        def pg_time(value: Any) -> Any:
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"naive datetime {value.isoformat()} refused: give a time zone")
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
            out[column.name] = default.arg  # type: ignore[attr-defined]
        elif getattr(default, "is_callable", False):
            out[column.name] = default.arg(None)  # type: ignore[attr-defined]
    return out


def _null_everywhere(column: Any, name: str, rows: Sequence[dict[str, Any]]) -> bool:
    """True when every row gives ``column`` as None and leaving it out stores the same NULL (no default of any kind):
    such columns are left out of the statement (an import's record names every optional column, most files few)."""
    if column.primary_key or column.default is not None or column.server_default is not None:
        return False
    return all(row[name] is None for row in rows)


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT`` every row (dicts with the same keys) with one driver ``executemany``."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    defaults = _defaults(table, names)
    if defaults:
        rows = [{**defaults, **row} for row in rows]
        names = list(rows[0])
    names = [name for name in names if not _null_everywhere(table.c[name], name, rows)] or names[:1]
    columns = [table.c[name] for name in names]
    converters = [_converter(column, dialect.name) for column in columns]
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    preparer = dialect.identifier_preparer
    sql = (
        f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.quote(n) for n in names)}) "
        f"VALUES ({', '.join(marker for _ in names)})"
    )
    getter = itemgetter(*names)
    converted = [(index, convert) for index, convert in enumerate(converters) if convert is not None]
    params: list[Any]
    params = [(getter(row),) for row in rows] if len(names) == 1 else [getter(row) for row in rows]
    if converted:
        params = [list(values) for values in params]
        for index, convert in converted:
            for values in params:
                values[index] = convert(values[index])
    if dialect.name == "postgresql":
        # COPY is PostgreSQL's bulk path; constraints, foreign keys and triggers apply as for INSERT.
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        copy_sql = f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(n) for n in names)}) FROM STDIN"
        with cursor.copy(copy_sql) as copy:
            for values in params:
                copy.write_row(values)
        return
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if len(params) >= _JSON_ROWS and _SQLITE_JSON:
        # One statement for the whole batch: SQLite reads the rows from one JSON array (json_each), so the insert
        # runs in C from start to end (one driver call instead of one per row); the same rows, types and checks.
        selected = ", ".join(f"value ->> {index}" for index in range(len(names)))
        cursor.execute(
            f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.quote(n) for n in names)}) "
            f"SELECT {selected} FROM json_each(?) ORDER BY key",
            (_ROWS_JSON.encode(params),),
        )
        return
    # The driver's own executemany (SQLAlchemy's exec_driver_sql would insist on tuples); same transaction.
    cursor.executemany(sql, params)


def id_filter(dialect: str, ids: Sequence[int]) -> tuple[str, dict[str, Any]]:
    """A ``WHERE`` condition (on a column named ``id``) and its bound parameters selecting exactly ``ids``: for the
    ``INSERT ... SELECT`` statements that derive rows (audit, custody) from a batch just written."""
    if dialect == "postgresql":
        return "id = ANY(:ids)", {"ids": list(ids)}
    if ids and list(ids) == list(range(ids[0], ids[0] + len(ids))):  # a run of rowids (the importer's batches)
        return "id BETWEEN :low AND :high", {"low": ids[0], "high": ids[-1]}
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

    result = session.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
        {"table": table.name, "count": count},
    )
    return sorted(int(r[0]) for r in result)
