"""Cached reads for the storage and distribution pages (the library's query functions, aggregated in SQL)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from biobank.queries import core as queries
from biobank.services import distribution, storage
from dashboards.data.core import read_session


@st.cache_data(ttl=60, show_spinner=False)
def tree(_url: str) -> pd.DataFrame:
    with read_session() as session:
        return pd.DataFrame(
            storage.tree(session),
            columns=["code", "kind", "name", "depth", "path", "parent", "temperature", "capacity", "specimens"],
        )


@st.cache_data(ttl=60, show_spinner=False)
def box(_url: str, code: str) -> dict[str, Any]:
    with read_session() as session:
        return storage.box_view(session, code)


@st.cache_data(ttl=60, show_spinner=False)
def checkouts(_url: str) -> pd.DataFrame:
    with read_session() as session:
        return pd.DataFrame(
            storage.checkouts(session),
            columns=["code", "storage_format", "checked_out_by", "checked_out_at", "hours_out", "overdue", "from", "purpose"],
        )


@st.cache_data(ttl=60, show_spinner=False)
def specimen(_url: str, code: str) -> dict[str, Any]:
    with read_session() as session:
        return queries.specimen_detail(session, code)


@st.cache_data(ttl=60, show_spinner=False)
def orders(_url: str) -> pd.DataFrame:
    with read_session() as session:
        return pd.DataFrame(
            distribution.order_rows(session),
            columns=["code", "study", "recipient", "use", "status", "items", "returned_quantity", "approved_by",
                     "approved_at", "shipped_at", "shipping_temperature", "received_at"],
        )


@st.cache_data(ttl=60, show_spinner=False)
def order(_url: str, code: str) -> dict[str, Any]:
    with read_session() as session:
        return distribution.order_detail(session, code)
