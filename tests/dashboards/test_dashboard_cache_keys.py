"""The dashboard's cached loaders are keyed by the database URL and read that URL's database: two databases with
different content never share a cached result in one process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlmodel import select

from biobank.db.engine import make_engine, session_scope
from biobank.models import User
from biobank.services import donors
from biobank.services.inputs import DonorCreate
from dashboards.data import cohort as data_cohort
from dashboards.data import core as data
from tests.support.dbtools import Templates, fresh_database


def register(url: str, *codes: str) -> None:
    """Donors registered straight into the database at ``url`` (by a technician created on first use)."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            tech = session.exec(select(User).where(User.username == "tech")).first()
            if tech is None:
                tech = User(username="tech", role="technician")
                session.add(tech)
                session.flush()
            for code in codes:
                donors.register_donor(session, actor=tech, data=DonorCreate(code=code, sex="female"))
    finally:
        engine.dispose()


@pytest.fixture
def two_databases(db_url: str, backend: str, templates: Templates, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The configured database (``db_url``) and a second one of the same backend; the dashboard caches start empty."""
    st.cache_data.clear()
    st.cache_resource.clear()
    with fresh_database(backend, templates, tmp_path) as other:
        try:
            yield db_url, other
        finally:
            for url in (db_url, other):
                data.engine(url).dispose()
            st.cache_data.clear()
            st.cache_resource.clear()


def test_two_databases_give_two_cached_results_in_one_process(two_databases: tuple[str, str]) -> None:
    first, second = two_databases
    register(first, "RA-0001")
    register(second, "RA-0002", "RA-0003")

    assert data_cohort.donor_codes(first) == ["RA-0001"]
    assert data_cohort.donor_codes(second) == ["RA-0002", "RA-0003"]  # not the first database's cached list
    assert data.cohort_counts(first)["donors"] == 1
    assert data.cohort_counts(second)["donors"] == 2
    assert data.donors(first)["code"].tolist() == ["RA-0001"]
    assert data.donors(second)["code"].tolist() == ["RA-0002", "RA-0003"]

    # The two entries are cached side by side: a write elsewhere shows in neither until the caches are cleared (what
    # unit_of_work does after a dashboard write); then each URL reads its own database again.
    register(first, "RA-0009")
    assert data_cohort.donor_codes(first) == ["RA-0001"]
    assert data_cohort.donor_codes(second) == ["RA-0002", "RA-0003"]
    data.clear_caches()
    assert data_cohort.donor_codes(first) == ["RA-0001", "RA-0009"]
    assert data_cohort.donor_codes(second) == ["RA-0002", "RA-0003"]


def test_a_loader_reads_the_database_it_is_given_not_the_configured_one(two_databases: tuple[str, str]) -> None:
    configured, other = two_databases
    assert data.url() == configured
    register(other, "RA-0042")

    assert data_cohort.donor_codes(other) == ["RA-0042"]
    assert data.cohort_counts(other)["donors"] == 1
    assert data_cohort.donor_codes(configured) == []
    assert data.cohort_counts(configured)["donors"] == 0
