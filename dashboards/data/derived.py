"""Cached read loaders for the derived-models page (grouped SQL in :mod:`biobank.queries.derived`)."""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import select

from biobank.models import ConsentWithdrawal, SamplingSite, Specimen
from biobank.queries import derived as models_metrics
from biobank.services import derived
from dashboards.data.core import read_session


@st.cache_data(ttl=60, show_spinner=False)
def model_list(_url: str) -> pd.DataFrame:
    with read_session() as session:
        return pd.DataFrame(models_metrics.model_rows(session))


@st.cache_data(ttl=60, show_spinner=False)
def take_rates(_url: str, by: str) -> pd.DataFrame:
    with read_session() as session:
        return pd.DataFrame(models_metrics.take_rates(session, by=by))


@st.cache_data(ttl=60, show_spinner=False)
def time_to_establishment(_url: str) -> pd.DataFrame:
    with read_session() as session:
        return pd.DataFrame(models_metrics.time_to_establishment(session))


@st.cache_data(ttl=60, show_spinner=False)
def model_detail(_url: str, code: str) -> dict[str, Any]:
    with read_session() as session:
        return derived.model_detail(session, code)


@st.cache_data(ttl=60, show_spinner=False)
def viable_sources(_url: str) -> list[str]:
    """Codes of fresh or viable cryopreserved tumour specimens still available, of donors who did not withdraw."""
    with read_session() as session:
        withdrawn = select(ConsentWithdrawal.donor_id)
        statement = (
            select(Specimen.code)
            .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)  # type: ignore[arg-type]
            .where(
                Specimen.storage_format.in_(["fresh", "viable_cryo"]),  # type: ignore[attr-defined]
                Specimen.status == "available",
                Specimen.passage_id.is_(None),  # type: ignore[union-attr]
                SamplingSite.kind == "tumour_region",
                Specimen.donor_id.not_in(withdrawn),  # type: ignore[attr-defined]
            )
            .order_by(Specimen.code)
        )
        return list(session.exec(statement).all())


def lineage_dot(detail: dict[str, Any]) -> str:
    """Graphviz DOT of the lineage: donor → lesion → region → source specimen → model → passage tree."""

    def q(text: str) -> str:
        return '"' + text.replace('"', "'") + '"'

    lines = [
        "digraph lineage {",
        "rankdir=LR;",
        'node [shape=box, style="rounded,filled", fillcolor="#f4f6f8", fontsize=10];',
    ]
    chain = [("donor", f"donor\n{detail['donor']}")]
    if detail["lesion"]:
        chain.append(("lesion", f"lesion {detail['lesion']}\n{detail['lesion_kind']}"))
    chain.append(("region", f"region {detail['sampling_site']}\n{detail['anatomical_site']}"))
    chain.append(("source", f"{detail['source_specimen']}\n{detail['source_format']}"))
    colour = {
        "established": "#c8e6c9",
        "cryobanked": "#b3e5fc",
        "failed": "#ffcdd2",
        "discontinued": "#e0e0e0",
    }
    chain.append(("model", f"{detail['code']}\n{detail['kind']} · {detail['status']}"))
    for key, label in chain:
        fill = f', fillcolor="{colour.get(detail["status"], "#fff9c4")}"' if key == "model" else ""
        lines.append(f"{q(key)} [label={q(label)}{fill}];")
    for (a, _), (b, _) in itertools.pairwise(chain):
        lines.append(f"{q(a)} -> {q(b)};")

    def walk(nodes: list[dict[str, Any]], parent: str) -> None:
        for node in nodes:
            name = f"p_{node['label']}"
            qc = node["qc"]
            mark = "" if not qc else (" ✓ QC" if all(t["passed"] for t in qc) else " ✗ QC")
            fill = "#ffffff" if not qc else ("#dcedc8" if all(t["passed"] for t in qc) else "#ffcdd2")
            label = f"{node['label']}{mark}\n{node['passaged_on']}"
            if node["specimens"]:
                label += f"\n{len(node['specimens'])} specimen(s)"
            lines.append(f'{q(name)} [label={q(label)}, fillcolor="{fill}"];')
            lines.append(f"{q(parent)} -> {q(name)};")
            walk(node["children"], name)

    walk(detail["passage_tree"], "model")
    lines.append("}")
    return "\n".join(lines)
