"""Donor view: consent state, clinical and post-mortem timelines, body map, lesions and regions, specimen lineage,
models; the phylogeny and migration results imported for the donor, drawn on the body map (migrations as arrows
between the sampled sites, clones coloured, the regions already sequenced ringed), with an upload form for a PI."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.models import User
from biobank.models.plans import ResultKind, ResultTool
from biobank.queries import results as result_reads
from biobank.queries.sequencing import sequenced_regions
from biobank.services import results as result_service
from biobank.services.auth import Action, can
from biobank.services.donors import get_donor
from dashboards.data import attachments as data_attachments
from dashboards.data import cohort as data_cohort
from dashboards.data import core as data
from dashboards.data import enrolment as data_enrolment
from dashboards.shell import links
from dashboards.shell.actions import run_write, show_flash
from dashboards.shell.session import current_user
from dashboards.widgets.attachments import gallery, rows_or_message
from dashboards.widgets.bodymap import (
    body_map,
    clone_dots,
    migration_arrows,
    photo_marks,
    result_layers,
    sequenced_rings,
    site_points,
)
from dashboards.widgets.charts import pmi_rules, table_with_download
from dashboards.widgets.lineage import lineage_dot

settings = get_settings()
RESULTS_FLASH = "donor_results_flash"
NO_RESULT = "(none)"


@st.cache_data(ttl=30, show_spinner=False)
def results_of(url: str, code: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The donor's imported results (with what was parsed) and the region codes already sequenced."""
    with data.read_session(url) as session:
        donor = get_donor(session, code)
        assert donor.id is not None
        regions = sequenced_regions(session, [donor.id])
        return result_reads.donor_results(session, code), [str(r) for r in regions["region_code"]]


codes = data_cohort.donor_codes(data.url())
st.title("Donor view")
if not codes:
    st.info("No donors yet.")
    st.stop()

wanted = links.wanted("donor")
if wanted is None and links.wanted("case") is not None:  # a case link opens its donor
    wanted = data_cohort.donor_of_case(data.url(), links.wanted("case") or "")
code = st.selectbox("Donor", codes, index=links.index_of(codes, "donor", default=codes.index(wanted) if wanted in codes else 0),
                    key="donor_code")
view = data_cohort.donor(data.url(), code)
if links.wanted("case") is None or view["detail"]["case"] != links.wanted("case"):
    links.remember("case", None)
    links.remember("donor", code)
detail = view["detail"]

receptors = ", ".join(f"{k.upper()} {v}" for k, v in detail["receptors"].items() if v) or "receptors not recorded"
st.markdown(
    f"### {detail['code']} · {detail['primary_diagnosis'] or 'diagnosis not recorded'}\n"
    f"{detail['sex']}, {detail['age_at_death'] or '?'} years at death · ICD-O-3 {detail['icdo3'] or '—'} · {receptors} · "
    f"case {detail['case'] or 'none'} · status {detail['status'].replace('_', ' ')}"
)
if detail["consent_withdrawn"]:
    w = detail["withdrawal"]
    st.error(
        f"**Consent withdrawn** on {w['at'][:10]} (requested by {w['requested_by'].replace('_', ' ')}): {w['reason']}. "
        "Nothing is deleted, but this donor's material is blocked from distribution, analysis plans and exports.",
        icon="🚫",
    )
elif detail["consent_scopes"]:
    st.success("Consent covers: " + ", ".join(s.replace("_", " ") for s in detail["consent_scopes"]), icon="✅")
else:
    st.warning("No consent is recorded for this donor.", icon="⚠️")
