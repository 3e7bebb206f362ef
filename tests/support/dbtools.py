"""Fresh, migrated databases for tests: one migrated template per backend, a cheap copy per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("BIOBANK_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"]


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["configure_logging"] = False
    return config


def migrate(url: str, revision: str = "head") -> None:
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)


def _admin_engine() -> Engine:
    assert POSTGRES_URL
    return create_engine(make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")


def create_pg_database(template: str | None = None) -> str:
    """A new, uniquely named PostgreSQL database (parallel test runs never share one)."""
    name = f"biobank_t_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        suffix = f" TEMPLATE {template}" if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Templates:
    """Migrated template databases, built on first use and dropped at the end of the run."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._sqlite: Path | None = None
        self._pg: str | None = None
        self._demo: dict[tuple[str, int], str] = {}

    def sqlite(self) -> Path:
        if self._sqlite is None:
            path = self.workdir / "template.db"
            migrate(f"sqlite:///{path}")
            # Closing the last connection checkpoints the WAL into the file, so a plain copy is complete.
            self._sqlite = path
        return self._sqlite

    def postgres(self) -> str:
        if self._pg is None:
            url = create_pg_database()
            migrate(url)
            self._pg = url
        return make_url(self._pg).database  # type: ignore[return-value]

    def demo(self, backend: str, donors: int) -> str:
        """A template holding the demo cohort of ``donors`` donors (seed 7), loaded once per run and backend: the
        SQLite file's path, or the PostgreSQL database's name. Tests get copies (:func:`fresh_database`)."""
        key = (backend, donors)
        if key not in self._demo:
            from biobank.db.engine import make_engine, session_scope
            from biobank.demo.cohort import load_demo

            if backend == "sqlite":
                path = self.workdir / f"demo-{donors}.db"
                shutil.copyfile(self.sqlite(), path)
                url = f"sqlite:///{path}"
            else:
                url = create_pg_database(template=self.postgres())
            engine = make_engine(url)
            try:
                with session_scope(engine) as session:
                    load_demo(session, donors_count=donors, seed=7)
            finally:
                engine.dispose()  # no connection left: the file is whole, and PostgreSQL may copy the database
            self._demo[key] = str(path) if backend == "sqlite" else url
        found = self._demo[key]
        return found if backend == "sqlite" else make_url(found).database  # type: ignore[return-value]

    def close(self) -> None:
        for (backend, _), url in self._demo.items():
            if backend != "sqlite":
                drop_pg_database(url)
        if self._pg is not None:
            drop_pg_database(self._pg)


@contextmanager
def fresh_database(
    backend: str, templates: Templates, tmp_path: Path, *, demo_donors: int | None = None
) -> Iterator[str]:
    """The URL of a migrated database of ``backend`` that only this test uses; with ``demo_donors``, a copy of the
    demo cohort of that many donors (seed 7), loaded once per run (:meth:`Templates.demo`)."""
    if backend == "sqlite":
        path = tmp_path / f"test-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(templates.sqlite() if demo_donors is None else templates.demo("sqlite", demo_donors), path)
        yield f"sqlite:///{path}"
    else:
        template = templates.postgres() if demo_donors is None else templates.demo("postgresql", demo_donors)
        url = create_pg_database(template=template)
        try:
            yield url
        finally:
            drop_pg_database(url)


@contextmanager
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables) for migration tests."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'empty-{uuid.uuid4().hex[:8]}.db'}"
    else:
        url = create_pg_database()
        try:
            yield url
        finally:
            drop_pg_database(url)


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table, for asserting that a refused operation changed nothing."""
    tables = sorted(inspect(engine).get_table_names())
    result: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for table in tables:
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).fetchall()
            result[table] = sorted((tuple(row) for row in rows), key=repr)
    return result


def assert_refused(engine: Engine, error: type[Exception], match: str, action) -> None:  # type: ignore[no-untyped-def]
    """``action(session)`` raises ``error`` matching ``match``, and the database is exactly as it was."""
    import pytest

    from biobank.db.engine import session_scope

    before = snapshot(engine)
    with pytest.raises(error, match=match), session_scope(engine) as session:
        action(session)
    assert snapshot(engine) == before
