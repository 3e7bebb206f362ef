"""Lineage as Graphviz DOT: a donor's specimens (sampling site → primary specimens → aliquots and derivatives) and a
derived model's (donor → lesion → region → source specimen → model → passage tree)."""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd

from biobank.domain.vocab_derived import ModelStatus
from dashboards.widgets.charts import KIND_COLOURS

FORMAT_FILL = {
    "snap_frozen": "#dbe9f6",
    "oct": "#e3e0f3",
    "ffpe": "#fbe7d3",
    "rnalater": "#e0f0e3",
    "viable_cryo": "#fde2e1",
    "fresh": "#fff4c2",
    "frozen": "#e8eef3",
}


def _quote(text: str) -> str:
    """A DOT string literal; a newline in the text becomes a line break in the label."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def lineage_dot(specimens: pd.DataFrame, sites: pd.DataFrame) -> str:
    """DOT for the given specimens (columns code, parent, sampling_site, lineage, material_type, storage_format,
    status) with a root per sampling site coloured by what it was sampled as."""
    category = dict(zip(sites["sampling_site"], sites["category"], strict=True)) if not sites.empty else {}
    label = dict(zip(sites["sampling_site"], sites["site"], strict=True)) if not sites.empty else {}
    lines = [
        "digraph lineage {",
        '  rankdir=LR; nodesep=0.12; ranksep=0.35;',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, height=0.3];',
        '  edge [color="#888888", arrowsize=0.6];',
    ]
    for site in sorted(specimens["sampling_site"].unique()):
        colour = KIND_COLOURS.get(category.get(site, ""), "#999999")
        text = f"{site}\n{label.get(site, '')}"
        lines.append(f'  {_quote("site:" + site)} [label={_quote(text)}, fillcolor={_quote(colour)}, fontcolor="white", shape=box];')
    codes = set(specimens["code"])
    for row in specimens.itertuples(index=False):
        fill = FORMAT_FILL.get(row.storage_format, "#eeeeee")
        status = "" if row.status == "available" else f" [{row.status}]"
        detail = row.storage_format if row.lineage == "primary" else f"{row.lineage}: {row.material_type}"
        text = f"{row.code}\n{detail}{status}"
        style = '"rounded,filled,dashed"' if row.status in ("depleted", "disposed") else '"rounded,filled"'
        lines.append(f"  {_quote(row.code)} [label={_quote(text)}, fillcolor={_quote(fill)}, style={style}];")
        parent = row.parent if isinstance(row.parent, str) and row.parent in codes else None
        source = parent or f"site:{row.sampling_site}"
        lines.append(f"  {_quote(source)} -> {_quote(row.code)};")
    lines.append("}")
    return "\n".join(lines)


def model_lineage_dot(detail: dict[str, Any]) -> str:
    """Graphviz DOT of the lineage: donor → lesion → region → source specimen → model → passage tree."""

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
        lines.append(f"{_quote(key)} [label={_quote(label)}{fill}];")
    for (a, _), (b, _) in itertools.pairwise(chain):
        lines.append(f"{_quote(a)} -> {_quote(b)};")

    def walk(nodes: list[dict[str, Any]], parent: str) -> None:
        for node in nodes:
            name = f"p_{node['label']}"
            qc = node["qc"]
            mark = "" if not qc else (" ✓ QC" if all(t["passed"] for t in qc) else " ✗ QC")
            fill = "#ffffff" if not qc else ("#dcedc8" if all(t["passed"] for t in qc) else "#ffcdd2")
            label = f"{node['label']}{mark}\n{node['passaged_on']}"
            if node["specimens"]:
                label += f"\n{len(node['specimens'])} specimen(s)"
            lines.append(f'{_quote(name)} [label={_quote(label)}, fillcolor="{fill}"];')
            lines.append(f"{_quote(parent)} -> {_quote(name)};")
            walk(node["children"], name)

    walk(detail["passage_tree"], "model")
    lines.append("}")
    return "\n".join(lines)
