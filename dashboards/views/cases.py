"""Cases: the death call that opens a case, the call checklist of the chosen case and its day (refrigeration, labels,
team notified, start, end), corrections of its times with a reason, and every case by state with its PMI figures.

The rules live in :mod:`biobank.services.cases`; every write goes through ``run_write``, which clears the cached
reads, so a case started here is on the live board at once. A refused form keeps what was typed (keyed widgets, no
rerun on an error); a form that worked is emptied."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.errors import BiobankError, invalid
from biobank.domain.fields import field_label
from biobank.models import User
from biobank.models.base import utcnow
from biobank.services import cases, collection
from biobank.services.auth import Action, can
from biobank.services.inputs import DeathCall, limits
from dashboards.data import cases as data_cases
from dashboards.data import core as data
from dashboards.shell.actions import in_unit_of_work, labelled, run_write, show_flash
from dashboards.shell.session import current_user
from dashboards.widgets.lesions import add_lesion_form

settings = get_settings()
zone = settings.zone
FLASH = "cases_flash"
#: widget keys to empty at the top of the next run (a form that worked)
CLEAR = "cases_clear"
#: the case to choose at the top of the next run (the one the call just opened)
CHOOSE = "cases_choose"
LABELS_ERROR = "cases_labels_error"
CALL_FIELDS = ("donor", "death", "place", "reported_by", "reported_at", "refrigerated", "case_code", "prosector", "team",
               "institution")
CALL_KEYS = tuple(f"cases_call_{name}" for name in CALL_FIELDS)
STATE_LABELS = {"scheduled": "Scheduled", "in_progress": "In progress", "complete": "Complete"}
CORRECTABLE = ("death_at", "refrigerated_at", "start_at", "end_at", "team_notified_at")
DONE = ":green[:material/check_circle:]"
TODO = ":orange[:material/radio_button_unchecked:]"


def local(value: datetime | None) -> str:
    return value.astimezone(zone).strftime("%d %b %Y %H:%M") if value is not None else ""


def as_utc(value: datetime | None) -> datetime | None:
    """A time typed in the lab's zone (the widgets have none) as UTC."""
    return value.replace(tzinfo=zone).astimezone(UTC) if value is not None else None


def time_input(label: str, key: str) -> datetime | None:
    """A date-and-time field in the lab's zone, empty at first (a step's time left empty is the moment of the click,
    not of the page's first showing)."""
    return st.datetime_input(f"{label} ({settings.timezone})", value=None, key=key, step=60, format="YYYY-MM-DD")


def now_or(value: datetime | None) -> datetime:
    """The time typed, as UTC, or now."""
    return as_utc(value) or utcnow()


def at_most(field: str) -> str:
    """The length a text field takes, as its help says it. The widget itself is not bounded: a longer text reaches
    the service, which refuses it naming the field, rather than being cut short without a word."""
    return f"At most {limits(DeathCall, field).max_length} characters."


def hours(value: float | None) -> str:
    return f"{value:.1f} h" if value is not None else "—"


def estimated(row: dict[str, Any], name: str) -> str:
    """A case's start or end time in the lab's zone, flagged when it was estimated (issue 19: never look real)."""
    text = local(row[f"{name}_at"]) or "—"
    return f"{text} (estimated)" if row.get(f"{name}_estimated") and row[f"{name}_at"] is not None else text


for cleared in st.session_state.pop(CLEAR, ()):
    st.session_state.pop(cleared, None)
if CHOOSE in st.session_state:
    st.session_state["cases_case"] = st.session_state.pop(CHOOSE)

st.title("Cases")
st.caption("The death call opens a case; the checklist shows what is still to do before the autopsy starts. "
           "A started case is on the live board.")
show_flash(FLASH)
labels_error = st.session_state.pop(LABELS_ERROR, None)
if labels_error:
    st.error(labels_error)

with data.read_session() as session:
    user = current_user(session)
    may_enrol = can(user, Action.enrol)

rows = data_cases.case_rows(data.url())

