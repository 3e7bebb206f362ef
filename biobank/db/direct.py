"""A bare DB-API connection for a quick read from a fresh process, without SQLAlchemy or pydantic.

``biobank specimen show`` answers in a fresh process within 0.4 s at a million specimens (issue 21): the lookup takes
milliseconds, but importing SQLAlchemy (about 0.15 s) and pydantic-settings (about 0.1 s) would take most of that
budget before the first query. This module opens the configured database with its own driver (``sqlite3``;
``psycopg`` for PostgreSQL), as :func:`biobank.db.engine.make_engine` configures it for a read (SQLite: the busy
timeout; PostgreSQL: the session in UTC), and hands it to a read written against the DB-API
(:mod:`biobank.queries.specimen_view`). Anything it does not open exactly as the engine would (another URL form, a
SQLite file that does not exist, a busy timeout set in the environment or ``.env``) goes through the engine instead.

The database URL is read as :class:`biobank.config.Settings` reads it (``BIOBANK_DATABASE_URL`` in the environment,
in any letter case, else in ``.env`` in the working directory, else the default), without building the settings;
``tests/cli/test_cli_startup.py`` checks the two agree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: biobank.config.Settings' default database URL and SQLite busy timeout (checked equal by the tests).
DEFAULT_URL = "sqlite:///biobank.db"
DEFAULT_BUSY_TIMEOUT_MS = 15000
_PREFIX = "biobank_"
_ENV_FILE = ".env"


def _configured(name: str) -> str | None:
    """Setting ``name`` as pydantic-settings finds it: the environment (names in any letter case) wins over ``.env``
    in the working directory; None when neither sets it."""
    key = _PREFIX + name
    for variable, value in os.environ.items():
        if variable.lower() == key:
            return value
    path = Path(_ENV_FILE)
    if path.is_file():
        from dotenv import dotenv_values

        for name, found in dotenv_values(path).items():
            if name.lower() == key and found is not None:
                return found
    return None


def configured_url() -> str:
    """The database URL the settings give (``biobank.config.get_settings().database_url``)."""
    url = _configured("database_url")
    return DEFAULT_URL if url is None else url


def _sqlite_path(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL that exists; None for anything else (memory, URI options)."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///"):]
    return path if path and path != ":memory:" and Path(path).is_file() else None


def connect(url: str) -> Any | None:
    """A DB-API connection to ``url`` configured for reading as the engine configures it, or None when this module
    does not open that URL (the caller then uses the engine)."""
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is None or _configured("sqlite_busy_timeout_ms") is not None:
            return None
        import sqlite3

        # isolation_level=None: the read below begins its own (deferred) transaction, as the engine lets SQLAlchemy do
        return sqlite3.connect(path, timeout=DEFAULT_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    for scheme in ("postgresql+psycopg://", "postgresql://"):
        if url.startswith(scheme):
            import psycopg

            return psycopg.connect("postgresql://" + url[len(scheme):], options="-c timezone=UTC")
    return None


@contextmanager
def reading(url: str | None = None) -> Iterator[Any]:
    """A DB-API connection inside one read transaction (one snapshot for every statement of the read; SQLite: a
    deferred transaction, which takes no write lock), rolled back and closed at the end. Through the engine when
    :func:`connect` does not open the URL."""
    connection = connect(url or configured_url())
    if connection is None:
        from biobank.db.engine import get_engine

        with get_engine(url).connect() as bound:
            bound.execution_options(sqlite_begin="DEFERRED")
            with bound.begin():
                yield bound.connection.driver_connection
        return
    try:
        if type(connection).__module__.startswith("sqlite3"):
            connection.execute("BEGIN DEFERRED")
        yield connection
    finally:
        try:
            connection.rollback()
        finally:
            connection.close()
