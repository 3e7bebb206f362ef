"""Processing work list: scan a rack or paste a list of codes, see which specimens they name (and which they do
not), choose one operation (aliquot, extract DNA/RNA, pathology review, nucleic-acid QC, dispose), apply it to every
specimen at once (all or nothing), then print the new tubes' labels with one click."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from biobank.domain.errors import BiobankError
from biobank.services import worklist
from biobank.services.auth import Action, can
from biobank.services.worklist import MAX_WORK_LIST, WorkList
from dashboards.data import core as data
from dashboards.shell import links
from dashboards.shell.actions import show_flash
from dashboards.shell.session import current_user
from dashboards.widgets.processing import FORMS, clear_done, fields, show_result, submit, unit_of, when

PREFIX = "processing"
FLASH = "processing_flash"
CODES = "processing_codes"


@st.cache_data(ttl=60, show_spinner=False)
def scanned(url: str, typed: str) -> WorkList:
    """The specimens the scan names (cleared with every write, like every cached read)."""
    with data.read_session(url) as session:
        return worklist.look_up(session, typed)


st.title("Processing work list")
with data.read_session() as session:
    may_enter = can(current_user(session), Action.enter)
if not may_enter:
    st.info("Your role can look specimens up but not process them.")
    st.stop()

clear_done(PREFIX)
show_flash(FLASH)
show_result(PREFIX)

typed = st.text_area(
    "Scan or paste specimen codes", key=CODES, height=150,
    placeholder="RA0001-L01A-SF1\nRA0001-L01A-SF2\n…",
    help=f"One per line (a scanner's Enter), or separated by spaces or commas; codes or barcodes, any letter case; "
         f"up to {MAX_WORK_LIST:,}.",
)
if not typed.strip():
    st.caption("Scan the tubes of a rack one after another, or paste a column of codes from a spreadsheet.")
    st.stop()

try:
    work = scanned(data.url(), typed)
except BiobankError as exc:  # a list too long for one go
    st.error(str(exc))
    st.stop()

found = [row for row in work.rows if row.code is not None]
missing = work.missing
m1, m2, m3 = st.columns(3)
m1.metric("Specimens found", len(found))
m2.metric("Not found", len(missing))
m3.metric("Scanned twice", len(work.duplicates))
if missing:
    st.error(f"No specimen has the code or barcode {', '.join(missing)}: correct or remove "
             f"{'it' if len(missing) == 1 else 'them'} to go on.")
if work.duplicates:
    st.warning("Scanned more than once, processed once: " + ", ".join(work.duplicates))
table = pd.DataFrame(
    [
        {
            "scanned": row.typed,
            "specimen": links.url("specimen", row.code) if row.code else "",
            "material": (row.material_type or "").replace("_", " "),
            "format": (row.storage_format or "").replace("_", " "),
            "status": (row.status or "not found").replace("_", " "),
            "remaining": f"{row.quantity_remaining:g} {row.unit}" if row.code else "",
            "location": row.location or ("not stored" if row.code else ""),
        }
        for row in work.rows
    ],
    columns=["scanned", "specimen", "material", "format", "status", "remaining", "location"],
)
st.dataframe(
    table, hide_index=True, width="stretch", key="processing_table",
    column_config={"specimen": st.column_config.LinkColumn("Specimen", display_text=r"\?specimen=(.+)$")},
)
if not found:
    st.stop()

form = st.radio("Operation", list(FORMS), format_func=lambda name: FORMS[name].title, horizontal=True,
                key="processing_operation")
unit, material = unit_of([(row.unit, row.material_type) for row in found])
with st.container(border=True):
    request = fields(form, PREFIX, unit=unit, material=material)
    at = when(PREFIX, form)
    st.caption(f"Applied to all {len(found)} specimen{'s' if len(found) != 1 else ''} at once: if any is refused, "
               "none is changed and each refusal is named.")
    submit(form, PREFIX, [row.code for row in found if row.code], request, at, flash=FLASH, disabled=bool(missing),
           clear=(CODES,))
