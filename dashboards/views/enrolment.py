"""Enrolment, for programme coordinators (and technicians and administrators): register a donor, record a consent,
a re-consent or a scope change, record a withdrawal (all consent, with what happens to the material, or some
scopes), add treatment lines and clinical events.

The rules live in :mod:`biobank.services.donors`; every write goes through ``run_write``. A refused form keeps what
was typed (keyed widgets, no rerun on an error) and says which field is wrong; a form that worked is emptied."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.vocab import (
    ClinicalEventKind,
    ConsentChange,
    ConsentGiver,
    ConsentScope,
    ReceptorStatus,
    Response,
    Sex,
    TreatmentCategory,
    TreatmentIntent,
    WithdrawalMaterial,
)
from biobank.models import User
from biobank.services import donors
from biobank.services.inputs import (
    ClinicalEventCreate,
    ConsentCreate,
    DonorCreate,
    TreatmentLineCreate,
    limits,
)
from dashboards.data import core as data
from dashboards.data import enrolment as data_enrolment
from dashboards.shell.actions import labelled, run_write, show_flash

settings = get_settings()
zone = settings.zone
FLASH = "enrol_flash"
#: widget keys to empty at the top of the next run (a form that worked)
CLEAR = "enrol_clear"
#: the donor to choose at the top of the next run (the one just registered)
CHOOSE = "enrol_choose"
#: the donor the consent form was last filled in for (its scopes and change follow the donor chosen)
FILLED_FOR = "enrol_consent_for"
REGISTER = ("code", "sex", "age", "diagnosis", "site", "topography", "morphology", "diagnosis_days", "er", "pr",
            "her2", "cause", "hardy")
REGISTER_KEYS = tuple(f"enrol_reg_{name}" for name in REGISTER)
CONSENT_KEYS = ("enrol_consent_change", "enrol_consent_given_by", "enrol_consent_on", "enrol_consent_scopes",
                "enrol_consent_form", "enrol_consent_taken_by", "enrol_consent_document", "enrol_consent_reason")
WITHDRAWAL_KEYS = ("enrol_wd_by", "enrol_wd_at", "enrol_wd_extent", "enrol_wd_scopes", "enrol_wd_material",
                   "enrol_wd_reason", "enrol_wd_confirm")
TREATMENT_KEYS = ("enrol_tx_line", "enrol_tx_agents", "enrol_tx_category", "enrol_tx_intent", "enrol_tx_response",
                  "enrol_tx_start_days", "enrol_tx_start_on", "enrol_tx_end_days", "enrol_tx_end_on")
EVENT_KEYS = ("enrol_ev_kind", "enrol_ev_days", "enrol_ev_on", "enrol_ev_site", "enrol_ev_note")
CHANGES = [ConsentChange.initial.value, ConsentChange.re_consent.value, ConsentChange.scope_change.value]
CHANGE_LABELS = {"initial": "Initial consent", "re_consent": "Re-consent (a new form signed)",
                 "scope_change": "Scope change"}
MATERIAL_LABELS = {
    "keep_blocked": "Keep it, blocked from every use",
    "allow_distributed": "Keep it blocked here; material already shipped may still be used by its recipients",
    "destroy": "Destroy: dispose of every specimen still held",
}
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)  # the service, not the widget, refuses a future day


def words(value: str) -> str:
    return value.replace("_", " ")


def at_most(model: type, field: str) -> str:
    """The length a text field takes, as its help says it; the widget is not bounded, so a longer text reaches the
    service, which refuses it naming the field, rather than being cut short without a word."""
    return f"At most {limits(model, field).max_length} characters."


def text(value: str | None) -> str | None:
    return (value or "").strip() or None


def whole(value: float | None) -> int | None:
    """A number field's value as a whole number (the widgets hold whole numbers; None when empty)."""
    return None if value is None else int(value)


def as_utc(value: datetime | None) -> datetime | None:
    """A time typed in the lab's zone (the widgets have none) as UTC."""
    return value.replace(tzinfo=zone).astimezone(UTC) if value is not None else None


