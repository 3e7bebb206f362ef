"""SPREC codes derived from raw times: every bin boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from biobank.domain.sprec import (
    SPREC_VERSION,
    collection_type,
    fixation_time,
    fixation_type,
    ischemia,
    long_term_storage,
    sample_type,
    sprec_code,
)

DEATH = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)
MIN = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("after_death", "code"),
    [
        (0 * H, "A06"),
        (6 * H - timedelta(seconds=1), "A06"),
        (6 * H, "A12"),
        (12 * H - timedelta(seconds=1), "A12"),
        (12 * H, "A24"),
        (24 * H, "A48"),
        (48 * H, "A72"),
        (72 * H - timedelta(seconds=1), "A72"),
        (72 * H, "ZZZ"),
        (200 * H, "ZZZ"),
    ],
)
def test_autopsy_collection_bins(after_death, code):
    assert collection_type(DEATH, DEATH + after_death) == code


def test_collection_type_unknown_and_impossible():
    assert collection_type(None, DEATH) == "XXX"
    with pytest.raises(ValueError, match="before death"):
        collection_type(DEATH, DEATH - H)


@pytest.mark.parametrize(
    ("duration", "code"),
    [
        (0 * MIN, "A"),
        (15 * MIN - timedelta(seconds=1), "A"),
        (15 * MIN, "B"),
        (1 * H, "C"),
        (4 * H, "D"),
        (8 * H, "E"),
        (24 * H, "F"),
        (48 * H, "G"),
        (72 * H - timedelta(seconds=1), "G"),
        (72 * H, "Z"),
    ],
)
def test_fixation_time_bins(duration, code):
    assert fixation_time("ffpe", "nbf", DEATH, DEATH + duration) == code


def test_fixation_time_not_applicable_and_unknown():
    assert fixation_time("snap_frozen", None, DEATH, None) == "N"
    assert fixation_time("ffpe", "nbf", DEATH, None) == "X"


@pytest.mark.parametrize(
    ("minutes", "code"),
    [(1.9, "A"), (2, "B"), (10, "C"), (20, "D"), (30, "E"), (59.9, "E"), (60, "F"), (None, "X")],
)
def test_surgical_ischemia_bins(minutes, code):
    assert ischemia(minutes, autopsy=False) == code


def test_autopsy_ischemia_is_not_applicable():
    assert ischemia(12, autopsy=True) == "N"


@pytest.mark.parametrize(
    ("fmt", "fixative", "code"),
    [
        ("snap_frozen", None, "SNP"),
        ("oct", None, "OCT"),
        ("rnalater", None, "RNL"),
        ("ffpe", "nbf", "NBF"),
        ("ffpe", "formalin", "FOR"),
        ("ffpe", "alcohol", "ETH"),
        ("ffpe", None, "XXX"),
        ("viable_cryo", None, "ZZZ"),
        ("fresh", None, "ZZZ"),
    ],
)
def test_fixation_type_follows_the_format_table(fmt, fixative, code):
    assert fixation_type(fmt, fixative) == code


def test_sample_type_bone_and_cells():
    assert sample_type("tissue", "snap_frozen", bone=False) == "TIS"
    assert sample_type("tissue", "ffpe", bone=True) == "BON"
    assert sample_type("cells", "viable_cryo", bone=False) == "CLN"
    assert sample_type("cells", "fresh", bone=False) == "CEN"
    assert sample_type("cells", "snap_frozen", bone=False) == "PEN"


@pytest.mark.parametrize(
    ("fmt", "temperature", "code"),
    [
        ("snap_frozen", "LN", "C"),
        ("snap_frozen", "-60to-85", "D"),
        ("snap_frozen", None, "D"),
        ("viable_cryo", None, "C"),
        ("ffpe", "RT", "P"),
        ("frozen", None, "A"),
        ("snap_frozen", "RT", "Z"),
    ],
)
def test_long_term_storage(fmt, temperature, code):
    assert long_term_storage(fmt, temperature) == code


def test_full_code_of_a_snap_frozen_autopsy_specimen_matches_the_domain_example():
    sprec = sprec_code(
        material_type="tissue",
        storage_format="snap_frozen",
        bone=False,
        death_at=DEATH,
        collected_at=DEATH + 3 * H,
        stabilised_at=DEATH + 3 * H + 5 * MIN,
        fixation_end_at=None,
        fixative=None,
        temperature="LN",
    )
    assert sprec is not None
    assert sprec.code == "TIS-A06-N-N-SNP-N-C"
    assert sprec.version == SPREC_VERSION
    assert str(sprec) == f"TIS-A06-N-N-SNP-N-C (SPREC {SPREC_VERSION})"


def test_ffpe_bone_after_the_target():
    sprec = sprec_code(
        material_type="tissue",
        storage_format="ffpe",
        bone=True,
        death_at=DEATH,
        collected_at=DEATH + 7 * H,
        stabilised_at=DEATH + 7 * H + 10 * MIN,
        fixation_end_at=DEATH + 7 * H + 10 * MIN + 24 * H,
        fixative="nbf",
    )
    assert sprec is not None and sprec.code == "BON-A12-N-N-NBF-F-P"


def test_fluids_get_no_invented_code():
    assert (
        sprec_code(
            material_type="whole_blood", storage_format="frozen", bone=False, death_at=DEATH, collected_at=DEATH + H,
            stabilised_at=None, fixation_end_at=None, fixative=None,
        )
        is None
    )
