"""Shared fixtures: every database test runs on SQLite and, when BIOBANK_TEST_POSTGRES_URL is set, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from biobank.config import get_settings
from biobank.db.engine import dispose_engines, make_engine
from biobank.models import User
from tests.support.dbtools import BACKENDS, POSTGRES_URL, Templates, fresh_database


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a PostgreSQL URL the PostgreSQL cases skip, and say why."""
    if POSTGRES_URL:
        return
    skip = pytest.mark.skip(reason="set BIOBANK_TEST_POSTGRES_URL to run the PostgreSQL cases")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.id.split("-"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    holder = Templates(tmp_path_factory.mktemp("templates"))
    yield holder
    holder.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(
    request: pytest.FixtureRequest,
    backend: str,
    templates: Templates,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A migrated database of its own; also made the process default (BIOBANK_DATABASE_URL). A test marked
    ``@pytest.mark.demo(N)`` gets a copy of the demo cohort of N donors (seed 7), loaded once per run."""
    marker = request.node.get_closest_marker("demo")
    donors = marker.args[0] if marker is not None else None
    with fresh_database(backend, templates, tmp_path, demo_donors=donors) as url:
        monkeypatch.setenv("BIOBANK_DATABASE_URL", url)
        get_settings.cache_clear()
        yield url
        dispose_engines()
    get_settings.cache_clear()


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test's own attachment store (``BIOBANK_ATTACHMENTS_DIR``; on PostgreSQL the default is ./attachments)."""
    directory = tmp_path / "store"
    monkeypatch.setenv("BIOBANK_ATTACHMENTS_DIR", str(directory))
    get_settings.cache_clear()
    yield directory
    get_settings.cache_clear()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


def _user(engine: Engine, username: str, role: str) -> User:
    with Session(engine, expire_on_commit=False) as session:
        user = User(username=username, role=role)
        session.add(user)
        session.commit()
        return user


@pytest.fixture
def admin(engine: Engine) -> User:
    return _user(engine, "admin", "admin")


@pytest.fixture
def tech(engine: Engine) -> User:
    return _user(engine, "tech", "technician")


@pytest.fixture
def coordinator(engine: Engine) -> User:
    return _user(engine, "coord", "coordinator")


@pytest.fixture
def pi(engine: Engine) -> User:
    return _user(engine, "pi", "pi")


@pytest.fixture
def viewer(engine: Engine) -> User:
    return _user(engine, "viewer", "viewer")


DEATH = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)


@pytest.fixture
def death() -> datetime:
    return DEATH


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
