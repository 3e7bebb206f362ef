"""Import data: pick a kind, download its template, upload (or paste) a file, preview errors, confirm."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.errors import BiobankError
from biobank.imports.engine import ImportProgress, get_kind
from biobank.imports.read import estimate_rows
from biobank.imports.registry import MAPPED_KIND_NAMES, import_kind_names
from biobank.imports.report import ImportReport
from biobank.imports.templates import template_csv, template_xlsx
from biobank.models import User
from biobank.services.auth import Action, can
from dashboards.data import core as data
from dashboards.data import imports as data_imports
from dashboards.shell.actions import run_write
from dashboards.shell.session import current_user

#: Files of at least this many rows show a progress bar while they are checked and written.
LARGE_FILE_ROWS = 1000


def show_outcome(done: Any) -> None:
    """What a confirmed import wrote, or why it wrote nothing (its first 20 errors)."""
    if done is not None and done.ok:
        st.success(done.summary())
    elif done is not None:
        st.error(done.summary())
        for e in done.errors[:20]:
            st.write(f"row {e.row}, {e.column}: {e.message}")


def progress_bar(content: bytes, filename: str) -> tuple[ImportProgress | None, Any]:
    """An ``st.progress`` bar and the import's callback moving it, for a large file (else ``(None, None)``). The bar
    moves in steps of 1 %: a redraw per row would cost more than the row."""
    rows = estimate_rows(content, filename=filename)
    if rows is None or rows < LARGE_FILE_ROWS:
        return None, None
    bar = st.progress(0.0, text=f"reading about {rows:,} rows")
    done = {"validate": 0, "write": 0}
    step = max(rows // 100, 1)

    def report(phase: str, advance: int, total: int | None) -> None:
        before = done.get(phase, 0)
        done[phase] = now = before + advance
        whole = total or max(rows, now)
        if now // step == before // step and now < whole:
            return
        verb = "checked" if phase == "validate" else "written"
        bar.progress(min(now / whole, 1.0), text=f"{now:,} of {'about ' if total is None else ''}{whole:,} rows {verb}")

    return report, bar


def _kind_title(kind: str) -> str:
    return "Collection log (the lab's own wide log, with a mapping file)" if kind in MAPPED_KIND_NAMES \
        else get_kind(kind).title


def _collection_log() -> None:
    """A lab's own collection log read through its mapping file (docs/collection-log.md): checked as a dry run,
    then imported in one transaction."""
    from biobank.imports.engine import errors_csv
    from biobank.imports.kinds.collection_log import run_collection_log
    from biobank.imports.mapping import load_mapping

    st.write("One row per specimen, headers as your lab writes them: the mapping file (TOML) says which header is "
             "which field, with value maps, units and patterns over the notes. Donors, cases, lesions, sampling "
             "sites, specimens, container paths and placements are created with generated codes; every value read "
             "in a way you might not expect is a note, and every default is flagged.")
    mapping_file = st.file_uploader("Mapping file (TOML)", type=["toml", "txt"], key="import_log_map")
    log_file = st.file_uploader("Collection log (CSV, TSV or .xlsx)", type=["csv", "tsv", "txt", "xlsx"],
                                key="import_log_file")
    create = st.checkbox("Create a box path's missing containers (kinds assumed, noted)", key="import_log_create")
    if mapping_file is None or log_file is None:
        st.caption("Upload the mapping file and the log (write a first mapping with "
                   "`biobank import collection_log LOG --suggest-map -o map.toml`).")
        return
    try:
        mapping = load_mapping(mapping_file.getvalue())
    except BiobankError as exc:
        st.error(str(exc))
        return
    content, filename = log_file.getvalue(), log_file.name

    def run(session: Session, actor: User | None, *, dry_run: bool) -> ImportReport:
        return run_collection_log(session, actor=actor, source=content, filename=filename, mapping=mapping,
                                  dry_run=dry_run, create_containers=create)

    with data.read_session() as session:
        report = run(session, current_user(session), dry_run=True)
        session.rollback()
    cols = st.columns(4)
    cols[0].metric("Rows", report.rows)
    cols[1].metric("Specimens", report.inserted)
    cols[2].metric("Unchanged", report.unchanged)
    cols[3].metric("Errors", report.error_count)
    for note in report.file_notes:
        st.caption(note)
    if report.errors:
        st.error(f"{report.error_count} error(s): fix the log or the mapping and upload again. Nothing was written.")
        st.dataframe(pd.DataFrame([{"row": e.row, "column": e.column, "value": e.value, "expected": e.expected,
                                    "message": e.message} for e in report.errors]),
                     hide_index=True, key="import_log_errors")
    st.download_button("Report (CSV, errors and notes)", errors_csv(report, include_notes=True),
                       file_name="collection_log_report.csv", mime="text/csv", key="import_log_report")
    if report.notes:
        with st.expander(f"{report.note_count} note(s)"):
            st.dataframe(pd.DataFrame([{"row": n.row, "column": n.column, "note": n.note} for n in report.notes]),
                         hide_index=True, key="import_log_notes")
    if report.ok and st.button(f"Import the log ({report.inserted} specimen(s))", key="import_log_confirm",
                               type="primary"):
        show_outcome(run_write(lambda session, actor: run(session, actor, dry_run=False), rerun=False))


st.title("Import data")
st.caption("Move existing spreadsheets in: the whole file is checked first and goes in as one transaction, or not at all.")

with data.read_session() as session:
    may_import = can(current_user(session), Action.enter)  # what run_import requires
if not may_import:
    st.info("Only technicians and administrators can import data.")
    st.stop()

kinds = import_kind_names()
kind = st.selectbox("What does the file hold?", kinds, key="import_kind", format_func=_kind_title)
if kind in MAPPED_KIND_NAMES:
    _collection_log()
    st.stop()
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
    checking, bar = progress_bar(content, filename)
    report = data_imports.check(kind, content, filename, mode, progress=checking)
    if bar is not None:
        bar.empty()
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
        writing, bar = progress_bar(content, filename)
        done = run_write(data_imports.commit(kind, content, filename, mode, progress=writing), rerun=False)
        if bar is not None:
            bar.empty()
        show_outcome(done)
