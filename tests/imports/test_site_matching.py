"""Site labels as prosectors write them: code, laterality and finer detail read out, every match explained, a poor
match refused with the three best candidates, and the lab's synonyms first."""

from __future__ import annotations

import pytest

from biobank.domain.errors import ValidationError
from biobank.domain.vocab import Laterality
from biobank.imports.site_matching import SiteMatch, match_site
from biobank.imports.vocabulary_ext import Synonyms

L, R = Laterality.left, Laterality.right


@pytest.mark.parametrize(
    ("label", "code", "laterality", "description"),
    [
        ("T11 vertebra", "VERTEBRA_T11", None, None),
        ("Femur L", "FEMUR", L, None),
        ("Rib 6 (R)", "RIB", R, "rib 6"),
        ("Liver seg 7", "LIVER_S7", None, None),
        ("Spleen (normal)", "SPLEEN", None, "normal"),
        ("Brain, frontal", "BRAIN", None, "frontal lobe"),
        ("L lung upper lobe", "LUNG_LUL", L, None),
        ("L3", "VERTEBRA_L3", None, None),
        ("left kidney", "KIDNEY", L, None),
        ("Humerus, right", "HUMERUS", R, None),
        ("Iliac crest R", "ILIUM", R, None),
        ("bilat adrenals", "ADRENAL", Laterality.bilateral, None),
        ("Femr L", "FEMUR", L, None),  # a typo still scores above the threshold
        ("LIVER", "LIVER", None, None),  # a site code as written
        ("Mediastinal LN", "LYMPH_NODE_THORACIC", None, None),
        ("Kidney, left upper pole", "KIDNEY", L, "upper pole"),  # words the match does not cover are detail
    ],
)
def test_prosector_labels_read_code_laterality_and_detail(
    label: str, code: str, laterality: Laterality | None, description: str | None
) -> None:
    match = match_site(label)
    assert (match.code, match.laterality, match.description) == (code, laterality, description)
    assert match.note.startswith(f"'{label}' read as {code}")
    assert 85 <= match.score <= 100


def test_the_note_says_what_was_read_and_how() -> None:
    assert match_site("Femur L").note == "'Femur L' read as FEMUR, left (score 100)"
    assert match_site("Rib 6 (R)").note == "'Rib 6 (R)' read as RIB, right, rib 6 (score 100)"
    assert "score" in match_site("Femr L").note


def test_laterality_on_a_site_without_sides_is_dropped_with_a_note() -> None:
    match = match_site("Spleen L")
    assert (match.code, match.laterality) == ("SPLEEN", None)
    assert "left ignored" in match.note


def test_a_nonsense_label_lists_the_three_best_candidates() -> None:
    with pytest.raises(ValidationError) as caught:
        match_site("Xqzzt blorp")
    error = caught.value
    assert error.field == "site" and error.value == "Xqzzt blorp"
    candidates = error.reason.split("best candidates: ", 1)[1].split(", ")
    assert len(candidates) == 3 and all("(" in c for c in candidates)
    assert "synonyms" in error.message


def test_a_single_letter_is_not_matched_by_a_fragment() -> None:
    with pytest.raises(ValidationError, match="best:"):
        match_site("L")


def test_the_threshold_is_the_setting_or_the_argument() -> None:
    with pytest.raises(ValidationError, match="at least 99"):
        match_site("Femr L", min_score=99)
    assert match_site("Femr", min_score=50).code == "FEMUR"


def test_an_empty_label_is_refused() -> None:
    with pytest.raises(ValidationError, match="empty"):
        match_site("  ")


def test_lab_synonyms_win_over_fuzzy_matching() -> None:
    synonyms = Synonyms(sites={"Hepatic dome": "LIVER", "Xqzzt": "SKULL", "Femur L": "TIBIA"})
    assert match_site("Xqzzt", synonyms=synonyms).code == "SKULL"
    assert "lab's synonym" in match_site("Xqzzt", synonyms=synonyms).note
    assert match_site("Femur L", synonyms=synonyms).code == "TIBIA"  # the whole label, as the lab wrote it
    dome = match_site("Hepatic dome (R)", synonyms=synonyms)  # the rest once laterality is read out
    assert isinstance(dome, SiteMatch) and dome.code == "LIVER" and "lab's synonym" in dome.note


def test_a_lab_synonym_naming_no_site_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an anatomical-site code"):
        match_site("Dome", synonyms=Synonyms(sites={"Dome": "NOPE"}))
