"""Donor view: consent state, clinical and post-mortem timelines, body map, lesions and regions, specimen lineage,
models."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from biobank.config import get_settings
from dashboards.data import cohort as data_cohort
from dashboards.data import core as data
from dashboards.data import enrolment as data_enrolment
from dashboards.shell import links
from dashboards.widgets.bodymap import body_map, site_points
from dashboards.widgets.charts import pmi_rules, table_with_download
from dashboards.widgets.lineage import lineage_dot

settings = get_settings()
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
with map_col:
    st.subheader("Body map")
    if sites.empty:
        st.caption("Nothing sampled yet.")
    else:
        st.altair_chart(body_map(site_points(sites), width=260, height=540), width="content")
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

models = view["models"]
if not models.empty:
    st.subheader("Derived models")
    table_with_download(models, f"{code}_models", "donor_models", label="Models", expanded=True)

