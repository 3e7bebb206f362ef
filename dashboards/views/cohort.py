"""Cohort overview for PIs: counts, filters, PMI distribution, per-case PMIs, sites sampled, formats, stock, models."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from biobank.config import get_settings
from biobank.queries.cohort import CohortFilter
from dashboards.data import cohort as data_cohort
from dashboards.data import core as data
from dashboards.widgets.charts import by_site, pmi_rules, site_matrix, table_with_download

settings = get_settings()
st.title("Cohort overview")

options = data_cohort.filter_options(data.url())
f1, f2, f3 = st.columns([3, 2, 1])
diagnoses = f1.multiselect("Diagnosis", options["diagnoses"], key="cohort_diagnoses", placeholder="All diagnoses")
period = ()
if options["first_death"] is not None:
    period = f2.date_input(
        "Died between", (options["first_death"], options["last_death"]), key="cohort_period",
        min_value=options["first_death"], max_value=options["last_death"],
    )
band = f3.selectbox("PMI band", ["all", *options["pmi_bands"]], key="cohort_band")
start, end = (period[0], period[1]) if isinstance(period, tuple) and len(period) == 2 else (None, None)
flt = CohortFilter(tuple(diagnoses), start, end, None if band == "all" else band)
view = data_cohort.cohort(data.url(), flt)
counts = view["counts"]

metrics = st.columns(6)
metrics[0].metric("Donors", f"{counts['donors']:,}", help=f"{counts['withdrawn']} withdrew consent" if counts["withdrawn"] else None)
metrics[1].metric("Autopsies", f"{counts['autopsies']:,}")
metrics[2].metric("Sampling sites", f"{counts['sampling_sites']:,}")
metrics[3].metric("Specimens", f"{counts['specimens']:,}", help=f"{counts['primary_specimens']:,} primary")
metrics[4].metric("In stock", f"{counts['in_stock']:,}")
if view["has_models"]:
    outcomes = view["model_outcomes"]
    rate = outcomes["take_rate"]
    metrics[5].metric(
        "Models", f"{counts['models']:,}", f"take rate {rate:.0%}" if rate is not None else None, delta_color="off",
        help=f"Take rate: established / initiated ({outcomes['established']} of {outcomes['attempted']}; "
        f"{outcomes['in_progress']} still growing), as on the derived-models page.",
    )
else:
    metrics[5].metric("Models", "—", help="The derived-models module is not installed in this database.")
if counts["withdrawn"]:
    st.warning(f"{counts['withdrawn']} donor(s) in this selection withdrew consent: their material is blocked from distribution, plans and exports.")
if band != "all":
    st.caption(f"Specimen counts, charts and stock are limited to material with a PMI of {band}.")

if counts["specimens"] == 0:
    st.info("No specimens match these filters.")
    st.stop()

left, right = st.columns(2, gap="large")
with left:
    st.subheader("PMI distribution")
    pmi = view["pmi"]
    bars = (
        alt.Chart(pmi)
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X("pmi_hours:Q", bin=alt.Bin(step=0.5), title="PMI (hours after death)"),
            y=alt.Y("specimens:Q", title="Primary specimens"),
            tooltip=[alt.Tooltip("pmi_hours:Q", title="from (h)"), "specimens:Q"],
        )
    )
    st.altair_chart((bars + pmi_rules()).properties(height=300), width="stretch")
    table_with_download(pmi, "pmi_distribution", "cohort_pmi")

cases = view["cases"]
with right:
    st.subheader("Specimen PMIs per case")
    if cases.empty:
        st.caption("No post-mortem specimens.")
    else:
        recent = cases["case"].tolist()[-8:]
        chosen = st.multiselect("Cases", cases["case"].tolist(), default=recent, key="cohort_cases")
        points = data_cohort.case_specimen_pmis(data.url(), tuple(chosen), flt)
        if not points.empty:
            strip = (
                alt.Chart(points)
                .mark_tick(thickness=2, size=14, opacity=0.7)
                .encode(
                    x=alt.X("pmi_h:Q", title="PMI (hours after death)"),
                    y=alt.Y("case:N", title=None, sort=chosen, axis=alt.Axis(labelOverlap=False)),
                    color=alt.Color("storage_format:N", title="format", legend=alt.Legend(orient="bottom", columns=4)),
                    tooltip=["code", "site", "storage_format", alt.Tooltip("excised_h:Q", title="excised (h)", format=".2f"),
                             alt.Tooltip("pmi_h:Q", title="PMI (h)", format=".2f")],
                )
            )
            chart = alt.layer(strip, pmi_rules()).resolve_scale(color="independent")
            st.altair_chart(chart.properties(height=34 * len(chosen) + 150), width="stretch")
    table_with_download(cases, "cases_pmi", "cohort_cases", label="Per-case PMI summary")

st.subheader("Sites sampled per donor")
per_page = data_cohort.DONORS_PER_PAGE
first_page = data_cohort.donor_sites_page(data.url(), flt, 1, per_page)
pages = max(1, -(-first_page["total"] // per_page))
page = 1
if pages > 1:
    page = int(st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, step=1, key="cohort_donor_page"))
shown = first_page if page == 1 else data_cohort.donor_sites_page(data.url(), flt, page, per_page)
donor_sites = shown["rows"]
if shown["donors"]:
    st.caption(f"Donors {(page - 1) * per_page + 1:,}–{(page - 1) * per_page + len(shown['donors']):,} "
               f"of {shown['total']:,} with sampling sites ({per_page} a page, by donor code).")
    heat = site_matrix(donor_sites, "donor", "sampling_sites", scheme="blues", row_axis=alt.Axis(labelOverlap=False),
                       colour_title="sampling sites")
    st.altair_chart(heat.properties(height=26 * len(shown["donors"]) + 120), width="stretch")
    table_with_download(by_site(donor_sites, "donor", "sampling_sites"), f"donor_sites_page_{page}", "cohort_donor_sites",
                        label="Donors × sites (this page)")
else:
    st.caption("No post-mortem sampling sites in this selection.")

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Storage formats by site")
    format_sites = view["format_sites"]
    matrix = site_matrix(format_sites, "storage_format", "specimens", scheme="greens")
    text = matrix.mark_text(fontSize=10).encode(text="specimens:Q", color=alt.value("#222"))
    st.altair_chart((matrix + text).properties(height=330), width="stretch")
    table_with_download(by_site(format_sites, "storage_format", "specimens"), "format_sites", "cohort_format_sites",
                        label="Formats × sites")
with right:
    st.subheader("Stock remaining")
    stock = view["stock"].assign(format=lambda d: d["storage_format"] + " (" + d["unit"] + ")")
    stock_chart = (
        alt.Chart(stock)
        .mark_bar()
        .encode(
            x=alt.X("in_stock:Q", title="specimens in stock"),
            y=alt.Y("format:N", title=None, sort="-x"),
            color=alt.value("#59a14f"),
            tooltip=["storage_format", "unit", "specimens", "in_stock", "quantity_remaining"],
        )
    )
    st.altair_chart(stock_chart.properties(height=330), width="stretch")
    table_with_download(stock.drop(columns=["format"]), "stock_by_format", "cohort_stock", label="Stock by format")

if view["has_models"]:
    st.subheader("Derived models")
    if not view["models"]:
        st.caption("No models from the material these filters keep.")
        st.stop()
    models = pd.DataFrame(sorted(view["models"].items()), columns=["status", "models"])
    st.altair_chart(
        alt.Chart(models).mark_bar().encode(x="models:Q", y=alt.Y("status:N", title=None), tooltip=["status", "models"]).properties(height=160),
        width="stretch",
    )
    table_with_download(models, "models_by_status", "cohort_models", label="Models by status")
