"""Coordinates, kinds and the format/temperature table, without a database."""

from __future__ import annotations

import pytest

from biobank.domain.storage import compat
from biobank.domain.storage.coords import CoordinateError, Grid, Scheme
from biobank.domain.storage.kinds import CONTAINER_KINDS, ContainerKind, grid_of, may_hold, spec


def test_letter_number_positions_parse_and_format_both_ways():
    grid = Grid(10, 10)
    assert grid.parse("A1") == (1, 1)
    assert grid.parse("j10") == (10, 10)
    assert grid.parse(" b07 ") == (2, 7)
    assert grid.normalise("c03") == "C3"
    assert all(grid.format(*grid.parse(p)) == p for p in grid.positions())


def test_fill_order_is_row_by_row():
    grid = Grid(9, 9)
    positions = list(grid.positions())
    assert positions[:3] == ["A1", "A2", "A3"]
    assert positions[8:10] == ["A9", "B1"]
    assert positions[-1] == "I9"
    assert len(positions) == 81


@pytest.mark.parametrize("text", ["K1", "A11", "A0", "1A", "", "AA1", "A-1"])
def test_positions_off_a_10x10_grid_are_refused_with_the_grid_named(text):
    with pytest.raises(CoordinateError, match="10x10"):
        Grid(10, 10).parse(text)


def test_numbered_grid_counts_from_one():
    grid = Grid(1, 60, Scheme.numbered)
    assert grid.parse("1") == (1, 1)
    assert grid.normalise("007") == "7"
    assert list(grid.positions())[-1] == "60"
    with pytest.raises(CoordinateError):
        grid.parse("61")
    with pytest.raises(CoordinateError):
        grid.parse("A1")


def test_first_free_run_skips_occupied_positions():
    grid = Grid(9, 9)
    assert grid.first_free_run(set(), 3) == ["A1", "A2", "A3"]
    assert grid.first_free_run({"A2"}, 3) == ["A3", "A4", "A5"]
    # a run wraps from the end of one row to the next, as a technician fills a box
    assert grid.first_free_run({f"A{i}" for i in range(1, 8)}, 3) == ["A8", "A9", "B1"]
    assert grid.first_free_run(set(grid.positions()) - {"I9"}, 2) is None


def test_run_from_refuses_to_fall_off_the_grid():
    grid = Grid(9, 9)
    assert grid.run_from("I8", 2) == ["I8", "I9"]
    with pytest.raises(CoordinateError, match="run off"):
        grid.run_from("I8", 3)


def test_kinds_declare_what_they_hold_and_their_grid():
    assert may_hold("freezer", "rack") and may_hold("rack", "box_9x9")
    assert not may_hold("rt_cabinet", "box_9x9")
    assert not may_hold("box_9x9", "box_9x9")
    assert grid_of("box_10x10") == Grid(10, 10)
    assert grid_of("bag") is None
    assert spec("ln2_tank").temperature == "LN"
    assert spec("freezer").temperature == "-60to-85"
    assert [k for k, s in CONTAINER_KINDS.items() if s.root] == [ContainerKind.site]
    for kind in CONTAINER_KINDS.values():  # every kind someone may hold is a declared kind
        assert kind.holds <= set(CONTAINER_KINDS)


@pytest.mark.parametrize(
    ("fmt", "material", "temperature", "allowed"),
    [
        ("snap_frozen", "tissue", "-60to-85", True),
        ("snap_frozen", "tissue", "LN", True),
        ("snap_frozen", "tissue", "RT", False),
        ("oct", "tissue", "2to10", False),
        ("ffpe", "tissue", "RT", True),
        ("ffpe", "tissue", "2to10", True),
        ("ffpe", "tissue", "LN", False),
        ("ffpe", "section", "-60to-85", False),
        ("viable_cryo", "cells", "LN", True),
        ("frozen", "dna", "-18to-35", True),
        ("frozen", "plasma", "-18to-35", False),
        ("fresh", "tissue", "-60to-85", False),
        ("snap_frozen", "tissue", None, False),
    ],
)
def test_format_temperature_table(fmt, material, temperature, allowed):
    assert compat.check(fmt, material, temperature).allowed is allowed


def test_viable_cells_at_minus_80_are_allowed_with_a_warning():
    verdict = compat.check("viable_cryo", "tissue", "-60to-85")
    assert verdict.allowed and "LN" in verdict.warning
