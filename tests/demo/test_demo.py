"""The demo cohort: deterministic for a seed, realistic, and built through the services."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.demo.cohort import load_demo
from biobank.models import ConsentWithdrawal, Donor, Lesion, SamplingSite, Specimen

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _counts(engine) -> dict[str, object]:
    with Session(engine) as session:
        def count(model):
            return session.exec(select(func.count()).select_from(model)).one()

        return {
            "donors": count(Donor),
            "lesions": count(Lesion),
            "sites": count(SamplingSite),
            "specimens": count(Specimen),
            "withdrawn": count(ConsentWithdrawal),
            "codes": sorted(session.exec(select(Specimen.code)).all()),
            "formats": dict(session.exec(select(Specimen.storage_format, func.count()).group_by(Specimen.storage_format)).all()),
        }


def test_the_demo_loads_twice_from_scratch_to_the_same_rows(templates, tmp_path, backend):
    from biobank.db.engine import make_engine
    from tests.support.dbtools import fresh_database

    results = []
    for _ in range(2):
        with fresh_database(backend, templates, tmp_path) as url:
            engine = make_engine(url)
            with session_scope(engine) as session:
                load_demo(session, donors_count=3, seed=11, now=NOW)
            results.append(_counts(engine))
            engine.dispose()
    assert results[0] == results[1]


def test_the_demo_cohort_looks_like_a_rapid_autopsy_programme(engine):
    with session_scope(engine) as session:
        counts = load_demo(session, donors_count=6, seed=7, now=NOW)
    assert counts["donors"] == 6
    with Session(engine) as session:
        per_donor = counts["specimens"] / 6
        assert 40 <= per_donor <= 120
        kinds = set(session.exec(select(SamplingSite.kind)).all())
        assert {"tumour_region", "normal_tissue", "germline_blood"} <= kinds
        formats = set(session.exec(select(Specimen.storage_format)).all())
        assert {"snap_frozen", "ffpe", "oct"} <= formats
        assert session.exec(select(func.count()).select_from(ConsentWithdrawal)).one() == 1
        lineages = set(session.exec(select(Specimen.lineage)).all())
        assert lineages == {"primary", "aliquot", "derivative"} or lineages >= {"primary", "derivative"}
        sites = set(session.exec(select(Lesion.site_code)).all())
        assert "BREAST" in sites and sites & {"VERTEBRA_T12", "VERTEBRA_L3", "RIB", "PELVIS", "FEMUR"}
        assert session.exec(select(func.count()).select_from(Specimen).where(Specimen.decalcification_agent.is_not(None))).one() > 0