# ------------------------------------------------------------------------------------------------ the death call

if may_enrol:
    donors = data.donors(data.url())
    waiting = [] if donors.empty else donors[donors["case"].isna() & ~donors["consent_withdrawn"]]["code"].tolist()
    with st.expander("Take the death call", expanded=not rows):
        if not waiting:
            st.info("Every donor enrolled has a case already (or withdrew consent): enrol the donor first.")
        with st.form("cases_call"):
            a, b = st.columns(2)
            with a:
                donor = st.selectbox("Donor who died", waiting, index=None, placeholder="choose the donor",
                                     key=CALL_KEYS[0])
                place = st.text_input("Place of death", key=CALL_KEYS[2],
                                      help=at_most("death_place"),
                                      placeholder="hospital and ward, hospice, home")
                reported_at = time_input("Reported at (empty: now)", CALL_KEYS[4])
            with b:
                death = time_input("Time of death", CALL_KEYS[1])
                reported_by = st.text_input("Death reported by", key=CALL_KEYS[3],
                                            help=at_most("death_reported_by"),
                                            placeholder="name and role of the caller")
                refrigerated = time_input("Refrigerated (if known)", CALL_KEYS[5])
            e, f, g, h = st.columns(4)
            case_code = e.text_input("Case code", key=CALL_KEYS[6], help=at_most("case_code"),
                                     placeholder="generated: RAP-<year>-<number>")
            prosector = f.text_input("Prosector", key=CALL_KEYS[7], help=at_most("prosector"))
            team = g.text_input("Team", key=CALL_KEYS[8], help=at_most("team"))
            institution = h.text_input("Institution", key=CALL_KEYS[9],
                                       help=at_most("institution"))
            opened = st.form_submit_button("Open the case", type="primary", key="cases_call_submit")
        if opened:

            def take_call(session: Session, actor: User | None) -> str:
                autopsy = cases.open_case(session, actor=actor, data=DeathCall.build(
                    donor_code=donor or "", death_at=as_utc(death), death_place=place, death_reported_by=reported_by,
                    death_reported_at=as_utc(reported_at), refrigerated_at=as_utc(refrigerated),
                    case_code=case_code or None, prosector=prosector, team=team, institution=institution,
                ))
                return autopsy.case_code

            def opened_case(case: str) -> None:
                st.session_state[CLEAR] = CALL_KEYS
                st.session_state[CHOOSE] = case

            run_write(take_call, flash=FLASH, on_success=opened_case, error=labelled("death call"),
                      success=lambda case: f"Case {case} opened: work through its checklist below.")

# ------------------------------------------------------------------------------------------------ the chosen case

if not rows:
    st.info("No case yet: take the death call above to open one.")
    st.stop()

by_case = {row["case"]: row for row in rows}
if st.session_state.get("cases_case") not in by_case:
    st.session_state.pop("cases_case", None)
# The option text must not change when the case does (started, ended): the browser kept showing the old state
# ("Scheduled" after the start) and sends the selection back as that text. The state is in the line below.
case = st.selectbox("Case", list(by_case), key="cases_case", format_func=lambda c: f"{c} · donor {by_case[c]['donor']}")
row = by_case[case]

facts, checks = st.columns([5, 6], gap="large")
with facts:
    st.markdown(
        f"**{case}** · donor **{row['donor']}** · {STATE_LABELS.get(row['status'], row['status']).lower()}  \n"
        f"Died {local(row['death_at']) or '—'}" + (f" at {row['death_place']}" if row["death_place"] else "")
        + (f" · reported by {row['death_reported_by']}" if row["death_reported_by"] else "") + "  \n"
        f"Refrigerated {local(row['refrigerated_at']) or '—'} · started {estimated(row, 'start')}"
        f" · ended {estimated(row, 'end')}  \n"
        f"Prosector {row['prosector'] or '—'} · team {row['team'] or '—'}"
    )
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Warm PMI", hours(row["warm_pmi_hours"]), help="refrigerated − death")
    m2.metric("PMI at start", hours(row["pmi_at_start_hours"]) + (" (estimated)" if row.get("start_estimated") else ""),
              help="autopsy start − death" + (" (the start time is estimated)" if row.get("start_estimated") else ""))
    m3.metric("Median PMI", hours(row["median_pmi_hours"]), help="of the primary specimens")
    m4.metric("Specimens", f"{row['specimens']}", help=f"{row['specimens_beyond_limit']} past the limit")
