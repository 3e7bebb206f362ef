"""Cached read loaders for the derived-models page (grouped SQL in :mod:`biobank.queries.derived`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import select

from biobank.domain.vocab import SiteKind, SpecimenStatus
from biobank.domain.vocab_derived import VIABLE_SOURCE_FORMATS
from biobank.models import ConsentWithdrawal, SamplingSite, Specimen
from biobank.queries import cohort as cohort_queries
from biobank.queries import derived as models_metrics
from dashboards.data.core import read_session


@st.cache_data(ttl=60, show_spinner=False)
def model_list(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(models_metrics.model_rows(session))


@st.cache_data(ttl=60, show_spinner=False)
def outcomes(url: str) -> dict[str, Any]:
    """Attempted, established, in progress and the take rate of every model (the cohort overview's definition)."""
    with read_session(url) as session:
        return cohort_queries.model_outcomes(session)


@st.cache_data(ttl=60, show_spinner=False)
def take_rates(url: str, by: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(models_metrics.take_rates(session, by=by))


@st.cache_data(ttl=60, show_spinner=False)
def time_to_establishment(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(models_metrics.time_to_establishment(session))


@st.cache_data(ttl=60, show_spinner=False)
def model_detail(url: str, code: str) -> dict[str, Any]:
    with read_session(url) as session:
        return models_metrics.model_detail(session, code)


@st.cache_data(ttl=60, show_spinner=False)
def viable_sources(url: str) -> list[str]:
    """Codes of tumour specimens a model can start from (the library's :data:`VIABLE_SOURCE_FORMATS`: fresh or viable
    cryopreserved), still available, not themselves from a passage, of donors who did not withdraw."""
    with read_session(url) as session:
        withdrawn = select(ConsentWithdrawal.donor_id)
        statement = (
            select(Specimen.code)
            .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
            .where(
                Specimen.storage_format.in_(VIABLE_SOURCE_FORMATS),  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
                Specimen.status == SpecimenStatus.available.value,
                Specimen.passage_id.is_(None),  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
                SamplingSite.kind == SiteKind.tumour_region.value,
                Specimen.donor_id.not_in(withdrawn),  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
            )
            .order_by(Specimen.code)
        )
        return list(session.exec(statement).all())