def cleared(keys: tuple[str, ...]) -> Any:
    """An ``on_success`` that empties a form's widgets at the top of the next run."""
    return lambda _result: st.session_state.update({CLEAR: keys})


for key in st.session_state.pop(CLEAR, ()):
    st.session_state.pop(key, None)
if CHOOSE in st.session_state:
    st.session_state["enrol_donor"] = st.session_state.pop(CHOOSE)

st.title("Enrolment")
st.caption("Register donors under a pseudonymous code, record their consent and its later versions, withdrawals, "
           "treatment lines and clinical events. Never enter a name, birth date or hospital number.")
show_flash(FLASH)

url = data.url()
table = data_enrolment.enrolment_rows(url)
if not table.empty:
    st.dataframe(
        table.assign(status=table["status"].map(words), diagnosis=table["diagnosis"].fillna("")),
        hide_index=True, width="stretch", key="enrol_table",
        column_config={"death_recorded": st.column_config.CheckboxColumn("death recorded"),
                       "treatment_lines": st.column_config.NumberColumn("treatment lines")},
    )

# --------------------------------------------------------------------------------------------- register a donor

with st.expander("Register a donor", expanded=table.empty):
    sites = data_enrolment.site_labels()
    receptors = [s.value for s in ReceptorStatus]
    with st.form("enrol_register"):
        a, b, c = st.columns(3)
        code = a.text_input("Code", key=REGISTER_KEYS[0], placeholder=f"empty: {data_enrolment.next_code(url)}",
                            help="A pseudonymous code such as RA-0001; leave empty for the next one.")
        sex = b.selectbox("Sex", [s.value for s in Sex], index=[s.value for s in Sex].index(Sex.female.value),
                          key=REGISTER_KEYS[1])
        age = c.number_input("Age at death (years)", value=None, step=1, key=REGISTER_KEYS[2],
                             help="Once known; empty for now.")
        diagnosis = st.text_input("Primary diagnosis", key=REGISTER_KEYS[3], help=at_most(DonorCreate, "primary_diagnosis"),
                                  placeholder="e.g. invasive ductal carcinoma of breast")
        a, b, c, d = st.columns(4)
        site = a.selectbox("Primary site", list(sites), index=None, format_func=lambda s: f"{sites[s]} ({s})",
                           key=REGISTER_KEYS[4], placeholder="choose the site")
        topography = b.text_input("ICD-O-3 topography", key=REGISTER_KEYS[5], placeholder="C50.9")
        morphology = c.text_input("ICD-O-3 morphology", key=REGISTER_KEYS[6], placeholder="8500/3")
        diagnosis_days = d.number_input("Days from diagnosis to death", value=None, step=1, key=REGISTER_KEYS[7])
        a, b, c, d, e = st.columns(5)
        er = a.selectbox("ER status", receptors, index=None, key=REGISTER_KEYS[8], placeholder="not recorded")
        pr = b.selectbox("PR status", receptors, index=None, key=REGISTER_KEYS[9], placeholder="not recorded")
        her2 = c.selectbox("HER2 status", receptors, index=None, key=REGISTER_KEYS[10], placeholder="not recorded")
        cause = d.text_input("Cause of death", key=REGISTER_KEYS[11], help=at_most(DonorCreate, "cause_of_death"))
        hardy = e.number_input("Hardy scale (0-4)", value=None, step=1, key=REGISTER_KEYS[12])
        register = st.form_submit_button("Register the donor", type="primary", key="enrol_reg_submit")
    if register:

        def registered(session: Session, actor: User | None) -> str:
            donor = donors.register_donor(session, actor=actor, data=DonorCreate.build(
                code=text(code), sex=sex, age_at_death=whole(age), primary_diagnosis=text(diagnosis),
                primary_site_code=site, icdo3_topography=text(topography), icdo3_morphology=text(morphology),
                diagnosis_days_before_death=whole(diagnosis_days), er_status=er, pr_status=pr, her2_status=her2,
                cause_of_death=text(cause), hardy_scale=whole(hardy),
            ))
            return donor.code

        def chosen(new_code: str) -> None:
            st.session_state[CLEAR] = REGISTER_KEYS
            st.session_state[CHOOSE] = new_code

        run_write(registered, flash=FLASH, on_success=chosen, error=labelled("register"),
                  success=lambda new_code: f"Donor {new_code} registered: record the consent below.")