history = data_enrolment.consent_history(data.url(), code)
if history["versions"] or history["withdrawal"]:
    with st.expander(f"Consent history: {len(history['versions'])} version(s)"
                     + (", then withdrawn" if history["withdrawal"] else "")):
        st.caption("Each re-consent, scope change or partial withdrawal is a new version; the latest governs.")
        st.dataframe(data_enrolment.history_frame(history), hide_index=True, width="stretch", key="donor_consents")
        if history["withdrawal"]:
            w = history["withdrawal"]
            material = {"destroy": "the material held was destroyed",
                        "keep_blocked": "the material is kept, blocked from every use",
                        "allow_distributed": "the material is kept blocked; what was already shipped "
                                             f"({w['distributed_specimens']} specimen(s)) may still be used by its recipients",
                        }.get(w["material"], w["material"])
            st.markdown(
                f"**Withdrawn** {w['withdrawn_at'].astimezone(settings.zone):%d %b %Y %H:%M}, requested by "
                f"{w['requested_by'].replace('_', ' ')}, entered by {w['entered_by'] or '—'}: {w['reason']}. "
                f"Material: {material}."
            )

map_col, main_col = st.columns([2, 5], gap="large")
sites = view["sites"]
# The donor's photos and files (what the role may see); each image of a region, its lesion or its specimens is
# counted on the region's site on the body map, and shown below the map for the site chosen.
attachments = rows_or_message(data_attachments.donor_attachments, code)
photos = data_attachments.photos_by_site(attachments, sites, view["specimens"])
if not sites.empty:
    sites = sites.assign(photos=[len(photos.get(str(s), [])) for s in sites["sampling_site"]])


def photos_at(codes: str) -> list[dict[str, Any]]:
    """The photos of a body-map point (its regions' codes, comma-separated), each once (a lesion's photo is on
    every region of the lesion)."""
    return list({r["id"]: r for c in codes.split(",") for r in photos.get(c.strip(), [])}.values())

results, sequenced = results_of(data.url(), code)
with map_col:
    st.subheader("Body map")
    if sites.empty:
        st.caption("Nothing sampled yet.")
    else:
        drawable = [r for r in results if r["parsed"].get("edges") or r["parsed"].get("presence")]
        options = [NO_RESULT, *(r["code"] for r in drawable)]
        labels = {r["code"]: f"{r['code']} · {r['tool']} {r['kind'].replace('_', ' ')}" for r in drawable}
        shown_code = st.selectbox("Result drawn", options, index=1 if drawable else 0, key="donor_result_drawn",
                                  format_func=lambda c: labels.get(c, c))
        parsed: dict[str, Any] = next((r["parsed"] for r in drawable if r["code"] == shown_code), {})
        arrows, dots = migration_arrows(parsed, width=260, height=540), clone_dots(parsed)
        rings = sequenced_rings(sites, sequenced)
        overlays = result_layers(arrows, dots, rings, parsed.get("clones", []))
        points = site_points(sites)
        if "photos" in points.columns:
            points["photos"] = [len(photos_at(str(c))) for c in points["codes"]]
        overlays += photo_marks(points)
        st.altair_chart(body_map(points, width=260, height=540, overlays=overlays), width="content",
                        key="donor_body_map")
        notes = []
        if not rings.empty:
            notes.append("dashed rings: regions already sequenced")
        if not arrows.empty:
            notes.append(f"arrows: {len(parsed.get('edges', []))} migration route(s), coloured by clone")
        if not dots.empty:
            notes.append("small dots: the clones found at each site")
        if photos:
            notes.append("“n photos” beside a site: its photos, shown below")
        if notes:
            st.caption("; ".join(notes) + ".")
        if photos:
            place = {f"{r.site} ({r.codes})": photos_at(str(r.codes))
                     for r in points[points["photos"] > 0].itertuples(index=False)}
            at = st.selectbox("Photos at", list(place), key="donor_photo_site",
                              format_func=lambda p: f"{p} · {len(place[p])} photo(s)")
            gallery(place.get(at or "", []), key="donor_site_photos", columns=2, record=True)
