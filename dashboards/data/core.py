"""The dashboard's one door to the database: a cached engine, cached read loaders, and a session per action.

Loaders return DataFrames computed with aggregate SQL (the library's query functions); writes go through the
services inside :func:`unit_of_work`, after which :func:`clear_caches` drops stale data.

Every cached loader (here and in the other ``dashboards.data`` modules) takes the database URL as its first
argument, ``url``, and reads through ``read_session(url)``: Streamlit hashes the URL into the cache key, so two
databases never share a cached result, and the rows come from that URL's engine, not whatever is configured now.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from biobank.config import get_settings
from biobank.db.engine import make_engine, session_scope
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
    st.cache_data.clear()


@st.cache_data(ttl=60, show_spinner=False)
def cohort_counts(url: str) -> dict[str, int]:
    with read_session(url) as session:
        return queries.cohort_counts(session)


@st.cache_data(ttl=60, show_spinner=False)
def donors(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(queries.donor_rows(session))


@st.cache_data(ttl=60, show_spinner=False)
def pmi_distribution(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(queries.pmi_distribution(session), columns=["pmi_hours", "specimens"])


def url() -> str:
    return get_settings().database_url


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)
