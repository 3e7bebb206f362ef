"""Specimen search and view: type or scan a code; SPREC, PMI, QC, location, lineage and custody history."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from biobank.config import get_settings
from biobank.services.auth import Action, can
from dashboards.data import attachments as data_attachments
from dashboards.data import cohort as data_cohort
from dashboards.data import core as data
from dashboards.data import specimens as data_specimens
from dashboards.shell import links
from dashboards.shell.actions import show_flash
from dashboards.shell.session import current_user
from dashboards.widgets.attachments import attach_photo, gallery, rows_or_message
from dashboards.widgets.charts import table_with_download
from dashboards.widgets.processing import processing_section

settings = get_settings()
zone = settings.zone
st.title("Specimen")

typed = st.text_input(
    "Specimen code or barcode", value=links.wanted("specimen") or links.wanted("code") or "", key="specimen_query",
    placeholder="Type or scan, e.g. RA0001-L01A-SF1", help="A scanner that ends with Enter submits by itself.",
)
if not typed.strip():
    st.caption("Scan a tube or type its code. Codes read donor, region, format and number: `RA0001-L02B-SF1`.")
    st.stop()

code, near = data_cohort.find_specimen(data.url(), typed)
if code is None:
    st.error(f"No specimen with code or barcode {typed.strip()!r}.")
    if near:
        st.markdown("Did you mean: " + ", ".join(f"`{c}`" for c in near))
    st.stop()

d = data_cohort.specimen(data.url(), code)
links.remember("specimen", code)  # the address bar now links to this specimen


def local(iso: str | None) -> str:
    return pd.Timestamp(iso).tz_convert(zone).strftime("%d %b %Y %H:%M") if iso else "—"


st.markdown(
    f"### {d['code']}\n"
    f"{d['material_type'].replace('_', ' ')} · {d['storage_format'].replace('_', ' ')} · {d['lineage']}"
    + (f" of `{d['parent']}`" if d["parent"] else "")
    + f" · donor **{d['donor']}** · case {d['case'] or '—'} · status **{d['status'].replace('_', ' ')}**"
)
if d["consent"].get("withdrawn"):
    st.error("The donor withdrew consent: this specimen may not be distributed, planned or exported.", icon="🚫")

m = st.columns([1, 1.3, 2, 1])
m[0].metric("PMI", f"{d['pmi_hours']:.2f} h" if d["pmi_hours"] is not None else "—",
            help=d["pmi"] or "No PMI: taken before death, or the time of death is unknown.")
m[1].metric("Remaining", f"{d['quantity_remaining']:g} / {d['quantity']:g} {d['unit']}")
m[2].metric("Location", d["location"] or "not stored")
m[3].metric("Freeze–thaw", d["freeze_thaw_count"])
# The SPREC code on a line of its own: a metric box cut its 7 elements off at the panel's width.
if d["sprec"]:
    st.markdown(f"**SPREC** {d['sprec_version']} &nbsp; `{d['sprec']}`", help="Standard PREanalytical Code of this specimen.")
else:
    st.caption("No SPREC code: blood and marrow get none.")
# Label reprint: the stock follows the format (FFPE blocks on cassette labels, everything else on tube labels).
stock = "cassette" if d["storage_format"] == "ffpe" else "cryotube"
st.download_button(f"Reprint label ({stock}, PDF)", lambda: data_specimens.selection_labels_pdf(data.url(), [code], stock),
                   f"label-{code}.pdf", "application/pdf", key="specimen_reprint_label", on_click="ignore")
if d["pmi_basis"] == "excised":
    st.caption("PMI taken from the excision time: the stabilisation time is not recorded.")

left, right = st.columns(2, gap="large")
with left:
    st.subheader("Where it came from")
    origin = {
        "sampling site": f"{d['sampling_site']} ({d['site_kind'].replace('_', ' ')})",
        "anatomical site": f"{d['anatomical_site_label']} ({d['anatomical_site']}), {d['laterality'].replace('_', ' ')}",
        "lesion": f"{d['lesion']} ({d['lesion_kind']})" if d["lesion"] else "—",
        "excised": local(d["collected_at"]) + (" (estimated)" if d.get("excised_estimated") else ""),
        "collected by": d.get("collected_by") or "—",
        "entered by": d.get("entered_by") or "—",
        "stabilised": local(d["stabilised_at"]),
        "fixation end": local(d["fixation_end_at"]),
        "fixative": d["fixative"] or "—",
        "decalcification": f"{d['decalcification_agent']} {d['decalcification_hours'] or ''} h" if d["decalcification_agent"] else "—",
        "cold interval": f"{d['cold_interval_hours']} h" if d["cold_interval_hours"] is not None else "—",
        "barcode": d["barcode"] or "—",
    }
    st.dataframe(pd.DataFrame(origin.items(), columns=["", "value"]), hide_index=True, width="stretch", key="specimen_origin")
    if d.get("notes"):
        st.markdown("**Notes**")
        st.text(d["notes"])
with right:
    st.subheader("QC")
    qc = {k.replace("_", " "): v for k, v in d["qc"].items() if v is not None}
    if d["concentration_ng_ul"] is not None:
        qc["concentration ng/µL"] = d["concentration_ng_ul"]
    receptors = {f"{k.upper()} status": v for k, v in d["receptors"].items() if v}
    qc.update(receptors)
    if qc:
        st.dataframe(pd.DataFrame([(k, str(v)) for k, v in qc.items()], columns=["", "value"]), hide_index=True,
                     width="stretch", key="specimen_qc")
    else:
        st.caption("No QC recorded yet.")
    st.subheader("Lineage")
    tree = d["lineage_tree"]
    chain = " → ".join(f"`{c}`" for c in [*tree["ancestors"], d["code"]])
    st.markdown(chain)
    if tree["children"]:
        st.markdown("\n".join(f"- `{c['code']}` ({c['lineage']}, {c['material_type']})" for c in tree["children"]))

processing_section(d)  # aliquot, extract, review, QC, dispose: for those who enter data

# Photos and files: the specimen's own (histology images, reports) and those of the region and lesion it came from
# (the gross photos taken at the table); a thumbnail opens the full image.
st.subheader("Photos and files")
show_flash("specimen_photo_flash")
own = rows_or_message(data_attachments.attachments_of, "specimen", d["code"])
origin_rows = rows_or_message(data_attachments.attachments_of, "site",
                              data_attachments.ref("site", d["donor"], d["sampling_site"])) if d["sampling_site"] else []
if d["lesion"]:
    origin_rows += rows_or_message(data_attachments.attachments_of, "lesion",
                                   data_attachments.ref("lesion", d["donor"], d["lesion"]))
gallery(own, key="specimen_attachments", empty="Nothing attached to this specimen.")
if origin_rows:
    st.markdown(f"**Where it was taken** · region {d['sampling_site']}" + (f", lesion {d['lesion']}" if d["lesion"] else ""))
    gallery(origin_rows, key="specimen_origin_attachments", empty=None)
with data.read_session() as session:
    may_attach = can(current_user(session), Action.enter)
if may_attach:
    with st.expander("Attach a photo or file"):
        attach_photo(key="specimen_photo", flash="specimen_photo_flash", camera=False,
                     default_kind="histology_image",
                     targets=[("specimen", d["code"], f"Specimen {d['code']}", f"{d['code']}")])

st.subheader("Custody history")
custody = pd.DataFrame(d["custody"], columns=["at", "kind", "user", "from", "to", "note"])
if not custody.empty:
    custody["at"] = custody["at"].map(local)
st.dataframe(custody, hide_index=True, width="stretch", key="specimen_custody_view")
table_with_download(custody, f"{d['code']}_custody", "specimen_custody", label="Download")
