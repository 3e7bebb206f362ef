"""Container kinds declared as data: grid, coordinate scheme, temperature class and what each may hold.

Adding a kind is one entry in :data:`CONTAINER_KINDS` (and, because the database CHECKs the kind, a migration).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from biobank.domain.storage.coords import Grid, Scheme


class TemperatureClass(StrEnum):
    """MIABIS storage temperature (DOMAIN.md §4); LN covers liquid and vapour-phase nitrogen (< -135 °C)."""

    rt = "RT"
    fridge = "2to10"
    minus20 = "-18to-35"
    minus80 = "-60to-85"
    ln = "LN"
    other = "Other"


TEMPERATURE_LABEL = {
    TemperatureClass.rt: "room temperature",
    TemperatureClass.fridge: "2 to 10 °C",
    TemperatureClass.minus20: "-18 to -35 °C",
    TemperatureClass.minus80: "-60 to -85 °C",
    TemperatureClass.ln: "liquid nitrogen (vapour phase, < -135 °C)",
    TemperatureClass.other: "other",
}


class ContainerKind(StrEnum):
    site = "site"
    room = "room"
    freezer = "freezer"
    freezer_minus20 = "freezer_minus20"
    ln2_tank = "ln2_tank"
    fridge = "fridge"
    rt_cabinet = "rt_cabinet"
    rack = "rack"
    shelf = "shelf"
    box_9x9 = "box_9x9"
    box_10x10 = "box_10x10"
    slide_box = "slide_box"
    cassette_drawer = "cassette_drawer"
    bag = "bag"
    bin = "bin"


@dataclass(frozen=True)
class KindSpec:
    kind: ContainerKind
    label: str
    holds: frozenset[ContainerKind] = frozenset()
    holds_specimens: bool = False
    grid: Grid | None = None
    temperature: TemperatureClass | None = None  # a unit that sets the temperature for everything inside it
    root: bool = False  # may stand at the top of the tree


K = ContainerKind
BOXES = frozenset({K.box_9x9, K.box_10x10})
FROZEN_HOLDS = frozenset({K.rack, K.shelf, *BOXES, K.bag, K.bin})
ROOM_TEMP_HOLDS = frozenset({K.shelf, K.slide_box, K.cassette_drawer, K.bin, K.bag})

CONTAINER_KINDS: dict[ContainerKind, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(K.site, "site (building or institution)", frozenset({K.room}), root=True),
        KindSpec(K.room, "room", frozenset({K.freezer, K.freezer_minus20, K.ln2_tank, K.fridge, K.rt_cabinet})),
        KindSpec(K.freezer, "-80 °C freezer", FROZEN_HOLDS, temperature=TemperatureClass.minus80),
        KindSpec(K.freezer_minus20, "-20 °C freezer", FROZEN_HOLDS, temperature=TemperatureClass.minus20),
        KindSpec(K.ln2_tank, "liquid-nitrogen tank (vapour phase)", frozenset({K.rack, *BOXES, K.bag}),
                 temperature=TemperatureClass.ln),
        KindSpec(K.fridge, "fridge (2-10 °C)", FROZEN_HOLDS | ROOM_TEMP_HOLDS, temperature=TemperatureClass.fridge),
        KindSpec(K.rt_cabinet, "room-temperature cabinet (FFPE blocks, slides)", ROOM_TEMP_HOLDS,
                 temperature=TemperatureClass.rt),
        KindSpec(K.rack, "rack or canister", frozenset({*BOXES, K.bag, K.slide_box})),
        KindSpec(K.shelf, "shelf", frozenset({K.rack, *BOXES, K.slide_box, K.cassette_drawer, K.bin, K.bag})),
        KindSpec(K.box_9x9, "cryobox 9x9", holds_specimens=True, grid=Grid(9, 9)),
        KindSpec(K.box_10x10, "cryobox 10x10", holds_specimens=True, grid=Grid(10, 10)),
        KindSpec(K.slide_box, "slide box (100 slides)", holds_specimens=True, grid=Grid(1, 100, Scheme.numbered)),
        KindSpec(K.cassette_drawer, "cassette drawer (1x60 blocks)", holds_specimens=True,
                 grid=Grid(1, 60, Scheme.numbered)),
        KindSpec(K.bag, "bag (no grid)", holds_specimens=True),
        KindSpec(K.bin, "bin (no grid)", holds_specimens=True),
    )
}


def spec(kind: str) -> KindSpec:
    return CONTAINER_KINDS[ContainerKind(kind)]


def may_hold(parent: str, child: str) -> bool:
    return ContainerKind(child) in spec(parent).holds


def grid_of(kind: str, rows: int | None = None, cols: int | None = None) -> Grid | None:
    """The grid of a container: stored rows/cols win over the kind's default (kept for old rows)."""
    base = spec(kind).grid
    if base is None:
        return None
    return Grid(rows or base.rows, cols or base.cols, base.scheme)
