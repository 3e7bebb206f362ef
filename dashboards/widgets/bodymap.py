"""A schematic human figure (front view) drawn with Altair marks, with sampled sites marked on it.

Coordinates follow ``biobank.domain.sites``: x and y in [0, 1], x = 0 the image's left (the figure's right side), y = 0 the
top of the head. The figure's parts are rounded rectangles in the same coordinates, so every site's ``body_x/body_y``
lands on the right organ. The planner page can reuse :func:`body_map` with its own points.

A tool's result imported for the donor (:mod:`biobank.services.results`) is drawn over the figure: each migration
as an arrow from its source site to its target site, one per clone that migrated, coloured by clone
(:func:`migration_arrows`); the clones found at each site as small dots beside it (:func:`clone_dots`); and the
regions already sequenced as a ring around their site (:func:`sequenced_rings`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd

from biobank.domain.sites import body_position, get_site
from dashboards.widgets.charts import KIND_COLOURS

WIDTH, HEIGHT = 300, 620
#: The x domain the figure is drawn in (y runs over [0, 1], top to bottom).
X_DOMAIN = (0.1, 0.9)
#: Where along an arrow its head sits (0 the source, 1 the target): short of the target so the head shows beside
#: the target's circle.
HEAD_AT = 0.86
#: Clone colours: dark and distinct, without the oranges and yellows of the sampled categories (KIND_COLOURS).
CLONE_COLOURS = ("#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#1f78b4", "#a6761d", "#6a3d9a", "#b2182b",
                 "#01665e", "#666666")

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
        side = str(row.laterality) if row.laterality in ("left", "right") else None
        x, y = body_position(str(row.site_code), side)
        label = get_site(str(row.site_code)).label + (f" ({side})" if side else "")
        rows.append({"x": x, "y": y, "site": label, "category": row.category, "code": row.sampling_site,
                     "specimens": int(getattr(row, "specimens", 0)), "photos": int(getattr(row, "photos", 0) or 0)})
    frame = pd.DataFrame(rows)
    points = (
        frame.groupby(["x", "y", "site", "category"], as_index=False)
        .agg(sampling_sites=("code", "count"), specimens=("specimens", "sum"), codes=("code", lambda c: ", ".join(sorted(c))),
             photos=("photos", "sum"))
    )
    return points if "photos" in sites.columns else points.drop(columns="photos")


def photo_marks(points: pd.DataFrame) -> list[alt.Chart]:
    """A lesion's photos on the body map: the count ("2 photos") beside each point that has photos (the
    points of :func:`site_points` for sites with a ``photos`` column), to pass to :func:`body_map` as an overlay."""
    if points.empty or "photos" not in points.columns or not (points["photos"] > 0).any():
        return []
    shown = points[points["photos"] > 0].assign(
        bx=lambda f: f["x"] - 0.035, by=lambda f: f["y"],
        badge=lambda f: f["photos"].map(lambda n: f"{int(n)} photo{'s' if n != 1 else ''}"),
    )
    x = alt.X("bx:Q", scale=alt.Scale(domain=list(X_DOMAIN), nice=False), axis=None)
    y = alt.Y("by:Q", scale=alt.Scale(domain=[0, 1], reverse=True, nice=False), axis=None)
    tooltip = ["site", alt.Tooltip("photos:Q", title="photos"), alt.Tooltip("codes:N", title="regions")]
    return [
        alt.Chart(shown).mark_text(fontSize=10, fontWeight="bold", color="#333", align="right", baseline="middle")
        .encode(x=x, y=y, text="badge:N", tooltip=tooltip)
    ]


def _position(site: Mapping[str, Any]) -> tuple[float, float] | None:
    side = site.get("laterality")
    try:
        return body_position(str(site["site_code"]), side if side in ("left", "right") else None)
    except (KeyError, ValueError):
        return None


ARROW_COLUMNS = ["x", "y", "x2", "y2", "hx", "hy", "angle", "source", "target", "clone", "count", "route"]


def migration_arrows(parsed: Mapping[str, Any], *, width: int = WIDTH, height: int = HEIGHT) -> pd.DataFrame:
    """One row per migrating clone of each edge of a parsed result: the arrow from the source site to the target
    site (``x, y, x2, y2``), its head (``hx, hy`` and ``angle`` in degrees clockwise from up, on screen), the site
    keys, the clone (``unspecified`` when the file names none) and the number of migrations on that route. Parallel
    arrows of one route are set a little apart so each clone's colour shows, and so are the two directions of a
    route travelled both ways."""
    sites = {s["key"]: s for s in parsed.get("sites", [])}
    rows: list[dict[str, Any]] = []
    span = X_DOMAIN[1] - X_DOMAIN[0]
    routes = {(e["source"], e["target"]) for e in parsed.get("edges", [])}
    for edge in parsed.get("edges", []):
        a, b = _position(sites.get(edge["source"], {})), _position(sites.get(edge["target"], {}))
        if a is None or b is None:
            continue
        clones = list(edge.get("clones") or []) or ["unspecified"]
        dx, dy = (b[0] - a[0]) / span * width, (b[1] - a[1]) * height  # on screen, y down
        length = math.hypot(dx, dy)
        if length < 1e-9:
            continue  # two sites drawn at one point: listed in the table, not drawable as an arrow
        # unit normal in data units, to spread a route's clones 4 px apart
        nx, ny = -dy / length * span / width, dx / length / height
        for i, clone in enumerate(clones):
            # a route travelled both ways (reseeding): each direction keeps to its own side
            shift = (i - (len(clones) - 1) / 2) * 4 + (3 if (edge["target"], edge["source"]) in routes else 0)
            x, y = a[0] + nx * shift, a[1] + ny * shift
            x2, y2 = b[0] + nx * shift, b[1] + ny * shift
            rows.append({
                "x": x, "y": y, "x2": x2, "y2": y2,
                "hx": x + (x2 - x) * HEAD_AT, "hy": y + (y2 - y) * HEAD_AT,
                "angle": math.degrees(math.atan2(dx, -dy)) % 360,
                "source": edge["source"], "target": edge["target"], "clone": str(clone),
                "count": int(edge.get("count", 1)), "route": f"{edge['source']} → {edge['target']}",
            })
    return pd.DataFrame(rows, columns=ARROW_COLUMNS)


def clone_dots(parsed: Mapping[str, Any]) -> pd.DataFrame:
    """The clones found at each site (``presence``), as small dots in a row to the right of the site's point."""
    sites = {s["key"]: s for s in parsed.get("sites", [])}
    by_site: dict[str, list[Mapping[str, Any]]] = {}
    for p in parsed.get("presence", []):
        by_site.setdefault(p["site"], []).append(p)
    rows = []
    for key, found in by_site.items():
        point = _position(sites.get(key, {}))
        if point is None:
            continue
        for i, p in enumerate(dict((str(q["clone"]), q) for q in found).values()):
            rows.append({"x": point[0] + 0.035 + 0.02 * (i % 5), "y": point[1] - 0.012 + 0.016 * (i // 5),
                         "site": key, "clone": str(p["clone"]), "value": p.get("value"), "sample": p.get("sample")})
    return pd.DataFrame(rows, columns=["x", "y", "site", "clone", "value", "sample"])


def sequenced_rings(sites: pd.DataFrame, sequenced: Iterable[str]) -> pd.DataFrame:
    """A ring for each body-map point with a region already sequenced: rows of the donor's sites (``sampling_site``,
    ``site_code``, ``laterality``) whose region code is in ``sequenced``."""
    done = set(sequenced)
    rows: dict[tuple[float, float], dict[str, Any]] = {}
    if sites.empty or not done:
        return pd.DataFrame(columns=["x", "y", "regions"])
    for row in sites.itertuples(index=False):
        if str(row.sampling_site) not in done:
            continue
        side = str(row.laterality) if row.laterality in ("left", "right") else None
        x, y = body_position(str(row.site_code), side)
        entry = rows.setdefault((x, y), {"x": x, "y": y, "regions": []})
        entry["regions"].append(str(row.sampling_site))
    return pd.DataFrame(
        [{**r, "regions": ", ".join(sorted(r["regions"]))} for r in rows.values()], columns=["x", "y", "regions"]
    )


def result_layers(
    arrows: pd.DataFrame, dots: pd.DataFrame, rings: pd.DataFrame, clones: Sequence[str] = ()
) -> list[alt.Chart]:
    """The layers :func:`body_map` adds over the sampled sites: sequenced rings, migration arrows with their heads,
    clone dots; clones share one colour scale (``clones`` gives its order)."""
    x_scale = alt.Scale(domain=list(X_DOMAIN), nice=False)
    y_scale = alt.Scale(domain=[0, 1], reverse=True, nice=False)
    x, y = alt.X("x:Q", scale=x_scale, axis=None), alt.Y("y:Q", scale=y_scale, axis=None)
    order = list(dict.fromkeys([*clones, *arrows.get("clone", []), *dots.get("clone", [])]))
    colour = alt.Color("clone:N", title="clone", scale=alt.Scale(domain=order, range=list(CLONE_COLOURS)),
                       legend=alt.Legend(orient="bottom", columns=3) if order else None)
    layers: list[alt.Chart] = []
    if not rings.empty:
        layers.append(
            alt.Chart(rings).mark_point(shape="circle", filled=False, size=700, strokeWidth=2.5, color="#222",
                                        strokeDash=[3, 2])
            .encode(x=x, y=y, tooltip=[alt.Tooltip("regions:N", title="sequenced regions")])
        )
    if not arrows.empty:
        layers.append(
            alt.Chart(arrows).mark_rule(strokeWidth=2.2, opacity=0.85)
            .encode(x=x, y=y, x2="x2:Q", y2="y2:Q", color=colour,
                    tooltip=["route", "clone", alt.Tooltip("count:Q", title="migrations")])
        )
        layers.append(
            alt.Chart(arrows).mark_point(shape="triangle-up", filled=True, size=110, opacity=1)
            .encode(x=alt.X("hx:Q", scale=x_scale, axis=None), y=alt.Y("hy:Q", scale=y_scale, axis=None),
                    angle=alt.Angle("angle:Q", scale=None), color=colour,
                    tooltip=["route", "clone", alt.Tooltip("count:Q", title="migrations")])
        )
    if not dots.empty:
        layers.append(
            alt.Chart(dots).mark_circle(size=55, opacity=0.95, stroke="white", strokeWidth=0.8)
            .encode(x=x, y=y, color=colour, tooltip=["site", "clone", "sample", "value"])
        )
    return layers


def body_map(points: pd.DataFrame, *, width: int = WIDTH, height: int = HEIGHT,
             overlays: Sequence[alt.Chart] = ()) -> alt.LayerChart:
    """The figure with the sampled ``points`` (:func:`site_points`) and any ``overlays`` (:func:`result_layers`)
    drawn over them; the overlays' colours (clones) are a scale of their own."""
    x_scale = alt.Scale(domain=list(X_DOMAIN), nice=False)
    y_scale = alt.Scale(domain=[0, 1], reverse=True, nice=False)
    parts = []
    for radius, group in figure_frame().groupby("radius"):
        parts.append(
            alt.Chart(group)
            .mark_rect(cornerRadius=int(str(radius)), color="#e8e2da", stroke="#b9ada0", strokeWidth=1)
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
            tooltip=["site", "category", "codes", "sampling_sites", "specimens",
                     *(["photos"] if "photos" in points.columns else [])],
        )
    )
    chart = alt.layer(*parts, marks)
    if overlays:  # the overlays share one clone scale, independent of the sampled points' categories
        chart = alt.layer(*parts, marks, alt.layer(*overlays)).resolve_scale(color="independent", size="independent")
    return chart.properties(width=width, height=height).configure_view(stroke=None)
