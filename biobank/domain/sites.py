"""Anatomical-site vocabulary (DOMAIN.md §4), shipped as ``biobank/data/anatomical_sites.csv``.

Each site carries a stable code, a label, its UBERON id, its ICD-O-3 topography code (empty where none applies),
whether laterality applies, an optional parent (subsites: vertebra levels, Couinaud liver segments, lung lobes...),
a category used to group and colour sites, and a position on a front-view body schematic.

Body-map convention: ``body_x``/``body_y`` are in [0, 1]; ``x = 0`` is the image's left edge, which is the figure's
right side (anatomical position), ``y = 0`` the top of the head and ``y = 1`` the feet. Sites with laterality are
placed on the figure's right side; :func:`body_position` mirrors them for the left.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

CATEGORIES = frozenset(
    {
        "breast",
        "bone",
        "bone_marrow",
        "blood",
        "lymph_node",
        "visceral",
        "cns",
        "serosa",
        "soft_tissue",
        "skin",
        "gynaecological",
        "other",
    }
)


@dataclass(frozen=True, slots=True)
class AnatomicalSite:
    """One row of the vocabulary; frozen so the cached copy cannot be altered by a caller."""

    code: str
    label: str
    uberon_id: str
    icdo3_topography: str
    laterality_applies: bool
    parent_code: str | None
    category: str
    body_x: float
    body_y: float


def _parse_bool(value: str, code: str) -> bool:
    """Accept only ``true``/``false`` so a typo in the data file fails loudly instead of meaning False."""
    if value == "true":
        return True
    if value == "false":
        return False
    raise ValueError(f"anatomical site {code!r}: laterality_applies must be 'true' or 'false', not {value!r}")


@lru_cache(maxsize=1)
def load_sites() -> dict[str, AnatomicalSite]:
    """Read the shipped CSV once per process; every caller shares the same immutable sites."""
    text = (files("biobank") / "data" / "anatomical_sites.csv").read_text(encoding="utf-8")
    sites: dict[str, AnatomicalSite] = {}
    for row in csv.DictReader(text.splitlines()):
        code = row["code"]
        if code in sites:
            raise ValueError(f"anatomical site {code!r} appears twice in anatomical_sites.csv")
        sites[code] = AnatomicalSite(
            code=code,
            label=row["label"],
            uberon_id=row["uberon_id"],
            icdo3_topography=row["icdo3_topography"],
            laterality_applies=_parse_bool(row["laterality_applies"], code),
            parent_code=row["parent_code"] or None,
            category=row["category"],
            body_x=float(row["body_x"]),
            body_y=float(row["body_y"]),
        )
    return sites


def unknown_site(code: object) -> str:
    """Why ``code`` is refused as an anatomical site, with the codes meant when it is near some (a typo such as
    BREST, a prefix such as VERTEBRA, a lower-case or spaced form): "not an anatomical-site code; did you mean
    BREAST?"."""
    sites = load_sites()
    key = str(code).strip().upper().replace(" ", "_")
    if key in sites:
        return f"not an anatomical-site code as written; codes are upper case: did you mean {key}?"
    near = [c for c in sites if key and c.startswith(key)][:6]
    near += [c for c, _, _ in process.extract(key, list(sites), scorer=Levenshtein.distance, score_cutoff=2, limit=4)]
    near = list(dict.fromkeys(near))[:6]
    hint = f": did you mean {' or '.join(near)}?" if near else " (the list: biobank template sampling_sites, or docs/DOMAIN.md)"
    return f"not an anatomical-site code{hint}"


def get_site(code: str) -> AnatomicalSite:
    """Look a site up by code, failing with the near matches so a mistyped code is easy to fix."""
    sites = load_sites()
    try:
        return sites[code]
    except KeyError:
        raise KeyError(f"{code!r}: {unknown_site(code)}") from None


def root_site(code: str) -> AnatomicalSite:
    """Walk ``parent_code`` to the top so subsites (``VERTEBRA_T12``) group under their organ (``VERTEBRA``)."""
    site = get_site(code)
    seen = {site.code}
    while site.parent_code is not None:
        site = get_site(site.parent_code)
        if site.code in seen:
            raise ValueError(f"anatomical site {code!r}: parent_code cycle through {site.code!r}")
        seen.add(site.code)
    return site


def site_label(code: str) -> str:
    """Human-readable label for display in forms, exports and the dashboard."""
    return get_site(code).label


def body_position(code: str, side: str | None = None) -> tuple[float, float]:
    """Body-map point; ``side='left'`` mirrors a lateral site onto the figure's left (the image's right)."""
    site = get_site(code)
    if side not in (None, "left", "right"):
        raise ValueError(f"side must be 'left', 'right' or None, not {side!r}")
    if side == "left" and site.laterality_applies:
        return 1.0 - site.body_x, site.body_y
    return site.body_x, site.body_y