if table.empty:
    st.stop()

# ---------------------------------------------------------------------------------------------- the chosen donor

codes = table["code"].tolist()
if st.session_state.get("enrol_donor") not in codes:
    st.session_state.pop("enrol_donor", None)
donor = st.selectbox("Donor", codes, key="enrol_donor",
                     format_func=lambda c: f"{c} · {table.set_index('code').loc[c, 'consent']}")
history = data_enrolment.consent_history(url, donor)
current = history["scopes"]
if history["withdrawn"]:
    w = history["withdrawal"]
    st.error(f"**Consent withdrawn** {w['withdrawn_at'].astimezone(zone):%d %b %Y} by {words(w['requested_by'])} "
             f"(material: {words(w['material'])}): {w['reason']}. Nothing more can be recorded for consent.", icon="🚫")
elif current:
    st.success("Consent in force: " + ", ".join(words(s) for s in current), icon="✅")
else:
    st.warning("No consent is recorded for this donor yet.", icon="⚠️")
if history["versions"]:
    with st.expander(f"Consent history ({len(history['versions'])} version(s))"):
        st.dataframe(data_enrolment.history_frame(history), hide_index=True, width="stretch", key="enrol_history")

consent_tab, withdrawal_tab, treatment_tab, event_tab = st.tabs(
    ["Consent", "Withdrawal", "Treatment line", "Clinical event"])

# ------------------------------------------------------------------------------------------------------ consent

with consent_tab:
    if st.session_state.get(FILLED_FOR) != donor:  # a donor just chosen: the form starts from their consent
        st.session_state[FILLED_FOR] = donor
        st.session_state["enrol_consent_scopes"] = list(current)
        st.session_state["enrol_consent_change"] = "re_consent" if history["versions"] else "initial"
    with st.form("enrol_consent"):
        change = st.radio("This consent is", CHANGES, format_func=CHANGE_LABELS.get, horizontal=True,
                          key=CONSENT_KEYS[0])
        a, b = st.columns(2)
        given_by = a.selectbox("Given by", [g.value for g in ConsentGiver], format_func=words, key=CONSENT_KEYS[1])
        consented_on = b.date_input("Consent date", value="today", min_value=EARLIEST, max_value=LATEST,
                                    key=CONSENT_KEYS[2])
        scopes = st.multiselect("Scopes consented to", [s.value for s in ConsentScope], format_func=words,
                                key=CONSENT_KEYS[3], help="The scopes of this version replace those in force.")
        a, b, c = st.columns(3)
        form_version = a.text_input("Form version", key=CONSENT_KEYS[4], placeholder="e.g. ICF-v3.2",
                                    help=at_most(ConsentCreate, "form_version"))
        taken_by = b.text_input("Taken by", key=CONSENT_KEYS[5], help=at_most(ConsentCreate, "taken_by"))
        document = c.text_input("Form reference", key=CONSENT_KEYS[6], help=at_most(ConsentCreate, "document_ref"))
        reason = st.text_input("Reason (a re-consent or a scope change)", key=CONSENT_KEYS[7],
                               help=at_most(ConsentCreate, "reason"))
        consent = st.form_submit_button("Record the consent", type="primary", key="enrol_consent_submit")
    if consent:

        def consented(session: Session, actor: User | None) -> str:
            made = donors.record_consent(
                session, actor=actor, donor_code=donor, given_by=given_by, consented_on=consented_on,
                scopes=set(scopes), form_version=text(form_version), taken_by=text(taken_by),
                document_ref=text(document), change=change, reason=text(reason))
            return made.change

        def consent_done(_change: str) -> None:
            st.session_state[CLEAR] = (*CONSENT_KEYS, FILLED_FOR)

        run_write(consented, flash=FLASH, on_success=consent_done, error=labelled("consent"),
                  success=lambda made: f"{CHANGE_LABELS.get(made, made)} of {donor} recorded.")

