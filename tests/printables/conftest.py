"""Fixtures of the printables tests: a stocked bank, and the lab's paper size setting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.models import User
from tests.queries.test_specimen_list import stock


@pytest.fixture
def stocked(engine: Engine, tech: User, pi: User) -> Engine:
    """The bank of :func:`tests.queries.test_specimen_list.stock`: two donors stored across boxes, plan WGS-1 and
    draft order DO-1."""
    with session_scope(engine) as session:
        stock(session, tech, pi)
    return engine


@pytest.fixture(params=["A4", "Letter"])
def paper(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each paper size in turn, set as the lab's setting (BIOBANK_PAPER_SIZE)."""
    monkeypatch.setenv("BIOBANK_PAPER_SIZE", request.param)
    get_settings.cache_clear()
    yield request.param
    get_settings.cache_clear()
