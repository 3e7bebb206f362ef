"""Import data: pick a kind, download its template, upload (or paste) a file, preview errors, confirm."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from biobank.config import get_settings
from biobank.imports.engine import get_kind
from biobank.imports.registry import import_kind_names
from biobank.imports.templates import template_csv, template_xlsx
from biobank.services.auth import Action, can
from dashboards.data import core as data
from dashboards.data import imports as data_imports
from dashboards.shell.actions import run_write
from dashboards.shell.session import current_user

st.title("Import data")
st.caption("Move existing spreadsheets in: the whole file is checked first and goes in as one transaction, or not at all.")

with data.read_session() as session:
    may_import = can(current_user(session), Action.enter)  # what run_import requires
if not may_import:
    st.info("Only technicians and administrators can import data.")
    st.stop()

kinds = import_kind_names()
kind = st.selectbox("What does the file hold?", kinds, key="import_kind", format_func=lambda k: get_kind(k).title)
spec = get_kind(kind)
st.write(spec.help)
zone = get_settings().timezone
left, right = st.columns(2)
left.download_button("Template (CSV)", template_csv(kind, tz_name=zone), file_name=f"{kind}_template.csv",
                     mime="text/csv", key="import_template_csv")
right.download_button("Template (Excel)", template_xlsx(kind, tz_name=zone), file_name=f"{kind}_template.xlsx",
                      mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                      key="import_template_xlsx")
with st.expander("Columns"):
    st.dataframe(pd.DataFrame([{"column": c.name, "required": c.required, "type": c.type, "meaning": c.help,
                                "vocabulary": ", ".join(c.vocabulary)} for c in spec.columns]),
                 hide_index=True, key="import_columns")

mode = st.radio("Rows already in the database", ["create", "upsert"], key="import_mode", horizontal=True,
                format_func=lambda m: "are errors (create)" if m == "create" else "are updated (upsert)")
upload = st.file_uploader("Spreadsheet (CSV, TSV or .xlsx)", type=["csv", "tsv", "txt", "xlsx"], key="import_file")
pasted = st.text_area("...or paste CSV", key="import_paste", height=120)

content: bytes | None = None
filename = f"{kind}.csv"
if upload is not None:
    content, filename = upload.getvalue(), upload.name
elif pasted.strip():
    content = pasted.encode("utf-8")

if content is not None:
    report = data_imports.check(kind, content, filename, mode)
    st.subheader("Preview")
    verb = "would be inserted" if report.ok else "valid rows"
    cols = st.columns(4)
    cols[0].metric("Rows", report.rows)
    cols[1].metric("New", report.inserted, help=verb)
    cols[2].metric("Updated", report.updated)
    cols[3].metric("Errors", report.error_count)
    for note in report.file_notes:
        st.caption(note)
    frame = data_imports.preview(content, filename, report)
    if not frame.empty:
        st.dataframe(data_imports.highlight(frame), hide_index=True, key="import_preview")
    if report.errors:
        st.error(f"{report.error_count} error(s): fix the file and upload it again. Nothing was written.")
        errors = pd.DataFrame([{"row": e.row, "column": e.column, "value": e.value, "expected": e.expected,
                                "message": e.message} for e in report.errors])
        st.dataframe(errors, hide_index=True, key="import_errors")
        from biobank.imports.engine import errors_csv

        st.download_button("Error report (CSV)", errors_csv(report, include_notes=True), file_name="import_errors.csv",
                           mime="text/csv", key="import_errors_csv")
    if report.notes:
        with st.expander(f"{report.note_count} cell(s) read with a note"):
            st.dataframe(pd.DataFrame([{"row": n.row, "column": n.column, "note": n.note} for n in report.notes]),
                         hide_index=True, key="import_notes")
    confirm = report.ok and st.button(f"Import {report.inserted + report.updated} row(s)", key="import_confirm",
                                      type="primary")
    if confirm:
        # No rerun: the report is the answer, and a rerun would check the same file again against what it just wrote.
        done = run_write(data_imports.commit(kind, content, filename, mode), rerun=False)
        if done is not None and done.ok:
            st.success(done.summary())
        elif done is not None:
            st.error(done.summary())
            for e in done.errors[:20]:
                st.write(f"row {e.row}, {e.column}: {e.message}")
