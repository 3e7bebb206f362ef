"""Audit log for administrators: who changed what, when, and why; filtered and paged in SQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from biobank.config import get_settings
from dashboards.data import cohort as data_cohort
from dashboards.data import core as data

PAGE_SIZE = 50
zone = get_settings().zone
st.title("Audit log")
st.caption("Every insert and update, with the user and the reason given for corrections. The log cannot be changed.")

options = data_cohort.audit_options(data.url())
c1, c2, c3, c4 = st.columns([2, 2, 3, 1])
user = c1.selectbox("User", ["all", *options["users"]], key="audit_user")
table = c2.selectbox("Table", ["all", *options["tables"]], key="audit_table")
today = datetime.now(zone).date()
period = c3.date_input("Period", (today - timedelta(days=30), today), key="audit_period", max_value=today)
start = end = None
if isinstance(period, tuple) and len(period) == 2:
    first, last = period
    start = datetime.combine(first, time(0), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), zone).astimezone(UTC)
elif isinstance(period, date):
    start = datetime.combine(period, time(0), zone).astimezone(UTC)

filters = (None if user == "all" else user, None if table == "all" else table, start, end)
if st.session_state.get("audit_filters") != filters:
    st.session_state["audit_filters"] = filters
    st.session_state["audit_page_no"] = 1
_, total = data_cohort.audit_page(data.url(), *filters, 1, 0)
pages = max(1, -(-total // PAGE_SIZE))
page_no = c4.number_input("Page", min_value=1, max_value=pages, key="audit_page_no")
rows, total = data_cohort.audit_page(data.url(), *filters, PAGE_SIZE, (int(page_no) - 1) * PAGE_SIZE)
st.caption(f"{total:,} entries match; page {page_no} of {pages}, newest first.")
if not rows.empty:
    rows["at"] = rows["at"].map(lambda t: t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"))
st.dataframe(
    rows, hide_index=True, width="stretch", height=560, key="audit_rows",
    column_config={"changes": st.column_config.TextColumn(width="large"), "record": st.column_config.TextColumn(width="medium")},
)
st.download_button("Download this page (CSV)", rows.to_csv(index=False), "audit_log.csv", "text/csv", key="audit_csv")
