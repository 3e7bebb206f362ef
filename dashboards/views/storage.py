"""Storage browser: the container tree, a box drawn as a map (click a tube to select it, a free slot to store into),
scan-to-store, a specimen and its history; store, move, check-out, return and disposal for technicians."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.domain.errors import invalid
from biobank.domain.storage.kinds import CONTAINER_KINDS, TEMPERATURE_LABEL, spec
from biobank.domain.vocab import SpecimenStatus
from biobank.models import User
from biobank.queries import cohort as cohort_reads
from biobank.queries import storage as storage_reads
from biobank.services import storage
from biobank.services.auth import Action, can
from dashboards.data import core as data
from dashboards.data import specimens as data_specimens
from dashboards.data import storage as data_storage
from dashboards.shell import links
from dashboards.shell.actions import labelled, run_write, show_flash
from dashboards.shell.session import current_user
from dashboards.widgets import boxmap

FLASH = "storage_flash"
SCAN_FLASH = "storage_scan_flash"
#: Session keys of the page's own bookkeeping (not widgets): the box on screen, the scan just submitted (code, slot),
#: the slot the last scan filled (to propose the next one from fresh data) and what was stored in this sitting.
SHOWN_BOX, SCAN_PENDING, SCAN_AFTER, SCAN_LOG = (
    "_storage_shown_box", "_storage_scan_pending", "_storage_scan_after", "_storage_scan_log")

st.title("Storage")
url = data.url()
with data.read_session() as session:
    user = current_user(session)
    may_enter = can(user, Action.enter)


tree = data_storage.tree(url)
if tree.empty:
    st.info("No containers yet. A technician adds a site, a room and a freezer below (or `biobank storage add`).")

show_flash(FLASH)

filled = [f"{s}/{int(c)}" if pd.notna(c) else (str(s) if s else "") for s, c in zip(tree["specimens"], tree["capacity"], strict=True)]
tree = tree.assign(filled=filled)
codes: list[str] = list(tree["code"])
kinds: dict[str, str] = dict(zip(tree["code"], tree["kind"], strict=True))
holders = [c for c in codes if CONTAINER_KINDS[kinds[c]].holds_specimens]  # type: ignore[index]  # kinds read back from the database are known kinds

left, right = st.columns([2, 3])
with left:
    st.subheader("Containers")
    if not tree.empty:
        shown = tree.assign(container=["\u2003" * d + c for d, c in zip(tree["depth"], tree["code"], strict=True)])
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


#: How each container reads in the chooser: its code and kind (how full it is stands under it, always fresh).
described = {c: f"{c} · {spec(k).label}" for c, k in zip(codes, tree["kind"], strict=True)}


def take_scan(has_slots: bool) -> None:
    """The scan form's submit, before the run: keep what was scanned for the write below and empty the code field
    at once, so the next scan (a scanner types into the field it left) starts clean, whether this one was stored
    or refused (the error line names the code)."""
    code = str(st.session_state.get("storage_scan_code") or "").strip()
    slot = str(st.session_state.get("storage_scan_at") or "").strip() if has_slots else ""
    st.session_state[SCAN_PENDING] = (code, slot)
    st.session_state["storage_scan_code"] = ""


def confirmation(placement: storage.Placement) -> str:
    """What a technician reads after a scan: ``RA0001-L01A-SF1 stored in BOX1 B3``."""
    where = f"{placement.container} {placement.position}" if placement.position else placement.container
    note = f" (note: {placement.warning})" if placement.warning else ""
    return f"{placement.code} stored in {where}{note}"


def option(position: str | None, code: str) -> str:
    """A specimen in the 'Specimen' list (the map selects through the same value)."""
    return f"{position or '-'} · {code}"


with right:
    st.subheader("Box")
    if not codes:
        st.caption("No boxes yet.")
        box_code = None
    else:
        first_holder = codes.index(holders[0]) if holders else 0
        box_code = st.selectbox("Box or container", codes, index=links.index_of(codes, "box", first_holder),
                                format_func=described.__getitem__, key="storage_box")
    links.remember("box", box_code)
    view = data_storage.box(url, box_code) if box_code else None
    box_map = boxmap.layout(view) if view else None
    state = st.session_state

    # What the map and the scan form start from: a new box drops the old selection and proposes its first free
    # slot; a scan that just stored proposes the next free slot after it (from the fresh data of this run).
    if state.get(SHOWN_BOX) != box_code:
        state[SHOWN_BOX] = box_code
        state.pop("storage_cell", None)
        state.pop(SCAN_AFTER, None)
        state["storage_scan_at"] = (box_map.first_free() or "") if box_map else ""
    elif "storage_scan_at" not in state:
        state["storage_scan_at"] = (box_map.first_free() or "") if box_map else ""
    pending: tuple[str, str] | None = state.pop(SCAN_PENDING, None)
    after = state.pop(SCAN_AFTER, None)
    if after and box_map:
        state["storage_scan_at"] = boxmap.next_free(box_map.grid, box_map.occupied, after) or ""

    cells = pd.DataFrame(view["cells"] if view else [],
                         columns=["position", "row", "col", "code", "storage_format", "status", "donor",
                                  "material_type", "quantity_remaining", "unit"])
    options = [option(p, c) for p, c in zip(cells["position"], cells["code"], strict=True)]
    if state.get("storage_cell") not in options:
        state.pop("storage_cell", None)  # moved, disposed or in another box since it was picked

    if view:
        temperature = TEMPERATURE_LABEL.get(view["temperature"], view["temperature"] or "no temperature class")
        if view["capacity"]:
            held = f"{view['occupied']}/{view['capacity']} occupied"
        elif view["holds_specimens"]:
            held = f"{view['occupied']} specimens"
        else:
            held = f"{int((tree['parent'] == view['path']).sum())} containers inside"
        st.caption(f"{view['path']} · {view['kind']} · {temperature} · {held}")
        if box_code:
            # Made on click (a callable), on the paper size of the setting.
            p1, p2, _ = st.columns([1, 1, 3])
            p1.download_button("Box map (PDF)", lambda: data_specimens.box_map_pdf(url, box_code), f"box-{box_code}.pdf",
                               "application/pdf", key="storage_box_pdf", on_click="ignore")
            if view["occupied"] and view["holds_specimens"]:
                p2.download_button("Reprint the box's labels (PDF)", lambda: data_specimens.box_labels_pdf(url, box_code),
                                   f"labels-{box_code}.pdf", "application/pdf", key="storage_box_labels", on_click="ignore")

    if box_map is not None:
        selected_option = state.get("storage_cell")
        selected = selected_option.split(" · ", 1)[0] if selected_option else None
        target = boxmap.normalise(box_map.grid, state.get("storage_scan_at"))
        target_cell = box_map.cell(target) if target else None

        def pick(position: str) -> None:
            """A click on the map: a tube becomes the selected specimen, a free slot the place to store into."""
            cell = box_map.cell(position) if box_map else None
            if cell is None:
                return
            if cell.free:
                st.session_state["storage_scan_at"] = cell.position
                st.session_state.pop("storage_cell", None)
            else:
                st.session_state["storage_cell"] = option(cell.position, cell.code or "")

        # Technicians click the cells; anyone else sees the same map read-only (no buttons for people who may
        # not write) and opens a specimen from the list under it.
        boxmap.draw(box_map, on_pick=pick if may_enter else None, selected=selected,
                    target=target if may_enter and target_cell is not None and target_cell.free else None)
        if box_map.first_free() is None:
            st.caption("This container is full.")
    elif view and view["holds_specimens"]:
        if cells.empty:
            st.caption(f"{view['code']} is empty; it has no positions, so tubes go in loose.")
        else:
            st.dataframe(cells[["code", "storage_format", "material_type", "status", "donor"]], hide_index=True,
                         width="stretch", key="storage_contents")
    elif view:
        inside = tree[tree["parent"] == view["path"]]
        if inside.empty:
            st.caption(f"Nothing inside {view['code']} yet.")
        else:
            st.dataframe(inside[["code", "kind", "temperature", "filled"]], hide_index=True, width="stretch",
                         key="storage_children")

    if view and view["holds_specimens"] and may_enter:
        st.markdown("**Scan to store**")
        with st.form("storage_scan_form", border=True):
            c1, c2, c3 = st.columns([3, 1.2, 1], vertical_alignment="bottom")
            c1.text_input("Tube code", key="storage_scan_code", placeholder="scan or type, e.g. RA0001-L01A-SF1",
                          help="A scanner that ends with Enter stores the tube at once; the field then empties for "
                               "the next one.")
            if box_map is not None:
                c2.text_input("Slot", key="storage_scan_at", placeholder="e.g. B3",
                              help="A position such as B3 (or 12 in a drawer), or click a free slot on the map; "
                                   "after each tube the next free slot is proposed. Blank: the first free slot.")
            c3.form_submit_button("Store", key="storage_scan_submit", type="primary", width="stretch",
                                  on_click=take_scan, args=(box_map is not None,))
        with st.container(key="storage_scan_confirm"):
            if pending is not None:
                typed, slot = pending
                if not typed:
                    st.error("store: scan or type a tube code first")
                else:
                    into = view["code"]

                    def store_scanned(s: Session, u: User | None) -> storage.Placement:
                        code = cohort_reads.resolve_specimen_code(s, typed) or typed
                        return storage.store(s, actor=u, codes=[code], box_code=into, at=slot or None)[0]

                    def after_store(placement: storage.Placement) -> None:
                        st.session_state[SCAN_AFTER] = placement.position
                        st.session_state[SCAN_LOG] = [confirmation(placement), *st.session_state.get(SCAN_LOG, [])][:10]

                    run_write(store_scanned, flash=SCAN_FLASH, success=confirmation, on_success=after_store,
                              error=labelled("store"))
            just_stored = SCAN_FLASH in st.session_state
            show_flash(SCAN_FLASH)
            stored = st.session_state.get(SCAN_LOG, [])
            if len(stored) > (1 if just_stored else 0):
                st.caption(f"Stored in this sitting ({len(stored)}, latest first): " + "; ".join(stored))

    if view and view["holds_specimens"]:
        choice = st.selectbox("Specimen", options, index=None, placeholder="click a tube on the map, or pick it here" if may_enter else "pick a tube",
                              key="storage_cell")
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
                    target_box = st.selectbox("To box", holders, index=holders.index(box_code) if box_code in holders else 0,
                                              key="storage_move_box")
                    position = st.text_input("Position (blank: first free)", key="storage_move_at")
                    if st.button("Move specimen", key="storage_move_go"):
                        run_write(lambda s, u: storage.move_specimen(s, actor=u, code=code, box_code=target_box,
                                                                     at=position.strip() or None).location,
                                  flash=FLASH, success=lambda where: f"{code} moved to {where}", error=labelled("move"))
                with c3.popover("Dispose"):
                    reason = st.text_input("Why is it disposed of?", key="storage_dispose_reason")
                    if st.button("Dispose of the specimen", key="storage_dispose_go", type="primary"):
                        run_write(lambda s, u: storage.dispose(s, actor=u, code=code, reason=reason),
                                  flash=FLASH, success=f"{code} disposed of", error=labelled("dispose"))

if may_enter:
    st.divider()
    st.subheader("Technician actions")
    store_tab, move_tab, add_tab = st.tabs(["Store specimens", "Move a box", "Add a container"])
    with store_tab, st.form("storage_store_form"):
        listed_codes = st.text_area("Specimen codes (one per line or comma-separated), or leave empty and give a region",
                                    key="storage_store_codes")
        region = st.text_input("…or a whole region: CASE/SITE, e.g. RAP-2024-001/L01-A", key="storage_store_region")
        boxes = st.multiselect("Box(es)", holders, key="storage_store_boxes")
        at = st.text_input("First position (blank: first free run)", key="storage_store_at")
        if st.form_submit_button("Store"):
            listed = [c.strip() for c in listed_codes.replace(",", "\n").splitlines() if c.strip()]

            def do_store(s: Session, u: User | None) -> str:
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
        movable = [c for c in codes if not CONTAINER_KINDS[kinds[c]].root]  # type: ignore[index]  # kinds read back from the database are known kinds
        what = st.selectbox("Container", movable, key="storage_move_container")
        into_parent = st.selectbox("Into", codes, key="storage_move_parent")
        if st.form_submit_button("Move"):
            run_write(lambda s, u: storage_reads.path_of(s, storage.move_container(s, actor=u, code=what, parent_code=into_parent)),
                      flash=FLASH, success=lambda path: f"moved to {path}", error=labelled("move box"))
    with add_tab, st.form("storage_add_form"):
        new_code = st.text_input("Code", key="storage_add_code")
        kind = st.selectbox("Kind", [k.value for k in CONTAINER_KINDS], key="storage_add_kind")
        parent = st.selectbox("Inside", ["(top: a site)", *codes], key="storage_add_parent")
        name = st.text_input("Name (optional)", key="storage_add_name")
        if st.form_submit_button("Add"):
            run_write(lambda s, u: storage_reads.path_of(s, storage.add_container(
                s, actor=u, code=new_code.strip(), kind=kind, name=name,
                parent_code=None if parent.startswith("(") else parent)),
                flash=FLASH, success=lambda path: f"added {path}", error=labelled("add"))