# --------------------------------------------------------------------------------------------------- withdrawal

with withdrawal_tab:
    if history["withdrawn"]:
        st.info("Consent was withdrawn in full; a donor withdraws once.")
    else:
        st.caption("Withdrawing some scopes records a new consent version without them; withdrawing all consent blocks "
                   "the donor's material from distribution, plans and exports. Nothing is deleted.")
        a, b = st.columns(2)
        requested_by = a.selectbox("Requested by", [g.value for g in ConsentGiver], format_func=words,
                                   key=WITHDRAWAL_KEYS[0])
        if WITHDRAWAL_KEYS[1] not in st.session_state:
            st.session_state[WITHDRAWAL_KEYS[1]] = datetime.now(zone).replace(second=0, microsecond=0, tzinfo=None)
        withdrawn_at = b.datetime_input(f"Asked on ({settings.timezone})", key=WITHDRAWAL_KEYS[1], step=60,
                                        format="YYYY-MM-DD")
        extent = st.radio("Withdraw", ["all", "some"], horizontal=True, key=WITHDRAWAL_KEYS[2],
                          format_func={"all": "All consent", "some": "Some scopes only"}.get)
        withdrawn_scopes: list[str] = []
        material: str | None = None
        confirmed = True
        if extent == "some":
            withdrawn_scopes = st.multiselect("Scopes withdrawn", current, format_func=words, key=WITHDRAWAL_KEYS[3],
                                              help="The donor stays consented to the others.")
        else:
            material = st.radio("The material held", [m.value for m in WithdrawalMaterial],
                                index=[m.value for m in WithdrawalMaterial].index("keep_blocked"),
                                format_func=MATERIAL_LABELS.get, key=WITHDRAWAL_KEYS[4])
            if material == WithdrawalMaterial.destroy:
                st.warning(f"{history['held_specimens']} specimen(s) of {donor} still held will be disposed of, each "
                           "with a custody event naming this withdrawal.")
                confirmed = st.checkbox(f"Dispose of the material of {donor}", key=WITHDRAWAL_KEYS[6])
        reason = st.text_area("Reason", key=WITHDRAWAL_KEYS[5], height=80,
                              help="Why consent was withdrawn; at most 500 characters.")
        if st.button("Record the withdrawal", key="enrol_wd_submit", type="primary", disabled=not confirmed):

            def withdrawn(session: Session, actor: User | None) -> donors.Withdrawal:
                return donors.withdraw_consent(
                    session, actor=actor, donor_code=donor, requested_by=requested_by,
                    withdrawn_at=as_utc(withdrawn_at) or datetime.now(UTC),  # empty is refused before this
                    reason=reason, scopes=set(withdrawn_scopes) if extent == "some" else None,
                    material=material if extent == "all" else None)

            def said(done: donors.Withdrawal) -> str:
                if done.full:
                    extra = f"; {len(done.disposed)} specimen(s) disposed of" if done.disposed else ""
                    return f"Consent of {donor} withdrawn{extra}."
                return f"{', '.join(words(s) for s in withdrawn_scopes) or 'Nothing'} withdrawn for {donor}."

            if extent == "some" and not withdrawn_scopes:
                st.error("withdrawal: Scopes withdrawn: choose the scopes to withdraw, or withdraw all consent.")
            elif withdrawn_at is None:
                st.error("withdrawal: Consent withdrawn is required: give the day and time it was asked.")
            else:
                run_write(withdrawn, flash=FLASH, on_success=cleared(WITHDRAWAL_KEYS), error=labelled("withdrawal"),
                          success=said)

