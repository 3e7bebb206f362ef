"""The specimen lineage of a donor as a Graphviz DOT tree: sampling site → primary specimens → aliquots and
derivatives."""

from __future__ import annotations

import pandas as pd

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
