"""Specimen list: filter the whole bank (donor, case, site, format, status, location, plan, collection dates), select
rows, and act on the selection at once: store, move, check out, return, dispose, add to a draft order (each in one
unit of work, all or nothing), print labels or a pick list, export the list as CSV."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.errors import invalid
from biobank.domain.storage.kinds import CONTAINER_KINDS
from biobank.domain.storage.orders import OrderStatus
from biobank.domain.vocab import SpecimenStatus, StorageFormat
from biobank.labels import LABEL_FORMATS
from biobank.models import User
from biobank.queries.specimens import DEFAULT_LIMIT
from biobank.services import distribution, storage
from biobank.services.auth import Action, can
from dashboards.data import core as data
from dashboards.data import specimens as data_specimens
from dashboards.data import storage as data_storage
from dashboards.shell import links
from dashboards.shell.actions import labelled, run_write, show_flash
from dashboards.shell.session import current_user

FLASH = "specimens_flash"
TABLE = "specimens_table"
RESET = "specimens_reset_selection"
#: Widget keys of the filters; changing any of them clears the table's selection (the rows move under it).
FILTERS = ("specimens_donor", "specimens_case", "specimens_site", "specimens_format", "specimens_status",
           "specimens_box", "specimens_plan", "specimens_collected")
SHOWN_CODES = 12


@dataclass(frozen=True)
class Bulk:
    """A bulk action: the verb on its button, the past tense of the confirmation, who may run it."""

    label: str
    done: str
    needs: Callable[[User | None], bool]


def _enters(user: User | None) -> bool:
    return can(user, Action.enter)


def _drafts_orders(user: User | None) -> bool:
    return can(user, Action.enter) or can(user, Action.plan)


BULK: dict[str, Bulk] = {
    "store": Bulk("Store", "stored", _enters),
    "move": Bulk("Move", "moved", _enters),
    "check_out": Bulk("Check out", "checked out", _enters),
    "return": Bulk("Return", "returned", _enters),
    "dispose": Bulk("Dispose", "disposed", _enters),
    "add_to_order": Bulk("Add to order", "added to", _drafts_orders),
}


def specimens(n: int) -> str:
    return f"{n} specimen" + ("" if n == 1 else "s")


def clear_selection() -> None:
    """Untick every row, in the browser too: after a filter change or a bulk action the ticked row numbers would
    point at other specimens. Called before the table is drawn (a filter's callback, or the top of the run)."""
    st.session_state[TABLE] = {"selection": {"rows": [], "columns": [], "cells": []}}


settings = get_settings()
url = data.url()
with data.read_session() as session:
    user = current_user(session)

st.title("Specimen list")
show_flash(FLASH)
if st.session_state.pop(RESET, False):  # the last run's bulk action succeeded
    clear_selection()

choices = data_specimens.filter_choices(url)
tree = data_storage.tree(url)
paths = dict(zip(tree["code"], tree["path"], strict=True)) if not tree.empty else {}

with st.container(border=True):
    c1, c2, c3, c4 = st.columns(4)
    donors = c1.multiselect("Donor", choices["donor"], key="specimens_donor", on_change=clear_selection)
    cases = c2.multiselect("Case", choices["case"], key="specimens_case", on_change=clear_selection)
    sites = c3.multiselect("Site", choices["site"], key="specimens_site", on_change=clear_selection)
    formats = c4.multiselect("Storage format", [f.value for f in StorageFormat], key="specimens_format",
                             format_func=lambda v: v.replace("_", " "), on_change=clear_selection)
    c5, c6, c7, c8 = st.columns(4)
    statuses = c5.multiselect("Status", [s.value for s in SpecimenStatus], key="specimens_status",
                              format_func=lambda v: v.replace("_", " "), on_change=clear_selection)
    box = c6.selectbox("Location (freezer, rack or box)", choices["box"], index=None, placeholder="anywhere",
                       format_func=lambda code: paths.get(code, code), key="specimens_box", on_change=clear_selection)
    plan = c7.selectbox("Analysis plan", choices["plan"], index=None, placeholder="any", key="specimens_plan",
                        on_change=clear_selection)
    collected = c8.date_input("Collected between", value=(), key="specimens_collected", on_change=clear_selection,
                              help="One day, or the first and last day of a range (in the lab's time zone).")

days = list(collected) if isinstance(collected, (tuple, list)) else [collected] if isinstance(collected, date) else []
frame = data_specimens.specimen_list(
    url, donor=tuple(donors), case=tuple(cases), site=tuple(sites), storage_format=tuple(formats),
    status=tuple(statuses), box=box, plan=plan, collected_from=days[0] if days else None,
    collected_to=days[-1] if days else None, limit=DEFAULT_LIMIT + 1,
)
if len(frame) > DEFAULT_LIMIT:
    frame = frame.head(DEFAULT_LIMIT)
    st.warning(f"Showing the first {DEFAULT_LIMIT} specimens by code: narrow the filters to see the rest.")
st.caption(f"{specimens(len(frame))} · click the row checkboxes to select, then act on the selection below.")

shown = frame.assign(
    link=[links.url("specimen", code) for code in frame["code"]],
    storage_format=frame["storage_format"].str.replace("_", " "),
    status=frame["status"].str.replace("_", " "),
    location=frame["location"].fillna("not stored"),
    collected=pd.to_datetime(frame["collected_at"], utc=True).dt.tz_convert(settings.zone),
    quantity_text=[f"{r:g}/{q:g} {u}" for r, q, u in zip(frame["quantity_remaining"], frame["quantity"], frame["unit"],
                                                          strict=True)],
)
event = st.dataframe(
    shown[["link", "donor", "case", "site_label", "sampling_site", "storage_format", "quantity_text", "status",
           "location", "collected"]],
    hide_index=True,
    width="stretch",
    key=TABLE,
    on_select="rerun",
    selection_mode="multi-row",
    column_config={
        "link": st.column_config.LinkColumn("Specimen", display_text=r"\?specimen=(.+)$",
                                            help="Opens the specimen's page."),
        "donor": "Donor",
        "case": "Case",
        "site_label": "Site",
        "sampling_site": "Region",
        "storage_format": "Format",
        "quantity_text": "Remaining",
        "status": "Status",
        "location": "Location",
        "collected": st.column_config.DatetimeColumn("Collected", format="YYYY-MM-DD HH:mm"),
    },
)
rows = [i for i in event.selection.rows if 0 <= i < len(frame)]
selected = [str(frame["code"].iloc[i]) for i in rows]

st.download_button("Export the list (CSV)", frame.to_csv(index=False).encode("utf-8"), "specimens.csv", "text/csv",
                   key="specimens_csv", disabled=frame.empty, on_click="ignore")

if not selected:
    st.caption("Select specimens in the table to print their labels or a pick list, or to act on them.")
    st.stop()

st.subheader(f"{specimens(len(selected))} selected")
listed = ", ".join(selected[:SHOWN_CODES]) + (f" and {len(selected) - SHOWN_CODES} more" if len(selected) > SHOWN_CODES else "")
st.caption(listed)

p1, p2, p3, _ = st.columns([2, 1, 1, 2], vertical_alignment="bottom")
label_format = p1.selectbox("Label stock", list(LABEL_FORMATS), key="specimens_labels_format",
                            help=f"Printed on {settings.paper_size} sheets (BIOBANK_PAPER_SIZE).")
p2.download_button("Labels (PDF)", lambda: data_specimens.selection_labels_pdf(url, selected, label_format),
                   "labels.pdf", "application/pdf", key="specimens_labels_pdf", on_click="ignore", width="stretch")
p3.download_button("Pick list (PDF)", lambda: data_specimens.selection_pick_list_pdf(url, selected), "pick-list.pdf",
                   "application/pdf", key="specimens_pick_list_pdf", on_click="ignore", width="stretch")

offered = [name for name, bulk in BULK.items() if bulk.needs(user)]
if not offered:
    st.stop()

action = st.selectbox("Bulk action", offered, index=None, placeholder="choose an action",
                      format_func=lambda name: BULK[name].label, key="specimens_action")
if action is None:
    st.stop()

holders = [c for c, k in zip(tree.get("code", []), tree.get("kind", []), strict=True) if CONTAINER_KINDS[k].holds_specimens]  # type: ignore[index]  # kinds read back from the database are known kinds
params: dict[str, Any] = {}
ready = True
if action in ("store", "move"):
    params["box"] = st.selectbox("Into box", holders, index=None, placeholder="choose a box", key="specimens_action_box",
                                 format_func=lambda code: paths.get(code, code))
    ready = params["box"] is not None
    if action == "store":
        params["at"] = st.text_input("First position (blank: the first free run)", key="specimens_action_at").strip()
    else:
        st.caption("Each specimen goes to the next free position of the box.")
elif action == "check_out":
    params["purpose"] = st.text_input("Purpose", key="specimens_action_purpose")
elif action == "return":
    params["kept_frozen"] = st.checkbox("Kept frozen the whole time (no freeze-thaw cycle)", key="specimens_action_kept_frozen")
elif action == "dispose":
    params["reason"] = st.text_input("Reason (required)", key="specimens_action_reason").strip()
    ready = bool(params["reason"])
    if not ready:
        st.caption("Say why the specimens are disposed of; it goes into each one's custody record.")
elif action == "add_to_order":
    orders = data_storage.orders(url)
    drafts = list(orders.loc[orders["status"] == OrderStatus.draft.value, "code"]) if not orders.empty else []
    params["order"] = st.selectbox("Draft order", drafts, index=None, placeholder="choose a draft order",
                                   key="specimens_action_order")
    ready = params["order"] is not None
    if not drafts:
        st.caption("No draft orders: draft one on the Distribution page first.")
    else:
        st.caption("Each specimen is added with all that remains of it.")


def apply(session: Session, actor: User | None) -> int:
    """The chosen action on every selected specimen, in the one unit of work ``run_write`` opens."""
    codes = list(selected)
    if action == "store":
        return len(storage.store(session, actor=actor, codes=codes, box_code=params["box"], at=params["at"] or None))
    for code in codes:
        if action == "move":
            storage.move_specimen(session, actor=actor, code=code, box_code=params["box"])
        elif action == "check_out":
            storage.check_out(session, actor=actor, code=code, purpose=params["purpose"] or None)
        elif action == "return":
            storage.return_specimen(session, actor=actor, code=code, kept_frozen=params["kept_frozen"])
        elif action == "dispose":
            storage.dispose(session, actor=actor, code=code, reason=params["reason"])
        elif action == "add_to_order":
            distribution.add_item(session, actor=actor, order_code=params["order"], specimen_code=code)
        else:
            raise invalid("action", action, f"choose one of {', '.join(BULK)}")
    return len(codes)


bulk = BULK[action]
if st.button(f"{bulk.label} {specimens(len(selected))}", key="specimens_action_go", type="primary", disabled=not ready):
    target = f" {params['order']}" if action == "add_to_order" else ""
    run_write(apply, flash=FLASH, success=lambda n: f"{specimens(n)} {bulk.done}{target}",
              on_success=lambda _n: st.session_state.update({RESET: True}), error=labelled(bulk.label.lower()))
