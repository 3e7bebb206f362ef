"""Engine factory and session scope: SQLite for a laptop, PostgreSQL in production, UTC everywhere."""

from __future__ import annotations

import atexit
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine

from biobank.config import get_settings
from biobank.domain.timing import as_utc


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored in UTC; naive values are refused (SQLite would drop the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """The one engine factory: SQLite with foreign keys, WAL, busy timeout and real savepoints; else psycopg 3."""
    settings = get_settings()
    url = url or settings.database_url
    if _is_sqlite(url):
        connect_args = {"timeout": settings.sqlite_busy_timeout_ms / 1000, "check_same_thread": False}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_pre_ping", True)
    # Plan caching stays PostgreSQL's default: forcing custom plans would also re-plan the cached statements of every
    # foreign-key check and trigger, row by row (measured: a COPY of specimens three times slower). Lookups by large
    # key sets go as one array parameter (biobank.db.bulk.key_in), which a generic plan handles well.
    options = "-c timezone=UTC"
    return create_engine(parsed, connect_args={"options": options}, **kwargs)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """SQLAlchemy's documented recipe: let SQLAlchemy emit BEGIN so SAVEPOINT works on Python 3.11."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk (the WAL synced) when it returns, not only after the next checkpoint; a
            # power cut loses no committed row. Costs one fsync per commit (about 0.2-0.3 ms here; docs/deploy.md).
            cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue on busy_timeout instead of failing to upgrade.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def checkpoint(engine: Engine) -> bool:
    """Copy a SQLite database's write-ahead log into the database file and empty it, so that ``biobank.db`` alone
    holds every committed row (a file copied or mailed without its ``-wal`` beside it is complete). Returns whether
    the whole log went in (False when another process was reading or writing meanwhile: its data is safe in the log,
    and the next checkpoint moves it). Nothing to do for PostgreSQL or an in-memory database."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return True
    raw = engine.raw_connection()  # outside any transaction: SQLite refuses a checkpoint inside one
    try:
        cursor = raw.cursor()
        busy, _log, _moved = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cursor.close()
    finally:
        raw.close()
    return not busy


_engines: dict[str, Engine] = {}
_registered_exit = False


def get_engine(url: str | None = None) -> Engine:
    """A process-wide engine per URL (the dashboard and CLI share this); disposed, and a SQLite file checkpointed,
    when the process ends (:func:`dispose_engines`)."""
    global _registered_exit
    url = url or get_settings().database_url
    if url not in _engines:
        _engines[url] = make_engine(url)
        if not _registered_exit:
            atexit.register(dispose_engines)
            _registered_exit = True
    return _engines[url]


def dispose_engines() -> None:
    """Close every process-wide engine, checkpointing each SQLite file first (:func:`checkpoint`): run at process
    exit, so a CLI command leaves its rows in ``biobank.db`` itself. A checkpoint that cannot run (the file gone, the
    disk full) leaves the rows in the log, where SQLite finds them on the next open."""
    for engine in _engines.values():
        try:
            if engine.dialect.name == "sqlite" and Path(str(engine.url.database)).exists():
                checkpoint(engine)
        except DBAPIError:
            pass
        engine.dispose()
    _engines.clear()


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any error (nothing half-written)."""
    from biobank.db.integrity import translate_integrity_error

    session = Session(engine or get_engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise translate_integrity_error(exc) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


#: A table whose rows changed by more than this share since its statistics were taken is analysed before a bulk job.
STALE_SHARE = 0.1
#: ... and by at least this many rows (the planner copes with small tables whatever their statistics).
STALE_ROWS = 1000


#: Rows SQLite's ANALYZE reads per index (``PRAGMA analysis_limit``): statistics good enough for the planner in
#: milliseconds, whatever the size of the table (0 reads everything).
SQLITE_ANALYSIS_LIMIT = 2000


def sqlite_statistics(connection: Connection) -> bool:
    """Take a SQLite database's planner statistics (``ANALYZE`` into ``sqlite_stat1``) in the caller's transaction,
    committed with it; False (nothing done) on another database. Without them SQLite picks indexes by rule and walks
    a covering index of every specimen for one case's rows. Run after migrations, the demo, an import and the
    synthetic loader."""
    if connection.dialect.name != "sqlite":
        return False
    connection.exec_driver_sql("PRAGMA analysis_limit = 2000")  # SQLITE_ANALYSIS_LIMIT
    connection.exec_driver_sql("ANALYZE")
    return True


def refresh_statistics(session: Session, tables: Iterable[str]) -> list[str]:
    """``ANALYZE`` the PostgreSQL ``tables`` whose planner statistics are missing or stale; returns those analysed.

    A bulk import looks rows up by key sets (``code IN (...)``); with no statistics (a table just filled by an
    earlier import, and autovacuum off or not yet run) PostgreSQL plans each lookup as a scan of the whole table.
    Autovacuum's own rule decides what is stale (rows changed since the last analysis above a share of the table).
    Runs in the caller's transaction (PostgreSQL allows ``ANALYZE`` there). Tables the connected role does not own
    (the application's login, ``biobank db roles``) are analysed through ``biobank_analyze`` (migration 0010), which
    runs as their owner; without it they would be skipped with a server warning. Nothing to do on SQLite, whose
    planner uses the indexes for such lookups.
    """
    from sqlalchemy import text

    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return []
    names = sorted(set(tables))
    stale = [
        (name, owned)
        for name, rows, changed, owned in connection.execute(
            text("SELECT c.relname, c.reltuples, s.n_mod_since_analyze, pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
                 "JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE s.schemaname = current_schema() "
                 "AND c.relname = ANY(:names)"),
            {"names": names},
        )
        if changed >= STALE_ROWS and changed > STALE_SHARE * max(rows, 0)
    ]
    preparer = connection.dialect.identifier_preparer
    for name, owned in sorted(stale):
        if owned:
            connection.exec_driver_sql(f"ANALYZE {preparer.quote(name)}")
    others = sorted(name for name, owned in stale if not owned)
    if others and connection.execute(text(
        "SELECT CASE WHEN to_regprocedure('biobank_analyze(text[])') IS NULL THEN false "
        "ELSE has_function_privilege('biobank_analyze(text[])', 'EXECUTE') END")).scalar():
        connection.execute(text("SELECT biobank_analyze(:names)"), {"names": others})
    return sorted(name for name, _owned in stale)
