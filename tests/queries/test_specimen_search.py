"""Specimen search: what a person types or scans finds the specimen, and a near miss offers the codes meant."""

from __future__ import annotations

import pytest

from biobank.db.engine import session_scope
from biobank.queries.cohort import resolve_specimen_code, similar_codes
from tests.support.factories import donor_with_material


@pytest.fixture
def codes(engine, tech, death):
    with session_scope(engine) as session:
        made = donor_with_material(session, tech, death=death, code="RA-0001")
        donor_with_material(session, tech, death=death, code="RA-0002")
        return sorted(s.code for s in made.values())


def test_a_code_typed_without_hyphens_or_in_lower_case_opens_the_specimen(engine, codes):
    code = codes[0]
    with session_scope(engine) as session:
        assert resolve_specimen_code(session, code.replace("-", "")) == code
        assert resolve_specimen_code(session, f"  {code.lower()} ") == code
        assert resolve_specimen_code(session, code.replace("-", "").lower()) == code


@pytest.mark.parametrize(
    "typo",
    [
        lambda c: c[:3] + ("9" if c[3] != "9" else "8") + c[4:],  # one wrong character in the donor part
        lambda c: c[:-1] + ("7" if c[-1] != "7" else "6"),  # one wrong character at the end
        lambda c: c[:8] + c[9:],  # one character missing
        lambda c: c[:5] + "X" + c[5:],  # one character too many
    ],
    ids=["wrong-start", "wrong-end", "missing", "extra"],
)
def test_a_one_character_typo_suggests_the_code_meant(engine, codes, typo):
    code = codes[0]
    typed = typo(code)
    with session_scope(engine) as session:
        assert resolve_specimen_code(session, typed) is None
        assert code in similar_codes(session, typed)


def test_suggestions_are_nearest_first_and_far_codes_are_not_offered(engine, codes):
    code = codes[0]
    with session_scope(engine) as session:
        near = similar_codes(session, code[:-1] + "9")
        assert near[0].startswith(code[:-1]) and all(c.startswith(("RA0001", "RA0002")) for c in near)
        assert similar_codes(session, "ZZ9999-Q99Q-QQ9") == []
        assert similar_codes(session, "R") == []
