"""Chart pieces the pages share: the PMI target and limit lines, and a table with a CSV download."""

from __future__ import annotations

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


def table_with_download(frame: pd.DataFrame, name: str, key: str, *, label: str = "Table", expanded: bool = False) -> None:
    """The data behind a chart, in an expander, with a CSV download."""
    with st.expander(f"{label} ({len(frame):,} rows)", expanded=expanded):
        st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}_table")
        st.download_button(
            f"Download {name}.csv", frame.to_csv(index=False), f"{name}.csv", "text/csv", key=f"{key}_csv"
        )
