"""A plan's loop back from sequencing on the planner page: runs, results, data files and each sample's state."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import Session, select

from biobank.domain.errors import BiobankError
from biobank.models import User
from biobank.models.plans import PlanStatus, SampleOutcome, SequencingRun
from biobank.queries import sequencing as seq_reads
from biobank.services import sequencing
from biobank.services.auth import Action, can
from biobank.services.planning import get_plan
from dashboards.data import core as data
from dashboards.shell.actions import labelled, run_write, show_flash

FLASH = "sequencing_flash"
SHOWN = ["donor_code", "specimen_code", "region_code", "lesion_code", "role", "assay", "target_depth", "state",
         "run_id", "read_count", "mean_coverage", "contamination_pct", "purity", "ploidy", "qc_note"]
#: Background of a sample's state in the table.
COLOURS = {
    SampleOutcome.passed.value: "background-color: #c8e6c9",
    SampleOutcome.failed_qc.value: "background-color: #ffcdd2",
    SampleOutcome.sequenced.value: "background-color: #fff9c4",
}


def _colour(state: Any) -> str:
    return COLOURS.get(str(state), "")


def _read(plan_code: str) -> tuple[str, pd.DataFrame, list[dict[str, Any]], list[str]]:
    """The plan's status, its samples' states, replacements for failed samples, and the recorded run ids."""
    with data.read_session(data.url()) as session:
        plan = get_plan(session, plan_code)
        assert plan.id is not None
        states = seq_reads.sample_states(session, plan_ids=[plan.id])
        replacements = [r.to_record() for r in sequencing.failed_replacements(session, plan.code)]
        runs = list(session.exec(select(SequencingRun.run_id).order_by(SequencingRun.run_id)).all())
        return plan.status, states, replacements, runs


def _optional(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def render(plan_code: str, user: User | None) -> None:
    """Draw each sample's sequencing state of ``plan_code`` and the forms that record what came back."""
    st.subheader("Sequencing")
    show_flash(FLASH)
    try:
        status, states, replacements, runs = _read(plan_code)
    except BiobankError as exc:
        st.error(f"sequencing: {exc}")
        return
    if states.empty:
        st.caption("Sequencing states appear once the plan is approved; results are recorded once it is submitted.")
        return
    counts = states["state"].value_counts().to_dict()
    st.caption(", ".join(f"{s}: {int(counts[s])}" for s in seq_reads.SAMPLE_STATES if s in counts))
    shown = states[SHOWN]
    st.dataframe(shown.style.map(_colour, subset=["state"]), hide_index=True, key="sequencing_states")

    for r in replacements:
        if r["specimen_code"]:
            st.warning(f"{r['failed_specimen_code']} failed QC: replace it with {r['specimen_code']} "
                       f"({r['reason']}). Amend the plan to swap it in.")
        else:
            st.warning(f"{r['failed_specimen_code']} failed QC; no replacement: {r['reason']}")

    may_record = can(user, Action.enter) or can(user, Action.plan)
    if not may_record:
        return
    samples = states["specimen_code"].tolist()

    with st.expander("Record a sequencing run"), st.form("sequencing_run_form", clear_on_submit=False):
        run_id = st.text_input("Run id", key="sequencing_run_id")
        instrument = st.text_input("Instrument", key="sequencing_instrument")
        flow_cell = st.text_input("Flow cell kind", key="sequencing_flow_cell")
        flow_cell_id = st.text_input("Flow cell id", key="sequencing_flow_cell_id")
        centre = st.text_input("Centre", key="sequencing_centre")
        if st.form_submit_button("Record run"):
            def add_run(session: Session, actor: User | None) -> str:
                run = sequencing.record_run(session, actor=actor, run_id=run_id, instrument=instrument,
                                            flow_cell=flow_cell or None, flow_cell_id=flow_cell_id or None,
                                            centre=centre or None)
                return run.run_id

            run_write(add_run, flash=FLASH, error=labelled("run"), success=lambda saved: f"Run {saved} recorded.")

    if status != PlanStatus.submitted:
        st.caption(f"Plan {plan_code} is {status}: results are recorded once it is submitted.")
        return
    if not runs:
        st.caption("Record the run first, then its results.")
    else:
        with st.expander("Record a result"), st.form("sequencing_result_form"):
            specimen = st.selectbox("Sample", samples, key="sequencing_result_specimen")
            run = st.selectbox("Run", runs, key="sequencing_result_run")
            left, right = st.columns(2)
            reads = left.number_input("Read count", min_value=0, value=None, step=1, key="sequencing_reads")
            coverage = left.number_input("Mean coverage (x)", min_value=0.0, value=None, key="sequencing_coverage")
            contamination = left.number_input("Contamination (%)", min_value=0.0, max_value=100.0, value=None,
                                              key="sequencing_contamination")
            purity = right.number_input("Purity (0-1)", min_value=0.0, max_value=1.0, value=None,
                                        key="sequencing_purity")
            ploidy = right.number_input("Ploidy", min_value=0.0, max_value=10.0, value=None, key="sequencing_ploidy")
            files_text = st.text_area(f"Files, one a line: {sequencing.FILE_FORMAT}", key="sequencing_files")
            auto_qc = st.checkbox("Judge QC automatically from the thresholds", value=True, key="sequencing_auto_qc")
            if st.form_submit_button("Record result"):
                def add_result(session: Session, actor: User | None) -> str:
                    files = [sequencing.parse_file(line) for line in files_text.splitlines() if line.strip()]
                    result = sequencing.record_result(
                        session, actor=actor, plan_code=plan_code, specimen_code=str(specimen), run_id=str(run),
                        read_count=None if reads is None else int(reads), mean_coverage=_optional(coverage),
                        contamination_pct=_optional(contamination), purity=_optional(purity),
                        ploidy=_optional(ploidy), files=files, auto_qc=auto_qc,
                    )
                    return f"{specimen} in run {run}: {result.outcome}" + (
                        f" ({result.qc_note})" if result.qc_note else "")

                run_write(add_result, flash=FLASH, error=labelled("result"), success=lambda text: text)

    pending = states[states["state"] == SampleOutcome.sequenced.value]
    if not pending.empty:
        with st.expander("Judge a sequenced result"), st.form("sequencing_outcome_form"):
            choices = [f"{r['specimen_code']} | {r['run_id']}" for r in pending.to_dict(orient="records")]
            picked = st.selectbox("Sample and run", choices, key="sequencing_outcome_pick")
            outcome = st.radio("Outcome", list(sequencing.FINAL_OUTCOMES), key="sequencing_outcome", horizontal=True)
            note = st.text_input("Note (why it failed)", key="sequencing_outcome_note")
            if st.form_submit_button("Record outcome"):
                specimen_code, run_code = str(picked).split(" | ", 1)

                def judge(session: Session, actor: User | None) -> None:
                    sequencing.set_outcome(session, actor=actor, plan_code=plan_code, specimen_code=specimen_code,
                                           run_id=run_code, outcome=str(outcome), note=note or None)

                run_write(judge, flash=FLASH, error=labelled("outcome"),
                          success=f"{specimen_code} in run {run_code}: {outcome}")
