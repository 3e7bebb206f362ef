"""Derived models: the tracker (status, newest passage, QC), the lineage from site to passages, take rates, and
forms for technicians to record models, passages, QC and status changes."""

from __future__ import annotations

from datetime import date

import altair as alt
import streamlit as st

from biobank.domain.vocab_derived import (
    STATUS_TRANSITIONS,
    IdentityMethod,
    Matrix,
    ModelKind,
    ModelStatus,
    MycoplasmaResult,
)
from biobank.queries.derived import DIMENSIONS
from biobank.services import derived
from biobank.services.auth import Action, can
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate
from dashboards.data import core as data
from dashboards.data import derived as data_models
from dashboards.shell.actions import run_write, show_flash
from dashboards.shell.session import current_user
from dashboards.widgets.lineage import model_lineage_dot

FLASH = "models_flash"
#: The statuses a model can be moved to (every target of an allowed transition), in the vocabulary's order.
STATUS_TARGETS = [s.value for s in ModelStatus if any(s in targets for targets in STATUS_TRANSITIONS.values())]

url = data.url()
st.title("Derived models")
st.caption(
    "Organoids, patient-derived xenografts and cell lines: which sites grew, at which passage each stands, QC."
)

with data.read_session() as session:
    user = current_user(session)
    may_enter = can(user, Action.enter)

models = data_models.model_list(url)
if models.empty:
    st.info(
        "No derived models yet. A technician starts one from a fresh or viable cryopreserved specimen below."
    )
else:
    outcomes = data_models.outcomes(url)
    rate = outcomes["take_rate"]
    cols = st.columns(4)
    cols[0].metric("Models", outcomes["attempted"])
    cols[1].metric("Established", outcomes["established"])
    cols[2].metric("Take rate", f"{rate:.0%}" if rate is not None else "—", help="Established at some point / initiated.")
    cols[3].metric("In progress", outcomes["in_progress"])
    donors = ["all donors", *sorted(models["donor"].unique())]
    chosen = st.selectbox("Donor", donors, key="models_donor")
    shown = models if chosen == "all donors" else models[models["donor"] == chosen]
    st.dataframe(
        shown[
            [
                "code",
                "kind",
                "status",
                "donor",
                "region",
                "site",
                "lesion_kind",
                "source",
                "passage",
                "passages",
                "qc",
                "initiated_on",
                "established_on",
            ]
        ],
        hide_index=True,
        width="stretch",
    )

    st.subheader("Lineage")
    pick = st.selectbox("Model", shown["code"].tolist(), key="models_pick")
    if pick:
        detail = data_models.model_detail(url, pick)
        st.graphviz_chart(model_lineage_dot(detail), width="stretch")
        met = detail["qc_requirements"]
        if met:
            st.caption(
                "QC required to establish: " + ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in met.items())
            )

    st.subheader("Take rate")
    by = st.selectbox(
        "Group by", list(DIMENSIONS), format_func=lambda d: d.replace("_", " "), key="models_rate_by"
    )
    rates = data_models.take_rates(url, by)
    if not rates.empty:
        chart = (
            alt.Chart(rates)
            .mark_bar()
            .encode(
                x=alt.X("value:N", title=by.replace("_", " ")),
                xOffset="kind:N",
                y=alt.Y("take_rate:Q", title="established / initiated", scale=alt.Scale(domain=[0, 1])),
                color=alt.Color("kind:N", title="kind"),
                tooltip=["value", "kind", "attempted", "established", "failed", "in_progress", "take_rate"],
            )
        )
        st.altair_chart(chart, width="stretch")
    times = data_models.time_to_establishment(url)
    if not times.empty:
        st.caption("Days from initiation to establishment")
        st.dataframe(times, hide_index=True)


if may_enter:
    st.subheader("Record")
    show_flash(FLASH)
    add, passage, qc, status = st.tabs(["New model", "Passage", "QC", "Status"])
    with add, st.form("models_add_form"):
        sources = data_models.viable_sources(url)
        source = st.selectbox(
            "Source specimen (fresh or viable cryopreserved)", sources, key="models_add_source"
        )
        kind = st.selectbox("Kind", [k.value for k in ModelKind], key="models_add_kind")
        initiated = st.date_input("Initiated on", value=date.today(), key="models_add_on")
        host = st.text_input("PDX host strain (e.g. NSG)", key="models_add_host")
        matrix = st.selectbox(
            "Organoid matrix", ["", *(m.value for m in Matrix)], key="models_add_matrix"
        )
        if st.form_submit_button("Start model") and source:
            run_write(
                lambda s, u: (
                    derived.create_model(
                        s,
                        actor=u,
                        data=ModelCreate.build(source_code=source, kind=kind, initiated_on=initiated, host_strain_name=host or None if kind == ModelKind.pdx else None, matrix=(matrix or None) if kind != ModelKind.pdx else None),
                    ).code
                ),
                flash=FLASH,
                success=lambda code: f"model {code} initiated",
            )
    codes = models["code"].tolist() if not models.empty else []
    with passage, st.form("models_passage_form"):
        model = st.selectbox("Model", codes, key="models_passage_model")
        parent = st.text_input("Parent passage (empty for P0)", key="models_passage_parent")
        on = st.date_input("Passaged on", value=date.today(), key="models_passage_on")
        vessel = st.text_input("Mouse or vessel ID", key="models_passage_vessel")
        if st.form_submit_button("Record passage") and model:
            run_write(
                lambda s, u: (
                    derived.record_passage(
                        s,
                        actor=u,
                        data=PassageCreate.build(model_code=model, passaged_on=on, parent_label=parent.strip() or None, mouse_or_vessel_id=vessel or None),
                    ).label
                ),
                flash=FLASH,
                success=lambda label: f"passage {label} recorded",
            )
    with qc, st.form("models_qc_form"):
        model = st.selectbox("Model", codes, key="models_qc_model")
        label = st.text_input("Passage", value="P0", key="models_qc_passage")
        on = st.date_input("Tested on", value=date.today(), key="models_qc_on")
        method = st.selectbox("Identity test", [m.value for m in IdentityMethod], key="models_qc_method")
        identity = st.number_input("Identity match %", 0.0, 100.0, 90.0, key="models_qc_identity")
        myco = st.selectbox("Mycoplasma", [m.value for m in MycoplasmaResult], key="models_qc_myco")
        if st.form_submit_button("Record QC") and model:
            run_write(
                lambda s, u: (
                    derived.record_model_qc(
                        s,
                        actor=u,
                        data=ModelQCCreate.build(model_code=model, passage_label=label.strip(), tested_on=on, identity_method=method, identity_match_pct=identity, mycoplasma=myco),
                    ).passed
                ),
                flash=FLASH,
                success=lambda passed: f"QC recorded (passed: {passed})",
            )
    with status, st.form("models_status_form"):
        model = st.selectbox("Model", codes, key="models_status_model")
        target = st.selectbox("New status", STATUS_TARGETS, key="models_status_to")
        on = st.date_input("On", value=date.today(), key="models_status_on")
        note = st.text_input("Note", key="models_status_note")
        if st.form_submit_button("Change status") and model:
            run_write(
                lambda s, u: (
                    derived.set_status(
                        s, actor=u, model_code=model, status=target, on=on, note=note or None
                    ).status
                ),
                flash=FLASH,
                success=lambda status: f"model is now {status}",
            )
