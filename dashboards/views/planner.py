"""Planner: choose donors, read the suggestion on the body map and in a table, toggle specimens while the rule report
updates, save, approve (PI) and download every export."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.domain.errors import BiobankError
from biobank.domain.sites import body_position
from biobank.domain.vocab import SiteKind
from biobank.exports import service as export_service
from biobank.models import User
from biobank.models.plans import PRIMARY_UNSAMPLED_LENGTH, Assay, PlanPurpose, PlanRole
from biobank.queries.cohort import IN_STOCK
from biobank.services import budget as budgets
from biobank.services import planning
from biobank.services.auth import Action, can
from biobank.services.inputs import MAX_DEPTH
from biobank.services.plan_rules import MODEL_ROLE, PlanContext, PlanRulesError, run_rules
from dashboards.data import core as data
from dashboards.data import plans as data_plans
from dashboards.data import specimens as data_specimens
from dashboards.shell import links
from dashboards.shell.actions import in_unit_of_work, run_write, show_flash
from dashboards.shell.session import current_user
from dashboards.widgets import plan_versions
from dashboards.widgets import sequencing as sequencing_widget

NEW = "(new plan)"
FLASH = "planner_flash"
EXPORT_ERROR = "planner_export_error"  # a download whose record was refused (the plan changed since)
PICK = "planner_pick"  # the plan to show on the next run (one just saved)
#: A schematic front-view outline (x, y in the body-map convention of biobank.domain.sites).
OUTLINE = [
    (0.5, 0.0), (0.56, 0.02), (0.57, 0.08), (0.53, 0.12), (0.64, 0.16), (0.70, 0.32), (0.74, 0.48), (0.69, 0.49),
    (0.64, 0.34), (0.62, 0.47), (0.60, 0.70), (0.58, 0.97), (0.52, 0.97), (0.51, 0.55), (0.49, 0.55), (0.48, 0.97),
    (0.42, 0.97), (0.40, 0.70), (0.38, 0.47), (0.36, 0.34), (0.31, 0.49), (0.26, 0.48), (0.30, 0.32), (0.36, 0.16),
    (0.47, 0.12), (0.43, 0.08), (0.44, 0.02), (0.5, 0.0),
]
SHOWN = ["include", "role", "assay", "target_depth", "library", "paired_dna", "donor_code", "specimen_code",
         "region_code", "site_label", "storage_format", "material_type", "tumour_cellularity_pct", "ng", "a260_280",
         "din", "pmi_hours", "reason"]
EDITABLE = ("include", "role", "assay", "target_depth", "library")

st.title("Analysis planner")
st.caption("Which regions of which lesions go to sequencing, and why: the suggestion, the rules and the exports.")

url = data.url()
with data.read_session() as session:
    user = current_user(session)
    username = user.username if user is not None else None
    may_plan, may_approve = can(user, Action.plan), can(user, Action.approve)

plans = data_plans.plans(url)
choices = [NEW, *plans["code"].tolist()]
chosen_plan = st.session_state.pop(PICK, None) or links.wanted("plan")  # a plan just saved, or the one the link names
if chosen_plan in choices:
    st.session_state["planner_plan"] = chosen_plan
plan_code = st.selectbox("Plan", choices, key="planner_plan")
links.remember("plan", None if plan_code == NEW else plan_code)
show_flash(FLASH)
state = data_plans.plan_state(url, plan_code) if plan_code != NEW else None

if state is None:
    donors_available = data_plans.donor_choices(url)
    chosen = st.multiselect("Donors", donors_available["donor_code"].tolist(), key="planner_donors")
    left, right = st.columns(2)
    assay = left.selectbox("Assay", [a.value for a in Assay], key="planner_assay")
    purpose = right.selectbox("Purpose", [p.value for p in PlanPurpose], key="planner_purpose")
    donor_codes = tuple(chosen)
    status = "draft"
else:
    assay, purpose, donor_codes, status = state["assay"], state["purpose"], state["donor_codes"], state["status"]
    st.markdown(f"**{state['name']}**: {purpose.replace('_', ' ')}, {assay}, status **{status}**")

# The primary site for migration analyses: the donors' records, a named site, or unknown (DOMAIN.md §6 rule 3).
FROM_RECORD, UNKNOWN = "(as on the donor records)", "(unknown primary)"
site_codes = data_plans.site_codes()
current = UNKNOWN if state and state["unknown_primary"] else (state["primary_site_code"] if state else None) or FROM_RECORD
primary_choice = st.selectbox(
    "Primary site (for migration analyses)",
    [FROM_RECORD, UNKNOWN, *site_codes],
    index=[FROM_RECORD, UNKNOWN, *site_codes].index(current) if current in site_codes or current in (FROM_RECORD, UNKNOWN) else 0,
    key=f"planner_primary_{plan_code}",
    disabled=status != "draft" or not may_plan,
)
chosen_primary = primary_choice if primary_choice not in (FROM_RECORD, UNKNOWN) else None
chosen_unknown = primary_choice == UNKNOWN
# A migration plan without a sample of the primary declares it unsampled with the reason (DOMAIN.md §6 rule 15).
declared = (state or {}).get("primary_unsampled_reason") or ""
if status == "draft" and may_plan:
    declared = st.text_input(
        "Primary unsampled: the reason (leave empty when the plan samples the primary)",
        value=declared,
        max_chars=PRIMARY_UNSAMPLED_LENGTH,
        key=f"planner_unsampled_{plan_code}",
        help="Carried into the MACHINA and Metient notes; a plan that holds a primary sample must not declare this.",
    )
elif declared:
    st.caption(f"Primary declared unsampled: {declared}")
chosen_unsampled = " ".join(declared.split()) or None

if not donor_codes:
    st.info("Choose one or more donors to see the suggested plan.")
    st.stop()

donors, specimens = data_plans.frames(url, donor_codes)
lesions, models = data_plans.facts(url, donor_codes)
suggestion = planning.suggest_from_frames(donors, specimens, assay, purpose=purpose, lesions=lesions, models=models)
selected = suggestion.selection() if state is None else state["selection"]
reasons = {c.specimen_id: c.reason for c in suggestion.choices}

# Candidate rows: everything sequenceable of the donors (material grown in a model too, as role model); the
# selection first.
grown = specimens["model_code"].notna()
pool = specimens[specimens["status"].isin(IN_STOCK) & (
    specimens["material_type"].isin(["dna", "rna", "tissue", "buffy_coat", "whole_blood", "section"])
    | (grown & specimens["material_type"].isin(sorted(planning.TUMOUR_MATERIALS))))]
pool = pd.concat([pool, specimens[specimens["specimen_id"].isin(selected["specimen_id"])]]).drop_duplicates("specimen_id")
table = pool.merge(selected[["specimen_id", "role"]], on="specimen_id", how="left")
table["include"] = table["role"].notna()
default_role = table["site_kind"].map(
    {SiteKind.tumour_region.value: PlanRole.tumour.value, SiteKind.germline_blood.value: PlanRole.germline_normal.value}
).fillna(PlanRole.normal_tissue.value).where(table["model_code"].isna(), MODEL_ROLE)
table["role"] = table["role"].fillna(default_role)
# Each sample's assay, depth and library kit: its own (saved), else the plan's assay and its role's default depth.
budget_settings = data_plans.budget_settings()
plan_depth = state["target_depth"] if state is not None else None
own = selected.reindex(columns=["specimen_id", "assay", "target_depth", "library"])
table = table.drop(columns=[c for c in ("assay", "target_depth", "library") if c in table]).merge(
    own, on="specimen_id", how="left")
shown = [budgets.effective(role, own_assay, own_depth, plan_assay=assay, plan_depth=plan_depth, settings=budget_settings)
         for role, own_assay, own_depth in zip(table["role"], table["assay"], table["target_depth"], strict=True)]
# The depth a row shows when it has none of its own: an unchanged cell stays "the default" when the role or the
# assay is changed in the editor (so the default follows them).
default_depth = {
    code: budgets.effective(role, own_assay, None, plan_assay=assay, plan_depth=plan_depth, settings=budget_settings)[1]
    for code, role, own_assay in zip(table["specimen_code"], table["role"], table["assay"], strict=True)
}
table["assay"] = [a for a, _ in shown]
table["target_depth"] = [d for _, d in shown]
table["library"] = [v if isinstance(v, str) else "" for v in table["library"]]
saved_pairs = budgets.pairs(
    {str(k): v for k, v in r.items()}
    for r in table[table["include"]][["specimen_code", "donor_code", "region_code", "assay"]].to_dict("records"))
table["paired_dna"] = [saved_pairs.get(c, "") or ("" if a != Assay.rna_seq else "(none)")
                       for c, a in zip(table["specimen_code"], table["assay"], strict=True)]
saved_reasons = dict(zip(selected["specimen_id"], selected.get("reason", pd.Series(dtype=str)), strict=False))
table["reason"] = [saved_reasons.get(i) or reasons.get(i) or "" for i in table["specimen_id"]]
table["ng"] = table["quantity_remaining"].where(table["unit"] == "ng")
table = table.sort_values(["include", "donor_code", "region_code", "specimen_code"], ascending=[False, True, True, True])
table = table.reset_index(drop=True)

st.subheader("Specimens")
edited = st.data_editor(
    table[SHOWN],
    key=f"planner_editor_{plan_code}_{'-'.join(donor_codes)}_{assay}",
    hide_index=True,
    width="stretch",
    disabled=[c for c in SHOWN if c not in EDITABLE] if status == "draft" and may_plan else True,
    column_config={
        "include": st.column_config.CheckboxColumn("include", help="In the plan"),
        "role": st.column_config.SelectboxColumn("role", options=[r.value for r in PlanRole], required=True),
        "assay": st.column_config.SelectboxColumn("assay", options=[a.value for a in Assay], required=True,
                                                  help="This sample's assay (matched RNA-seq of a region, a panel...)"),
        "target_depth": st.column_config.NumberColumn(
            "depth", min_value=0.1, max_value=MAX_DEPTH, format="%g",
            help="x of coverage; million read pairs for RNA-seq. Defaults by role: tumour deeper than the normal."),
        "library": st.column_config.TextColumn("library kit", max_chars=budgets.LIBRARY_LENGTH),
        "paired_dna": st.column_config.TextColumn("paired DNA", help="RNA-seq: the DNA sample of the same region"),
        "tumour_cellularity_pct": st.column_config.NumberColumn("cellularity %", format="%.0f"),
        "pmi_hours": st.column_config.NumberColumn("PMI h", format="%.1f"),
        "ng": st.column_config.NumberColumn("ng left", format="%.0f"),
    },
)
included = edited[edited["include"]]
ids = dict(zip(table["specimen_code"], table["specimen_id"], strict=True))


def own_values(row: pd.Series) -> tuple[str | None, float | None, str | None]:
    """What a row of the editor holds of its own: an assay other than the plan's, a depth other than the default
    it was shown with, a library kit (None: the default)."""
    depth = row["target_depth"]
    own_depth = None if depth is None or pd.isna(depth) or float(depth) == default_depth[row["specimen_code"]] else float(depth)
    own_assay = None if row["assay"] in (None, assay) or pd.isna(row["assay"]) else str(row["assay"])
    library = row["library"] if isinstance(row["library"], str) and row["library"].strip() else None
    return own_assay, own_depth, library


owns = [own_values(row) for _, row in included.iterrows()]
selection = pd.DataFrame({
    "specimen_id": [ids[c] for c in included["specimen_code"]], "role": included["role"].tolist(),
    "assay": [o[0] for o in owns], "target_depth": [o[1] for o in owns], "library": [o[2] for o in owns]},
    columns=["specimen_id", "role", "assay", "target_depth", "library"])

ctx = PlanContext(
    purpose=purpose, assay=assay, donors=donors, specimens=specimens, selection=selection,
    primary_site_code=chosen_primary,
    unknown_primary=chosen_unknown,
    primary_unsampled_reason=chosen_unsampled,
    target_depth=state["target_depth"] if state is not None else None,
    lesions=lesions,
    models=models,
    budget_settings=budget_settings,
)
report = run_rules(ctx)

# The budget of the rows as they stand in the editor (no database write): Gb, lanes of the chosen flow cell kind, cost.
st.subheader("Budget")
kinds = sorted(budget_settings.flow_cells)
plan_kind = ((state or {}).get("flow_cell") or budget_settings.flow_cell)
flow_cell = st.selectbox(
    "Flow cell", kinds, index=kinds.index(plan_kind) if plan_kind in kinds else 0, key=f"planner_flow_cell_{plan_code}",
    help="The budget counts lanes of this kind; saving a draft keeps it with the plan.",
)
cost: budgets.Budget | None
try:
    cost = planning.budget_of(ctx, flow_cell=flow_cell)
except BiobankError as exc:  # a misconfigured flow-cell setting: say so, the rest of the page still works
    cost = None
    st.error(f"Budget: {exc}")
if cost is not None:
    cells = st.columns(4)
    cells[0].metric("Sequence (Gb)", f"{cost.gb:,.0f}")
    cells[1].metric("Lanes", cost.lanes)
    cells[2].metric("Flow cells", cost.flow_cells)
    cells[3].metric(f"Cost ({cost.currency})", f"{cost.total_cost:,.0f}")
    st.caption(f"Budget: {cost.line()}")
    rna_pairs = [f"{s.specimen_code} \u2194 {s.paired_dna or 'no DNA sample of its region'}"
                 for s in cost.samples if s.assay == Assay.rna_seq]
    if rna_pairs:
        st.caption("DNA/RNA pairs: " + "; ".join(rna_pairs))

map_col, report_col = st.columns([1, 2])
with map_col:
    st.subheader("Body map")
    points = ctx.selected_frame()
    if not points.empty:
        xy = [body_position(code, side if side in ("left", "right") else None) for code, side in zip(points["site_code"], points["laterality"], strict=True)]
        points = points.assign(x=[p[0] for p in xy], y=[p[1] for p in xy])
        outline = pd.DataFrame(OUTLINE, columns=["x", "y"]).reset_index()
        body = alt.Chart(outline).mark_line(color="#bbbbbb").encode(
            x=alt.X("x:Q", scale=alt.Scale(domain=[0, 1]), axis=None), y=alt.Y("y:Q", scale=alt.Scale(domain=[1, 0]), axis=None), order="index:Q"
        )
        dots = alt.Chart(points[["x", "y", "role", "specimen_code", "site_label", "region_code"]]).mark_circle(size=140, opacity=0.8).encode(
            x="x:Q", y="y:Q", color=alt.Color("role:N", title=None), tooltip=["specimen_code", "region_code", "site_label", "role"]
        )
        st.altair_chart((body + dots).properties(height=420), width="stretch")
with report_col:
    st.subheader("Rule report")
    cols = st.columns(2)
    cols[0].metric("Errors", len(report.errors))
    cols[1].metric("Warnings", len(report.warnings))
    if report.findings:
        st.dataframe(report.to_frame(), hide_index=True, width="stretch", key="planner_report")
    else:
        st.success("Every rule passes.")
for line in suggestion.skipped:
    st.caption(f"Not suggested: {line}")

rows = [
    planning.SampleChoice(c, r, reasons.get(ids[c]) or None, *o)
    for c, r, o in zip(included["specimen_code"], included["role"], owns, strict=True)
]
if may_plan and state is None:
    with st.form("planner_new"):
        code = st.text_input("Plan code", key="planner_code", placeholder="WGS-2026-01")
        name = st.text_input("Plan name", key="planner_name")
        depth = st.number_input("Target depth (x; empty: each role's default, e.g. WGS tumour 90x, normal 30x)",
                                value=None, min_value=0.1, max_value=MAX_DEPTH, key="planner_depth")
        if st.form_submit_button("Save plan", type="primary"):

            def create(session: Session, actor: User | None) -> str:
                planning.create_plan(session, actor=actor, code=code.strip(), name=name, purpose=purpose,
                                     assay=assay, donor_codes=list(donor_codes), target_depth=depth or None, use_suggestion=False,
                                     primary_site_code=chosen_primary, unknown_primary=chosen_unknown,
                                     primary_unsampled_reason=chosen_unsampled, flow_cell=flow_cell)
                planning.set_specimens(session, actor=actor, plan_code=code.strip(), selection=rows)
                return code.strip()

            run_write(create, flash=FLASH, on_success=lambda saved: st.session_state.__setitem__(PICK, saved),
                      success=lambda saved: f"Plan {saved} saved as a draft: review it below, then approve and export.")
elif state is not None and status == "draft":
    left, right = st.columns(2)

    def save(session: Session, actor: User | None) -> None:
        planning.update_plan_settings(session, actor=actor, plan_code=plan_code,
                                      primary_site_code=chosen_primary, unknown_primary=chosen_unknown)
        planning.set_primary_unsampled(session, actor=actor, plan_code=plan_code, reason=chosen_unsampled)
        planning.set_flow_cell(session, actor=actor, plan_code=plan_code, flow_cell=flow_cell)
        planning.set_specimens(session, actor=actor, plan_code=plan_code, selection=rows)

    def save_and_approve(session: Session, actor: User | None) -> None:
        save(session, actor)
        planning.approve_plan(session, actor=actor, plan_code=plan_code)

    def refusal(exc: BiobankError) -> str:
        if isinstance(exc, PlanRulesError):
            return f"Approval refused: {len(exc.report.errors)} rule error(s) remain. Fix what the report flags."
        return str(exc)

    if may_plan and left.button("Save changes", key="planner_save"):
        # No rerun: the editor keeps its edits as row positions, and a rerun re-sorts the table under them.
        run_write(save, success="Saved.", rerun=False)
    if may_approve and right.button("Approve", key="planner_approve", type="primary"):
        run_write(save_and_approve, error=refusal, flash=FLASH,
                  success=f"Plan {plan_code} approved with {len(rows)} specimen(s): its exports are below.")

if state is not None:
    st.download_button("Pick list (PDF)", lambda: data_specimens.plan_pick_list_pdf(url, plan_code), f"pick-{plan_code}.pdf",
                       "application/pdf", key="planner_pick_list", on_click="ignore",
                       help="The plan's specimens with where each is stored, sorted by freezer, rack, box and position.")

if state is not None:
    plan_versions.render(plan_code, user)  # reservations, amend, cancel
    sequencing_widget.render(plan_code, user)  # what came back from sequencing

if state is not None and may_plan and username:
    st.subheader("Exports")
    st.caption("Each download is recorded in the export log (who, when, the files' SHA-256).")
    if (refused := st.session_state.pop(EXPORT_ERROR, None)) is not None:
        st.error(refused)
    # the files are made before their buttons can be drawn: a large plan's take a while, so say how far it got
    targets = list(export_service.TARGETS)
    preparing = st.progress(0.0, text=f"Preparing {len(targets)} exports")
    for done, target in enumerate(targets, start=1):
        # sarek needs its input files, which live where the pipeline runs: the page offers the template to fill in
        request = data_plans.export_request(plan_code, target)
        files, problem = data_plans.export_bytes(url, plan_code, target, username)
        preparing.progress(done / len(targets), text=f"Prepared {done} of {len(targets)} exports ({target})")
        if files is None:
            st.caption(f"{target}: {problem}")
            continue

        def served(request: export_service.ExportRequest = request, files: dict[str, bytes] = files) -> None:
            """The click is the export: recorded in the export log with the files as served (a callback: it runs
            before the page does again)."""
            try:
                in_unit_of_work(lambda session, actor: export_service.record_served(
                    session, actor=actor, request=request, files=files))
            except BiobankError as exc:
                st.session_state[EXPORT_ERROR] = f"{request.target} export not recorded: {exc}"

        if request.template:
            name, content = next(iter(files.items()))
            st.download_button(f"Download sarek TEMPLATE ({name}): fill in the FASTQ or BAM/CRAM paths", content,
                               f"{plan_code}-template-{name}", key=f"planner_dl_{target}", on_click=served,
                               help="sarek stops at start-up until lane,fastq_1,fastq_2 (or bam,bai) are filled in; "
                                    "'biobank export sarek --fastq-dir DIR' (or --bam-dir DIR) fills them in.")
        elif target in export_service.SINGLE_FILE and len(files) == 1:
            name, content = next(iter(files.items()))
            st.download_button(f"Download {target} ({name})", content, f"{plan_code}-{name}", key=f"planner_dl_{target}",
                               on_click=served)
        else:
            st.download_button(f"Download {target} (zip)", export_service.zip_files(files, f"{plan_code}-{target}"),
                               f"{plan_code}-{target}.zip", "application/zip", key=f"planner_dl_{target}",
                               on_click=served)
