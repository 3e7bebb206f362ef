"""A schematic human figure (front view) drawn with Altair marks, with sampled sites marked on it.

Coordinates follow ``biobank.domain.sites``: x and y in [0, 1], x = 0 the image's left (the figure's right side), y = 0 the
top of the head. The figure's parts are rounded rectangles in the same coordinates, so every site's ``body_x/body_y``
lands on the right organ. The planner page can reuse :func:`body_map` with its own points.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from biobank.domain.sites import body_position, get_site
from dashboards.widgets.charts import KIND_COLOURS

WIDTH, HEIGHT = 300, 620

#: (part, x, x2, y, y2, corner radius in pixels)
FIGURE: tuple[tuple[str, float, float, float, float, int], ...] = (
    ("head", 0.42, 0.58, 0.000, 0.115, 40),
    ("neck", 0.465, 0.535, 0.105, 0.155, 4),
    ("trunk", 0.32, 0.68, 0.145, 0.475, 26),
    ("pelvis", 0.34, 0.66, 0.420, 0.510, 22),
    ("right arm", 0.215, 0.305, 0.160, 0.480, 20),
    ("left arm", 0.695, 0.785, 0.160, 0.480, 20),
    ("right hand", 0.205, 0.295, 0.470, 0.540, 14),
    ("left hand", 0.705, 0.795, 0.470, 0.540, 14),
    ("right leg", 0.355, 0.490, 0.480, 0.960, 22),
    ("left leg", 0.510, 0.645, 0.480, 0.960, 22),
    ("right foot", 0.345, 0.480, 0.945, 0.995, 10),
    ("left foot", 0.520, 0.655, 0.945, 0.995, 10),
)


def figure_frame() -> pd.DataFrame:
    return pd.DataFrame(FIGURE, columns=["part", "x", "x2", "y", "y2", "radius"])


def site_points(sites: pd.DataFrame) -> pd.DataFrame:
    """Body-map points for rows with ``site_code``, ``laterality`` and ``category``: one point per site and category,
    with how many sampling sites and specimens it stands for."""
    if sites.empty:
        return pd.DataFrame(columns=["x", "y", "site", "category", "sampling_sites", "specimens", "codes"])
    rows = []
    for row in sites.itertuples(index=False):
        side = row.laterality if row.laterality in ("left", "right") else None
        x, y = body_position(row.site_code, side)
        label = get_site(row.site_code).label + (f" ({side})" if side else "")
        rows.append({"x": x, "y": y, "site": label, "category": row.category, "code": row.sampling_site,
                     "specimens": int(getattr(row, "specimens", 0))})
    frame = pd.DataFrame(rows)
    return (
        frame.groupby(["x", "y", "site", "category"], as_index=False)
        .agg(sampling_sites=("code", "count"), specimens=("specimens", "sum"), codes=("code", lambda c: ", ".join(sorted(c))))
    )


def body_map(points: pd.DataFrame, *, width: int = WIDTH, height: int = HEIGHT) -> alt.LayerChart:
    x_scale = alt.Scale(domain=[0.1, 0.9], nice=False)
    y_scale = alt.Scale(domain=[0, 1], reverse=True, nice=False)
    parts = []
    for radius, group in figure_frame().groupby("radius"):
        parts.append(
            alt.Chart(group)
            .mark_rect(cornerRadius=int(radius), color="#e8e2da", stroke="#b9ada0", strokeWidth=1)
            .encode(
                x=alt.X("x:Q", scale=x_scale, axis=None),
                x2="x2:Q",
                y=alt.Y("y:Q", scale=y_scale, axis=None),
                y2="y2:Q",
                tooltip=alt.value(None),
            )
        )
    categories = [c for c in KIND_COLOURS if c in set(points["category"])] if not points.empty else []
    marks = (
        alt.Chart(points)
        .mark_circle(opacity=0.85, stroke="white", strokeWidth=1.5)
        .encode(
            x=alt.X("x:Q", scale=x_scale, axis=None),
            y=alt.Y("y:Q", scale=y_scale, axis=None),
            color=alt.Color(
                "category:N",
                title="sampled as",
                scale=alt.Scale(domain=categories, range=[KIND_COLOURS[c] for c in categories]),
                legend=alt.Legend(orient="bottom", columns=2, labelExpr="replace(datum.label, '_', ' ')"),
            ),
            size=alt.Size("specimens:Q", scale=alt.Scale(range=[90, 520]), legend=None),
            tooltip=["site", "category", "codes", "sampling_sites", "specimens"],
        )
    )
    return alt.layer(*parts, marks).properties(width=width, height=height).configure_view(stroke=None)
