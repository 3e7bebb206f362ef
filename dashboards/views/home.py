"""Home: cohort counts and the PMI distribution with the target and limit drawn."""

from __future__ import annotations

import altair as alt
import streamlit as st

from biobank.config import get_settings
from dashboards.data import core as data
from dashboards.widgets.charts import pmi_rules

settings = get_settings()
st.title("Rapid-autopsy biobank")
st.caption("Donors, autopsies and specimens collected under the post-mortem clock.")

counts = data.cohort_counts(data.url())
cols = st.columns(5)
for col, (label, key) in zip(
    cols,
    [("Donors", "donors"), ("Autopsies", "autopsies"), ("Lesions", "lesions"), ("Sampling sites", "sampling_sites"), ("Specimens", "specimens")],
    strict=True,
):
    col.metric(label, f"{counts[key]:,}")
if counts["withdrawn"]:
    st.warning(f"{counts['withdrawn']} donor(s) withdrew consent: their material is blocked from distribution and export.")

st.subheader("Post-mortem interval of primary specimens")
pmi = data.pmi_distribution(data.url())
if pmi.empty:
    st.info("No specimens yet. Load the demo cohort with `biobank demo` or record an autopsy.")
else:
    bars = (
        alt.Chart(pmi)
        .mark_bar()
        .encode(
            x=alt.X("pmi_hours:Q", bin=alt.Bin(step=0.5), title="PMI (hours after death)"),
            y=alt.Y("specimens:Q", title="Specimens"),
            tooltip=["pmi_hours", "specimens"],
        )
    )
    st.altair_chart(bars + pmi_rules(), width="stretch")  # target and limit in the colours of every other page

st.subheader("Donors")
donors = data.donors(data.url())
if not donors.empty:
    st.dataframe(
        donors[["code", "sex", "age_at_death", "diagnosis", "status", "consent_withdrawn", "case", "specimens"]],
        hide_index=True,
        width="stretch",
    )
    st.download_button("Download donors (CSV)", donors.to_csv(index=False), "donors.csv", "text/csv", key="home_download")
