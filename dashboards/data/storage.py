"""Cached reads for the storage and distribution pages (the library's query functions, aggregated in SQL)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from biobank.queries import core as queries
from biobank.queries import distribution as order_reads
from biobank.queries import storage as storage_reads
from dashboards.data.core import read_session


@st.cache_data(ttl=60, show_spinner=False)
def tree(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(
            storage_reads.tree(session),
            columns=["code", "kind", "name", "depth", "path", "parent", "temperature", "capacity", "specimens"],
        )


@st.cache_data(ttl=60, show_spinner=False)
def box(url: str, code: str) -> dict[str, Any]:
    with read_session(url) as session:
        return storage_reads.box_view(session, code)


@st.cache_data(ttl=60, show_spinner=False)
def checkouts(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(
            storage_reads.checkouts(session),
            columns=["code", "storage_format", "checked_out_by", "checked_out_at", "hours_out", "overdue", "from", "purpose"],
        )


@st.cache_data(ttl=60, show_spinner=False)
def specimen(url: str, code: str) -> dict[str, Any]:
    with read_session(url) as session:
        return queries.specimen_detail(session, code)


@st.cache_data(ttl=60, show_spinner=False)
def orders(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(
            order_reads.order_rows(session),
            columns=["code", "study", "recipient", "use", "status", "items", "returned_quantity", "approved_by",
                     "approved_at", "shipped_at", "shipping_temperature", "received_at"],
        )


@st.cache_data(ttl=60, show_spinner=False)
def order(url: str, code: str) -> dict[str, Any]:
    with read_session(url) as session:
        return order_reads.order_detail(session, code)
