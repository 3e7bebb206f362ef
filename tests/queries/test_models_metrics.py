"""Take rate, time to establishment and passages per model on a fixture with known answers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.queries import derived as mm
from biobank.services import derived
from biobank.services.inputs import ModelCreate, PassageCreate
from tests.support.factories import donor_with_material

DAY0 = date(2026, 3, 14)


@pytest.fixture
def cohort(engine, tech, death, monkeypatch):
    """Donor A (source PMI 3 h) and donor B (7 h); six models:

    A L01 BREAST primary   fresh        organoid  established after 30 days, passages P0-P2
    A L01 BREAST primary   viable_cryo  pdx       failed
    A L02 LIVER  metastasis fresh       organoid  growing, P0 only
    A L02 LIVER  metastasis viable_cryo organoid  established after 20 days, then cryobanked; P0, P1, split P1-B
    B L01 BREAST primary   fresh        organoid  failed
    B L02 LIVER  metastasis fresh       pdx       established after 90 days, then discontinued; P0, P1
    """
    monkeypatch.setenv("BIOBANK_MODEL_QC_REQUIRED", "")
    get_settings.cache_clear()

    def model(session, source, kind, **kw):
        if kind == "pdx":
            kw.setdefault("host_strain_name", "NSG")
        return derived.create_model(session, actor=tech, data=ModelCreate(source_code=source, kind=kind, initiated_on=DAY0, **kw)).code

    def passages(session, code, count, split=False):
        parent = None
        for n in range(count):
            p = derived.record_passage(session, actor=tech, data=PassageCreate(model_code=code, passaged_on=DAY0 + timedelta(days=7 * n), parent_label=parent))
            parent = p.label
        if split:
            derived.record_passage(session, actor=tech, data=PassageCreate(model_code=code, passaged_on=DAY0 + timedelta(days=8), parent_label="P0"))

    def status(session, code, *steps):
        for name, days in steps:
            derived.set_status(session, actor=tech, model_code=code, status=name, on=DAY0 + timedelta(days=days))

    with session_scope(engine) as session:
        a = donor_with_material(session, tech, death=death, code="RA-0001", pmi_hours=3)
        b = donor_with_material(session, tech, death=death, code="RA-0002", pmi_hours=7)
        m1 = model(session, a["L01-fresh"].code, "organoid")
        passages(session, m1, 3)
        status(session, m1, ("growing", 2), ("established", 30))
        m2 = model(session, a["L01-viable_cryo"].code, "pdx")
        status(session, m2, ("failed", 40))
        m3 = model(session, a["L02-fresh"].code, "organoid")
        passages(session, m3, 1)
        status(session, m3, ("growing", 2))
        m4 = model(session, a["L02-viable_cryo"].code, "organoid")
        passages(session, m4, 2, split=True)
        status(session, m4, ("growing", 2), ("established", 20), ("cryobanked", 25))
        m5 = model(session, b["L01-fresh"].code, "organoid")
        status(session, m5, ("failed", 10))
        m6 = model(session, b["L02-fresh"].code, "pdx")
        passages(session, m6, 2)
        status(session, m6, ("growing", 5), ("established", 90), ("discontinued", 120))
    yield
    get_settings.cache_clear()


def _by(session, by, per_kind=False):
    return {r["value"]: (r["attempted"], r["established"], r["failed"], r["in_progress"], r["take_rate"])
            for r in mm.take_rates(session, by=by, per_kind=per_kind)}


def test_take_rate_by_site_lesion_kind_format_and_pmi_band(engine, cohort):
    with session_scope(engine) as session:
        assert _by(session, "site") == {"BREAST": (3, 1, 2, 0, 0.3333), "LIVER": (3, 2, 0, 1, 0.6667)}
        assert _by(session, "lesion_kind") == {"primary": (3, 1, 2, 0, 0.3333), "metastasis": (3, 2, 0, 1, 0.6667)}
        assert _by(session, "storage_format") == {"fresh": (4, 2, 1, 1, 0.5), "viable_cryo": (2, 1, 1, 0, 0.5)}
        assert _by(session, "pmi_band") == {"0-4 h": (4, 2, 1, 1, 0.5), "6-8 h": (2, 1, 1, 0, 0.5)}
        assert _by(session, "kind") == {"organoid": (4, 2, 1, 1, 0.5), "pdx": (2, 1, 1, 0, 0.5)}


def test_take_rate_per_kind_splits_each_group(engine, cohort):
    with session_scope(engine) as session:
        rows = {(r["value"], r["kind"]): (r["attempted"], r["established"]) for r in mm.take_rates(session, by="site")}
    assert rows == {("BREAST", "organoid"): (2, 1), ("BREAST", "pdx"): (1, 0), ("LIVER", "organoid"): (2, 1), ("LIVER", "pdx"): (1, 1)}


def test_time_to_establishment_per_kind(engine, cohort):
    with session_scope(engine) as session:
        rows = mm.time_to_establishment(session)
    assert rows == [
        {"kind": "organoid", "established": 2, "mean_days": 25.0, "min_days": 20, "max_days": 30},
        {"kind": "pdx", "established": 1, "mean_days": 90.0, "min_days": 90, "max_days": 90},
    ]


def test_passages_per_model(engine, cohort):
    with session_scope(engine) as session:
        per_model = {r["model"]: (r["passages"], r["highest_passage"]) for r in mm.passages_per_model(session)}
        summary = mm.passage_summary(session)
    assert per_model == {
        "RA0001-L01A-ORG1": (3, 2), "RA0001-L01A-PDX1": (0, None), "RA0001-L02A-ORG1": (1, 0),
        "RA0001-L02A-ORG2": (3, 1), "RA0002-L01A-ORG1": (0, None), "RA0002-L02A-PDX1": (2, 1),
    }
    assert summary == [
        {"kind": "organoid", "models": 4, "mean_passages": 1.75, "highest_passage": 2},
        {"kind": "pdx", "models": 2, "mean_passages": 1.0, "highest_passage": 1},
    ]


def test_unknown_dimension_is_refused():
    with pytest.raises(ValueError, match="group by one of"):
        mm._dimension("colour")


def test_the_cohort_overview_counts_models_and_take_rate_by_the_derived_pages_definition_and_filter(engine, cohort):
    """Unfiltered, the overview's take rate equals the derived-models page's (established / initiated: 3 of 6);
    a PMI band keeps only the models whose source lies in it (donor B's 7 h material: 1 of 2 established)."""
    from biobank.queries.cohort import CohortFilter, model_counts, model_outcomes

    with session_scope(engine) as session:
        everything = model_outcomes(session)
        by_kind = mm.take_rates(session, by="kind", per_kind=False)
        assert everything == {"attempted": 6, "established": 3, "failed": 2, "in_progress": 1, "take_rate": 0.5}
        assert sum(r["established"] for r in by_kind) / sum(r["attempted"] for r in by_kind) == everything["take_rate"]
        seven = CohortFilter(pmi_band="6-8 h")
        assert model_outcomes(session, seven) == {"attempted": 2, "established": 1, "failed": 1, "in_progress": 0, "take_rate": 0.5}
        assert model_counts(session, seven) == {"failed": 1, "discontinued": 1}
        nobody = CohortFilter(diagnoses=("Glioblastoma",))
        assert model_outcomes(session, nobody)["attempted"] == 0 and model_counts(session, nobody) == {}
