"""Alembic environment: the biobank engine factory, batch mode and foreign-key safety on SQLite."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

import biobank.models  # noqa: F401  (registers every table on the metadata)
from biobank.db.engine import make_engine, sqlite_statistics
from biobank.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = config.attributes.get("target_metadata") or metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=False,
        # SQLite's full-text search table for code suggestions (0018) and its shadow tables are not models
        include_name=lambda name, type_, parent: not (type_ == "table" and (name or "").startswith("specimen_code_fts")),
    )


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch rebuild of a referenced table fails with foreign keys on once rows exist: switch them off
        # outside any transaction, then check them all before committing.
        if connection.in_transaction():
            connection.commit()
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                problems = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
                if problems:
                    raise RuntimeError(f"foreign key check failed after migration: {problems[:5]}")
                sqlite_statistics(connection)  # the planner's statistics, taken again after every upgrade
    finally:
        if sqlite:
            if connection.in_transaction():
                connection.commit()
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def run_migrations_offline() -> None:
    from biobank.config import get_settings

    context.configure(
        url=config.get_main_option("sqlalchemy.url") or get_settings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    engine: Engine = (
        given if isinstance(given, Engine) else make_engine(config.get_main_option("sqlalchemy.url") or None)
    )
    with engine.connect() as connection:
        _run(connection)
        if connection.in_transaction():
            connection.commit()
    if given is None:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
