"""Storage browser: the container tree, a box drawn as a grid coloured by format, a specimen and its history; store,
move, check-out and return for technicians."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from biobank.domain.errors import invalid
from biobank.domain.storage.kinds import CONTAINER_KINDS, TEMPERATURE_LABEL
from biobank.domain.vocab import SpecimenStatus, StorageFormat
from biobank.queries import storage as storage_reads
from biobank.services import storage
from biobank.services.auth import Action, can
from dashboards.data import core as data
from dashboards.data import storage as data_storage
from dashboards.shell.actions import labelled, run_write, show_flash
from dashboards.shell.session import current_user

FLASH = "storage_flash"
FORMAT_COLOURS: dict[str, str] = {
    StorageFormat.snap_frozen: "#1f77b4", StorageFormat.oct: "#9467bd", StorageFormat.rnalater: "#17becf",
    StorageFormat.frozen: "#2ca02c", StorageFormat.viable_cryo: "#d62728", StorageFormat.ffpe: "#ff7f0e",
    StorageFormat.fresh: "#8c564b", "free": "#eeeeee",
}

st.title("Storage")
url = data.url()
with data.read_session() as session:
    user = current_user(session)
    may_enter = can(user, Action.enter)


tree = data_storage.tree(url)
if tree.empty:
    st.info("No containers yet. A technician adds a site, a room and a freezer below (or `biobank storage add`).")

show_flash(FLASH)

left, right = st.columns([2, 3])
with left:
    st.subheader("Containers")
    if not tree.empty:
        shown = tree.assign(
            container=["\u2003" * d + c for d, c in zip(tree["depth"], tree["code"], strict=True)],
            filled=[f"{s}/{c}" if pd.notna(c) else (str(s) if s else "") for s, c in zip(tree["specimens"], tree["capacity"], strict=True)],
        )
        st.dataframe(shown[["container", "kind", "temperature", "filled"]], hide_index=True, width="stretch",
                     height=min(420, 36 + 35 * len(shown)), key="storage_tree")
    checked = data_storage.checkouts(url)
    st.subheader("Checked out")
    if checked.empty:
        st.caption("Nothing is out of storage.")
    else:
        overdue = checked[checked["overdue"]]
        if not overdue.empty:
            st.warning(f"{len(overdue)} check-out(s) overdue: {', '.join(overdue['code'])}")
        st.dataframe(checked[["code", "checked_out_by", "hours_out", "overdue", "from"]], hide_index=True,
                     width="stretch", key="storage_checkouts")

holders = [c for c, k in zip(tree.get("code", []), tree.get("kind", []), strict=True) if CONTAINER_KINDS[k].holds_specimens]  # type: ignore[index]  # kinds read back from the database are known kinds
with right:
    st.subheader("Box")
    if not holders:
        st.caption("No boxes yet.")
        box_code = None
    else:
        box_code = st.selectbox("Box", holders, key="storage_box")
    view = data_storage.box(url, box_code) if box_code else None
    if view:
        temperature = TEMPERATURE_LABEL.get(view["temperature"], view["temperature"] or "no temperature class")  # type: ignore[call-overload]  # keyed by enum, looked up by its value
        st.caption(f"{view['path']} · {view['kind']} · {temperature} · {view['occupied']}"
                   + (f"/{view['capacity']} occupied" if view["capacity"] else " specimens"))
        cells = pd.DataFrame(view["cells"], columns=["position", "row", "col", "code", "storage_format", "status", "donor",
                                                     "material_type", "quantity_remaining", "unit"])
        if view["rows"]:
            letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            numbered = view["scheme"] == "numbered"
            grid = pd.DataFrame(
                [{"row": 1 if numbered else r, "col": c} for r in range(1, view["rows"] + 1) for c in range(1, view["cols"] + 1)]
            ).merge(cells, on=["row", "col"], how="left")
            grid["row_label"] = "" if numbered else grid["row"].map(lambda r: letters[r - 1])
            grid["format"] = grid["storage_format"].fillna("free")
            grid["state"] = grid["status"].map(lambda s: "out" if s == SpecimenStatus.in_use else "").fillna("")
            grid["code"] = grid["code"].fillna("")
            base = alt.Chart(grid).encode(
                x=alt.X("col:O", title=None, axis=alt.Axis(orient="top", labelAngle=0)),
                y=alt.Y("row_label:O", title=None, sort=list(letters)),
            )
            rects = base.mark_rect(stroke="white", strokeWidth=2).encode(
                color=alt.Color("format:N", scale=alt.Scale(domain=list(FORMAT_COLOURS), range=list(FORMAT_COLOURS.values())),
                                legend=alt.Legend(title="format", orient="bottom")),
                opacity=alt.condition(alt.datum.state == "out", alt.value(0.35), alt.value(1.0)),
                tooltip=["code", "format", "status", "donor"],
            )
            text = base.mark_text(fontSize=9, color="black").encode(text="state:N")
            size = 30 if not numbered else 8
            st.altair_chart((rects + text).properties(width=size * view["cols"] + 40, height=max(size * (1 if numbered else view["rows"]), 40)),
                            key="storage_grid")
        options = [f"{p or '-'} · {c}" for p, c in zip(cells["position"], cells["code"], strict=True)]
        choice = st.selectbox("Specimen", options, index=None, placeholder="pick a position", key="storage_cell")
        if choice:
            code = choice.split(" · ", 1)[1]
            detail = data_storage.specimen(url, code)
            st.markdown(f"**{code}** · {detail['storage_format']} · {detail['material_type']} · {detail['status']} · "
                        f"{detail['quantity_remaining']:g}/{detail['quantity']:g} {detail['unit']} · "
                        f"freeze–thaw {detail['freeze_thaw_count']} · SPREC `{detail['sprec']}`")
            st.dataframe(pd.DataFrame(detail["custody"]), hide_index=True, width="stretch", key="storage_history")
            if may_enter:
                out = detail["status"] == SpecimenStatus.in_use
                c1, c2, c3 = st.columns(3)
                if not out and c1.button("Check out", key="storage_checkout"):
                    run_write(lambda s, u: storage.check_out(s, actor=u, code=code),
                              flash=FLASH, success=f"{code} checked out", error=labelled("check out"))
                if out and c1.button("Return", key="storage_return"):
                    run_write(lambda s, u: storage.return_specimen(s, actor=u, code=code),
                              flash=FLASH, success=f"{code} returned", error=labelled("return"))
                with c2.popover("Move", disabled=out):
                    target = st.selectbox("To box", holders, key="storage_move_box")
                    position = st.text_input("Position (blank: first free)", key="storage_move_at")
                    if st.button("Move specimen", key="storage_move_go"):
                        run_write(lambda s, u: storage.move_specimen(s, actor=u, code=code, box_code=target,
                                                                     at=position.strip() or None).location,
                                  flash=FLASH, success=str, error=labelled("move"))

if may_enter:
    st.divider()
    st.subheader("Technician actions")
    store_tab, move_tab, add_tab = st.tabs(["Store specimens", "Move a box", "Add a container"])
    with store_tab, st.form("storage_store_form"):
        codes = st.text_area("Specimen codes (one per line or comma-separated), or leave empty and give a region",
                             key="storage_store_codes")
        region = st.text_input("…or a whole region: CASE/SITE, e.g. RAP-2024-001/L01-A", key="storage_store_region")
        boxes = st.multiselect("Box(es)", holders, key="storage_store_boxes")
        at = st.text_input("First position (blank: first free run)", key="storage_store_at")
        if st.form_submit_button("Store"):
            listed = [c.strip() for c in codes.replace(",", "\n").splitlines() if c.strip()]

            def do_store(s, u):  # type: ignore[no-untyped-def]  # session and user, as run_write passes them
                if region.strip():
                    case_code, _, site_code = region.strip().partition("/")
                    result = storage.store_region(s, actor=u, case_code=case_code, site_code=site_code, box_codes=boxes)
                    placements = result.placements
                else:
                    if len(boxes) != 1:
                        raise invalid("box", boxes, "choose exactly one box for a list of codes")
                    placements = storage.store(s, actor=u, codes=listed, box_code=boxes[0], at=at.strip() or None)
                return f"stored {len(placements)}: " + ", ".join(f"{p.code} → {p.location}" for p in placements)

            run_write(do_store, flash=FLASH, success=str, error=labelled("store"))
    with move_tab, st.form("storage_move_box_form"):
        movable = [c for c, k in zip(tree.get("code", []), tree.get("kind", []), strict=True) if not CONTAINER_KINDS[k].root]  # type: ignore[index]  # kinds read back from the database are known kinds
        what = st.selectbox("Container", movable, key="storage_move_container")
        into = st.selectbox("Into", list(tree.get("code", [])), key="storage_move_parent")
        if st.form_submit_button("Move"):
            run_write(lambda s, u: storage_reads.path_of(s, storage.move_container(s, actor=u, code=what, parent_code=into)),
                      flash=FLASH, success=lambda path: f"moved to {path}", error=labelled("move box"))
    with add_tab, st.form("storage_add_form"):
        new_code = st.text_input("Code", key="storage_add_code")
        kind = st.selectbox("Kind", [k.value for k in CONTAINER_KINDS], key="storage_add_kind")
        parent = st.selectbox("Inside", ["(top: a site)", *list(tree.get("code", []))], key="storage_add_parent")
        name = st.text_input("Name (optional)", key="storage_add_name")
        if st.form_submit_button("Add"):
            run_write(lambda s, u: storage_reads.path_of(s, storage.add_container(
                s, actor=u, code=new_code.strip(), kind=kind, name=name,
                parent_code=None if parent.startswith("(") else parent)),
                flash=FLASH, success=lambda path: f"added {path}", error=labelled("add"))
