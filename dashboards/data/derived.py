"""Cached read loaders for the derived-models page (grouped SQL in :mod:`biobank.queries.derived`)."""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd
import streamlit as st
from sqlmodel import select

from biobank.domain.vocab import SiteKind, SpecimenStatus
from biobank.domain.vocab_derived import VIABLE_SOURCE_FORMATS, ModelStatus
from biobank.models import ConsentWithdrawal, SamplingSite, Specimen
from biobank.queries import derived as derived_reads
from biobank.queries import derived as models_metrics
from dashboards.data.core import read_session


@st.cache_data(ttl=60, show_spinner=False)
def model_list(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(models_metrics.model_rows(session))


@st.cache_data(ttl=60, show_spinner=False)
def take_rates(url: str, by: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(models_metrics.take_rates(session, by=by))


@st.cache_data(ttl=60, show_spinner=False)
def time_to_establishment(url: str) -> pd.DataFrame:
    with read_session(url) as session:
        return pd.DataFrame(models_metrics.time_to_establishment(session))


@st.cache_data(ttl=60, show_spinner=False)
def model_detail(url: str, code: str) -> dict[str, Any]:
    with read_session(url) as session:
        return derived_reads.model_detail(session, code)


@st.cache_data(ttl=60, show_spinner=False)
def viable_sources(url: str) -> list[str]:
    """Codes of tumour specimens a model can start from (the library's :data:`VIABLE_SOURCE_FORMATS`: fresh or viable
    cryopreserved), still available, not themselves from a passage, of donors who did not withdraw."""
    with read_session(url) as session:
        withdrawn = select(ConsentWithdrawal.donor_id)
        statement = (
            select(Specimen.code)
            .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
            .where(
                Specimen.storage_format.in_(VIABLE_SOURCE_FORMATS),  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
                Specimen.status == SpecimenStatus.available.value,
                Specimen.passage_id.is_(None),  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
                SamplingSite.kind == SiteKind.tumour_region.value,
                Specimen.donor_id.not_in(withdrawn),  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
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
        ModelStatus.established: "#c8e6c9",
        ModelStatus.cryobanked: "#b3e5fc",
        ModelStatus.failed: "#ffcdd2",
        ModelStatus.discontinued: "#e0e0e0",
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