with checks:
    items = data_cases.call_checklist(data.url(), case)
    done = sum(1 for item in items if item["done"])
    st.markdown(f"**Call checklist** · {done} of {len(items)} done")
    st.markdown("<br>".join(
        f"{DONE if i['done'] else TODO} {i['label']} — <span style='color:#666'>{i['detail']}</span>" for i in items
    ), unsafe_allow_html=True)

if not may_enrol:
    st.info("Your role can follow the cases; the death call and the case's times are recorded by coordinators and "
            "technicians.")
else:
    known = data_cases.lesions_of(data.url(), row["donor"])
    # a label that does not change with the count, so the section stays open while lesions are added one by one
    with st.expander("Known lesions", expanded=row["status"] == "scheduled"):
        st.caption(f"{len(known)} lesion(s). Lesions known from imaging before the autopsy: their labels are "
                   "pre-printed with the case's. Lesions found at the table are added on the live board.")
        if known:
            st.dataframe(pd.DataFrame(known), hide_index=True, width="stretch", key="cases_lesions_table")
        add_lesion_form(row["donor"], key="cases", flash=FLASH, title="Add the lesion")
    st.subheader("The case's day")
    steps = st.columns(4, gap="medium")
    with steps[0], st.container(border=True):
        st.markdown("**Labels**")
        sheet, count, why = (None, 0, "") if row["status"] == "complete" else data_cases.planned_label_sheet(data.url(), case)
        if row["labels_printed_at"] is not None:
            st.caption(f"Printed {local(row['labels_printed_at'])}.")
        if row["status"] == "complete":
            st.caption("The autopsy is complete: print the labels of what was made from the board or the specimen "
                       "list.")
        elif sheet is None:
            st.caption(why)
        else:

            def printed(chosen: str = case) -> None:
                """The download marks the labels printed (a callback: it runs before the page does again)."""
                try:
                    result = in_unit_of_work(
                        lambda session, actor: cases.print_case_labels(session, actor=actor, case_code=chosen))
                except BiobankError as exc:
                    st.session_state[LABELS_ERROR] = f"print labels: {exc}"
                    return
                st.session_state[FLASH] = f"{result.count} labels of case {chosen} printed (on the checklist)."

            st.download_button(f"Print labels ({count}, PDF)", sheet, f"labels-{case}.pdf", "application/pdf",
                               key="cases_labels_print", on_click=printed,
                               type="primary" if row["labels_printed_at"] is None else "secondary")
    with steps[1], st.container(border=True):
        st.markdown("**Refrigeration**")
        if row["refrigerated_at"] is None:
            when = time_input("Refrigerated (empty: now)", f"cases_refrigerated_at_{case}")
            if st.button("Record refrigeration", key="cases_refrigerated_submit"):
                run_write(lambda session, actor: collection.update_autopsy_times(
                    session, actor=actor, case_code=case, refrigerated_at=now_or(when)),
                    flash=FLASH, success=f"Case {case}: refrigeration recorded.", error=labelled("refrigeration"))
        else:
            st.caption(f"Recorded {local(row['refrigerated_at'])}.")
    with steps[2], st.container(border=True):
        st.markdown("**Team**")
        if row["team_notified_at"] is None:
            when = time_input("Notified (empty: now)", f"cases_notified_at_{case}")
            if st.button("Team notified", key="cases_notified_submit"):
                run_write(lambda session, actor: cases.mark_team_notified(session, actor=actor, case_code=case,
                                                                          at=as_utc(when)),
                          flash=FLASH, success=f"Case {case}: team notified.", error=labelled("team notified"))
        else:
            st.caption(f"Notified {local(row['team_notified_at'])}.")
    with steps[3], st.container(border=True):
        st.markdown("**Autopsy**")
        if row["status"] == "scheduled":
            when = time_input("Started (empty: now)", f"cases_start_at_{case}")
            if st.button("Start the autopsy", key="cases_start_submit", type="primary"):
                run_write(lambda session, actor: cases.start_autopsy(session, actor=actor, case_code=case, at=as_utc(when)),
                          flash=FLASH, success=f"Case {case} started: it is on the live board.", error=labelled("start"))
        elif row["status"] == "in_progress":
            when = time_input("Ended (empty: now)", f"cases_end_at_{case}")
            if st.button("End the autopsy", key="cases_end_submit"):
                run_write(lambda session, actor: cases.end_autopsy(session, actor=actor, case_code=case, at=as_utc(when)),
                          flash=FLASH, success=f"Case {case} ended: complete.", error=labelled("end"))
        else:
            st.caption(f"Complete: {local(row['start_at'])} to {local(row['end_at'])}.")

    with st.expander("Correct a time"):
        st.caption("A time already recorded is changed only with a reason; the audit log keeps it with the old and "
                   "the new time, and the PMI figures follow.")
        with st.form("cases_correct"):
            field = st.selectbox("Time", CORRECTABLE, format_func=field_label, key="cases_correct_field")
            corrected = time_input("Corrected time", "cases_correct_time")
            reason = st.text_input("Reason", key="cases_correct_reason",
                                   help=f"Kept in the audit log; at most {collection.MAX_REASON} characters.")
            fix = st.form_submit_button("Save the correction", key="cases_correct_submit")
        if fix:

            def correct(session: Session, actor: User | None) -> dict[str, Any]:
                if corrected is None:
                    raise invalid(field, None, "is required: give the corrected time")
                if field == "team_notified_at":
                    cases.mark_team_notified(session, actor=actor, case_code=case, at=as_utc(corrected), reason=reason)
                else:
                    collection.update_autopsy_times(session, actor=actor, case_code=case,
                                                    **{field: as_utc(corrected)}, reason=reason)
                return next(r for r in cases.case_rows(session) if r["case"] == case)

            run_write(correct, flash=FLASH, error=labelled("correction"),
                      on_success=lambda _row: st.session_state.update({CLEAR: ("cases_correct_time", "cases_correct_reason")}),
                      success=lambda after: f"Case {case}: {field_label(field).lower()} corrected (audited with your "
                                            f"reason); PMI at start {hours(after['pmi_at_start_hours'])}, warm PMI "
                                            f"{hours(after['warm_pmi_hours'])}.")

