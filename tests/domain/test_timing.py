"""Post-mortem intervals: pure functions, every boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from biobank.domain.timing import (
    PmiBasis,
    case_figures,
    cold_interval,
    pmi_band,
    pmi_flag,
    specimen_pmi,
    warm_pmi,
)

DEATH = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_specimen_pmi_runs_from_death_to_stabilisation():
    pmi = specimen_pmi(DEATH, DEATH + 3 * H, DEATH + 3.5 * H)
    assert pmi is not None
    assert pmi.hours == 3.5
    assert pmi.basis is PmiBasis.stabilised


def test_specimen_pmi_falls_back_to_excision_and_says_so():
    pmi = specimen_pmi(DEATH, DEATH + 4 * H, None)
    assert pmi is not None
    assert pmi.hours == 4
    assert pmi.basis is PmiBasis.excised
    assert "stabilisation time unknown" in pmi.describe()


def test_pre_mortem_material_and_unknown_death_have_no_pmi():
    assert specimen_pmi(DEATH, DEATH - 24 * H, None) is None
    assert specimen_pmi(None, DEATH, DEATH) is None
    assert specimen_pmi(DEATH, None, None) is None


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        specimen_pmi(datetime(2026, 1, 1), DEATH, None)


def test_warm_pmi_and_cold_interval_split_at_refrigeration():
    refrigerated = DEATH + 1.5 * H
    excised = DEATH + 4 * H
    assert warm_pmi(DEATH, refrigerated) == 1.5 * H
    assert cold_interval(refrigerated, excised) == 2.5 * H
    assert cold_interval(refrigerated, DEATH + H) is None
    assert warm_pmi(DEATH, None) is None


def test_case_figures_summarise_the_autopsy():
    pmis = [2 * H, 3 * H, 5 * H, 6 * H, 7 * H, 9 * H]
    figures = case_figures(DEATH, DEATH + 1.75 * H, pmis, target=6 * H, limit=8 * H)
    assert figures.pmi_at_start == 1.75 * H
    assert figures.last_specimen_pmi == 9 * H
    assert figures.median_pmi == 5.5 * H
    assert figures.share_within_target == pytest.approx(4 / 6)  # exactly 6 h counts as within target
    assert figures.beyond_limit == 1
    assert figures.specimens == 6


def test_case_figures_without_specimens():
    figures = case_figures(DEATH, None, [], target=6 * H, limit=8 * H)
    assert figures.specimens == 0
    assert figures.median_pmi is None and figures.share_within_target is None and figures.pmi_at_start is None


@pytest.mark.parametrize(
    ("hours", "band"),
    [(0, "0-4 h"), (3.99, "0-4 h"), (4, "4-6 h"), (5.99, "4-6 h"), (6, "6-8 h"), (8, "8-12 h"), (12, "12+ h"), (100, "12+ h"), (None, "unknown")],
)
def test_pmi_bands_are_half_open(hours, band):
    assert pmi_band(hours) == band


@pytest.mark.parametrize(
    ("hours", "flag"),
    [(5.9, "within target"), (6.0, "within target"), (6.01, "past target"), (8.0, "past target"), (8.01, "past limit"), (None, "unknown")],
)
def test_pmi_flags_for_the_board(hours, flag):
    assert pmi_flag(hours, target_hours=6, limit_hours=8) == flag
