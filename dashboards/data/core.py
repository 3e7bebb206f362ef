"""The dashboard's one door to the database: a cached engine, cached read loaders, and a session per action.

Loaders return DataFrames computed with aggregate SQL (the library's query functions); writes go through the
services inside :func:`unit_of_work`, after which :func:`clear_caches` drops stale data.

The cohort's figures (this module's home-page loaders and ``dashboards.data.cohort``) are cached by what they read,
not cleared by every write: their key holds the database's cohort generation (:func:`generation`, one tiny query: a
number the triggers of migration 0019 advance with every change of a specimen's summary row, a donor, a case, a
lesion, a consent withdrawal or a model). A write that changed none of that (a storage move, a sequencing result, a
plan, a sign-in) leaves them cached; one that did is seen on the next page run, whoever wrote it.

Every cached loader (here and in the other ``dashboards.data`` modules) takes the database URL as its first
argument, ``url``, and reads through ``read_session(url)``: Streamlit hashes the URL into the cache key, so two
databases never share a cached result, and the rows come from that URL's engine, not whatever is configured now.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from biobank.config import get_settings
from biobank.db.engine import make_engine, session_scope
from biobank.queries import cohort as queries_cohort
from biobank.queries import core as queries


@st.cache_resource
def _engine(url: str) -> Engine:
    return make_engine(url)


def engine(url: str | None = None) -> Engine:
    """Only the engine is cached across users; every action opens its own session.

    ``url`` is the database to use (the configured one when not given): a cached loader takes the URL as a hashed
    argument and reads through that URL's engine, so its cache entries belong to that database only.
    """
    return _engine(url or get_settings().database_url)


@contextmanager
def read_session(url: str | None = None) -> Iterator[Session]:
    """A read: on SQLite a deferred BEGIN, so readers never take the write lock (writers use IMMEDIATE)."""
    with Session(engine(url).execution_options(sqlite_begin="DEFERRED")) as session:
        yield session


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A write: commits everything or nothing, then clears the cached reads."""
    with session_scope(engine()) as session:
        yield session
    clear_caches()


def clear_caches() -> None:
    """Drop the per-request cached reads (``st.cache_data``). The generation-keyed cohort figures stay: a write that
    changed them moved the generation, so their next read misses by itself (see the module's docstring)."""
    st.cache_data.clear()


T = TypeVar("T")

#: The cache of the generation-keyed loaders: shared by every user, never cleared by :func:`clear_caches`; an entry
#: whose generation has passed is never asked for again and ages out (``max_entries``, ``ttl``).
_by_generation = st.cache_resource(ttl=3600, max_entries=64, show_spinner=False)


def by_generation(loader: Callable[..., T]) -> Callable[..., T]:
    """Cache ``loader(url, generation, *args)`` across users until the cohort generation moves; callers get a copy
    (the cached value is shared, so no caller can alter another's)."""
    cached = _by_generation(loader)

    def read(url: str, *args: Any) -> T:
        return copy.deepcopy(cached(url, generation(url), *args))

    read.__name__ = loader.__name__
    read.__doc__ = loader.__doc__
    read.clear = cached.clear  # type: ignore[attr-defined]  # for tests and benchmarks
    return read


def generation(url: str) -> int:
    """The cohort generation of the database at ``url``: equal numbers, equal cohort figures (one tiny query)."""
    with read_session(url) as session:
        return queries_cohort.generation(session)


@by_generation
def cohort_counts(url: str, generation: int) -> dict[str, int]:
    with read_session(url) as session:
        return queries.cohort_counts(session)


@by_generation
def donors(url: str, generation: int) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(queries.donor_rows(session))


@by_generation
def pmi_distribution(url: str, generation: int) -> pd.DataFrame:
    """Primary post-mortem specimens per half hour of PMI (from the maintained histogram: the same figures)."""
    with read_session(url) as session:
        rows = queries_cohort.pmi_histogram(session, queries_cohort.CohortFilter())
        return pd.DataFrame(rows, columns=["pmi_hours", "specimens"])


def url() -> str:
    return get_settings().database_url


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)