# ----------------------------------------------------------------------------------------------- treatment line

with treatment_tab:
    st.caption("Kept in days before death. Dates can be given instead once the death is recorded "
               f"({'recorded' if table.set_index('code').loc[donor, 'death_recorded'] else 'not yet recorded'} for "
               f"{donor}); only the days are kept.")
    with st.form("enrol_treatment"):
        a, b = st.columns([1, 4])
        line = a.number_input("Line", value=None, step=1, key=TREATMENT_KEYS[0], help="Empty: the next line.")
        agents = b.text_input("Agents", key=TREATMENT_KEYS[1], placeholder="e.g. letrozole + palbociclib",
                              help=at_most(TreatmentLineCreate, "agents"))
        a, b, c = st.columns(3)
        category = a.selectbox("Category", [t.value for t in TreatmentCategory], format_func=words,
                               key=TREATMENT_KEYS[2])
        intent = b.selectbox("Intent", [t.value for t in TreatmentIntent],
                             index=[t.value for t in TreatmentIntent].index("unknown"), key=TREATMENT_KEYS[3])
        response = c.selectbox("Best response", [r.value for r in Response], format_func=words,
                               index=[r.value for r in Response].index("unknown"), key=TREATMENT_KEYS[4])
        a, b, c, d = st.columns(4)
        start_days = a.number_input("Start, days before death", value=None, step=1, key=TREATMENT_KEYS[5])
        start_on = b.date_input("or start date", value=None, min_value=EARLIEST, max_value=LATEST,
                                key=TREATMENT_KEYS[6])
        end_days = c.number_input("End, days before death", value=None, step=1, key=TREATMENT_KEYS[7],
                                  help="Empty: ongoing at death.")
        end_on = d.date_input("or end date", value=None, min_value=EARLIEST, max_value=LATEST, key=TREATMENT_KEYS[8])
        add_line = st.form_submit_button("Add the treatment line", type="primary", key="enrol_tx_submit")
    if add_line:

        def treated(session: Session, actor: User | None) -> int:
            made = donors.add_treatment_line(
                session, actor=actor, donor_code=donor, line_number=whole(line), agents=agents, category=category,
                intent=intent, best_response=response, start_days_before_death=whole(start_days),
                end_days_before_death=whole(end_days), start_on=start_on, end_on=end_on)
            return made.line_number

        run_write(treated, flash=FLASH, on_success=cleared(TREATMENT_KEYS), error=labelled("treatment line"),
                  success=lambda number: f"Treatment line {number} of {donor} added.")

# ----------------------------------------------------------------------------------------------- clinical event

with event_tab:
    with st.form("enrol_event"):
        a, b, c = st.columns(3)
        kind = a.selectbox("Event", [k.value for k in ClinicalEventKind], format_func=words, key=EVENT_KEYS[0])
        days = b.number_input("Days before death", value=None, step=1, key=EVENT_KEYS[1])
        on = c.date_input("or the day", value=None, min_value=EARLIEST, max_value=LATEST, key=EVENT_KEYS[2])
        a, b = st.columns([1, 2])
        event_site = a.selectbox("Site", list(sites), index=None, format_func=lambda s: f"{sites[s]} ({s})",
                                 key=EVENT_KEYS[3], placeholder="not recorded")
        note = b.text_input("Note", key=EVENT_KEYS[4], help=at_most(ClinicalEventCreate, "note"))
        add_event = st.form_submit_button("Add the event", type="primary", key="enrol_ev_submit")
    if add_event:

        def happened(session: Session, actor: User | None) -> int:
            event = donors.add_clinical_event(
                session, actor=actor, donor_code=donor, kind=kind, days_before_death=whole(days), occurred_on=on,
                site_code=event_site, note=text(note))
            return event.days_before_death

        run_write(happened, flash=FLASH, on_success=cleared(EVENT_KEYS), error=labelled("clinical event"),
                  success=lambda before: f"{words(kind).capitalize()} of {donor} added, {before} days before death.")
