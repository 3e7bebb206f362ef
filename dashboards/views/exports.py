"""Exports, for administrators: every export recorded (who, when, the target, the selection, the donors and specimens
carried, each file with its SHA-256), filtered by target and by donor. After a withdrawal of consent, filter by the
donor: the rows are the recipients to tell. The log cannot be changed."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from biobank.config import get_settings
from biobank.domain.errors import BiobankError
from biobank.exports import service as export_service
from biobank.exports.log import CANCERMODELS
from dashboards.data import core as data
from dashboards.data import exports as data_exports
from dashboards.shell.session import current_username

ALL = "all"
LIMIT = 500
zone = get_settings().zone


def selection_text(selection: dict[str, Any]) -> str:
    return "; ".join(
        f"{key}={', '.join(map(str, value)) if isinstance(value, list) else value}" for key, value in selection.items()
    )


st.title("Exports")
st.caption("Every export that left the database: who made it, when, what it carried and each file's SHA-256. "
           "After a withdrawal of consent, choose the donor: these are the recipients to tell.")
username = current_username()
if not username:
    st.stop()

try:
    donors = data_exports.donors_in_log(data.url(), username)
except BiobankError as exc:
    st.error(str(exc))
    st.stop()
c1, c2 = st.columns(2)
target = c1.selectbox("Target", [ALL, *export_service.TARGETS, CANCERMODELS], key="exports_target")
donor = c2.selectbox("Donor carried", [ALL, *donors], key="exports_donor")
try:
    records = data_exports.export_log(data.url(), username, None if target == ALL else target,
                                      None if donor == ALL else donor, LIMIT)
except BiobankError as exc:
    st.error(str(exc))
    st.stop()

st.caption(f"{len(records):,} export(s) shown, newest first" + (f" (at most {LIMIT})." if len(records) >= LIMIT else "."))
rows = pd.DataFrame(
    [
        {
            "id": r["id"],
            "when": r["exported_at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            "who": r["user"],
            "target": r["target"],
            "selection": selection_text(r["selection"]),
            "donors": r["donor_count"],
            "specimens": r["specimen_count"],
            "donor codes": ", ".join(r["donors"]),
            "files": len(r["files"]),
        }
        for r in records
    ],
    columns=["id", "when", "who", "target", "selection", "donors", "specimens", "donor codes", "files"],
)
st.dataframe(rows, hide_index=True, width="stretch", key="exports_rows",
             column_config={"selection": st.column_config.TextColumn(width="large"),
                            "donor codes": st.column_config.TextColumn(width="medium")})

st.subheader("Files")
files = pd.DataFrame(
    [{"export": r["id"], "file": f["name"], "bytes": f["bytes"], "sha256": f["sha256"]} for r in records
     for f in r["files"]],
    columns=["export", "file", "bytes", "sha256"],
)
st.dataframe(files, hide_index=True, width="stretch", key="exports_files",
             column_config={"sha256": st.column_config.TextColumn(width="large")})
st.download_button("Download the log shown (CSV)", rows.merge(files, left_on="id", right_on="export", how="left")
                   .drop(columns=["export"]).to_csv(index=False), "export_log.csv", "text/csv", key="exports_csv")
