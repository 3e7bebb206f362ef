"""Live autopsy board: the clock since death, one form per region that makes all its specimens, the checklist of
what is still missing, PMI warnings, labels for what was just made, and audited corrections."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.errors import BiobankError
from biobank.domain.sites import load_sites
from biobank.domain.timing import pmi_flag
from biobank.domain.vocab import QuantityUnit, SiteKind, StorageFormat, TissueStatus
from biobank.labels import LabelData, render_pdf
from biobank.models import User
from biobank.services import collection, specimens
from biobank.services.auth import Action, can
from biobank.services.inputs import (
    MAX_PIECES,
    MAX_QUANTITY,
    FormatRequest,
    RegionCollect,
    limits,
)
from dashboards.data import attachments as data_attachments
from dashboards.data import board as data_board
from dashboards.data import core as data
from dashboards.shell.actions import run_write, show_flash
from dashboards.shell.session import current_user
from dashboards.widgets.attachments import attach_photo
from dashboards.widgets.clock import pmi_clock
from dashboards.widgets.forms import CORRECTION_FIELDS, parse_correction
from dashboards.widgets.lesions import add_lesion_form

settings = get_settings()
zone = settings.zone
FLASH = "board_flash"

KIND_LABELS = {
    SiteKind.tumour_region.value: "Lesion region",
    SiteKind.normal_tissue.value: "Normal tissue",
    SiteKind.germline_blood.value: "Germline blood",
    SiteKind.bone_marrow.value: "Bone marrow",
}
FORMAT_LABELS: dict[str, str] = {
    StorageFormat.snap_frozen: "Snap-frozen (LN2)",
    StorageFormat.oct: "OCT-embedded, frozen",
    StorageFormat.ffpe: "FFPE block",
    StorageFormat.rnalater: "RNAlater",
    StorageFormat.viable_cryo: "Viable cryopreserved (DMSO)",
    StorageFormat.fresh: "Fresh, into medium (organoid/PDX)",
    StorageFormat.frozen: "Frozen",
}
DONE = ":green[:material/check_circle:]"
TODO = ":orange[:material/radio_button_unchecked:]"
UNIT_LABELS: dict[str, str] = {QuantityUnit.mg: "mg", QuantityUnit.ul: "µL", QuantityUnit.blocks: "blocks", QuantityUnit.cells: "cells",
               QuantityUnit.sections: "sections", QuantityUnit.ng: "ng"}
#: Formats that go into a histology cassette (labelled on cassette stock); every other format is a tube.
CASSETTE_FORMATS = frozenset({StorageFormat.ffpe})


def local(value: datetime | None) -> str:
    return value.astimezone(zone).strftime("%d %b %Y %H:%M") if value is not None else "—"


def now_local() -> datetime:
    return datetime.now(zone).replace(second=0, microsecond=0, tzinfo=None)


st.title("Live autopsy board")

cases = data_board.running_cases(data.url())
if not cases:
    st.info(
        "No autopsy is in progress. A case appears here once it has a time of death and a start time "
        "(`biobank` services `open_autopsy` / `update_autopsy_times`)."
    )
    st.stop()

labels = {c["case"]: f"{c['case']} · donor {c['donor']} · died {local(c['death_at'])}" for c in cases}
case = st.selectbox("Running case", list(labels), format_func=labels.get, key="board_case")
state = data_board.case_state(data.url(), case)
header, summary, specimens_df = state["header"], state["summary"], state["specimens"]
death_at: datetime = header["death_at"]

with data.read_session() as session:
    user = current_user(session)
    may_enter = can(user, Action.enter)
    may_correct = can(user, Action.correct)

clock_col, facts_col, check_col = st.columns([4, 3, 5], gap="large")
with clock_col:
    pmi_clock(death_at, target_hours=settings.pmi_target_hours, limit_hours=settings.pmi_limit_hours)
with facts_col:
    st.markdown(
        f"**Donor {header['donor']}** · {header['diagnosis'] or 'diagnosis not recorded'}  \n"
        f"Death {local(death_at)} · refrigerated {local(header['refrigerated_at'])}  \n"
        f"Autopsy started {local(header['start_at'])}{' (estimated)' if header.get('start_estimated') else ''}"
        f" · {header['prosector'] or 'prosector not recorded'}"
    )
    median = summary["median_pmi_hours"]
    st.markdown(
        f"**{header['primary_specimens']}** specimens · median PMI **{f'{median:.1f} h' if median is not None else '—'}** · "
        f"**{summary['specimens_beyond_limit']}** past the limit"
    )
with check_col:
    items = state["checklist"]
    done = sum(1 for i in items if i["done"])
    st.markdown(f"**Checklist** · {done} of {len(items)} done")
    lines = [
        f"{DONE if i['done'] else TODO} {i['label']} — <span style='color:#666'>{i['detail']}</span>"
        for i in sorted(items, key=lambda i: i["done"])
    ]
    st.markdown("<br>".join(lines), unsafe_allow_html=True)


@st.fragment(run_every=timedelta(seconds=30))
def pmi_warnings() -> None:
    """Refreshes on its own every 30 s so the warnings follow the clock without a click."""
    hours = (datetime.now(UTC) - death_at).total_seconds() / 3600
    flag = pmi_flag(hours, target_hours=settings.pmi_target_hours, limit_hours=settings.pmi_limit_hours)
    if flag == "past limit":
        st.error(
            f"The case is {hours:.1f} h after death, past the {settings.pmi_limit_hours:g} h limit: "
            "every specimen stabilised from now on is flagged."
        )
    elif flag == "past target":
        st.warning(
            f"The case is {hours:.1f} h after death, past the {settings.pmi_target_hours:g} h target: "
            f"{settings.pmi_limit_hours - hours:.1f} h remain before the limit. Stabilise the priority regions first."
        )
    if not specimens_df.empty:
        past = specimens_df[specimens_df["flag"].isin(["past target", "past limit"])]
        if len(past):
            counts = past["flag"].value_counts().to_dict()
            st.caption(
                f"Specimens of this case beyond the target: {counts.get('past target', 0)}; "
                f"beyond the limit: {counts.get('past limit', 0)}."
            )


pmi_warnings()

show_flash(FLASH)

if not may_enter:
    st.info("Your role can look at the board but not record collections.")

form_col, made_col = st.columns([5, 6], gap="large")

with form_col:
    if may_enter:
        st.subheader("Record a region")
        kind = st.radio(
            "What was taken", list(KIND_LABELS), format_func=KIND_LABELS.get, horizontal=True, key="board_kind",
        ) or SiteKind.tumour_region.value
        lesions = state["lesions"]
        lesion = None
        if kind == SiteKind.tumour_region:
            if not lesions:
                st.warning("This donor has no lesions yet: add one below first.")
            else:
                by_code = {row["code"]: row for row in lesions}
                # The option text must not change when a region is recorded: the browser sends the selection back as
                # that text, and text that no longer matches an option silently fell back to the first lesion (L01).
                lesion_code = st.selectbox(
                    "Lesion", list(by_code), key="board_lesion",
                    format_func=lambda c: f"{c} · {by_code[c]['site']} ({by_code[c]['kind'].replace('_', ' ')})",
                )
                lesion = by_code[lesion_code]
                st.caption(f"{lesion['regions']} region(s) of {lesion_code} recorded so far; next label {lesion['next_label']}.")
        offered = collection.offered_formats(kind, model_consent=state["model_consent"])
        # Every field of the form is keyed by case, kind and lesion (and the form counter): switching any of them
        # shows that combination's own fields with the library's defaults, so nothing typed or ticked carries over.
        base = f"{case}_{kind}_{lesion['code'] if lesion is not None else ''}"
        counter = f"board_form_n_{base}"  # per case, kind and lesion: recording one leaves the others' forms alone
        n = st.session_state.setdefault(counter, 0)
        scope = f"{base}_{n}"
        excised_key = f"board_excised_{scope}"
        if excised_key not in st.session_state:
            # recorded once the pieces are in their formats: excised the default stabilisation time (5 min) ago, so
            # the default stabilisation is now, not a time still to come
            st.session_state[excised_key] = now_local() - timedelta(minutes=5)
        with st.form(f"board_region_{scope}", border=True):
            site_code = None
            tissue_status = TissueStatus.normal.value
            distance = None
            label = None
            if kind == SiteKind.tumour_region and lesion is not None:
                a, b = st.columns([1, 2])
                label = a.text_input("Region label", value=lesion["next_label"], key=f"board_label_{scope}",
                                     max_chars=3)
                b.caption(f"Site: {lesion['site']} ({lesion['site_code']}), laterality {lesion['laterality'].replace('_', ' ')}")
                site_code = lesion["site_code"]
            elif kind == SiteKind.normal_tissue:
                sites = {code: s.label for code, s in load_sites().items() if s.category not in {"blood", "bone_marrow"}}
                a, b, c = st.columns([2, 2, 1])
                site_code = a.selectbox("Tissue", list(sites), format_func=lambda c: f"{sites[c]} ({c})", key=f"board_site_{scope}",
                                        index=list(sites).index("LIVER"))
                tissue_status = b.selectbox("Status", [TissueStatus.normal.value, TissueStatus.adjacent_normal.value],
                                            format_func=lambda s: s.replace("_", " "), key=f"board_status_{scope}")
                distance = c.number_input("mm to tumour", value=None, step=5.0, key=f"board_distance_{scope}")
            else:
                site_code = "BLOOD" if kind == SiteKind.germline_blood else "BONE_MARROW"
            t1, t2 = st.columns([3, 2])
            excised_local = t1.datetime_input(
                f"Excised ({settings.timezone})", key=excised_key, step=60, format="YYYY-MM-DD",
            )
            stab_minutes = t2.number_input("Stabilised, minutes after excision", value=5, step=1, key=f"board_stab_{scope}")
            st.markdown("**Storage formats** (pieces × quantity each)")
            chosen: list[tuple[FormatRequest, Any, Any, Any]] = []
            for request, ticked in offered:
                fmt = str(request.storage_format)
                c1, c2, c3 = st.columns([5, 2, 3])
                make = c1.checkbox(FORMAT_LABELS[fmt], value=ticked, key=f"board_make_{fmt}_{scope}")
                # No widget bounds: a number out of range goes to the service, which says what is wrong in words
                # (a bounded widget only turned red and made "Record" do nothing).
                count = c2.number_input("pieces", value=request.count, step=1, key=f"board_count_{fmt}_{scope}",
                                        label_visibility="collapsed", help=f"pieces of this format, 1 to {MAX_PIECES}")
                quantity = c3.number_input(UNIT_LABELS[str(request.unit)], value=float(request.quantity),
                                           key=f"board_qty_{fmt}_{scope}", label_visibility="collapsed",
                                           help=f"quantity per piece, {UNIT_LABELS[str(request.unit)]} "
                                                f"(more than 0, at most {MAX_QUANTITY[str(request.unit)]:,g})")
                chosen.append((request, make, count, quantity))
            gross = st.text_input("Gross description (optional)", key=f"board_gross_{scope}",
                                  max_chars=limits(RegionCollect, "gross_description").max_length)
            collected_by = st.text_input("Collected by (optional)", key=f"board_collected_by_{scope}",
                                         help="who collected the specimens (name or initials), if not you",
                                         max_chars=limits(RegionCollect, "collected_by").max_length)
            submitted = st.form_submit_button("Record region and make specimens", type="primary", key=f"board_submit_{scope}")
        if submitted:

            def record_region(session: Session, actor: User | None) -> dict[str, Any]:
                if excised_local is None:
                    raise BiobankError("excised_at: give the excision time")
                excised = excised_local.replace(tzinfo=zone).astimezone(UTC)
                stabilised = excised + timedelta(minutes=int(stab_minutes))
                requests = [
                    FormatRequest(
                        request.storage_format, float(quantity), request.unit, count=int(count),
                        stabilised_at=stabilised, fixative=request.fixative,
                    )
                    for request, make, count, quantity in chosen
                    if make
                ]
                made = collection.collect_region(
                    session, actor=actor, data=RegionCollect.build(case_code=case, kind=kind, site_code=site_code or "", excised_at=excised, formats=requests, lesion_code=lesion["code"] if kind == SiteKind.tumour_region and lesion else None, region_label=(label or "").strip().upper() or None, tissue_status=tissue_status if kind == SiteKind.normal_tissue else None, distance_to_tumour_mm=distance, gross_description=gross.strip() or None, collected_by=collected_by.strip() or None),
                )
                return {
                    "case": case,
                    "region": made.site.code,
                    "site": site_code,
                    "donor": header["donor"],
                    "excised": local(excised),
                    "specimens": [
                        {"code": s.code, "storage_format": s.storage_format, "quantity": s.quantity, "unit": s.unit}
                        for s in made.specimens
                    ],
                }

            def show_made(just_made: dict[str, Any]) -> None:
                st.session_state["board_last"] = just_made
                st.session_state[counter] = n + 1  # a fresh form for the next region

            ticked = [str(request.storage_format) for request, make, _count, _quantity in chosen if make]

            def in_the_forms_words(exc: BiobankError) -> str:
                """"Format 2: Pieces ..." names the format as the form shows it: "RNAlater: Pieces ..."."""
                match = re.match(r"Format (\d+): ", str(exc))
                if match and 0 < int(match.group(1)) <= len(ticked):
                    return FORMAT_LABELS[ticked[int(match.group(1)) - 1]] + ": " + str(exc)[match.end():]
                return str(exc)

            run_write(record_region, on_success=show_made, error=in_the_forms_words)

        # A photo at the table: of the region just recorded, or of the lesion before it is sampled (the caption names
        # the region about to be recorded). On a tablet: the shutter, then "Attach photo".
        st.subheader("Photo at the table")
        photo_targets: list[tuple[str, str, str, str]] = []
        site_names = {c: s.label for c, s in load_sites().items()}
        last_made = st.session_state.get("board_last")
        if last_made and last_made["case"] == case:
            region_site = site_names.get(str(last_made["site"]), str(last_made["site"]))
            photo_targets.append(("site", data_attachments.ref("site", header["donor"], last_made["region"]),
                                  f"Region {last_made['region']} (just recorded)",
                                  f"{last_made['region']} · {region_site}"))
        if kind == SiteKind.tumour_region and lesion is not None:
            about = f"{lesion['code']}-{(label or '').strip().upper()}" if label else lesion["code"]
            photo_targets.append(("lesion", data_attachments.ref("lesion", header["donor"], lesion["code"]),
                                  f"Lesion {lesion['code']} · {lesion['site']} (before sampling {about})",
                                  f"{about} · {lesion['site']}, before sampling"))
        if photo_targets:
            attach_photo(key=f"board_photo_{case}", targets=photo_targets, flash=FLASH)
        else:
            st.caption("Record the region first: its photo is attached to it.")

        with st.expander("Add a lesion found at the table"):
            add_lesion_form(header["donor"], key="board", flash=FLASH)

with made_col:
    last = st.session_state.get("board_last")
    if last and last["case"] == case:
        st.subheader(f"Just made: {last['region']}")
        made_df = pd.DataFrame(last["specimens"])
        st.success(f"{len(made_df)} specimens from region {last['region']}, excised {last['excised']}.")
        st.dataframe(made_df, hide_index=True, width="stretch", key="board_made_table")
        tubes = [s for s in last["specimens"] if s["storage_format"] not in CASSETTE_FORMATS]
        blocks = [s for s in last["specimens"] if s["storage_format"] in CASSETTE_FORMATS]

        def label_sheet(rows: list[dict[str, Any]], fmt: str) -> bytes:
            return render_pdf(
                [LabelData(code=s["code"], donor=last["donor"], site=str(last["site"]), storage_format=s["storage_format"],
                           date=last["excised"][:11]) for s in rows],
                fmt,
            )

        l1, l2 = st.columns(2)
        if tubes:
            l1.download_button("Tube labels (PDF)", label_sheet(tubes, "cryotube"), f"labels-{last['region']}-tubes.pdf",
                               "application/pdf", key="board_labels_tubes")
        if blocks:
            l2.download_button("Cassette labels (PDF)", label_sheet(blocks, "cassette"), f"labels-{last['region']}-cassettes.pdf",
                               "application/pdf", key="board_labels_cassettes")
    st.subheader("Specimens of this case")
    if specimens_df.empty:
        st.caption("None yet.")
    else:
        shown = specimens_df.assign(
            excised=specimens_df["excised_at"].map(lambda t: t.astimezone(zone).strftime("%H:%M")),
            format=specimens_df["storage_format"].str.replace("_", " "),
        )[["code", "format", "excised", "pmi_hours", "flag"]]
        st.dataframe(
            shown, hide_index=True, width="stretch", height=360, key="board_specimens",
            column_config={
                "code": st.column_config.TextColumn(width="medium"),
                "format": st.column_config.TextColumn(width="small"),
                "excised": st.column_config.TextColumn(width="small"),
                "pmi_hours": st.column_config.NumberColumn("PMI h", format="%.1f", width="small"),
                "flag": st.column_config.TextColumn("PMI flag", width="small"),
            },
        )

    if may_correct and not specimens_df.empty:
        with st.expander("Correct a mistaken entry"):
            st.caption("Corrections are recorded in the audit trail with your reason; the old value is kept there.")
            with st.form("board_correct"):
                code = st.selectbox("Specimen", specimens_df["code"].tolist(), key="board_correct_code")
                field = st.selectbox("Field", list(CORRECTION_FIELDS), format_func=lambda f: CORRECTION_FIELDS[f][0],
                                     key="board_correct_field")
                value = st.text_input("New value", key="board_correct_value",
                                      help=f"Times as YYYY-MM-DD HH:MM ({settings.timezone}); quantities as numbers")
                reason = st.text_input("Reason", key="board_correct_reason")
                fix = st.form_submit_button("Save correction", key="board_correct_submit")
            if fix:

                def correct(session: Session, actor: User | None) -> None:
                    parsed = parse_correction(field, value, zone)
                    changes = {field: parsed}
                    current = specimens.get_specimen(session, code)
                    if field == "quantity" and current.quantity_remaining == current.quantity:
                        changes["quantity_remaining"] = parsed  # nothing was taken yet: the remainder follows
                    specimens.correct_specimen(session, actor=actor, code=code, reason=reason, **changes)

                run_write(correct, flash=FLASH,
                          success=f"{code}: {CORRECTION_FIELDS[field][0].lower()} corrected (audited).")