with main_col:
    st.subheader("Timeline")
    timeline = view["timeline"]
    course = pd.DataFrame(timeline["course"])
    if not course.empty:
        course["from"] = course["start"] / 30.44
        course["to"] = course["end"].astype(float) / 30.44
        lanes = ["Diagnosis", "Treatment", "Events", "Death"]
        base = alt.Chart(course).encode(
            y=alt.Y("lane:N", sort=lanes, title=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=["lane", "label", alt.Tooltip("start:Q", title="days before death (−)")],
        )
        bars = base.transform_filter("isValid(datum.end)").mark_bar(height=14, opacity=0.85, stroke="white").encode(
            x=alt.X("from:Q", title="months relative to death"), x2="to:Q",
            color=alt.Color("label:N", legend=None, scale=alt.Scale(scheme="tableau10")),
        )
        dots = base.transform_filter("!isValid(datum.end)").mark_point(size=120, filled=True, shape="diamond", color="#444").encode(
            x="from:Q"
        )
        st.altair_chart(alt.layer(bars, dots).resolve_scale(color="independent").properties(height=170), width="stretch")
        st.caption("Diagnosis, treatment lines (hover for agents and response) and events before death, in months.")
    post = pd.DataFrame(timeline["post_mortem"])
    specimens = view["specimens"]
    if not post.empty:
        post["lane"] = post["event"].str.replace(r" \(.*\)$", "", regex=True)
        primaries = specimens[(specimens["lineage"] == "primary") & specimens["pmi_h"].notna()] if not specimens.empty else specimens
        lanes = [*post["lane"].tolist()[:2], "specimen PMIs", *post["lane"].tolist()[2:]]
        layers = [pmi_rules()]
        y = alt.Y("lane:N", sort=lanes, title=None, axis=alt.Axis(labelOverlap=False))
        if not primaries.empty:
            layers.append(
                alt.Chart(primaries.assign(lane="specimen PMIs")).mark_tick(thickness=2, size=12, opacity=0.6, color="#4c78a8").encode(
                    x=alt.X("pmi_h:Q", title="hours after death"), y=y,
                    tooltip=["code", "storage_format", alt.Tooltip("pmi_h:Q", title="PMI (h)")],
                )
            )
        layers.append(
            alt.Chart(post).mark_point(size=80, filled=True, color="#222").encode(
                x=alt.X("hours:Q", title="hours after death"), y=y, tooltip=["event", "hours"]
            )
        )
        st.altair_chart(alt.layer(*layers).properties(height=28 * len(lanes) + 100), width="stretch")
    st.caption("After death: refrigeration, autopsy start and end, and each primary specimen's PMI.")
    guessed = [e for e in post["event"] if e.endswith("(estimated)")] if not post.empty else []
    if guessed:
        st.caption(f"Estimated, not recorded: {', '.join(g.removesuffix(' (estimated)') for g in guessed)} "
                   "(from the first and last sample; hover for the times).")
    st.subheader("Lesions and regions")
    lesions = view["lesions"]
    if lesions.empty:
        st.caption("No lesions recorded.")
    else:
        shown = lesions.assign(
            laterality=lesions["laterality"].replace({"not_applicable": "", "unknown": "?"}),
            kind=lesions["kind"].str.replace("_", " "),
        ).rename(columns={"laterality": "side", "bone_phenotype": "bone", "size_mm": "mm", "imaging": "imaging"})
        # Empty cells stay empty: text columns get "", the size is written as text ("" when not measured) so no
        # column mixes numbers with "" (which pyarrow refused, with a traceback in the server log) or shows "None".
        shown["mm"] = shown["mm"].map(lambda v: "" if v is None or pd.isna(v) else f"{v:g}")
        text = shown.select_dtypes(include=["object", "str"]).columns
        shown[text] = shown[text].fillna("")
        st.dataframe(
            shown, hide_index=True, width="stretch", key="donor_lesions",
            column_config={"lesion": st.column_config.TextColumn(width="small"), "mm": st.column_config.TextColumn("mm", width="small"),
                           "side": st.column_config.TextColumn(width="small"), "er": st.column_config.TextColumn("ER", width="small")},
        )

st.subheader("Photos and files")
gallery(attachments, key="donor_attachments", record=True,
        empty="Nothing attached: photos are taken on the live board, files attached with `biobank attach`.")

st.subheader("Specimen lineage")
if specimens.empty:
    st.caption("No specimens.")
else:
    site_codes = sorted(specimens["sampling_site"].unique())
    chosen = st.multiselect("Sampling sites", site_codes, default=site_codes[:3], key="donor_lineage_sites")
    subset = specimens[specimens["sampling_site"].isin(chosen)]
    if subset.empty:
        st.caption("Choose one or more sampling sites.")
    else:
        st.graphviz_chart(lineage_dot(subset, sites))
    table_with_download(specimens, f"{code}_specimens", "donor_specimens", label="All specimens")

st.subheader("Phylogeny and migration results")
show_flash(RESULTS_FLASH)
if results:
    listed = pd.DataFrame([{k: v for k, v in r.items() if k != "parsed"} for r in results])
    st.dataframe(listed[["code", "tool", "kind", "file_name", "sites", "migrations", "clones", "note", "imported_at"]],
                 hide_index=True, width="stretch", key="donor_results")
    drawn = next((r for r in results if r["code"] == st.session_state.get("donor_result_drawn")), None)
    if drawn is not None and drawn["parsed"].get("edges"):
        st.dataframe(pd.DataFrame([
            {"from": e["source"], "to": e["target"], "migrations": e.get("count", 1),
             "clones": ", ".join(e.get("clones", []))} for e in drawn["parsed"]["edges"]
        ]), hide_index=True, width="stretch", key="donor_result_edges")
else:
    st.caption("No results imported yet: a PI imports a CONIPHER tree or a MACHINA/Metient migration graph below.")
with data.read_session() as session:
    may_import = can(current_user(session), Action.plan)
if may_import and not detail["consent_withdrawn"]:
    with st.expander("Import a result", expanded=not results), st.form("donor_result_import", clear_on_submit=True):
        st.caption("CONIPHER: allTrees.txt (clusterInfo.txt as the second file for clones per region). MACHINA or "
                   "Metient: the migration graph G-*.graph, or a clone tree T-*.tree with its T-*.labeling. Site "
                   "labels are those of our MACHINA/Metient exports, or region and specimen codes.")
        tool = st.selectbox("Tool", [t.value for t in ResultTool], key="donor_result_tool")
        kind = st.selectbox("Kind", [k.value for k in ResultKind], index=1, key="donor_result_kind")
        upload = st.file_uploader("Result file", key="donor_result_file")
        second = st.file_uploader("Second file (labelling or clusterInfo.txt, optional)", key="donor_result_second")
        plan = st.text_input("Plan code (optional)", key="donor_result_plan")
        note = st.text_input("Note (optional)", key="donor_result_note")
        if st.form_submit_button("Import", type="primary"):
            if upload is None:
                st.error("Choose the result file.")
            else:
                content, name = upload.getvalue(), upload.name
                extra = (second.name, second.getvalue()) if second is not None else None

                def do_import(session: Session, actor: User | None) -> str:
                    return result_service.import_result(
                        session, actor=actor, donor_code=code, tool=tool, kind=kind, file_name=name,
                        content=content, plan_code=plan or None, note=note or None,
                        companion_name=extra[0] if extra else None, companion=extra[1] if extra else None,
                    ).code

                run_write(do_import, flash=RESULTS_FLASH,
                          success=lambda saved: f"Result {saved} imported: it is drawn on the body map.")

models = view["models"]
if not models.empty:
    st.subheader("Derived models")
    table_with_download(models, f"{code}_models", "donor_models", label="Models", expanded=True)

