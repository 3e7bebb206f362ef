"""The cohort overview's filters reach every figure: the per-case PMI strip as well as the counts."""

from __future__ import annotations

from biobank.db.engine import session_scope
from biobank.queries.cohort import CohortFilter, case_specimen_pmis
from tests.support.factories import collect, donor_with_material


def test_the_per_case_pmi_strip_keeps_only_the_pmi_band_chosen(engine, tech, death):
    with session_scope(engine) as session:
        donor_with_material(session, tech, death=death, code="RA-0001", pmi_hours=3)
        collect(session, tech, case="RAP-RA-0001", lesion="L01", region="B", site="BREAST", after_death=6.8, death=death)
    with session_scope(engine) as session:
        every = case_specimen_pmis(session, ["RAP-RA-0001"])
        early = case_specimen_pmis(session, ["RAP-RA-0001"], CohortFilter(pmi_band="0-4 h"))
        late = case_specimen_pmis(session, ["RAP-RA-0001"], CohortFilter(pmi_band="6-8 h"))
        other = case_specimen_pmis(session, ["RAP-RA-0001"], CohortFilter(diagnoses=("Glioblastoma",)))
    assert len(every) == len(early) + len(late) and early and late
    assert all(p["pmi_h"] < 4 for p in early) and all(6 <= p["pmi_h"] < 8 for p in late)
    assert other == []