# ------------------------------------------------------------------------------------------------ cases by state

st.subheader("Cases by state")
COLUMNS = {
    "case": "case", "donor": "donor", "death_at": "died", "death_place": "place", "refrigerated_at": "refrigerated",
    "start_at": "started", "end_at": "ended", "warm_pmi_hours": "warm PMI h", "pmi_at_start_hours": "PMI at start h",
    "median_pmi_hours": "median PMI h", "specimens": "specimens", "labels_printed_at": "labels printed",
    "team_notified_at": "team notified",
}
TIMES = ("death_at", "refrigerated_at", "start_at", "end_at", "labels_printed_at", "team_notified_at")
tabs = st.tabs([f"{label} ({sum(r['status'] == state for r in rows)})" for state, label in STATE_LABELS.items()])
for tab, state in zip(tabs, STATE_LABELS, strict=True):
    chosen = [r for r in rows if r["status"] == state]
    with tab:
        if not chosen:
            st.caption("None.")
            continue
        frame = pd.DataFrame([{COLUMNS[k]: (estimated(r, k[:-3]) if k in ("start_at", "end_at") else
                                            local(r[k]) if k in TIMES else r[k]) for k in COLUMNS} for r in chosen])
        st.dataframe(frame, hide_index=True, width="stretch", key=f"cases_table_{state}")
