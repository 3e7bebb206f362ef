"""Chart pieces the pages share: the PMI target and limit lines, a heat map by anatomical site, and a table with a
CSV download."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from biobank.config import get_settings

TARGET_COLOUR = "#e6a100"
LIMIT_COLOUR = "#c0392b"
KIND_COLOURS = {
    "primary": "#8e44ad",
    "local_recurrence": "#c39bd3",
    "metastasis": "#d35400",
    "lymph_node": "#f1c40f",
    "normal_tissue": "#27ae60",
    "germline_blood": "#c0392b",
    "bone_marrow": "#2980b9",
    "premortem_blood": "#e59866",
}


def pmi_rules(axis: str = "x") -> alt.Chart:
    """Dashed lines at the PMI target and limit, with a legend."""
    settings = get_settings()
    marks = pd.DataFrame(
        {
            "hours": [settings.pmi_target_hours, settings.pmi_limit_hours],
            "line": [f"target {settings.pmi_target_hours:g} h", f"limit {settings.pmi_limit_hours:g} h"],
        }
    )
    encoding = {axis: alt.X("hours:Q") if axis == "x" else alt.Y("hours:Q")}
    return (
        alt.Chart(marks)
        .mark_rule(strokeDash=[6, 3], size=2)
        .encode(
            **encoding,
            color=alt.Color("line:N", scale=alt.Scale(domain=list(marks["line"]), range=[TARGET_COLOUR, LIMIT_COLOUR]), title=None,
                            legend=alt.Legend(orient="top")),
        )
    )


def site_matrix(frame: pd.DataFrame, rows: str, value: str, *, scheme: str, row_axis: Any = None,
                colour_title: str | None = None) -> alt.Chart:
    """A heat map of ``value`` by anatomical site (columns) and ``rows``, in the colour ``scheme``."""
    y = alt.Y(f"{rows}:N", title=None) if row_axis is None else alt.Y(f"{rows}:N", title=None, axis=row_axis)
    scale = alt.Scale(scheme=scheme)
    colour = alt.Color(f"{value}:Q", scale=scale) if colour_title is None else alt.Color(f"{value}:Q", title=colour_title, scale=scale)
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X("site:N", title=None, axis=alt.Axis(labelAngle=-45, labelLimit=110, labelOverlap=False, labelFontSize=10)),
            y=y,
            color=colour,
            tooltip=[rows, "site", value],
        )
    )


def by_site(frame: pd.DataFrame, rows: str, value: str) -> pd.DataFrame:
    """The table beside a :func:`site_matrix`: one row per ``rows`` value, one column per site (0 where none)."""
    return frame.pivot_table(index=rows, columns="site", values=value, fill_value=0).reset_index()


def table_with_download(frame: pd.DataFrame, name: str, key: str, *, label: str = "Table", expanded: bool = False) -> None:
    """The data behind a chart, in an expander, with a CSV download."""
    with st.expander(f"{label} ({len(frame):,} rows)", expanded=expanded):
        st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}_table")
        st.download_button(
            f"Download {name}.csv", frame.to_csv(index=False), f"{name}.csv", "text/csv", key=f"{key}_csv"
        )
